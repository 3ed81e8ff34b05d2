// Pure decisions of the loopback plugin: which addresses are acceptable on lo,
// and the result it reports when it is the first plugin of a chain.
import type { Result } from '../../lib/cni/types';
import type { Address } from '../../lib/netlink';

export const LOOPBACK_IFNAME = 'lo';
export const LOOPBACK_MAC = '00:00:00:00:00:00';

/** 127.0.0.0/8, ::1, and 127.x written as an IPv4-mapped IPv6 address (Go's net.IP.IsLoopback). */
export function isLoopbackIp(ip: string): boolean {
  const v4 = ip.toLowerCase().replace(/^::ffff:/, '');
  if (/^\d+\.\d+\.\d+\.\d+$/.test(v4)) return v4.split('.')[0] === '127';
  return ip === '::1';
}

/** The first address on lo that is not a loopback address, if any (the reference refuses those). */
export function foreignAddress(addrs: readonly Pick<Address, 'ip'>[]): string | undefined {
  return addrs.find((a) => !isLoopbackIp(a.ip))?.ip;
}

/** lo, its MAC, the namespace, and the first v4 and first v6 address of lo. */
export function loopbackResult(cniVersion: string, netns: string, addrs: readonly Pick<Address, 'cidr' | 'family'>[]): Result {
  const result: Result = { cniVersion, interfaces: [{ name: LOOPBACK_IFNAME, mac: LOOPBACK_MAC, sandbox: netns }] };
  const ips = [addrs.find((a) => a.family === 4), addrs.find((a) => a.family === 6)]
    .filter((a): a is Pick<Address, 'cidr' | 'family'> => a !== undefined)
    .map((a) => ({ address: a.cidr, interface: 0 }));
  if (ips.length) result.ips = ips;
  return result;
}
