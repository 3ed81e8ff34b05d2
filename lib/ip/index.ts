// Pure IPv4/IPv6 address math (DESIGN.md: lib/ip). The one place where
// addresses are parsed, formatted and compared; lib/netlink encodes bytes
// from it, host-local names its files with it, the plugins plan with it.
export * from './addr';
export * from './cidr';
