// Prefixes: "10.1.0.5/24" keeps its host bits as written; the network, last
// (broadcast) address, containment and overlap are computed from it. Pure.

import { Addr, Family, IpParseError, bitsOf, canonicalIP, familyOfText, formatIP, parseIP } from './addr';

export interface Cidr {
  /** As written, host bits kept, in the family written ("::ffff:1.2.3.0/120" is IPv6, like Go's ParseCIDR). */
  addr: Addr;
  prefix: number;
}

export interface ParseCidrOptions {
  /** Accept a bare address as a full-length prefix ("10.0.0.1" → /32). Default: a "/len" is required. */
  allowBare?: boolean;
}

/** Parse "a.b.c.d/n" or "x::y/n"; undefined when malformed (prefix longer than the family, not decimal, extra "/"). */
export function parseCidr(text: unknown, o: ParseCidrOptions = {}): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) {
    if (!o.allowBare) return undefined;
    const addr = parseIP(text);
    return addr && { addr, prefix: bitsOf(addr.family) };
  }
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const addr = parseIP(text.slice(0, slash));
  const prefix = Number(prefixText);
  if (!addr || prefix > bitsOf(addr.family)) return undefined;
  return { addr, prefix };
}

/** Like parseCidr, but throws IpParseError naming the text. */
export function requireCidr(text: string, o: ParseCidrOptions = {}): Cidr {
  const c = parseCidr(text, o);
  if (!c) throw new IpParseError(`"${text}" is not a CIDR${o.allowBare ? ' or an IP address' : ''}`);
  return c;
}

export function maskOf(family: Family, prefix: number): bigint {
  const bits = BigInt(bitsOf(family));
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n);
}

/** The network address (host bits cleared). */
export function networkOf(c: Cidr): bigint {
  return c.addr.value & maskOf(c.addr.family, c.prefix);
}

/** The last address of the prefix (the IPv4 broadcast address). */
export function lastOf(c: Cidr): bigint {
  return networkOf(c) | ((1n << BigInt(bitsOf(c.addr.family) - c.prefix)) - 1n);
}

export function formatCidr(c: Cidr): string {
  return `${formatIP(c.addr)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, a: Addr): boolean {
  return a.family === c.addr.family && (a.value & maskOf(a.family, c.prefix)) === networkOf(c);
}

/** Two prefixes overlap when the shorter one contains the other's network. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.addr.family !== b.addr.family) return false;
  const m = maskOf(a.addr.family, Math.min(a.prefix, b.prefix));
  return (a.addr.value & m) === (b.addr.value & m);
}

// ---- text in, text out (throw IpParseError on garbage) ----------------------

/** The family of "ip" or "ip/len". */
export function familyOf(ipOrCidr: string): Family {
  const f = familyOfText(ipOrCidr.split('/')[0]);
  if (f === undefined) throw new IpParseError(`"${ipOrCidr}" is not an IP address or CIDR`);
  return f;
}

/** The canonical network of a CIDR: "10.1.0.5/24" → "10.1.0.0/24", "fd00:0::5/64" → "fd00::/64". */
export function networkText(cidr: string): string {
  const c = requireCidr(cidr, { allowBare: true });
  return `${formatIP({ family: c.addr.family, value: networkOf(c) })}/${c.prefix}`;
}

/** The address part of "ip/len" (or bare "ip") in Go's canonical text: "fd00:0::5/64" → "fd00::5". */
export function addressText(ipOrCidr: string): string {
  requireCidr(ipOrCidr, { allowBare: true });
  return canonicalIP(ipOrCidr.split('/')[0]);
}

/** "ip/len" with the address canonical and host bits kept: "fd00:0::5/64" → "fd00::5/64". */
export function canonicalCidr(cidr: string): string {
  const c = requireCidr(cidr);
  return `${addressText(cidr)}/${c.prefix}`;
}

/** The first host of the prefix (network + 1): the reference plugins' default gateway. */
export function firstHostText(cidr: string): string {
  const c = requireCidr(cidr, { allowBare: true });
  return formatIP({ family: c.addr.family, value: networkOf(c) + 1n });
}

/** Whether the CIDR contains the address (false when either is garbage or of another family). */
export function containsText(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr, { allowBare: true });
  const a = parseIP(ip);
  return !!c && !!a && cidrContains(c, a);
}

export function overlapsText(a: string, b: string): boolean {
  return cidrsOverlap(requireCidr(a, { allowBare: true }), requireCidr(b, { allowBare: true }));
}
