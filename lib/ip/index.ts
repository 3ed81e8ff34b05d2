// Pure IPv4/IPv6 address math (DESIGN.md: lib/ip). The one place where
// addresses are parsed, formatted and compared; lib/netlink encodes bytes
// from it, host-local names its files with it, the plugins plan with it.
//
// Why not the ip-address package (it was a dependency, never imported; removed
// for these reasons, checked against ip-address 10.7.6):
// - Go's net.ParseIP, whose answers the reference's configs rely on, refuses a
//   zone; ip-address's Address6 takes "fe80::1%eth0" and even "fe80::1%" and
//   drops the zone without a word, so every parse would need our own check in
//   front of it: two parsers where one does.
// - What it would take over is small: addr.ts and cidr.ts, held to Node's
//   net and to Go's answers by test/unit/ip.test.ts.
// - Start-up: loading it costs 33.7 M instructions (callgrind, Node 20:
//   `node -e "require('ip-address')"` 116.8 M vs `node -e 0` 83.2 M), a third
//   of a whole VERSION of the release; this module costs nothing to load.
//   Removing the unused dependency changed nothing (ncc never bundled it:
//   the release's LICENSES did not list it): VERSION of the release's bridge,
//   99.3 M instructions before, 98.9 M after.
export * from './addr';
export * from './cidr';
