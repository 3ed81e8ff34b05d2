// Pure subnet math and key encoding for the overlay schema: IPv4 subnets are
// leased one per host; a dual-stack host's IPv6 subnet is the one at the same
// position in the IPv6 cluster CIDR (no key of its own).

import { formatIP, networkOf, parseCidr } from '../../../lib/ip';

export interface Ipv4Cidr {
  /** Network address as an unsigned 32-bit number (host bits cleared). */
  base: number;
  prefixLength: number;
}

export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parse "a.b.c.d/len" strictly: the address must be the network address. Throws a message naming the input. */
export function parseIpv4Cidr(text: string): Ipv4Cidr {
  const [addr, len, extra] = text.split('/');
  const base = parseIpv4(addr ?? '');
  const prefixLength = /^\d{1,2}$/.test(len ?? '') ? Number(len) : NaN;
  if (extra !== undefined || base === undefined || !(prefixLength >= 0 && prefixLength <= 32)) {
    throw new Error(`"${text}" is not an IPv4 CIDR (like 10.244.0.0/16)`);
  }
  if ((base & hostMask(prefixLength)) !== 0) {
    throw new Error(`"${text}" has host bits set: the network is ${formatIpv4((base & ~hostMask(prefixLength)) >>> 0)}/${prefixLength}`);
  }
  return { base, prefixLength };
}

export function formatCidr(c: Ipv4Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefixLength}`;
}

function hostMask(prefixLength: number): number {
  return prefixLength === 0 ? 0xffffffff : (2 ** (32 - prefixLength) - 1) >>> 0;
}

/** How many subnets of subnetLength the CIDR holds. */
export function subnetCount(cidr: Ipv4Cidr, subnetLength: number): number {
  if (subnetLength < cidr.prefixLength || subnetLength > 32) {
    throw new Error(`subnet length /${subnetLength} does not fit in ${formatCidr(cidr)}`);
  }
  return 2 ** (subnetLength - cidr.prefixLength);
}

/** The index-th subnet of subnetLength inside cidr (0-based). */
export function nthSubnet(cidr: Ipv4Cidr, subnetLength: number, index: number): Ipv4Cidr {
  return { base: (cidr.base + index * 2 ** (32 - subnetLength)) >>> 0, prefixLength: subnetLength };
}

/** Every subnet of subnetLength in cidr, in address order (lazy: a /8 of /24s is 65536). */
export function* enumerateSubnets(cidr: Ipv4Cidr, subnetLength: number): Generator<Ipv4Cidr> {
  const count = subnetCount(cidr, subnetLength);
  for (let i = 0; i < count; i++) yield nthSubnet(cidr, subnetLength, i);
}

export function cidrContains(outer: Ipv4Cidr, inner: Ipv4Cidr): boolean {
  return inner.prefixLength >= outer.prefixLength && ((inner.base & ~hostMask(outer.prefixLength)) >>> 0) === outer.base;
}

/** "10.244.3.0/24" → "10.244.3.0_24": a key segment without a slash. */
export function encodeSubnetKey(subnet: string): string {
  return subnet.replace('/', '_');
}

export function decodeSubnetKey(segment: string): string {
  return segment.replace('_', '/');
}

/** Host IDs may contain anything; in keys they are percent-encoded so "/" cannot split a key. */
export function encodeHostId(hostID: string): string {
  return encodeURIComponent(hostID);
}

export function decodeHostId(segment: string): string {
  return decodeURIComponent(segment);
}

// ---- IPv6 (dual-stack): a host's IPv6 subnet is paired with its IPv4 one ----

/** An IPv6 cluster CIDR, strictly: the network address, as canonical text. Throws a message naming the input. */
export function parseIpv6Cidr(text: string): { text: string; value: bigint; prefixLength: number } {
  const c = parseCidr(text);
  if (!c || c.addr.family !== 6) throw new Error(`"${text}" is not an IPv6 CIDR (like fd00:10:244::/56)`);
  const net = networkOf(c);
  const netText = `${formatIP({ family: 6, value: net })}/${c.prefix}`;
  if (net !== c.addr.value) throw new Error(`"${text}" has host bits set: the network is ${netText}`);
  return { text: netText, value: net, prefixLength: c.prefix };
}

/** The position of an IPv4 subnet inside the cluster CIDR (0-based). */
export function subnetIndex(cidr: Ipv4Cidr, subnetLength: number, subnet: Ipv4Cidr): number {
  if (subnet.prefixLength !== subnetLength || !cidrContains(cidr, subnet)) throw new Error(`${formatCidr(subnet)} is not a /${subnetLength} of ${formatCidr(cidr)}`);
  return (subnet.base - cidr.base) / 2 ** (32 - subnetLength);
}

/** The index-th IPv6 subnet of subnetLength inside the IPv6 CIDR, as canonical text. */
export function nthIpv6Subnet(cidr6: string, subnetLength: number, index: number): string {
  const c = parseIpv6Cidr(cidr6);
  if (subnetLength < c.prefixLength || subnetLength > 128) throw new Error(`IPv6 subnet length /${subnetLength} does not fit in ${c.text}`);
  if (BigInt(index) >= 1n << BigInt(subnetLength - c.prefixLength)) throw new Error(`${c.text} has no IPv6 subnet #${index} of /${subnetLength}`);
  const value = c.value + (BigInt(index) << BigInt(128 - subnetLength));
  return `${formatIP({ family: 6, value })}/${subnetLength}`;
}

/** Canonical IPv6 CIDR text (network address, RFC 5952), as the store keeps it. */
export function isIpv6Cidr(text: unknown): text is string {
  try {
    return typeof text === 'string' && parseIpv6Cidr(text).text === text;
  } catch {
    return false;
  }
}
