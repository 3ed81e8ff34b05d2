// The kernel facade: one rtnetlink socket, typed operations, typed errors.
//
// Kernel quirks, written down once:
// - A netlink socket belongs to the namespace it was created in, so openRtnl(ns)
//   creates it inside Netns.run (synchronously) and never enters again.
// - veth: create it from the container side and send the peer to the host
//   (VETH_INFO_PEER + IFLA_NET_NS_FD): the container name (eth0) is then checked
//   where it lives, and nothing named eth0 ever appears on the host.
// - macvlan: created directly in the target namespace (IFLA_NET_NS_FD) under a
//   temporary name, then renamed inside it, so a clash with the final name is
//   reported against the container and leaves nothing behind.
// - After a namespace move a link may get another index (it keeps it only if
//   free there): re-read it through a socket in the target namespace.
// - node-netlink's rtnetlink layer (createRtNetlink) decodes every reply with
//   its generated attribute code to emit events nobody here listens to; the
//   facade decodes replies itself (./wire), so it opens a plain NETLINK_ROUTE
//   socket: no per-message decoding, and ~270 KB of generated code stays out
//   of every plugin (docs/benchmarks/startup.md).
// - Dumps can be interrupted by concurrent changes (NLM_F_DUMP_INTR on a part,
//   or EINTR): retry the whole dump.
// - Renaming an up link fails with EBUSY on most devices: set it down first.
import * as fs from 'fs';
import { createNetlink, type NetlinkSocket } from 'netlink/dist/netlink';
import { Netns } from '../netns';
import { randomBytes } from '../util/random';
import { bytesToIp, bytesToMac, ipFamily, parseCidr, type Family } from './addr';
import { NetlinkError, errnoName, isExists, isNotFound, kernelError, toNetlinkError } from './errors';
import {
  buildAddressRequest, buildBridgePortFlagsRequest, buildBridgeRequest, buildBridgeVlanDumpRequest, buildBridgeVlanRequest, buildDeleteLinkRequest, buildDumpRequest,
  buildFdbRequest, buildGetLinkRequest, buildIfbRequest, buildMacvlanRequest, buildNeighbourRequest, buildRouteGetRequest, buildRouteRequest, buildSetLinkRequest,
  buildVethRequest, buildVlanRequest, buildVxlanRequest, LinkChange, MACVLAN_MODES, normaliseDst,
} from './requests';
import { buildDeleteQdiscRequest, buildGetQdiscRequest, buildIngressQdiscRequest, buildRedirectFilterRequest, buildTbfRequest, decodeQdisc, TC_H, type Qdisc, type TbfParams } from './tc';
import type { OpenRtnl, Rtnl } from './rtnl-api';
import type {
  Address, AddressOptions, BridgeOptions, BridgePortFlags, BridgePortVlans, BridgeVlan, FdbEntry, MacvlanMode, Link, LinkRef, MacvlanOptions, Neighbour, NetnsRef,
  Route, RouteFilter, RouteSpec, VethOptions, VlanOptions, VxlanOptions,
} from './types';
import {
  AF, BRIDGE_VLAN_INFO, IFA, IFADDRMSG_LEN, IFF_UP, IFINFOMSG_LEN, IFLA, IFLA_BRIDGE, IFLA_BRPORT, IFLA_INFO, IFLA_MACVLAN, IF_OPER_UP, NDA,
  NDMSG_LEN, NLM_F, NlRequest,
  RTA, RTAX_MTU, RTM, RTMSG_LEN, attrMap, decodeAttrs, parseIfaddrmsg, parseIfinfomsg, parseNdmsg, parseRtmsg, readStr,
} from './wire';

const NLMSG_ERROR = 2;
const NETLINK_ROUTE = 0;
const REQUEST_TIMEOUT_MS = 10_000;
const DUMP_RETRIES = 5;

interface RawMessage {
  type: number;
  flags: number;
  data: Buffer;
}

export type { OpenRtnl, Rtnl };

/** Open an rtnetlink socket in `netns` (or in the current namespace). */
export const openRtnl: OpenRtnl = (netns?: Netns): Rtnl => {
  const make = () => createNetlink(NETLINK_ROUTE);
  const sock = netns ? netns.run(make) : make();
  return new NodeNetlinkRtnl(sock, netns);
};

/** Open, use, close. */
export async function withRtnl<T>(netns: Netns | undefined, fn: (rtnl: Rtnl) => Promise<T>, open: OpenRtnl = openRtnl): Promise<T> {
  const rtnl = open(netns);
  try {
    return await fn(rtnl);
  } finally {
    rtnl.close();
  }
}

/** An fd for a namespace reference, and how to release it. */
function netnsFd(ref: NetnsRef): { fd: number; release: () => void } {
  if (typeof ref === 'number') return { fd: ref, release: () => undefined };
  const path = typeof ref === 'string' ? ref : ref.path;
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new NetlinkError(code, `cannot open network namespace "${path}": ${code}`);
  }
  return { fd, release: () => fs.closeSync(fd) };
}

function describeRef(ref: LinkRef): string {
  return typeof ref === 'number' ? `link #${ref}` : typeof ref === 'string' ? `link "${ref}"` : `link "${ref.name}"`;
}

/** The Rtnl over one node-netlink NETLINK_ROUTE socket. */
export class NodeNetlinkRtnl implements Rtnl {
  private closed = false;

  constructor(private readonly sock: NetlinkSocket, readonly netns?: Netns) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }

  // ---- transport -----------------------------------------------------------

  /** Send one request; resolve with the reply messages; throw NetlinkError on an NLMSG_ERROR. */
  private async transmit(req: NlRequest, what: string): Promise<RawMessage[]> {
    if (this.closed) throw new NetlinkError('EBADF', `${what}: the netlink socket is closed`);
    let reply: RawMessage[];
    try {
      [reply] = await this.sock.request(req.type, req.data, { flags: req.flags, checkError: false, timeout: REQUEST_TIMEOUT_MS });
    } catch (err) {
      throw toNetlinkError(err, what);
    }
    for (const m of reply) {
      if (m.type !== NLMSG_ERROR) continue;
      const errno = m.data.readInt32LE(0);
      if (errno !== 0) throw kernelError(errno, what);
    }
    return reply.filter((m) => m.type !== NLMSG_ERROR);
  }

  // A dump owns the socket from its request to its DONE: the kernel produces
  // the next part of a dump as the previous one is read, so the reply of a
  // request sent in between lands among the parts, and node-netlink then
  // ends the dump there ("Multipart message not terminated properly", EIO).
  // Two dumps at once corrupt each other the same way. So dumps run one at a
  // time, each after the requests already in flight have been answered, and
  // requests sent during a dump wait for it; requests among themselves still
  // run concurrently (a sync of a thousand peers keeps many in flight).

  /** The last dump queued, and the one that owns the socket now. */
  private dumpQueue: Promise<unknown> = Promise.resolve();
  private dumping: Promise<unknown> | undefined;
  /** Non-dump requests in flight, and who waits for them to be answered. */
  private inFlight = 0;
  private drained: Array<() => void> = [];

  private async send(req: NlRequest, what: string): Promise<RawMessage[]> {
    while (this.dumping) await this.dumping;
    this.inFlight++;
    try {
      return await this.transmit(req, what);
    } finally {
      if (--this.inFlight === 0) for (const wake of this.drained.splice(0)) wake();
    }
  }

  private dump(req: NlRequest, what: string): Promise<RawMessage[]> {
    const run = this.dumpQueue.then(() => {
      const owned = (async () => {
        if (this.inFlight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
        return this.dumpNow(req, what);
      })();
      this.dumping = owned.catch(() => undefined);
      return owned.finally(() => { this.dumping = undefined; });
    });
    this.dumpQueue = run.catch(() => undefined);
    return run;
  }

  private async dumpNow(req: NlRequest, what: string): Promise<RawMessage[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const msgs = await this.transmit(req, what);
        if (!msgs.some((m) => m.flags & NLM_F.DUMP_INTR)) return msgs;
        if (attempt >= DUMP_RETRIES) throw new NetlinkError('EINTR', `${what}: dump kept being interrupted by concurrent changes`);
      } catch (err) {
        if (!(err instanceof NetlinkError && err.code === 'EINTR') || attempt >= DUMP_RETRIES) throw err;
      }
    }
  }

  /** The index of a link reference; names are looked up (ENODEV when missing). */
  async indexOf(ref: LinkRef): Promise<number> {
    if (typeof ref === 'number') return ref;
    if (typeof ref === 'object') return ref.index;
    const link = await this.getLink(ref);
    if (!link) throw new NetlinkError('ENODEV', `link "${ref}" not found`);
    return link.index;
  }

  // ---- links ---------------------------------------------------------------

  async getLink(ref: number | string): Promise<Link | undefined> {
    try {
      const [msg] = await this.send(buildGetLinkRequest(ref), `getting ${describeRef(ref)}`);
      return msg ? decodeLink(msg.data) : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Like getLink but throws a not-found NetlinkError. */
  async requireLink(ref: LinkRef): Promise<Link> {
    const link = await this.getLink(typeof ref === 'object' ? ref.index : ref);
    if (!link) throw new NetlinkError('ENODEV', `${describeRef(ref)} not found`);
    return link;
  }

  async listLinks(): Promise<Link[]> {
    const msgs = await this.dump(buildDumpRequest(RTM.GETLINK), 'listing links');
    return msgs.filter((m) => m.type === RTM.NEWLINK).map((m) => decodeLink(m.data));
  }

  /** Create a veth pair; returns the end in this namespace (peerIndex = the other end's index in its namespace). */
  async createVeth(o: VethOptions): Promise<Link> {
    const ns = o.peerNetns !== undefined ? netnsFd(o.peerNetns) : undefined;
    try {
      const where = ns ? ' in another namespace' : '';
      await this.send(buildVethRequest({ ...o, peerNetnsFd: ns?.fd }), `creating veth "${o.name}" (peer "${o.peerName}"${where})`);
    } finally {
      ns?.release();
    }
    return this.requireLink(o.name);
  }

  /** Create a bridge. An existing one surfaces as EEXIST (isExists): see ensureBridge. */
  async createBridge(o: BridgeOptions): Promise<Link> {
    await this.send(buildBridgeRequest(o), `creating bridge "${o.name}"`);
    return this.requireLink(o.name);
  }

  /** Create the bridge or reuse an existing one; an existing non-bridge of that name is an error. */
  async ensureBridge(o: BridgeOptions): Promise<Link> {
    try {
      return await this.createBridge(o);
    } catch (err) {
      if (!isExists(err)) throw err;
      const link = await this.requireLink(o.name);
      if (link.kind !== 'bridge') throw new NetlinkError('EEXIST', `"${o.name}" already exists and is a ${link.kind ?? 'device'}, not a bridge`);
      return link;
    }
  }

  /**
   * Create a macvlan on a parent in this namespace. With `netns`, it is created
   * directly there under a temporary name and renamed inside; the returned Link
   * is then read from that namespace.
   */
  async createMacvlan(o: MacvlanOptions): Promise<Link> {
    if (o.netns === undefined) {
      await this.send(buildMacvlanRequest(o), `creating macvlan "${o.name}" on link #${o.parentIndex}`);
      return this.requireLink(o.name);
    }
    const target = typeof o.netns === 'string' ? Netns.open(o.netns) : o.netns;
    const ns = netnsFd(target);
    const tmpName = `mv${randomBytes(4).toString('hex')}`;
    try {
      await this.send(buildMacvlanRequest({ ...o, name: tmpName, netnsFd: ns.fd }), `creating macvlan "${o.name}" on link #${o.parentIndex} in "${target.path}"`);
      return await withRtnl(target, async (inner) => {
        try {
          await inner.rename(tmpName, o.name);
        } catch (err) {
          await inner.deleteLink(tmpName).catch(() => undefined);
          throw err;
        }
        return inner.requireLink(o.name);
      });
    } finally {
      ns.release();
      if (typeof o.netns === 'string') target.close();
    }
  }

  async createVxlan(o: VxlanOptions): Promise<Link> {
    await this.send(buildVxlanRequest(o), `creating vxlan "${o.name}" (VNI ${o.vni})`);
    return this.requireLink(o.name);
  }

  /** An IFB device (for shaping a device's ingress); `alias` marks whose it is (set right after creation). */
  async createIfb(o: { name: string; mtu?: number; txqlen?: number; alias?: string }): Promise<Link> {
    await this.send(buildIfbRequest(o), `creating ifb "${o.name}"`);
    const link = await this.requireLink(o.name);
    if (o.alias === undefined) return link;
    await this.change(link.index, { alias: o.alias }, 'setting the alias of');
    return this.requireLink(link.index);
  }

  /** 802.1q sub-interface. Needs the 8021q module (EOPNOTSUPP without it). */
  async createVlan(o: VlanOptions): Promise<Link> {
    await this.send(buildVlanRequest(o), `creating vlan "${o.name}" (id ${o.vlanId}) on link #${o.parentIndex}`);
    return this.requireLink(o.name);
  }

  private async change(ref: LinkRef, c: LinkChange, what: string): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildSetLinkRequest(index, c), `${what} ${describeRef(ref)}`);
  }

  setLinkUp(ref: LinkRef): Promise<void> {
    return this.change(ref, { up: true }, 'setting up');
  }

  setLinkDown(ref: LinkRef): Promise<void> {
    return this.change(ref, { up: false }, 'setting down');
  }

  /** Attach to a bridge, or detach with null. */
  async setMaster(ref: LinkRef, bridge: LinkRef | null): Promise<void> {
    const master = bridge === null ? 0 : await this.indexOf(bridge);
    const what = bridge === null ? 'detaching' : `attaching to ${describeRef(bridge)}:`;
    await this.change(ref, { master }, what);
  }

  /** Promiscuous mode on or off (IFF_PROMISC), like `ip link set promisc`. */
  setPromisc(ref: LinkRef, on: boolean): Promise<void> {
    return this.change(ref, { promisc: on }, `setting promiscuous mode ${on ? 'on' : 'off'} on`);
  }

  /** All-multicast mode on or off (IFF_ALLMULTI), like `ip link set allmulticast`. */
  setAllmulti(ref: LinkRef, on: boolean): Promise<void> {
    return this.change(ref, { allmulti: on }, `setting all-multicast mode ${on ? 'on' : 'off'} on`);
  }

  /** Transmit queue length (IFLA_TXQLEN), like `ip link set txqueuelen`. */
  setTxqlen(ref: LinkRef, txqlen: number): Promise<void> {
    return this.change(ref, { txqlen }, `setting txqueuelen ${txqlen} on`);
  }

  setMtu(ref: LinkRef, mtu: number): Promise<void> {
    return this.change(ref, { mtu }, `setting MTU ${mtu} on`);
  }

  setMac(ref: LinkRef, mac: string): Promise<void> {
    return this.change(ref, { mac }, `setting MAC ${mac} on`);
  }

  /** Label a link (`ip link set alias`), e.g. to mark one this project created. */
  setAlias(ref: LinkRef, alias: string): Promise<void> {
    return this.change(ref, { alias }, `setting alias "${alias}" on`);
  }

  /** Rename; most devices must be down (EBUSY otherwise). */
  rename(ref: LinkRef, newName: string): Promise<void> {
    return this.change(ref, { name: newName }, `renaming to "${newName}"`);
  }

  /** Move a link to another namespace. Its index there may differ: re-read it from there. */
  async moveToNetns(ref: LinkRef, netns: NetnsRef): Promise<void> {
    const ns = netnsFd(netns);
    try {
      await this.change(ref, { netnsFd: ns.fd }, 'moving to another namespace:');
    } finally {
      ns.release();
    }
  }

  /** Delete a link; a missing one throws a not-found NetlinkError (isNotFound). */
  async deleteLink(ref: LinkRef): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildDeleteLinkRequest(index), `deleting ${describeRef(ref)}`);
  }

  async setBridgePortFlags(ref: LinkRef, flags: BridgePortFlags): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildBridgePortFlagsRequest(index, flags), `setting bridge port flags ${JSON.stringify(flags)} on ${describeRef(ref)}`);
  }

  /** Add a VLAN to a bridge port (`bridge vlan add ... master`); the bridge needs vlan_filtering. */
  async addBridgeVlan(ref: LinkRef, v: BridgeVlan): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildBridgeVlanRequest('add', index, v), `adding VLAN ${v.vid}${v.pvid ? ' pvid' : ''}${v.untagged ? ' untagged' : ''} to bridge port ${describeRef(ref)}`);
  }

  async deleteBridgeVlan(ref: LinkRef, v: BridgeVlan): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildBridgeVlanRequest('del', index, v), `deleting VLAN ${v.vid} from bridge port ${describeRef(ref)}`);
  }

  /** The VLANs of a bridge port (`bridge vlan show dev`); [] when it has none or the kernel has no VLAN filtering. */
  async listBridgeVlans(ref: LinkRef): Promise<BridgeVlan[]> {
    const index = await this.indexOf(ref);
    const msgs = await this.dump(buildBridgeVlanDumpRequest(), `listing the VLANs of ${describeRef(ref)}`);
    const msg = msgs.find((m) => m.type === RTM.NEWLINK && parseIfinfomsg(m.data).index === index);
    return msg ? decodeBridgeVlans(msg.data) : [];
  }

  /** Every port of a bridge with its VLANs, from one dump (the bridge's own "self" entry is not a port). */
  async listBridgePorts(bridge: LinkRef): Promise<BridgePortVlans[]> {
    const index = await this.indexOf(bridge);
    const msgs = await this.dump(buildBridgeVlanDumpRequest(), `listing the ports of ${describeRef(bridge)}`);
    const out: BridgePortVlans[] = [];
    for (const m of msgs) {
      if (m.type !== RTM.NEWLINK) continue;
      const port = parseIfinfomsg(m.data).index;
      const a = attrMap(m.data.subarray(IFINFOMSG_LEN));
      if (port === index || a.get(IFLA.MASTER)?.readUInt32LE(0) !== index) continue;
      out.push({ index: port, name: a.has(IFLA.IFNAME) ? readStr(a.get(IFLA.IFNAME)!) : '', vlans: decodeBridgeVlans(m.data) });
    }
    return out;
  }

  /** Poll until the link is operationally up (veth: both ends up). */
  async waitOperUp(ref: LinkRef, timeoutMs = 5000): Promise<Link> {
    const deadline = Date.now() + timeoutMs;
    let delay = 2;
    for (;;) {
      const link = await this.requireLink(ref);
      if (link.operUp) return link;
      if (Date.now() >= deadline) throw new NetlinkError('ETIMEDOUT', `${describeRef(ref)} is not operationally up after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 100);
    }
  }

  // ---- traffic control (./tc.ts) -------------------------------------------

  /** `tc qdisc replace dev D root handle 1: tbf ...`. */
  async replaceRootTbf(ref: LinkRef, p: TbfParams): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildTbfRequest(index, p), `setting a tbf (rate ${p.rate} B/s) on ${describeRef(ref)}`);
  }

  /** `tc qdisc add dev D handle ffff: ingress` (EEXIST when it has one). */
  async addIngressQdisc(ref: LinkRef): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildIngressQdiscRequest(index), `adding an ingress qdisc to ${describeRef(ref)}`);
  }

  /** Every packet arriving on `ref` (its ingress qdisc) goes out of `target` instead (u32 match-all, mirred redirect). */
  async addIngressRedirect(ref: LinkRef, target: LinkRef): Promise<void> {
    const index = await this.indexOf(ref);
    const to = await this.indexOf(target);
    await this.send(buildRedirectFilterRequest(index, to), `redirecting the ingress of ${describeRef(ref)} to ${describeRef(target)}`);
  }

  /** The qdisc at TC_H.ROOT or TC_H.INGRESS; undefined when there is none or only the built-in default (noqueue, pfifo_fast: the kernel does not report those). */
  async getQdisc(ref: LinkRef, parent: number): Promise<Qdisc | undefined> {
    const index = await this.indexOf(ref);
    try {
      const [msg] = await this.send(buildGetQdiscRequest(index, parent), `getting the qdisc of ${describeRef(ref)}`);
      return msg ? decodeQdisc(msg.data) : undefined;
    } catch (err) {
      if (isNotFound(err) || (err instanceof NetlinkError && err.code === 'EINVAL')) return undefined;
      throw err;
    }
  }

  /** Remove the qdisc at `parent`; a device without one there throws a not-found or EINVAL NetlinkError. */
  async deleteQdisc(ref: LinkRef, parent: number): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildDeleteQdiscRequest(index, parent), `deleting the ${parent === TC_H.INGRESS ? 'ingress' : 'root'} qdisc of ${describeRef(ref)}`);
  }

  // ---- addresses -----------------------------------------------------------

  async addAddress(ref: LinkRef, cidr: string, o: AddressOptions = {}): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildAddressRequest('add', index, cidr, o), `adding address ${cidr} to ${describeRef(ref)}`);
  }

  async deleteAddress(ref: LinkRef, cidr: string): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildAddressRequest('del', index, cidr), `deleting address ${cidr} from ${describeRef(ref)}`);
  }

  async listAddresses(ref?: LinkRef, family?: Family): Promise<Address[]> {
    const index = ref === undefined ? undefined : await this.indexOf(ref);
    const af = family === 4 ? AF.INET : family === 6 ? AF.INET6 : AF.UNSPEC;
    const msgs = await this.dump(buildDumpRequest(RTM.GETADDR, af), 'listing addresses');
    return msgs
      .filter((m) => m.type === RTM.NEWADDR)
      .map((m) => decodeAddress(m.data))
      .filter((a): a is Address => a !== undefined && (index === undefined || a.index === index));
  }

  // ---- routes --------------------------------------------------------------

  private async routeRequest(op: 'add' | 'del' | 'replace', r: RouteSpec) {
    const oif = r.dev === undefined ? undefined : await this.indexOf(r.dev);
    return buildRouteRequest(op, { ...r, oif });
  }

  private describeRoute(r: RouteSpec): string {
    const dev = r.dev === undefined ? '' : ` dev ${typeof r.dev === 'object' ? r.dev.name : r.dev}`;
    return `${r.dst}${r.gw ? ` via ${r.gw}` : ''}${dev}${r.table ? ` table ${r.table}` : ''}${r.onlink ? ' onlink' : ''}`;
  }

  async addRoute(r: RouteSpec): Promise<void> {
    await this.send(await this.routeRequest('add', r), `adding route ${this.describeRoute(r)}`);
  }

  /** Add or overwrite. */
  async replaceRoute(r: RouteSpec): Promise<void> {
    await this.send(await this.routeRequest('replace', r), `replacing route ${this.describeRoute(r)}`);
  }

  async deleteRoute(r: RouteSpec): Promise<void> {
    await this.send(await this.routeRequest('del', r), `deleting route ${this.describeRoute(r)}`);
  }

  /** Routes of one table (main by default; table 0 = all). */
  async listRoutes(f: RouteFilter = {}): Promise<Route[]> {
    const af = f.family === 4 ? AF.INET : f.family === 6 ? AF.INET6 : AF.UNSPEC;
    const oif = f.dev === undefined ? undefined : await this.indexOf(f.dev);
    const table = f.table ?? 254;
    const msgs = await this.dump(buildDumpRequest(RTM.GETROUTE, af), 'listing routes');
    return msgs
      .filter((m) => m.type === RTM.NEWROUTE)
      .map((m) => decodeRoute(m.data))
      .filter((r): r is Route => r !== undefined && (table === 0 || r.table === table) && (oif === undefined || r.oif === oif));
  }

  async routeTo(ip: string): Promise<Route | undefined> {
    try {
      const msgs = await this.send(buildRouteGetRequest(ip), `looking up the route to ${ip}`);
      const m = msgs.find((x) => x.type === RTM.NEWROUTE);
      return m ? decodeRoute(m.data) : undefined;
    } catch (err) {
      if (err instanceof NetlinkError && ['ENETUNREACH', 'EHOSTUNREACH'].includes(err.code)) return undefined;
      throw err;
    }
  }

  // ---- neighbours and FDB --------------------------------------------------

  /** A permanent ARP/NDP entry (replaces an existing one). */
  async addNeighbour(ref: LinkRef, ip: string, mac: string): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildNeighbourRequest('add', index, ip, mac), `adding neighbour ${ip} lladdr ${mac} on ${describeRef(ref)}`);
  }

  async deleteNeighbour(ref: LinkRef, ip: string): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildNeighbourRequest('del', index, ip), `deleting neighbour ${ip} on ${describeRef(ref)}`);
  }

  async listNeighbours(ref?: LinkRef, family?: Family): Promise<Neighbour[]> {
    const index = ref === undefined ? undefined : await this.indexOf(ref);
    const out: Neighbour[] = [];
    for (const f of family ? [family] : ([4, 6] as const)) {
      const msgs = await this.dump(buildDumpRequest(RTM.GETNEIGH, f === 4 ? AF.INET : AF.INET6), 'listing neighbours');
      for (const m of msgs) {
        if (m.type !== RTM.NEWNEIGH) continue;
        const n = decodeNeighbour(m.data);
        if (n && (index === undefined || n.index === index)) out.push(n);
      }
    }
    return out;
  }

  /** FDB entry on the device itself (vxlan): MAC -> remote VTEP IP, permanent. */
  async addFdb(ref: LinkRef, mac: string, dst?: string, o: { append?: boolean } = {}): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildFdbRequest('add', index, mac, dst, o), `adding FDB entry ${mac}${dst ? ` dst ${dst}` : ''} on ${describeRef(ref)}`);
  }

  async deleteFdb(ref: LinkRef, mac: string, dst?: string): Promise<void> {
    const index = await this.indexOf(ref);
    await this.send(buildFdbRequest('del', index, mac, dst), `deleting FDB entry ${mac}${dst ? ` dst ${dst}` : ''} on ${describeRef(ref)}`);
  }

  async listFdb(ref?: LinkRef): Promise<FdbEntry[]> {
    const index = ref === undefined ? undefined : await this.indexOf(ref);
    const msgs = await this.dump(buildDumpRequest(RTM.GETNEIGH, AF.BRIDGE), 'listing FDB entries');
    return msgs
      .filter((m) => m.type === RTM.NEWNEIGH)
      .map((m) => decodeFdb(m.data))
      .filter((e) => index === undefined || e.index === index);
  }
}

// ---- decoding ---------------------------------------------------------------

export function decodeLink(data: Buffer): Link {
  const hdr = parseIfinfomsg(data);
  const a = attrMap(data.subarray(IFINFOMSG_LEN));
  const link: Link = {
    index: hdr.index,
    name: a.has(IFLA.IFNAME) ? readStr(a.get(IFLA.IFNAME)!) : '',
    mac: a.has(IFLA.ADDRESS) ? bytesToMac(a.get(IFLA.ADDRESS)!) : '',
    mtu: a.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
    up: (hdr.flags & IFF_UP) !== 0,
    operUp: a.get(IFLA.OPERSTATE)?.readUInt8(0) === IF_OPER_UP,
    flags: hdr.flags,
  };
  const master = a.get(IFLA.MASTER)?.readUInt32LE(0);
  if (master) link.master = master;
  // The kernel omits IFLA_LINK when it equals the link's own index, even when
  // the peer/parent lives in another namespace (then IFLA_LINK_NETNSID is set).
  if (a.has(IFLA.LINK_NETNSID)) link.linkNetnsId = a.get(IFLA.LINK_NETNSID)!.readInt32LE(0);
  const peer = a.get(IFLA.LINK)?.readUInt32LE(0) ?? (link.linkNetnsId !== undefined ? hdr.index : undefined);
  if (peer && (peer !== hdr.index || link.linkNetnsId !== undefined)) link.peerIndex = peer;
  if (a.has(IFLA.TXQLEN)) link.txqlen = a.get(IFLA.TXQLEN)!.readUInt32LE(0);
  if (a.has(IFLA.IFALIAS) && a.get(IFLA.IFALIAS)!.length > 0) link.alias = readStr(a.get(IFLA.IFALIAS)!);
  if (a.has(IFLA.LINK)) link.linkIndex = a.get(IFLA.LINK)!.readUInt32LE(0);
  const info = a.get(IFLA.LINKINFO);
  if (info) {
    const li = attrMap(info);
    if (li.has(IFLA_INFO.KIND)) link.kind = readStr(li.get(IFLA_INFO.KIND)!);
    const data = li.get(IFLA_INFO.DATA);
    const mode = link.kind === 'macvlan' && data ? attrMap(data).get(IFLA_MACVLAN.MODE) : undefined;
    if (mode) link.macvlanMode = MACVLAN_MODE_NAMES.get(mode.readUInt32LE(0)) ?? `unknown (${mode.readUInt32LE(0)})`;
    const slaveKind = li.get(IFLA_INFO.SLAVE_KIND);
    const slaveData = li.get(IFLA_INFO.SLAVE_DATA);
    if (slaveKind && readStr(slaveKind) === 'bridge' && slaveData) {
      const p = attrMap(slaveData);
      const flag = (t: number): boolean | undefined => (p.has(t) ? p.get(t)!.readUInt8(0) !== 0 : undefined);
      link.bridgePort = { hairpin: flag(IFLA_BRPORT.MODE), learning: flag(IFLA_BRPORT.LEARNING), isolated: flag(IFLA_BRPORT.ISOLATED) };
    }
  }
  return link;
}

const MACVLAN_MODE_NAMES = new Map<number, MacvlanMode>(Object.entries(MACVLAN_MODES).map(([k, v]) => [v, k as MacvlanMode]));

/** The VLANs in an AF_BRIDGE RTM_NEWLINK (IFLA_AF_SPEC); a RANGE_BEGIN..RANGE_END pair is expanded. */
export function decodeBridgeVlans(data: Buffer): BridgeVlan[] {
  const spec = attrMap(data.subarray(IFINFOMSG_LEN)).get(IFLA.AF_SPEC);
  if (!spec) return [];
  const out: BridgeVlan[] = [];
  let rangeStart: number | undefined;
  for (const at of decodeAttrs(spec)) {
    if (at.type !== IFLA_BRIDGE.VLAN_INFO || at.data.length < 4) continue;
    const flags = at.data.readUInt16LE(0);
    const vid = at.data.readUInt16LE(2);
    if (flags & BRIDGE_VLAN_INFO.RANGE_BEGIN) { rangeStart = vid; continue; }
    const pvid = (flags & BRIDGE_VLAN_INFO.PVID) !== 0;
    const untagged = (flags & BRIDGE_VLAN_INFO.UNTAGGED) !== 0;
    for (let v = rangeStart ?? vid; v <= vid; v++) out.push({ vid: v, pvid, untagged });
    rangeStart = undefined;
  }
  return out;
}

function decodeAddress(data: Buffer): Address | undefined {
  const hdr = parseIfaddrmsg(data);
  const a = attrMap(data.subarray(IFADDRMSG_LEN));
  // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on point-to-point links.
  const raw = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  if (!raw || (hdr.family !== AF.INET && hdr.family !== AF.INET6)) return undefined;
  const ip = bytesToIp(raw);
  const flags = a.get(8)?.readUInt32LE(0) ?? hdr.flags; // IFA_FLAGS carries all 32 bits
  const out: Address = { cidr: `${ip}/${hdr.prefixlen}`, ip, prefix: hdr.prefixlen, family: hdr.family === AF.INET ? 4 : 6, index: hdr.index, scope: hdr.scope, flags };
  if (a.has(IFA.LABEL)) out.label = readStr(a.get(IFA.LABEL)!);
  return out;
}

function decodeRoute(data: Buffer): Route | undefined {
  const hdr = parseRtmsg(data);
  if (hdr.family !== AF.INET && hdr.family !== AF.INET6) return undefined;
  const family: 4 | 6 = hdr.family === AF.INET ? 4 : 6;
  const a = attrMap(data.subarray(RTMSG_LEN));
  const dstIp = a.has(RTA.DST) ? bytesToIp(a.get(RTA.DST)!) : family === 4 ? '0.0.0.0' : '::';
  const r: Route = {
    dst: `${dstIp}/${hdr.dstLen}`, family, table: a.get(RTA.TABLE)?.readUInt32LE(0) ?? hdr.table,
    scope: hdr.scope, flags: hdr.flags, protocol: hdr.protocol, type: hdr.type,
  };
  if (a.has(RTA.GATEWAY)) r.gw = bytesToIp(a.get(RTA.GATEWAY)!);
  if (a.has(RTA.OIF)) r.oif = a.get(RTA.OIF)!.readUInt32LE(0);
  if (a.has(RTA.PRIORITY)) r.metric = a.get(RTA.PRIORITY)!.readUInt32LE(0);
  if (a.has(RTA.PREFSRC)) r.src = bytesToIp(a.get(RTA.PREFSRC)!);
  const metrics = a.get(RTA.METRICS);
  if (metrics) {
    const mtu = decodeAttrs(metrics).find((m) => m.type === RTAX_MTU);
    if (mtu) r.mtu = mtu.data.readUInt32LE(0);
  }
  return r;
}

function decodeNeighbour(data: Buffer): Neighbour | undefined {
  const hdr = parseNdmsg(data);
  const a = attrMap(data.subarray(NDMSG_LEN));
  const dst = a.get(NDA.DST);
  if (!dst) return undefined;
  const n: Neighbour = { ip: bytesToIp(dst), index: hdr.index, state: hdr.state };
  if (a.has(NDA.LLADDR)) n.mac = bytesToMac(a.get(NDA.LLADDR)!);
  return n;
}

function decodeFdb(data: Buffer): FdbEntry {
  const hdr = parseNdmsg(data);
  const a = attrMap(data.subarray(NDMSG_LEN));
  const e: FdbEntry = { mac: a.has(NDA.LLADDR) ? bytesToMac(a.get(NDA.LLADDR)!) : '', index: hdr.index, state: hdr.state, flags: hdr.flags };
  if (a.has(NDA.DST)) e.dst = bytesToIp(a.get(NDA.DST)!);
  return e;
}

// Re-exported for callers that compare addresses textually.
export { ipFamily, parseCidr, normaliseDst, errnoName };
