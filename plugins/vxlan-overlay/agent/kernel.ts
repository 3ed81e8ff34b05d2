// The agent's kernel side: find the underlay, ensure the VXLAN device and the
// bridge, read the peer entries the device holds, and apply a sync plan.
// Decisions live in ../model.ts; this file only talks to the kernel.

import { ensureBridge } from '../../../lib/bridge/attach';
import { isExists, isNotFound, NUD, type Link, type Rtnl } from '../../../lib/netlink';
import { ensureSysctl } from '../../../lib/sys/sysctl';
import type { ActualEntries, SyncOp } from '../model';

export interface Underlay {
  ip: string;
  family: 4 | 6;
  link: Link;
}

/**
 * The underlay address and device: the given address, else the first global
 * address of the given device, else that of the default route's device.
 */
export async function findUnderlay(rtnl: Rtnl, o: { ip?: string; dev?: string }): Promise<Underlay> {
  const addrs = (await rtnl.listAddresses()).filter((a) => a.scope === 0);
  if (o.ip) {
    const a = addrs.find((x) => x.ip === o.ip);
    if (!a) throw new Error(`underlay address ${o.ip} is not on any interface of this host`);
    return { ip: a.ip, family: a.family, link: await rtnl.requireLink(a.index) };
  }
  let link: Link | undefined;
  if (o.dev) {
    link = await rtnl.getLink(o.dev);
    if (!link) throw new Error(`underlay interface "${o.dev}" does not exist`);
  } else {
    const def = [...(await rtnl.listRoutes({ family: 4 })), ...(await rtnl.listRoutes({ family: 6 }))].find((r) => /^(default|0\.0\.0\.0\/0|::\/0)$/.test(r.dst) && r.oif);
    if (!def?.oif) throw new Error('no default route to find the underlay interface: pass --underlay-ip or --underlay-dev');
    link = await rtnl.requireLink(def.oif);
  }
  const mine = addrs.filter((a) => a.index === link!.index).sort((a, b) => a.family - b.family);
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
  /** Address with the cluster CIDR's prefix (its connected route makes peers' VTEPs on-link). */
  cidr: string;
}

/** Create the VXLAN device if missing (learning off), then make MAC, MTU, address and up-state right. */
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
  await ensureAddress(rtnl, link, s.cidr);
  if (!link.up) await rtnl.setLinkUp(link.index);
  // Neither ARP nor IPv6 autoconfiguration on the overlay: neighbours are all permanent.
  ensureSysctl(`net/ipv6/conf/${s.name}/disable_ipv6`, '1');
  return rtnl.requireLink(link.index);
}

/** Create or reuse the local bridge with the subnet's gateway address and the overlay MTU. */
export async function ensureOverlayBridge(rtnl: Rtnl, o: { name: string; mtu: number; gatewayCidr: string }): Promise<Link> {
  const br = await ensureBridge(rtnl, { name: o.name, mtu: o.mtu, plugin: 'vxlan-overlay' });
  if (br.mtu !== o.mtu) await rtnl.setMtu(br.index, o.mtu);
  await ensureAddress(rtnl, br, o.gatewayCidr);
  ensureSysctl('net/ipv4/ip_forward', '1');
  return rtnl.requireLink(br.index);
}

async function ensureAddress(rtnl: Rtnl, link: Link, cidr: string): Promise<void> {
  const have = await rtnl.listAddresses(link.index, 4);
  if (have.some((a) => a.cidr === cidr)) return;
  // Another address of the overlay (a subnet this host no longer holds) would make it answer for two.
  for (const a of have) if (a.scope === 0) await rtnl.deleteAddress(link.index, a.cidr);
  try {
    await rtnl.addAddress(link.index, cidr);
  } catch (err) {
    if (!isExists(err)) throw err;
  }
}

/** The entries of the kinds the agent manages that the VXLAN device holds now. */
export async function readActual(rtnl: Rtnl, vxlanIndex: number): Promise<ActualEntries> {
  const neighbours = (await rtnl.listNeighbours(vxlanIndex, 4))
    .filter((n) => (n.state & NUD.PERMANENT) !== 0)
    .map((n) => ({ ip: n.ip, mac: n.mac }));
  const fdb = (await rtnl.listFdb(vxlanIndex)).filter((e) => e.dst !== undefined).map((e) => ({ mac: e.mac, dst: e.dst as string }));
  const routes = (await rtnl.listRoutes({ family: 4, dev: vxlanIndex }))
    .filter((r) => r.gw !== undefined)
    .map((r) => ({ dst: r.dst, gw: r.gw as string }));
  return { neighbours, fdb, routes };
}

/** Apply ops in order. A delete of something already gone counts as done; the first other failure stops. */
export async function applySync(rtnl: Rtnl, vxlanIndex: number, ops: readonly SyncOp[]): Promise<void> {
  for (const op of ops) {
    try {
      switch (op.op) {
        case 'add-neighbour': await rtnl.addNeighbour(vxlanIndex, op.ip, op.mac); break;
        case 'add-fdb': await rtnl.addFdb(vxlanIndex, op.mac, op.dst); break;
        case 'add-route': await rtnl.replaceRoute({ dst: op.dst, gw: op.gw, dev: vxlanIndex }); break;
        case 'del-route': await rtnl.deleteRoute({ dst: op.dst, gw: op.gw, dev: vxlanIndex }); break;
        case 'del-fdb': await rtnl.deleteFdb(vxlanIndex, op.mac, op.dst); break;
        case 'del-neighbour': await rtnl.deleteNeighbour(vxlanIndex, op.ip); break;
      }
    } catch (err) {
      if (op.op.startsWith('del-') && isNotFound(err)) continue;
      throw err;
    }
  }
}
