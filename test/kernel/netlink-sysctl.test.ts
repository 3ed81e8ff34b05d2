// lib/sys/sysctl inside throwaway namespaces: the value lands in that namespace only.
import { Netns } from '../../lib/netns';
import { ensureSysctl, readSysctl, readSysctlIfExists, writeSysctl } from '../../lib/sys/sysctl';
import { Sandbox } from '../helpers/sandbox';

const sb = new Sandbox('nls');
let a: string, b: string;
let nsA: Netns, nsB: Netns;

beforeAll(() => {
  a = sb.netns('a');
  b = sb.netns('b');
  nsA = Netns.open(sb.nsPath(a));
  nsB = Netns.open(sb.nsPath(b));
});
afterAll(() => {
  nsA?.close();
  nsB?.close();
  sb.cleanup();
});

const seen = (ns: string, key: string) => sb.inNs(ns, 'sysctl', ['-n', key]).stdout.trim();

it('writes ip_forward in one namespace and leaves the other alone', () => {
  // New namespaces copy IPv4 settings from the initial one, so start both at 0.
  const hostBefore = readSysctl('net.ipv4.ip_forward');
  writeSysctl('net/ipv4/ip_forward', 0, nsB);
  writeSysctl('net/ipv4/ip_forward', 1, nsA);
  expect(readSysctl('net.ipv4.ip_forward', nsA)).toBe('1');
  expect(seen(a, 'net.ipv4.ip_forward')).toBe('1');
  expect(seen(b, 'net.ipv4.ip_forward')).toBe('0');
  expect(readSysctl('net.ipv4.ip_forward')).toBe(hostBefore);
  ensureSysctl('net.ipv4.ip_forward', 0, nsA);
  expect(seen(a, 'net.ipv4.ip_forward')).toBe('0');
});

it('writes per-interface keys and names the key on failure', () => {
  writeSysctl('net/ipv6/conf/lo/disable_ipv6', 1, nsB);
  expect(seen(b, 'net.ipv6.conf.lo.disable_ipv6')).toBe('1');
  expect(() => writeSysctl('net/ipv4/conf/nosuchdev/rp_filter', 1, nsB)).toThrow(/net\/ipv4\/conf\/nosuchdev\/rp_filter.*in ".*".*ENOENT/);
  expect(() => readSysctl('net/ipv4/conf/nosuchdev/rp_filter', nsB)).toThrow(/ENOENT/);
});

it('skips a missing key only when asked (IPv6 disabled, interface gone)', () => {
  expect(() => ensureSysctl('net/ipv6/conf/nosuchdev/accept_ra', 0, nsB)).toThrow(/ENOENT/);
  expect(() => ensureSysctl('net/ipv6/conf/nosuchdev/accept_ra', 0, nsB, { ignoreMissing: true })).not.toThrow();
  expect(() => writeSysctl('net/ipv6/conf/nosuchdev/accept_ra', 0, nsB, { ignoreMissing: true })).not.toThrow();
  expect(readSysctlIfExists('net/ipv6/conf/nosuchdev/accept_ra', nsB)).toBeUndefined();
  expect(readSysctlIfExists('net/ipv6/conf/lo/disable_ipv6', nsB)).toBe('1');
  // A present key is still written with the option.
  ensureSysctl('net/ipv4/conf/lo/arp_notify', 1, nsA, { ignoreMissing: true });
  expect(seen(a, 'net.ipv4.conf.lo.arp_notify')).toBe('1');
});
