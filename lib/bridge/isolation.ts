// Network isolation for a bridge (config "isolation": true): the kernel side
// of lib/firewall/isolation. A network joins the isolation group when a
// container is attached and leaves it when its bridge has no container port
// left (last DEL, rollback of the only ADD, or GC).
//
// Join and leave run under a per-bridge lock, and ADD joins after its port
// is on the bridge: a DEL that counts ports either sees that port (keeps the
// network isolated) or ran before it and is followed by the join. The join
// still happens before the ADD returns, i.e. before the runtime starts any
// process in the container. The last leave removes the lock file too (a
// waiter notices and starts over: lib/sys/lock.ts). Called from
// lib/bridge/apply.ts and the firewall plugin.

import * as path from 'path';
import { applyIsolationJoin, applyIsolationLeave, type IsolationMember } from '../firewall/isolation';
import { withRtnl, type Rtnl } from '../netlink';
import { withFileLock } from '../sys/lock';

export interface IsolationHook extends IsolationMember {
  /** Where the per-bridge lock file lives (the plugin's state directory). */
  lockDir: string;
  /** nftables table (tests); default node_cni_isolation. */
  table?: string;
}

function lockFile(h: IsolationHook): string {
  return path.join(h.lockDir, 'isolation', `${h.bridge}.lock`);
}

/** Put the network's bridge into the isolation group (idempotent: one nft transaction). */
export async function joinIsolation(h: IsolationHook): Promise<void> {
  await withFileLock(lockFile(h), () => applyIsolationJoin(h, { table: h.table }));
}

/** Container ports (veths) on the bridge, not counting `ignore` (a port being rolled back). */
async function containerPorts(bridge: string, ignore: readonly string[], through?: Rtnl): Promise<number> {
  const count = async (rtnl: Rtnl) => {
    const br = await rtnl.getLink(bridge);
    if (!br) return 0;
    const links = await rtnl.listLinks();
    return links.filter((l) => l.master === br.index && l.kind === 'veth' && !ignore.includes(l.name)).length;
  };
  return through ? count(through) : withRtnl(undefined, count);
}

/**
 * Take the bridge out of the isolation group when no container port is left
 * on it (counted through `through`, a host socket, when given). Returns whether it left. Idempotent (a network never joined leaves quietly).
 */
export async function leaveIsolationIfEmpty(h: IsolationHook, ignorePorts: readonly string[] = [], through?: Rtnl): Promise<boolean> {
  return withFileLock(lockFile(h), async (lock) => {
    if ((await containerPorts(h.bridge, ignorePorts, through)) > 0) return false;
    await applyIsolationLeave(h, { table: h.table });
    // Nothing of this bridge's isolation is left: neither is its lock (nor the lock directory, once it is empty).
    lock.removeOnRelease({ dir: true });
    return true;
  });
}
