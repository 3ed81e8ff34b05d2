// The kernel side of the loopback plugin: lo inside CNI_NETNS, through one
// netlink socket created in that namespace.
import type { Kernel } from '../../lib/kernel';
import { openContainerNetns } from '../../lib/netns';
export { isNetnsGone as isGone } from '../../lib/netns';
import type { Address, Rtnl } from '../../lib/netlink';
import { LOOPBACK_IFNAME } from './result';

/** Open CNI_NETNS, run fn with a socket inside it, close both. A missing or wrong CNI_NETNS is code 4 (lib/netns), as in every plugin. */
export async function inNetns<T>(kernel: Kernel, nsPath: string, fn: (rtnl: Rtnl) => Promise<T>): Promise<T> {
  const ns = openContainerNetns(nsPath, 'loopback', (p) => kernel.openNetns(p));
  try {
    const rtnl = kernel.openRtnl(ns);
    try {
      return await fn(rtnl);
    } finally {
      rtnl.close();
    }
  } finally {
    ns.close();
  }
}

/**
 * Set lo up and return its addresses (v4 first, in kernel order). When
 * `accept` refuses them, lo is set back down if we brought it up (a failed
 * ADD leaves nothing changed) and the error propagates.
 */
export async function bringLoopbackUp(rtnl: Rtnl, accept: (addrs: Address[]) => void): Promise<Address[]> {
  const lo = await rtnl.requireLink(LOOPBACK_IFNAME);
  if (!lo.up) await rtnl.setLinkUp(lo);
  try {
    const all = await rtnl.listAddresses(lo);
    const addrs = [...all.filter((a) => a.family === 4), ...all.filter((a) => a.family === 6)];
    accept(addrs);
    return addrs;
  } catch (err) {
    if (!lo.up) await rtnl.setLinkDown(lo).catch(() => undefined);
    throw err;
  }
}

export async function bringLoopbackDown(rtnl: Rtnl): Promise<void> {
  const lo = await rtnl.getLink(LOOPBACK_IFNAME);
  if (lo?.up) await rtnl.setLinkDown(lo);
}

export async function isLoopbackUp(rtnl: Rtnl): Promise<boolean> {
  return (await rtnl.requireLink(LOOPBACK_IFNAME)).up;
}
