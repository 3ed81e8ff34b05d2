// The agent's kernel side: find the underlay, ensure the VXLAN device and the
// bridge, read the peer entries the device holds, apply a sync plan, and take
// it all down again on `leave`. Decisions live in ../model.ts; this file only
// talks to the kernel.

import { ensureBridge } from '../../../lib/bridge/bridge-device';
import { enableIpv4Forwarding, enableIpv6Forwarding } from '../../../lib/bridge/forwarding';
import { familyOf, sameIP, type Family } from '../../../lib/ip';
import { isExists, isNotFound, NUD, type Address, type Link, type Rtnl } from '../../../lib/netlink';
import { ensureSysctl } from '../../../lib/sys/sysctl';
import type { ActualEntries, SyncOp } from '../model';

export interface Underlay {
  ip: string;
  family: Family;
  link: Link;
}

const DEFAULT_DST = /^(default|0\.0\.0\.0\/0|::\/0)$/;
const IFA_F_DEPRECATED = 0x20;
const IFA_F_TENTATIVE = 0x40;
const IFA_F_DADFAILED = 0x08;

/**
 * The underlay address and device: the given address (either family), else
 * the first global address of the given device (IPv4 first), else that of
 * the default route's device, in the default route's family (IPv4's default
 * route first, then IPv6's).
 */
export async function findUnderlay(rtnl: Rtnl, o: { ip?: string; dev?: string }): Promise<Underlay> {
  const usable = (a: Address): boolean => a.scope === 0 && (a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) === 0;
  const addrs = (await rtnl.listAddresses()).filter(usable);
  if (o.ip) {
    const a = addrs.find((x) => sameIP(x.ip, o.ip!));
    if (!a) throw new Error(`underlay address ${o.ip} is not on any interface of this host`);
    return { ip: a.ip, family: a.family, link: await rtnl.requireLink(a.index) };
  }
  let link: Link | undefined;
  let prefer: Family = 4;
  if (o.dev) {
    link = await rtnl.getLink(o.dev);
    if (!link) throw new Error(`underlay interface "${o.dev}" does not exist`);
  } else {
    const def = [...(await rtnl.listRoutes({ family: 4 })), ...(await rtnl.listRoutes({ family: 6 }))].find((r) => DEFAULT_DST.test(r.dst) && r.oif);
    if (!def?.oif) throw new Error('no default route (IPv4 or IPv6) to find the underlay interface: pass --underlay-ip or --underlay-dev');
    link = await rtnl.requireLink(def.oif);
    prefer = def.family;
  }
  const rank = (a: Address): number => (a.family === prefer ? 0 : 2) + (a.flags & IFA_F_DEPRECATED ? 1 : 0);
  const mine = addrs.filter((a) => a.index === link!.index).sort((a, b) => rank(a) - rank(b));
  if (mine.length === 0) throw new Error(`underlay interface "${link.name}" has no global address`);
  return { ip: mine[0].ip, family: mine[0].family, link };
}

export interface VxlanSpec {
  name: string;
  vni: number;
  port: number;
  local: string;
  underlayIndex: number;
  mtu: number;
  mac: string;
  /** IPv4 VTEP with the cluster CIDR's prefix (its connected route makes peers' VTEPs on-link). */
  cidr: string;
  /** Dual-stack: the IPv6 VTEP as a /128 (model.vtepCidr6). */
  cidr6?: string;
}

/** Create the VXLAN device if missing (learning off), then make MAC, MTU, addresses and up-state right. */
export async function ensureVxlan(rtnl: Rtnl, s: VxlanSpec): Promise<Link> {
  let link = await rtnl.getLink(s.name);
  if (link && link.kind !== 'vxlan') throw new Error(`"${s.name}" exists and is a ${link.kind ?? 'device'}, not a vxlan device`);
  if (!link) {
    try {
      link = await rtnl.createVxlan({ name: s.name, vni: s.vni, port: s.port, local: s.local, dev: s.underlayIndex, learning: false, mtu: s.mtu, mac: s.mac });
    } catch (err) {
      if (!isExists(err)) throw err;
      link = await rtnl.requireLink(s.name); // another agent generation raced us
    }
  }
  if (link.mac !== s.mac) await rtnl.setMac(link.index, s.mac);
  if (link.mtu !== s.mtu) await rtnl.setMtu(link.index, s.mtu);
  // Neither ARP nor IPv6 autoconfiguration on the overlay: neighbours are all
  // permanent. Dual-stack needs IPv6 on the device, but no link-local address
  // (its DAD and router solicitations would go nowhere) and no RAs.
  if (s.cidr6) {
    ensureSysctl(`net/ipv6/conf/${s.name}/addr_gen_mode`, '1');
    ensureSysctl(`net/ipv6/conf/${s.name}/accept_ra`, '0');
    ensureSysctl(`net/ipv6/conf/${s.name}/disable_ipv6`, '0');
  } else {
    ensureSysctl(`net/ipv6/conf/${s.name}/disable_ipv6`, '1');
  }
  await ensureAddress(rtnl, link, s.cidr);
  if (s.cidr6) await ensureAddress(rtnl, link, s.cidr6);
  if (!link.up) await rtnl.setLinkUp(link.index);
  return rtnl.requireLink(link.index);
}

/** Create or reuse the local bridge with the subnet's gateway address(es) and the overlay MTU. */
export async function ensureOverlayBridge(rtnl: Rtnl, o: { name: string; mtu: number; gatewayCidr: string; gatewayCidr6?: string }): Promise<Link> {
  const br = await ensureBridge(rtnl, { name: o.name, mtu: o.mtu, plugin: 'vxlan-overlay' });
  if (br.mtu !== o.mtu) await rtnl.setMtu(br.index, o.mtu);
  await ensureAddress(rtnl, br, o.gatewayCidr);
  enableIpv4Forwarding();
  if (o.gatewayCidr6) {
    ensureSysctl(`net/ipv6/conf/${o.name}/disable_ipv6`, '0');
    await ensureAddress(rtnl, br, o.gatewayCidr6);
    enableIpv6Forwarding();
  }
  return rtnl.requireLink(br.index);
}

/** One global address of the family on the link: this one (another is of a subnet this host no longer holds). */
async function ensureAddress(rtnl: Rtnl, link: Link, cidr: string): Promise<void> {
  const family = familyOf(cidr);
  const have = await rtnl.listAddresses(link.index, family);
  if (have.some((a) => a.cidr === cidr)) return;
  for (const a of have) if (a.scope === 0) await rtnl.deleteAddress(link.index, a.cidr);
  try {
    await rtnl.addAddress(link.index, cidr, { nodad: family === 6 });
  } catch (err) {
    if (!isExists(err)) throw err;
  }
}

/** The entries of the kinds the agent manages that the VXLAN device holds now (reconcile only: these are dumps). */
export async function readActual(rtnl: Rtnl, vxlanIndex: number): Promise<ActualEntries> {
  const neighbours = (await rtnl.listNeighbours(vxlanIndex))
    .filter((n) => (n.state & NUD.PERMANENT) !== 0)
    .map((n) => ({ ip: n.ip, mac: n.mac }));
  const fdb = (await rtnl.listFdb(vxlanIndex)).filter((e) => e.dst !== undefined).map((e) => ({ mac: e.mac, dst: e.dst as string }));
  const routes = (await rtnl.listRoutes({ dev: vxlanIndex }))
    .filter((r) => r.gw !== undefined)
    .map((r) => ({ dst: r.dst, gw: r.gw as string }));
  return { neighbours, fdb, routes };
}

/** Ops of one phase do not depend on each other; a phase starts when the one before has finished. */
function phaseOf(op: SyncOp): number {
  switch (op.op) {
    case 'del-route': return 0;
    case 'del-fdb': return 1;
    case 'del-neighbour': return 2;
    case 'add-neighbour':
    case 'add-fdb': return 3;
    case 'add-route': return 4;
  }
}

async function applyOne(rtnl: Rtnl, vxlanIndex: number, op: SyncOp): Promise<void> {
  try {
    switch (op.op) {
      case 'add-neighbour': await rtnl.addNeighbour(vxlanIndex, op.ip, op.mac); break;
      case 'add-fdb': await rtnl.addFdb(vxlanIndex, op.mac, op.dst); break;
      case 'add-route': await rtnl.replaceRoute({ dst: op.dst, gw: op.gw, dev: vxlanIndex, onlink: op.onlink }); break;
      case 'del-route': await rtnl.deleteRoute({ dst: op.dst, gw: op.gw, dev: vxlanIndex }); break;
      case 'del-fdb': await rtnl.deleteFdb(vxlanIndex, op.mac, op.dst); break;
      case 'del-neighbour': await rtnl.deleteNeighbour(vxlanIndex, op.ip); break;
    }
  } catch (err) {
    if (op.op.startsWith('del-') && isNotFound(err)) return;
    throw err;
  }
}

/**
 * Apply ops phase by phase (stale routes, FDB, neighbours out; neighbours and
 * FDB in; routes in), up to `window` requests in flight on the one socket: a
 * first sync of a thousand peers does not wait one round trip per entry (5000
 * entries: 0.5 s one at a time, 0.34 s with 8 in flight, 0.32 s with 32, which
 * leaves 5 MiB more garbage behind).
 * A delete of something already gone counts as done; the first other failure
 * stops the plan (what is in flight finishes) and is thrown.
 */
export async function applySync(rtnl: Rtnl, vxlanIndex: number, ops: readonly SyncOp[], window = 8): Promise<void> {
  const phases: SyncOp[][] = [[], [], [], [], []];
  for (const op of ops) phases[phaseOf(op)].push(op);
  for (const phase of phases) {
    let next = 0;
    let failure: unknown;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < phase.length) {
        const op = phase[next++];
        try { await applyOne(rtnl, vxlanIndex, op); } catch (err) { failure ??= err; }
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, phase.length) }, worker));
    if (failure !== undefined) throw failure;
  }
}

/**
 * `leave`: the devices of the network (the VXLAN device takes its peers'
 * neighbours, FDB entries and routes with it; the bridge its gateway
 * addresses and connected routes). Gone already counts as done.
 */
export async function removeOverlayDevices(rtnl: Rtnl, names: { vxlan?: string; bridge?: string }): Promise<string[]> {
  const removed: string[] = [];
  for (const [name, kind] of [[names.vxlan, 'vxlan'], [names.bridge, 'bridge']] as const) {
    if (!name) continue;
    const link = await rtnl.getLink(name);
    if (!link) continue;
    // A device of that name that is not ours (another kind) stays.
    if (link.kind !== kind) throw new Error(`"${name}" is a ${link.kind ?? 'device'}, not the overlay's ${kind}: not removed`);
    try {
      await rtnl.deleteLink(link.index);
      removed.push(name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return removed;
}
