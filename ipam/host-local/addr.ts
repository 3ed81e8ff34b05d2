// Address math for the allocator: an address is its family plus a bigint, so
// IPv4 and IPv6 share one code path. Formatting follows Go's net.IP.String()
// (RFC 5952, and an IPv4-mapped IPv6 address counts as IPv4), because the
// reference host-local names its reservation files that way and we share them.

import { isIPv4, isIPv6 } from 'net';

export type Family = 4 | 6;

export interface Addr {
  family: Family;
  value: bigint;
}

export interface Cidr {
  addr: Addr; // as written, host bits kept
  prefix: number;
}

export const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

function parseV4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(s: string): bigint {
  let text = s;
  let tail: bigint[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 in the last 32 bits (e.g. ::ffff:10.0.0.1).
    const v4 = parseV4(text.slice(lastColon + 1));
    tail = [v4 >> 16n, v4 & 0xffffn];
    text = `${text.slice(0, lastColon + 1)}0`; // placeholder group, dropped below
  }
  const [head, rest] = text.split('::');
  const groups = (g: string | undefined) => (g ? g.split(':').map((h) => BigInt(parseInt(h, 16))) : []);
  let left = groups(head);
  let right = rest === undefined ? [] : groups(rest);
  if (tail.length) {
    if (rest === undefined) left = [...left.slice(0, -1), ...tail];
    else right = [...right.slice(0, -1), ...tail];
  }
  const fill = rest === undefined ? [] : new Array<bigint>(8 - left.length - right.length).fill(0n);
  return [...left, ...fill, ...right].reduce((acc, g) => (acc << 16n) | g, 0n);
}

const V4_MAPPED_PREFIX = 0xffffn << 32n;

/** Parse an IP address; undefined when it is not one. `::ffff:a.b.c.d` becomes IPv4, like Go's To4(). */
export function parseAddr(s: string): Addr | undefined {
  if (typeof s !== 'string') return undefined;
  if (isIPv4(s)) return { family: 4, value: parseV4(s) };
  if (!isIPv6(s) || s.includes('%')) return undefined;
  const value = parseV6(s);
  if (value >> 32n === 0xffffn) return { family: 4, value: value - V4_MAPPED_PREFIX };
  return { family: 6, value };
}

/** Parse "a.b.c.d/n" or "x::y/n" keeping host bits; undefined when malformed. */
export function parseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addrText = s.slice(0, slash);
  const prefixText = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  // The family is the one written, not the mapped one: Go parses "::ffff:1.2.3.4/120" as IPv6.
  const written: Family | undefined = isIPv4(addrText) ? 4 : isIPv6(addrText) && !addrText.includes('%') ? 6 : undefined;
  if (!written || prefix > bitsOf(written)) return undefined;
  const value = written === 4 ? parseV4(addrText) : parseV6(addrText);
  return { addr: { family: written, value }, prefix };
}

/** Parse "ip" or "ip/prefix" (runtimeConfig.ips, args.cni.ips, CNI_ARGS IP): the prefix is ignored. */
export function parseAddrMaybeCidr(s: string): Addr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0) return parseAddr(s);
  const c = parseCidr(s);
  return c ? parseAddr(s.slice(0, slash)) : undefined;
}

export function formatAddr(a: Addr): string {
  if (a.family === 4) {
    const v = a.value;
    return [24n, 16n, 8n, 0n].map((sh) => String((v >> sh) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  // Longest run of zero groups (leftmost on a tie), only when at least 2 long.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

export function maskOf(family: Family, prefix: number): bigint {
  const bits = BigInt(bitsOf(family));
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n);
}

export function networkOf(c: Cidr): bigint {
  return c.addr.value & maskOf(c.addr.family, c.prefix);
}

/** The last address of the prefix (the IPv4 broadcast address). */
export function lastOf(c: Cidr): bigint {
  return networkOf(c) | ((1n << BigInt(bitsOf(c.addr.family) - c.prefix)) - 1n);
}

export function sameAddr(a: Addr, b: Addr): boolean {
  return a.family === b.family && a.value === b.value;
}
