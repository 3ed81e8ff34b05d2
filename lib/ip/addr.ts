// IP addresses as a family plus a bigint, so IPv4 and IPv6 share one code
// path. Pure: no I/O. Text is parsed strictly (Node's isIPv4/isIPv6 rules, no
// zone ids) and formatted like Go's net.IP.String() (RFC 5952: lower-case hex, the
// longest run of two or more zero groups compressed, the leftmost on a tie),
// because the reference plugins name files and compare addresses that way.

export type Family = 4 | 6;

export interface Addr {
  family: Family;
  value: bigint;
}

export const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

/** The thrown error of the helpers that take text and cannot return undefined. */
export class IpParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IpParseError';
  }
}

// The rules of Node's net.isIPv4/isIPv6/isIP, without loading net: a plugin
// that touches net pays ~45 M instructions at start-up for it
// (docs/benchmarks/startup.md). test/unit/ip.test.ts holds them to net's answers.
const V4_PART = /^(?:0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;
const ZONE = /^[0-9a-zA-Z.:-]+$/;

/** Dotted quad, four decimal parts 0-255 without leading zeros (net.isIPv4). */
export function isIPv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => V4_PART.test(p) && Number(p) <= 255);
}

/** Eight hex groups, one "::" for a run of zeros, an IPv4 tail, a "%zone" (net.isIPv6). */
export function isIPv6(text: string): boolean {
  let s = text;
  const zoneAt = s.indexOf('%');
  if (zoneAt >= 0) {
    if (!ZONE.test(s.slice(zoneAt + 1))) return false;
    s = s.slice(0, zoneAt);
  }
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  let count = groups.length;
  if (s.includes('.')) {
    // An embedded IPv4 address counts two groups and only ends the address.
    const v4 = s.slice(s.lastIndexOf(':') + 1);
    if (!isIPv4(v4) || groups[groups.length - 1] !== v4) return false;
    groups.pop();
    count += 1;
  }
  if (!groups.every((g) => V6_GROUP.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}

/** 4, 6, or 0 when the text is no IP address (net.isIP). */
export function isIP(text: string): 0 | 4 | 6 {
  return isIPv4(text) ? 4 : isIPv6(text) ? 6 : 0;
}

function parseV4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(s: string): bigint {
  let text = s;
  let tail: bigint[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // Embedded IPv4 in the last 32 bits (::ffff:10.0.0.1): two groups.
    const v4 = parseV4(text.slice(lastColon + 1));
    tail = [v4 >> 16n, v4 & 0xffffn];
    text = `${text.slice(0, lastColon + 1)}0`; // placeholder group, replaced below
  }
  const [head, rest] = text.split('::');
  const groups = (g: string | undefined): bigint[] => (g ? g.split(':').map((h) => BigInt(parseInt(h, 16))) : []);
  let left = groups(head);
  let right = rest === undefined ? [] : groups(rest);
  if (tail.length) {
    if (rest === undefined) left = [...left.slice(0, -1), ...tail];
    else right = [...right.slice(0, -1), ...tail];
  }
  const fill = rest === undefined ? [] : new Array<bigint>(8 - left.length - right.length).fill(0n);
  return [...left, ...fill, ...right].reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** The family of IP text (no prefix), or undefined. A zone id ("fe80::1%eth0") is not an address here. */
export function familyOfText(text: unknown): Family | undefined {
  if (typeof text !== 'string') return undefined;
  if (isIPv4(text)) return 4;
  if (isIPv6(text) && !text.includes('%')) return 6;
  return undefined;
}

/** Parse IP text in the family it is written in ("::ffff:1.2.3.4" is IPv6); undefined when it is not one. */
export function parseIP(text: unknown): Addr | undefined {
  const family = familyOfText(text);
  if (family === undefined) return undefined;
  return { family, value: family === 4 ? parseV4(text as string) : parseV6(text as string) };
}

/** Like parseIP, but throws IpParseError naming the text. */
export function requireIP(text: string): Addr {
  const a = parseIP(text);
  if (!a) throw new IpParseError(`"${text}" is not an IP address`);
  return a;
}

const V4_MAPPED = 0xffffn;

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4, like Go's To4(); any other address unchanged. */
export function unmapIPv4(a: Addr): Addr {
  if (a.family === 6 && a.value >> 32n === V4_MAPPED) return { family: 4, value: a.value & 0xffffffffn };
  return a;
}

/** Text of an address in its own family: IPv4 dotted, IPv6 RFC 5952 hex (also for ::ffff:a.b.c.d). */
export function formatIP(a: Addr): string {
  if (a.family === 4) return [24n, 16n, 8n, 0n].map((sh) => String((a.value >> sh) & 0xffn)).join('.');
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  return formatIpv6Groups(groups);
}

/**
 * RFC 5952 text of the eight 16-bit groups of an IPv6 address: lower-case
 * hex, the longest run of two or more zero groups compressed (the leftmost on
 * a tie). Plain numbers: netlink dumps format thousands of addresses with it.
 */
export function formatIpv6Groups(groups: readonly number[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (from: number, to: number): string => {
    let out = '';
    for (let i = from; i < to; i++) out += (i > from ? ':' : '') + groups[i].toString(16);
    return out;
  };
  if (bestLen < 2) return hex(0, 8);
  return `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

/** Go's net.IP.String() of IP text: "fd00:0::5" → "fd00::5", "::ffff:10.0.0.1" → "10.0.0.1". Throws on garbage. */
export function canonicalIP(text: string): string {
  return formatIP(unmapIPv4(requireIP(text)));
}

/** Same address, whatever the spelling (an IPv4-mapped address equals its IPv4 one, like Go's IP.Equal); false for garbage. */
export function sameIP(a: string, b: string): boolean {
  const pa = parseIP(a);
  const pb = parseIP(b);
  if (!pa || !pb) return false;
  return sameAddr(unmapIPv4(pa), unmapIPv4(pb));
}

export function sameAddr(a: Addr, b: Addr): boolean {
  return a.family === b.family && a.value === b.value;
}

/** Network byte order: 4 bytes for IPv4, 16 for IPv6. */
export function addrToBytes(a: Addr): Buffer {
  const len = a.family === 4 ? 4 : 16;
  const out = Buffer.alloc(len);
  let v = a.value;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** 4 bytes → IPv4, 16 bytes → IPv6; undefined for any other length. */
export function addrFromBytes(b: Uint8Array): Addr | undefined {
  if (b.length !== 4 && b.length !== 16) return undefined;
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, value: v };
}
