// Small, pure IPv4/IPv6 prefix arithmetic the bridge plan needs (network
// address, gateway = network + 1, containment). BigInt keeps v6 simple.

import { isIP } from 'net';

export type Family = 4 | 6;

export interface Prefix {
  family: Family;
  /** The address as written (host bits kept). */
  addr: bigint;
  len: number;
}

function parseV4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(s: string): bigint {
  let text = s;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = parseV4(v4[1]);
    text = text.slice(0, -v4[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].reduce((acc, part) => (acc << 16n) | BigInt(parseInt(part, 16)), 0n);
}

export function parseAddr(ip: string): { family: Family; addr: bigint } {
  const fam = isIP(ip);
  if (fam === 4) return { family: 4, addr: parseV4(ip) };
  if (fam === 6) return { family: 6, addr: parseV6(ip) };
  throw new Error(`"${ip}" is not an IP address`);
}

/** "10.1.0.5/24" → prefix; a bare address gets a host prefix. */
export function parseCidr(cidr: string): Prefix {
  const [ip, len] = cidr.split('/');
  const a = parseAddr(ip);
  const bits = a.family === 4 ? 32 : 128;
  const n = len === undefined ? bits : Number(len);
  if (!Number.isInteger(n) || n < 0 || n > bits || (len !== undefined && !/^\d+$/.test(len))) throw new Error(`"${cidr}" has an invalid prefix length`);
  return { family: a.family, addr: a.addr, len: n };
}

function bitsOf(f: Family): number {
  return f === 4 ? 32 : 128;
}

function mask(p: { family: Family; len: number }): bigint {
  const bits = bitsOf(p.family);
  return ((1n << BigInt(p.len)) - 1n) << BigInt(bits - p.len);
}

export function formatAddr(family: Family, addr: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 0xffn)).join('.');
  const parts: number[] = [];
  for (let i = 7; i >= 0; i--) parts.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  // Compress the longest run of zero hextets (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && parts[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = parts.map((p) => p.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The network of a prefix: "10.1.0.5/24" → "10.1.0.0/24". */
export function networkOf(cidr: string): string {
  const p = parseCidr(cidr);
  return `${formatAddr(p.family, p.addr & mask(p))}/${p.len}`;
}

/** The address part of a CIDR, normalised: "fd00:0::5/64" → "fd00::5". */
export function addressOf(cidr: string): string {
  const p = parseCidr(cidr);
  return formatAddr(p.family, p.addr);
}

export function familyOf(cidr: string): Family {
  return parseCidr(cidr).family;
}

/** The first host of the prefix (network + 1): the reference's default gateway. */
export function firstHost(cidr: string): string {
  const p = parseCidr(cidr);
  return formatAddr(p.family, (p.addr & mask(p)) + 1n);
}

export function contains(cidr: string, ip: string): boolean {
  const p = parseCidr(cidr);
  const a = parseAddr(ip);
  return a.family === p.family && (a.addr & mask(p)) === (p.addr & mask(p));
}

/** Two prefixes overlap when either contains the other's network. */
export function overlaps(a: string, b: string): boolean {
  const pa = parseCidr(a);
  const pb = parseCidr(b);
  if (pa.family !== pb.family) return false;
  const len = Math.min(pa.len, pb.len);
  const m = mask({ family: pa.family, len });
  return (pa.addr & m) === (pb.addr & m);
}

export function sameAddress(a: string, b: string): boolean {
  try {
    const pa = parseAddr(a);
    const pb = parseAddr(b);
    return pa.family === pb.family && pa.addr === pb.addr;
  } catch {
    return false;
  }
}
