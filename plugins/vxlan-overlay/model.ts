// Pure decisions of the overlay (no kernel, no store): device names, the VTEP
// MAC and addresses derived from a host's subnets, the MTU, what a host's
// kernel must hold for its peers, and how one store event changes that.
// Shared by the agent and the CNI plugin.

import { familyOfText, firstHostText, networkText, type Family } from '../../lib/ip';
import { parseIpv4Cidr } from './store/subnets';

/** VXLAN over IPv4 adds 50 bytes (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8); IPv6 adds 70. */
export const VXLAN_OVERHEAD_V4 = 50;
export const VXLAN_OVERHEAD_V6 = 70;

export function overlayMtu(o: { configured?: number; underlayMtu: number; underlayFamily: Family }): number {
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
 * bytes of its IPv4 subnet's network address. The subnet is sticky, so the MAC
 * survives agent and host restarts and peers' entries stay valid. One VXLAN
 * device (and so one MAC and one FDB entry per peer) carries both families.
 */
export function vtepMac(subnet: string): string {
  const base = parseIpv4Cidr(subnet).base;
  const bytes = [0x0a, 0x76, base >>> 24, (base >>> 16) & 255, (base >>> 8) & 255, base & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The VXLAN device's own address in a family: the subnet's network address (like flannel), as plain IP text. */
export function vtepAddress(subnet: string): string {
  return networkText(subnet).split('/')[0];
}

/**
 * The IPv4 VTEP address with the cluster CIDR's prefix: its connected route
 * (cluster CIDR dev vxlan) makes every peer's VTEP address on-link, so a peer
 * subnet's route can name that address as gateway without the onlink flag.
 */
export function vtepCidr(subnet: string, clusterCidr: string): string {
  return `${vtepAddress(subnet)}/${parseIpv4Cidr(clusterCidr).prefixLength}`;
}

/**
 * The IPv6 VTEP address as a /128: a shorter prefix would make the kernel join
 * that prefix's subnet-router anycast address (forwarding is on), which is the
 * VTEP address of the host at position 0. Peer routes are onlink instead.
 */
export function vtepCidr6(subnet6: string): string {
  return `${vtepAddress(subnet6)}/128`;
}

/** The bridge (gateway) address of a host's subnet, either family: the first host address. */
export function gatewayOf(subnet: string): { ip: string; cidr: string } {
  const ip = firstHostText(subnet);
  return { ip, cidr: `${ip}/${subnet.split('/')[1]}` };
}

export interface NeighbourEntry {
  ip: string;
  mac: string;
}

export interface FdbEntry {
  mac: string;
  dst: string;
}

export interface RouteEntry {
  dst: string;
  gw: string;
  /** IPv6: the peer's VTEP is not covered by a connected route (vtepCidr6). */
  onlink?: boolean;
}

/** The kernel entries one peer needs on this host (installed in this order, removed in reverse). */
export interface PeerEntries {
  hostID: string;
  /** Peer VTEP address -> peer VTEP MAC, one per family. */
  neighbours: NeighbourEntry[];
  /** Peer VTEP MAC -> peer underlay address (one for both families). */
  fdb: FdbEntry;
  /** Peer subnet via peer VTEP address, dev vxlan, one per family. */
  routes: RouteEntry[];
}

export interface PeerRecord {
  hostID: string;
  underlayIP: string;
  vtepMAC: string;
  subnet: string;
  subnet6?: string;
}

/** What this host is, as far as programming its peers goes. */
export interface SelfView {
  hostID: string;
  subnet: string;
  /** Set when this host runs the network dual-stack. */
  subnet6?: string;
  underlayFamily: Family;
}

/**
 * What one peer needs here, or undefined when it cannot be reached: VXLAN
 * does not cross underlay families, and a record of our own subnet is a store
 * bug we must not route away. IPv6 entries only when both ends have IPv6, so
 * a peer with a record of an older agent (no subnet6) keeps its IPv4.
 */
export function peerEntries(p: PeerRecord, self: SelfView): PeerEntries | undefined {
  if (p.hostID === self.hostID || p.subnet === self.subnet || familyOfText(p.underlayIP) !== self.underlayFamily) return undefined;
  const mac = p.vtepMAC.toLowerCase();
  const gw = vtepAddress(p.subnet);
  const e: PeerEntries = { hostID: p.hostID, neighbours: [{ ip: gw, mac }], fdb: { mac, dst: p.underlayIP }, routes: [{ dst: p.subnet, gw }] };
  if (self.subnet6 && p.subnet6 && p.subnet6 !== self.subnet6) {
    const gw6 = vtepAddress(p.subnet6);
    e.neighbours.push({ ip: gw6, mac });
    e.routes.push({ dst: p.subnet6, gw: gw6, onlink: true });
  }
  return e;
}

/** What the kernel holds now on the VXLAN device (only the kinds of entries we manage). */
export interface ActualEntries {
  /** Permanent neighbours on the device, both families. */
  neighbours: Array<{ ip: string; mac?: string }>;
  /** FDB entries on the device that have a remote destination. */
  fdb: FdbEntry[];
  /** Routes through the device that have a gateway, both families. */
  routes: Array<{ dst: string; gw: string }>;
}

export type SyncOp =
  | { op: 'add-neighbour'; ip: string; mac: string }
  | { op: 'add-fdb'; mac: string; dst: string }
  | { op: 'add-route'; dst: string; gw: string; onlink?: boolean }
  | { op: 'del-route'; dst: string; gw: string }
  | { op: 'del-fdb'; mac: string; dst: string }
  | { op: 'del-neighbour'; ip: string };

/** The entries of some peers as the kernel would list them. */
export function entriesAsActual(peers: Iterable<PeerEntries>): ActualEntries {
  const a: ActualEntries = { neighbours: [], fdb: [], routes: [] };
  for (const p of peers) {
    a.neighbours.push(...p.neighbours);
    a.fdb.push(p.fdb);
    a.routes.push(...p.routes.map((r) => ({ dst: r.dst, gw: r.gw })));
  }
  return a;
}

/**
 * Turn what is into what should be: first remove what is stale (routes, then
 * FDB, then neighbours), then add what is missing per peer (neighbour, FDB,
 * route), so a route never points at an entry that is not there yet. Linear
 * in both inputs: the agent runs it over every peer only at reconcile, and
 * over the one or two peers a store event touched otherwise (PeerTable).
 */
export function planSync(desired: Iterable<PeerEntries>, actual: ActualEntries): SyncOp[] {
  const key = (...parts: string[]): string => parts.join('|');
  const want = [...desired];
  const wantNeigh = new Set(want.flatMap((p) => p.neighbours.map((n) => n.ip)));
  const wantFdb = new Set(want.map((p) => key(p.fdb.mac, p.fdb.dst)));
  const wantRoute = new Set(want.flatMap((p) => p.routes.map((r) => key(r.dst, r.gw))));
  const haveNeigh = new Map(actual.neighbours.map((n) => [n.ip, n.mac?.toLowerCase()]));
  const haveFdb = new Set(actual.fdb.map((f) => key(f.mac.toLowerCase(), f.dst)));
  const haveRoute = new Set(actual.routes.map((r) => key(r.dst, r.gw)));

  const ops: SyncOp[] = [];
  for (const r of actual.routes) if (!wantRoute.has(key(r.dst, r.gw))) ops.push({ op: 'del-route', dst: r.dst, gw: r.gw });
  for (const f of actual.fdb) if (!wantFdb.has(key(f.mac.toLowerCase(), f.dst))) ops.push({ op: 'del-fdb', mac: f.mac.toLowerCase(), dst: f.dst });
  for (const n of actual.neighbours) if (!wantNeigh.has(n.ip)) ops.push({ op: 'del-neighbour', ip: n.ip });
  for (const p of want) {
    for (const n of p.neighbours) if (haveNeigh.get(n.ip) !== n.mac) ops.push({ op: 'add-neighbour', ...n });
    if (!haveFdb.has(key(p.fdb.mac, p.fdb.dst))) ops.push({ op: 'add-fdb', ...p.fdb });
    for (const r of p.routes) if (!haveRoute.has(key(r.dst, r.gw))) ops.push({ op: 'add-route', ...r });
  }
  return ops;
}

/**
 * The peers this host programs, kept up to date one store event at a time.
 * put/remove return only the kernel changes that event causes (a few ops,
 * whatever the cluster size); desired() is for the periodic reconcile. One
 * subnet claimed by two hosts would be a store bug: the lower hostID wins,
 * deterministically, and the other takes over if it goes.
 */
export class PeerTable {
  private readonly records = new Map<string, PeerRecord>();
  private readonly claimants = new Map<string, Set<string>>();
  /** subnet -> the entries programmed for it (of the winning claimant). */
  private readonly programmed = new Map<string, PeerEntries>();

  constructor(readonly self: SelfView) {}

  get size(): number {
    return this.programmed.size;
  }

  desired(): IterableIterator<PeerEntries> {
    return this.programmed.values();
  }

  /** A host record appeared or changed. */
  put(r: PeerRecord): SyncOp[] {
    if (r.hostID === this.self.hostID) return [];
    const old = this.records.get(r.hostID);
    if (old && samePeer(old, r)) return [];
    this.records.set(r.hostID, r);
    if (old && old.subnet !== r.subnet) this.unclaim(old.subnet, r.hostID);
    let set = this.claimants.get(r.subnet);
    if (!set) this.claimants.set(r.subnet, (set = new Set()));
    set.add(r.hostID);
    return this.reprogram(old && old.subnet !== r.subnet ? [old.subnet, r.subnet] : [r.subnet]);
  }

  /** A host record went (lease expiry, SIGTERM, leave). */
  remove(hostID: string): SyncOp[] {
    const old = this.records.get(hostID);
    if (!old) return [];
    this.records.delete(hostID);
    this.unclaim(old.subnet, hostID);
    return this.reprogram([old.subnet]);
  }

  /** After a re-list: the table holds exactly these records (the caller then reconciles the kernel). */
  replaceAll(records: Iterable<PeerRecord>): void {
    this.records.clear();
    this.claimants.clear();
    this.programmed.clear();
    const subnets = new Set<string>();
    for (const r of records) {
      if (r.hostID === this.self.hostID) continue;
      this.records.set(r.hostID, r);
      let set = this.claimants.get(r.subnet);
      if (!set) this.claimants.set(r.subnet, (set = new Set()));
      set.add(r.hostID);
      subnets.add(r.subnet);
    }
    this.reprogram(subnets);
  }

  private unclaim(subnet: string, hostID: string): void {
    const set = this.claimants.get(subnet);
    set?.delete(hostID);
    if (set?.size === 0) this.claimants.delete(subnet);
  }

  /** Recompute the winner of each subnet; the ops that take the kernel from the old entries to the new. */
  private reprogram(subnets: Iterable<string>): SyncOp[] {
    const before: PeerEntries[] = [];
    const after: PeerEntries[] = [];
    for (const subnet of subnets) {
      const was = this.programmed.get(subnet);
      if (was) before.push(was);
      let winner: string | undefined;
      for (const id of this.claimants.get(subnet) ?? []) if (winner === undefined || id < winner) winner = id;
      const now = winner === undefined ? undefined : peerEntries(this.records.get(winner)!, this.self);
      if (now) {
        this.programmed.set(subnet, now);
        after.push(now);
      } else {
        this.programmed.delete(subnet);
      }
    }
    return planSync(after, entriesAsActual(before));
  }
}

function samePeer(a: PeerRecord, b: PeerRecord): boolean {
  return a.underlayIP === b.underlayIP && a.vtepMAC === b.vtepMAC && a.subnet === b.subnet && a.subnet6 === b.subnet6;
}

/**
 * Peers one reconcile interval covers: a full reconcile dumps and diffs every
 * peer's entries, so with more peers the interval stretches in proportion and
 * its average cost (CPU, and the garbage of the dumps) stays what it is at
 * this size. Store events do not wait for it; SIGHUP runs one at once.
 */
export const RECONCILE_PEERS_PER_INTERVAL = 100;

export function reconcileInterval(baseMs: number, peers: number): number {
  return Math.max(baseMs, Math.ceil((baseMs * peers) / RECONCILE_PEERS_PER_INTERVAL));
}

/**
 * How long a re-list of the store (the watch broke or was compacted) waits:
 * the whole store is read at most once per reconcile interval, however often
 * the watch breaks. The first list (lastListAt 0) does not wait.
 */
export function relistDelay(lastListAt: number, now: number, intervalMs: number): number {
  return lastListAt > 0 ? Math.max(0, lastListAt + intervalMs - now) : 0;
}

/** One log line for a plan: every op when there are few, counts when there are many (a first sync of 1000 peers). */
export function describeOps(ops: readonly SyncOp[], detailUpTo = 12): string {
  if (ops.length <= detailUpTo) return ops.map((x) => `${x.op} ${Object.values(x).slice(1).join(' ')}`).join(', ');
  const counts = new Map<string, number>();
  for (const x of ops) counts.set(x.op, (counts.get(x.op) ?? 0) + 1);
  return [...counts].map(([op, n]) => `${n}× ${op}`).join(', ');
}
