// The kernel side of the loopback plugin: lo inside CNI_NETNS, through one
// netlink socket created in that namespace.
import { Netns } from '../../lib/netns';
import { Address, openRtnl, Rtnl } from '../../lib/netlink';
import { LOOPBACK_IFNAME } from './result';

/** Open CNI_NETNS, run fn with a socket inside it, close both. Netns.open throws NetnsNotFoundError. */
export async function inNetns<T>(nsPath: string, fn: (rtnl: Rtnl) => Promise<T>): Promise<T> {
  const ns = Netns.open(nsPath);
  try {
    const rtnl = openRtnl(ns);
    try {
      return await fn(rtnl);
    } finally {
      rtnl.close();
    }
  } finally {
    ns.close();
  }
}

/** Set lo up and return its addresses (v4 first, in kernel order). */
export async function bringLoopbackUp(rtnl: Rtnl): Promise<Address[]> {
  const lo = await rtnl.requireLink(LOOPBACK_IFNAME);
  if (!lo.up) await rtnl.setLinkUp(lo);
  const addrs = await rtnl.listAddresses(lo);
  return [...addrs.filter((a) => a.family === 4), ...addrs.filter((a) => a.family === 6)];
}

export async function bringLoopbackDown(rtnl: Rtnl): Promise<void> {
  const lo = await rtnl.getLink(LOOPBACK_IFNAME);
  if (lo?.up) await rtnl.setLinkDown(lo);
}

export async function isLoopbackUp(rtnl: Rtnl): Promise<boolean> {
  return (await rtnl.requireLink(LOOPBACK_IFNAME)).up;
}
