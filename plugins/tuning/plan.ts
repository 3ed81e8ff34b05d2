// Pure: what to keep for DEL, what CHECK finds wrong, and the result ADD returns.

import type { Result } from '../../lib/cni/types';
import { IFF_ALLMULTI, IFF_PROMISC, type Link } from '../../lib/netlink';
import type { OriginalAttributes } from './backup';
import type { LinkSettings } from './config';

/** The current values of exactly the attributes ADD is about to change (the reference keeps those only). */
export function originalsOf(link: Link, s: LinkSettings): OriginalAttributes {
  const o: OriginalAttributes = {};
  if (s.mac !== undefined) o.mac = link.mac;
  if (s.promisc !== undefined) o.promisc = (link.flags & IFF_PROMISC) !== 0;
  if (s.mtu !== undefined) o.mtu = link.mtu;
  if (s.allmulti !== undefined) o.allmulti = (link.flags & IFF_ALLMULTI) !== 0;
  if (s.txQLen !== undefined) o.txQLen = link.txqlen ?? 0;
  return o;
}

/** CHECK: each configured attribute that the interface does not have, as a sentence. */
export function linkMismatches(link: Link, s: LinkSettings): string[] {
  const out: string[] = [];
  const say = (what: string, want: unknown, have: unknown): void => { out.push(`${what} of "${link.name}" is ${have}, configured ${want}`); };
  if (s.mac !== undefined && link.mac !== s.mac) say('MAC address', s.mac, link.mac);
  if (s.promisc && !(link.flags & IFF_PROMISC)) say('promiscuous mode', 'on', 'off');
  if (s.mtu !== undefined && link.mtu !== s.mtu) say('MTU', s.mtu, link.mtu);
  const allmulti = (link.flags & IFF_ALLMULTI) !== 0;
  if (s.allmulti !== undefined && allmulti !== s.allmulti) say('all-multicast mode', s.allmulti ? 'on' : 'off', allmulti ? 'on' : 'off');
  if (s.txQLen !== undefined && link.txqlen !== s.txQLen) say('transmit queue length', s.txQLen, link.txqlen);
  return out;
}

/** Sysctl values compare by their words: the kernel prints "4096\t131072\t6291456" for "4096 131072 6291456". */
export function sameSysctlValue(configured: string, current: string): boolean {
  const words = (v: string): string => v.trim().split(/\s+/).join(' ');
  return words(configured) === words(current);
}

/** prevResult with the new MAC on the container interface (chained: everything else passes through). */
export function resultWithMac(prev: Result, ifname: string, mac: string | undefined): Result {
  if (mac === undefined || !prev.interfaces) return prev;
  return { ...prev, interfaces: prev.interfaces.map((i) => (i.name === ifname ? { ...i, mac } : i)) };
}
