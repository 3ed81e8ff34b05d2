// Address text <-> bytes for netlink attributes. Pure.
import { isIPv4, isIPv6 } from 'net';
import { AF } from './wire';
import { NetlinkError } from './errors';

export type Family = 4 | 6;

export function ipFamily(ip: string): Family {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new NetlinkError('EINVAL', `invalid IP address "${ip}"`);
}

export const afOf = (f: Family): number => (f === 4 ? AF.INET : AF.INET6);

export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map((x) => Number(x)));
  if (!isIPv6(ip)) throw new NetlinkError('EINVAL', `invalid IP address "${ip}"`);
  let text = ip;
  // An embedded dotted quad ("::ffff:1.2.3.4") becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipToBytes(v4[1]);
    text = text.slice(0, -v4[1].length) + `${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new NetlinkError('EINVAL', `address of ${b.length} bytes`);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    if (j > i) i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface Cidr {
  ip: string;
  prefix: number;
  family: Family;
}

/** "10.0.0.5/24" (host bits kept) or a bare address (full-length prefix). */
export function parseCidr(text: string): Cidr {
  const [ip, p, extra] = text.split('/');
  const family = ipFamily(ip);
  const max = family === 4 ? 32 : 128;
  const prefix = p === undefined ? max : Number(p);
  if (extra !== undefined || !/^\d+$/.test(p ?? String(max)) || prefix > max) {
    throw new NetlinkError('EINVAL', `invalid CIDR "${text}"`);
  }
  return { ip, prefix, family };
}

/** The network address of a CIDR: host bits cleared. */
export function networkOf(c: Cidr): Buffer {
  const b = ipToBytes(c.ip);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, c.prefix - i * 8));
    b[i] &= (0xff << (8 - bits)) & 0xff;
  }
  return b;
}

export function broadcastOf(c: Cidr): Buffer {
  const b = ipToBytes(c.ip);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, c.prefix - i * 8));
    b[i] |= ~(0xff << (8 - bits)) & 0xff;
  }
  return b;
}

export function macToBytes(mac: string): Buffer {
  if (!/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(mac)) throw new NetlinkError('EINVAL', `invalid MAC address "${mac}"`);
  return Buffer.from(mac.split(/[:-]/).map((x) => parseInt(x, 16)));
}

export function bytesToMac(b: Buffer): string {
  return Array.from(b).map((x) => x.toString(16).padStart(2, '0')).join(':');
}
