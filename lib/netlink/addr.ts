// Address text <-> bytes for netlink attributes, on top of lib/ip (the one
// place for address math). Pure. Errors are NetlinkError EINVAL so callers of
// the facade see one error type.
import { addrToBytes, familyOfText, formatIpv6Groups, lastOf as lastValue, networkOf as networkValue, parseCidr as parseIpCidr, parseIP, type Family } from '../ip';
import { AF } from './wire';
import { NetlinkError } from './errors';
import { normalizeMac } from '../util/mac';

export type { Family };

export function ipFamily(ip: string): Family {
  const f = familyOfText(ip);
  if (f === undefined) throw new NetlinkError('EINVAL', `invalid IP address "${ip}"`);
  return f;
}

export const afOf = (f: Family): number => (f === 4 ? AF.INET : AF.INET6);

/** 4 bytes for IPv4, 16 for IPv6 (also "::ffff:a.b.c.d": the family as written). */
export function ipToBytes(ip: string): Buffer {
  const a = parseIP(ip);
  if (!a) throw new NetlinkError('EINVAL', `invalid IP address "${ip}"`);
  return addrToBytes(a);
}

/**
 * The text of an address attribute, in its own family (16 bytes print as
 * IPv6), as formatIP would write it. Straight from the bytes, without the
 * bigint of lib/ip: a reconcile of a thousand peers decodes ~5000 of them.
 */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new NetlinkError('EINVAL', `address of ${b.length} bytes`);
  const groups = new Array<number>(8);
  for (let i = 0; i < 8; i++) groups[i] = (b[2 * i] << 8) | b[2 * i + 1];
  return formatIpv6Groups(groups);
}

export interface Cidr {
  ip: string;
  prefix: number;
  family: Family;
}

/** "10.0.0.5/24" (host bits kept) or a bare address (full-length prefix). */
export function parseCidr(text: string): Cidr {
  const c = parseIpCidr(text, { allowBare: true });
  if (!c) throw new NetlinkError('EINVAL', `invalid CIDR "${text}"`);
  return { ip: text.split('/')[0], prefix: c.prefix, family: c.addr.family };
}

function ipCidr(c: Cidr) {
  return { addr: parseIP(c.ip)!, prefix: c.prefix };
}

/** The network address of a CIDR as bytes: host bits cleared. */
export function networkOf(c: Cidr): Buffer {
  return addrToBytes({ family: c.family, value: networkValue(ipCidr(c)) });
}

/** The last address of the prefix as bytes (the IPv4 broadcast address). */
export function broadcastOf(c: Cidr): Buffer {
  return addrToBytes({ family: c.family, value: lastValue(ipCidr(c)) });
}

export { normalizeMac };

export function macToBytes(mac: string): Buffer {
  const canonical = normalizeMac(mac);
  if (!canonical) throw new NetlinkError('EINVAL', `invalid MAC address "${mac}"`);
  return Buffer.from(canonical.split(':').map((x) => parseInt(x, 16)));
}

const HEX_BYTE = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function bytesToMac(b: Uint8Array): string {
  let out = '';
  for (let i = 0; i < b.length; i++) out += (i ? ':' : '') + HEX_BYTE[b[i]];
  return out;
}
