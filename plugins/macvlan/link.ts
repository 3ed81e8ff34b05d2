// The kernel side of macvlan: find the master, ensure/release the 802.1q
// sub-interface of trunk mode, create and configure the macvlan inside the
// container, read it back for CHECK. Decisions live in plan.ts and trunk.ts.

import { CniError, ErrorCode, attachmentExists } from '../../lib/cni/errors';
import type { Kernel } from '../../lib/kernel';
import { openContainerNetnsIfPresent, type Netns } from '../../lib/netns';
import { NetlinkError, isExists, isNotFound, type Link, type Rtnl } from '../../lib/netlink';
import type { Route } from '../../lib/cni/types';
import { installRoutes } from '../../lib/routes/install';
import type { MacvlanConfig } from './config';
import { defaultRouteInterface, type InterfacePlan } from './plan';
import { decideSubInterface, planSubInterface, type SubInterfaceDecision } from './trunk';
import type { TrunkState } from './trunk-state';

/** The master named in the config, or the default route's interface; code 7 when there is none. */
export async function resolveMaster(rtnl: Rtnl, name: string | undefined, where: string): Promise<Link> {
  if (name !== undefined) {
    const link = await rtnl.getLink(name);
    if (!link) throw new CniError(ErrorCode.InvalidConfig, `macvlan: master "${name}" does not exist in the ${where} namespace`);
    return link;
  }
  const oif = defaultRouteInterface([...(await rtnl.listRoutes({ family: 4 })), ...(await rtnl.listRoutes({ family: 6 }))]);
  const link = oif === undefined ? undefined : await rtnl.getLink(oif);
  if (!link) throw new CniError(ErrorCode.InvalidConfig, `macvlan: no "master" given and the ${where} namespace has no default route to take it from`);
  return link;
}

/** True when the kernel cannot make 802.1q links at all (no 8021q module). */
export function isVlanUnsupported(err: unknown): boolean {
  if (err instanceof NetlinkError) return err.code === 'EOPNOTSUPP' || err.code === 'ENOTSUP';
  return /EOPNOTSUPP|ENOTSUP|Unknown device type|not supported/i.test(String((err as Error)?.message ?? err));
}

/**
 * Trunk mode, ADD: reuse <master>.<vlan> or create it (master's MTU, up,
 * recorded as ours), and record this attachment as a user. Under the trunk
 * lock, so a concurrent DEL cannot delete it in between.
 */
export async function attachSubInterface(o: { rtnl: Rtnl; state: TrunkState; master: Link; vlan: number; user: string }): Promise<Link> {
  const spec = planSubInterface(o.master, o.vlan);
  return o.state.withLock(async () => {
    let link = await o.rtnl.getLink(spec.name);
    if (!link) {
      let created = false;
      try {
        link = await o.rtnl.createVlan(spec);
        created = true;
      } catch (err) {
        if (isVlanUnsupported(err)) {
          throw new CniError(ErrorCode.Internal, `macvlan: cannot create 802.1q sub-interface "${spec.name}" on master "${o.master.name}": the kernel has no 802.1q (8021q) support`, (err as Error).message);
        }
        if (!isExists(err)) throw err;
        link = await o.rtnl.requireLink(spec.name); // someone else made it just now: theirs
      }
      if (created) {
        o.state.writeMarker(spec.name, { ifindex: link.index, master: o.master.name, vlan: o.vlan });
      }
      try {
        await o.rtnl.setLinkUp(link.index);
        link = await o.rtnl.requireLink(link.index);
      } catch (err) {
        // No user holds it yet, so the caller's undo would not release it: one we made goes here.
        if (created) {
          await o.rtnl.deleteLink(link.index).catch((e) => { if (!isNotFound(e)) throw e; });
          o.state.forget(spec.name);
        }
        throw err;
      }
    }
    o.state.addUser(spec.name, o.user);
    return link;
  });
}

/** Decide about one sub-interface and act on it. Returns what happened (for logs and tests). */
async function settle(rtnl: Rtnl, state: TrunkState, subif: string): Promise<SubInterfaceDecision> {
  const link = await rtnl.getLink(subif);
  const hostChildren = link ? (await rtnl.listLinks()).filter((l) => l.kind === 'macvlan' && l.peerIndex === link.index && l.linkNetnsId === undefined).length : 0;
  const decision = decideSubInterface({ link, marker: state.readMarker(subif), users: state.users(subif).length, hostChildren });
  if (decision.action === 'delete') {
    try {
      await rtnl.deleteLink(link!.index);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    state.forget(subif);
  } else if (decision.action === 'forget') {
    state.forget(subif);
  }
  return decision;
}

/**
 * Trunk mode, DEL/GC/rollback: drop the given user records (found by
 * identity in every sub-interface we know, not by trusting the config), then
 * delete each sub-interface we created that nobody uses any more.
 */
export async function releaseSubInterfaces(o: { rtnl: Rtnl; state: TrunkState; staleUsers: (subif: string, users: string[]) => string[] }): Promise<Error[]> {
  if (o.state.subInterfaces().length === 0) return [];
  const errors: Error[] = [];
  await o.state.withLock(async () => {
    for (const subif of o.state.subInterfaces()) {
      try {
        const drop = o.staleUsers(subif, o.state.users(subif));
        for (const u of drop) o.state.removeUser(subif, u);
        if (drop.length || o.state.users(subif).length === 0) await settle(o.rtnl, o.state, subif);
      } catch (err) {
        errors.push(err instanceof Error ? err : new Error(String(err)));
      }
    }
  });
  return errors;
}

export interface CreateMacvlanOptions {
  conf: MacvlanConfig;
  /** A socket where the parent lives (host, or container with linkInContainer). */
  parentRtnl: Rtnl;
  parent: Link;
  mtu: number;
  ifname: string;
  /** Set when the parent is outside the container: the macvlan is created there under a temporary name, then renamed. */
  containerNs?: Netns;
}

export async function createMacvlan(o: CreateMacvlanOptions): Promise<Link> {
  try {
    return await o.parentRtnl.createMacvlan({
      name: o.ifname, parentIndex: o.parent.index, mode: o.conf.mode, mtu: o.mtu, mac: o.conf.mac, bcqueuelen: o.conf.bcqueuelen, netns: o.containerNs,
    });
  } catch (err) {
    const e = err as NetlinkError;
    if (isExists(err)) throw attachmentExists(`macvlan: container already has an interface named "${o.ifname}"`);
    if (e.code === 'EBUSY' && o.conf.mode === 'passthru') {
      throw new CniError(ErrorCode.Internal, `macvlan: master "${o.parent.name}" already has a macvlan; passthru mode takes the master for a single container`, e.message);
    }
    throw new CniError(ErrorCode.Internal, `macvlan: cannot create "${o.ifname}" on master "${o.parent.name}" (mode ${o.conf.mode})`, e.message);
  }
}

/** sysctls of the container interface, written from inside its namespace (sync, in one tick). */
export function writeSysctls(kernel: Kernel, ns: Netns, sysctls: InterfacePlan['sysctls']): void {
  // IPv6 may be disabled in the container: no ndisc_notify to set then.
  for (const s of sysctls) kernel.sysctl.write(s.path, s.value, ns, { ignoreMissing: s.path.startsWith('net/ipv6/') });
}

/**
 * Addresses, link up, then routes (routes need the addresses' subnets), each
 * with a metric of its own (lib/routes: several networks of one container
 * may route the same destination). Returns the routes as installed.
 */
export async function configureInterface(rtnl: Rtnl, ifname: string, plan: InterfacePlan, gwPriority: number): Promise<Route[]> {
  for (const a of plan.addresses) await rtnl.addAddress(ifname, a);
  await rtnl.setLinkUp(ifname);
  const link = await rtnl.requireLink(ifname);
  return installRoutes(rtnl, { plugin: 'macvlan', ifname, index: link.index, routes: plan.routes, gwPriority });
}

/** Delete the container interface; a missing namespace or interface counts as done. */
export async function deleteContainerInterface(kernel: Kernel, netnsPath: string, ifname: string): Promise<void> {
  const ns = openContainerNetnsIfPresent(netnsPath, (p) => kernel.openNetns(p));
  if (!ns) return;
  const rtnl = kernel.openRtnl(ns);
  try {
    const link = await rtnl.getLink(ifname);
    if (link) await rtnl.deleteLink(link.index).catch((err) => { if (!isNotFound(err)) throw err; });
  } finally {
    rtnl.close();
    ns.close();
  }
}
