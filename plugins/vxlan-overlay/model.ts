// Pure decisions of the overlay (no kernel, no store): device names, the VTEP
// MAC and address derived from a host's subnet, the MTU, and what a host's
// kernel must hold for its peers. Shared by the agent and the CNI plugin.

import { formatIpv4, parseIpv4Cidr } from './store/subnets';

/** VXLAN over IPv4 adds 50 bytes (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8); IPv6 adds 70. */
export const VXLAN_OVERHEAD_V4 = 50;
export const VXLAN_OVERHEAD_V6 = 70;

export function overlayMtu(o: { configured?: number; underlayMtu: number; underlayFamily: 4 | 6 }): number {
  if (o.configured && o.configured > 0) return o.configured;
  return o.underlayMtu - (o.underlayFamily === 6 ? VXLAN_OVERHEAD_V6 : VXLAN_OVERHEAD_V4);
}

/** Default device names: one VXLAN device and one bridge per network, told apart by VNI. */
export function defaultVxlanName(vni: number): string {
  return `ovx${vni}`;
}

export function defaultBridgeName(vni: number): string {
  return `ovbr${vni}`;
}

/**
 * The VTEP MAC of a host: locally administered, unicast, "0a:76" then the four
 * bytes of its subnet's network address. The subnet is sticky, so the MAC
 * survives agent and host restarts and peers' entries stay valid.
 */
export function vtepMac(subnet: string): string {
  const base = parseIpv4Cidr(subnet).base;
  const bytes = [0x0a, 0x76, base >>> 24, (base >>> 16) & 255, (base >>> 8) & 255, base & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The VXLAN device's own address: the subnet's network address (like flannel), as a plain IP. */
export function vtepAddress(subnet: string): string {
  return formatIpv4(parseIpv4Cidr(subnet).base);
}

/**
 * The VTEP address with the cluster CIDR's prefix: its connected route (cluster
 * CIDR dev vxlan) makes every peer's VTEP address on-link, so a peer subnet's
 * route can name that address as gateway without the onlink flag.
 */
export function vtepCidr(subnet: string, clusterCidr: string): string {
  return `${vtepAddress(subnet)}/${parseIpv4Cidr(clusterCidr).prefixLength}`;
}

/** The bridge (gateway) address of a host's subnet: the first host address. */
export function gatewayOf(subnet: string): { ip: string; cidr: string } {
  const c = parseIpv4Cidr(subnet);
  const ip = formatIpv4((c.base + 1) >>> 0);
  return { ip, cidr: `${ip}/${c.prefixLength}` };
}

/** The kernel entries one peer needs on this host (installed in this order, removed in reverse). */
export interface PeerEntries {
  hostID: string;
  /** Neighbour: peer VTEP address -> peer VTEP MAC. */
  neighbour: { ip: string; mac: string };
  /** FDB: peer VTEP MAC -> peer underlay address. */
  fdb: { mac: string; dst: string };
  /** Route: peer subnet via peer VTEP address, dev vxlan. */
  route: { dst: string; gw: string };
}

export interface PeerRecord {
  hostID: string;
  underlayIP: string;
  vtepMAC: string;
  subnet: string;
}

export function peerEntries(p: PeerRecord): PeerEntries {
  const gw = vtepAddress(p.subnet);
  const mac = p.vtepMAC.toLowerCase();
  return { hostID: p.hostID, neighbour: { ip: gw, mac }, fdb: { mac, dst: p.underlayIP }, route: { dst: p.subnet, gw } };
}

/**
 * The peers to program: every record but our own, one per subnet (a subnet
 * claimed twice would be a store bug: the lower hostID wins, deterministically).
 */
export function desiredPeers(records: Iterable<PeerRecord>, self: { hostID: string; subnet: string }): PeerEntries[] {
  const bySubnet = new Map<string, PeerRecord>();
  for (const r of records) {
    if (r.hostID === self.hostID || r.subnet === self.subnet) continue;
    const have = bySubnet.get(r.subnet);
    if (!have || r.hostID < have.hostID) bySubnet.set(r.subnet, r);
  }
  return [...bySubnet.values()].sort((a, b) => (a.subnet < b.subnet ? -1 : 1)).map(peerEntries);
}

/** What the kernel holds now on the VXLAN device (only the kinds of entries we manage). */
export interface ActualEntries {
  /** Permanent neighbours on the device. */
  neighbours: Array<{ ip: string; mac?: string }>;
  /** FDB entries on the device that have a remote destination. */
  fdb: Array<{ mac: string; dst: string }>;
  /** Routes through the device that have a gateway. */
  routes: Array<{ dst: string; gw: string }>;
}

export type SyncOp =
  | { op: 'add-neighbour'; ip: string; mac: string }
  | { op: 'add-fdb'; mac: string; dst: string }
  | { op: 'add-route'; dst: string; gw: string }
  | { op: 'del-route'; dst: string; gw: string }
  | { op: 'del-fdb'; mac: string; dst: string }
  | { op: 'del-neighbour'; ip: string };

/**
 * Turn what is into what should be: first remove what is stale (routes, then
 * FDB, then neighbours), then add what is missing per peer (neighbour, FDB,
 * route), so a route never points at an entry that is not there yet.
 */
export function planSync(desired: readonly PeerEntries[], actual: ActualEntries): SyncOp[] {
  const key = (...parts: string[]): string => parts.join('|');
  const wantNeigh = new Map(desired.map((p) => [p.neighbour.ip, p.neighbour.mac]));
  const wantFdb = new Set(desired.map((p) => key(p.fdb.mac, p.fdb.dst)));
  const wantRoute = new Set(desired.map((p) => key(p.route.dst, p.route.gw)));
  const haveNeigh = new Map(actual.neighbours.map((n) => [n.ip, n.mac?.toLowerCase()]));
  const haveFdb = new Set(actual.fdb.map((f) => key(f.mac.toLowerCase(), f.dst)));
  const haveRoute = new Set(actual.routes.map((r) => key(r.dst, r.gw)));

  const ops: SyncOp[] = [];
  for (const r of actual.routes) if (!wantRoute.has(key(r.dst, r.gw))) ops.push({ op: 'del-route', dst: r.dst, gw: r.gw });
  for (const f of actual.fdb) if (!wantFdb.has(key(f.mac.toLowerCase(), f.dst))) ops.push({ op: 'del-fdb', mac: f.mac.toLowerCase(), dst: f.dst });
  for (const n of actual.neighbours) if (!wantNeigh.has(n.ip)) ops.push({ op: 'del-neighbour', ip: n.ip });
  for (const p of desired) {
    if (haveNeigh.get(p.neighbour.ip) !== p.neighbour.mac) ops.push({ op: 'add-neighbour', ...p.neighbour });
    if (!haveFdb.has(key(p.fdb.mac, p.fdb.dst))) ops.push({ op: 'add-fdb', ...p.fdb });
    if (!haveRoute.has(key(p.route.dst, p.route.gw))) ops.push({ op: 'add-route', ...p.route });
  }
  return ops;
}
