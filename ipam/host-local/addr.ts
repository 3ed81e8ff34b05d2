// host-local's reading of address text, on top of lib/ip (which does the
// math and the formatting). These are Go's rules, because the reference
// host-local names its reservation files with net.IP.String() and we share
// them: an IPv4-mapped IPv6 address counts as IPv4 (To4()), a subnet keeps
// the family it is written in, and a requested "ip/len" ignores the prefix.

import { parseCidr as parseIpCidr, parseIP, unmapIPv4, type Addr, type Cidr } from '../../lib/ip';

export { bitsOf, formatIP as formatAddr, lastOf, maskOf, networkOf, sameAddr } from '../../lib/ip';
export type { Addr, Cidr, Family } from '../../lib/ip';

/** Parse an IP address; undefined when it is not one. `::ffff:a.b.c.d` becomes IPv4, like Go's To4(). */
export function parseAddr(s: string): Addr | undefined {
  const a = parseIP(s);
  return a && unmapIPv4(a);
}

/** Parse "a.b.c.d/n" or "x::y/n" keeping host bits and the written family; undefined when malformed. */
export function parseCidr(s: string): Cidr | undefined {
  return parseIpCidr(s);
}

/** Parse "ip" or "ip/prefix" (runtimeConfig.ips, args.cni.ips, CNI_ARGS IP): the prefix is ignored. */
export function parseAddrMaybeCidr(s: string): Addr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0) return parseAddr(s);
  return parseIpCidr(s) ? parseAddr(s.slice(0, slash)) : undefined;
}
