// A fake kernel below the facade (DESIGN.md "Test seam below the facade"):
// namespaces with links, addresses, routes, bridge ports and VLANs, tc qdiscs
// and filters, neighbours and FDB entries, and sysctls, behind the same
// interfaces the plugins get from main.ts (lib/kernel.ts Kernel, lib/netlink
// Rtnl). Every call is a step; `failAt(k, errno)` makes the k-th step reject
// the way the kernel would (a NetlinkError with that errno), every other step
// succeeds. `snapshot()` is what a rollback must restore.
//
// It models what the ADD paths rely on, not the whole kernel: a veth pair
// deletes both ends, a deleted link takes its addresses, routes, neighbours,
// FDB entries, VLANs and qdiscs along and leaves its bridge; names are unique
// per namespace (EEXIST), unknown links are ENODEV, a macvlan created "in" a
// namespace appears there under its final name. A fake namespace cannot be
// entered (Netns.run throws): code that would touch the real kernel behind the
// fake's back fails loudly instead of changing the host.
import { constants } from 'os';
import { containsText } from '../../lib/ip';
import type { Kernel, Sysctls } from '../../lib/kernel';
import { kernelError, NetlinkError } from '../../lib/netlink/errors';
import type { Rtnl } from '../../lib/netlink/rtnl-api';
import { TC_H, type Qdisc, type TbfParams } from '../../lib/netlink/tc';
import type {
  Address, AddressOptions, BridgeOptions, BridgePortFlags, BridgePortVlans, BridgeVlan, FdbEntry, Link, LinkRef, MacvlanOptions, Neighbour, NetnsRef,
  Route, RouteFilter, RouteSpec, VethOptions, VlanOptions, VxlanOptions,
} from '../../lib/netlink/types';
import { Netns, NetnsNotFoundError } from '../../lib/netns';
import type { SysctlOptions } from '../../lib/sys/sysctl';

/** The namespace the process runs in. */
export const HOST = 'host';
/** Paths that name the caller's own namespace (the facade sends veth peers "to the host" through one). */
const SELF_PATHS = new Set(['/proc/thread-self/ns/net', '/proc/self/ns/net']);
const IFF_UP = 0x1;
const IFF_PROMISC = 0x100;
const IFF_ALLMULTI = 0x200;

interface FakeLink extends Link {
  /** For a veth: the other end, as namespace and index. */
  peer?: { ns: string; index: number };
  vlans: BridgeVlan[];
  qdiscs: Qdisc[];
  /** Ingress redirect target (an index in the same namespace). */
  redirect?: number;
  /** A bridge created without an MTU follows the smallest MTU of its ports (1500 without ports), as the kernel does. */
  autoMtu?: boolean;
}

interface FakeAddress { index: number; cidr: string; flags: number; scope: number }

interface Namespace {
  links: Map<number, FakeLink>;
  addresses: FakeAddress[];
  routes: Route[];
  neighbours: Neighbour[];
  fdb: FdbEntry[];
  sysctls: Map<string, string>;
  nextIndex: number;
}

/** Everything a rollback must put back, per namespace, in a form toEqual compares. */
export interface NamespaceSnapshot {
  links: Array<Omit<FakeLink, 'operUp'>>;
  addresses: FakeAddress[];
  routes: Route[];
  neighbours: Neighbour[];
  fdb: FdbEntry[];
}

export interface Step {
  /** 1-based position among all the kernel calls of the fake. */
  n: number;
  ns: string;
  /** "createVeth eth0", "addAddress 10.1.0.2/24", "sysctl.write net/...". */
  op: string;
}

function errnoOf(name: string): number {
  const n = (constants.errno as Record<string, number>)[name];
  if (n === undefined) throw new Error(`unknown errno ${name}`);
  return n;
}

function randomMac(n: number): string {
  const b = [0x02, 0x42, (n >> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

function familyOfIp(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

function normaliseDst(dst: string, gw?: string): string {
  if (dst === 'default') return gw && familyOfIp(gw) === 6 ? '::/0' : '0.0.0.0/0';
  return dst.includes('/') ? dst : `${dst}/${familyOfIp(dst) === 6 ? 128 : 32}`;
}

export class FakeKernel implements Kernel {
  private readonly namespaces = new Map<string, Namespace>();
  private failure?: { at: number; errno: string };
  readonly steps: Step[] = [];

  constructor() {
    this.addNamespace(HOST);
  }

  /** A namespace a test refers to by path (CNI_NETNS), with its own lo. */
  addNamespace(path: string): this {
    const ns: Namespace = { links: new Map(), addresses: [], routes: [], neighbours: [], fdb: [], sysctls: new Map(), nextIndex: 1 };
    this.namespaces.set(path, ns);
    this.insertLink(ns, { name: 'lo', mac: '00:00:00:00:00:00', mtu: 65536, up: false, operUp: false, flags: 0x8 });
    return this;
  }

  removeNamespace(path: string): void {
    this.namespaces.delete(path);
  }

  /** A link of the test's own (a master for macvlan, an existing bridge...). */
  addLink(path: string, l: Partial<Link> & { name: string }): Link {
    const link = this.insertLink(this.ns(path), { mac: randomMac(this.steps.length + 1000), mtu: 1500, up: true, operUp: true, flags: IFF_UP, ...l });
    return this.view(link);
  }

  /** An address of the test's own. */
  addAddressOf(path: string, name: string, cidr: string): void {
    const ns = this.ns(path);
    const link = [...ns.links.values()].find((l) => l.name === name)!;
    ns.addresses.push({ index: link.index, cidr, flags: 0x80, scope: 0 });
  }

  /** The k-th step from now on (1-based, counted from construction) rejects with `errno`. */
  failAt(k: number, errno = 'ENOBUFS'): this {
    this.failure = { at: k, errno };
    return this;
  }

  snapshot(): Record<string, NamespaceSnapshot> {
    const out: Record<string, NamespaceSnapshot> = {};
    for (const [path, ns] of this.namespaces) {
      out[path] = clone({
        links: [...ns.links.values()].sort((a, b) => a.index - b.index).map(({ operUp: _o, ...l }) => l),
        addresses: ns.addresses,
        routes: ns.routes,
        neighbours: ns.neighbours,
        fdb: ns.fdb,
      });
    }
    return out;
  }

  sysctlsOf(path: string): Map<string, string> {
    return this.ns(path).sysctls;
  }

  // ---- Kernel ----------------------------------------------------------------

  openRtnl = (netns?: Netns): Rtnl => new FakeRtnl(this, netns ? this.pathOf(netns) : HOST, netns);

  /** A property, like HOST_KERNEL's: plugins hand it on unbound (openContainerNetns(path, plugin, kernel.openNetns)). */
  openNetns = (path: string): Netns => {
    this.step(HOST, `openNetns ${path}`);
    if (!this.namespaces.has(path)) throw new NetnsNotFoundError(path);
    return fakeNetns(path);
  };

  readonly sysctl: Sysctls = {
    read: (key, netns) => this.readSysctl(key, netns, false)!,
    readIfExists: (key, netns) => this.readSysctl(key, netns, true),
    write: (key, value, netns, o) => this.writeSysctl(key, value, netns, o),
    ensure: (key, value, netns, o) => {
      if (this.readSysctl(key, netns, !!o?.ignoreMissing) !== String(value)) this.writeSysctl(key, value, netns, o);
    },
    list: (key, netns) => {
      const path = netns ? this.pathOf(netns) : HOST;
      this.step(path, `sysctl.list ${key}`);
      const ns = this.ns(path);
      const below = [...ns.sysctls.keys()].filter((k) => k.startsWith(`${key}/`)).map((k) => k.slice(key.length + 1).split('/')[0]);
      const links = /^net\/ipv[46]\/conf$/.test(key) ? ['all', 'default', ...[...ns.links.values()].map((l) => l.name)] : [];
      return [...new Set([...links, ...below])];
    },
  };

  private readSysctl(key: string, netns: Netns | undefined, _ifExists: boolean): string | undefined {
    const path = netns ? this.pathOf(netns) : HOST;
    this.step(path, `sysctl.read ${key}`);
    return this.ns(path).sysctls.get(key) ?? '0';
  }

  private writeSysctl(key: string, value: string | number, netns: Netns | undefined, _o?: SysctlOptions): void {
    const path = netns ? this.pathOf(netns) : HOST;
    this.step(path, `sysctl.write ${key}=${value}`);
    this.ns(path).sysctls.set(key, String(value));
  }

  // ---- internals used by FakeRtnl --------------------------------------------

  /** Count a step; reject it when it is the one to fail. */
  step(ns: string, op: string): void {
    const n = this.steps.length + 1;
    this.steps.push({ n, ns, op });
    if (this.failure?.at === n) throw kernelError(errnoOf(this.failure.errno), `${op} (injected)`);
  }

  ns(path: string): Namespace {
    const ns = this.namespaces.get(path);
    if (!ns) throw new NetlinkError('ENOENT', `no fake namespace "${path}"`);
    return ns;
  }

  pathOf(ref: NetnsRef): string {
    if (typeof ref === 'number') throw new Error('the fake kernel takes namespaces by Netns or path, not by fd');
    const path = typeof ref === 'string' ? ref : ref.path;
    if (SELF_PATHS.has(path)) return HOST;
    if (!this.namespaces.has(path)) throw new NetlinkError('ENOENT', `cannot open network namespace "${path}": ENOENT`);
    return path;
  }

  insertLink(ns: Namespace, l: Omit<Link, 'index'> & Partial<Pick<FakeLink, 'peer' | 'vlans' | 'qdiscs' | 'autoMtu'>> & { index?: number }): FakeLink {
    if ([...ns.links.values()].some((x) => x.name === l.name)) throw kernelError(errnoOf('EEXIST'), `creating "${l.name}"`);
    const index = l.index !== undefined && !ns.links.has(l.index) ? l.index : ns.nextIndex;
    ns.nextIndex = Math.max(ns.nextIndex, index) + 1;
    // The kernel reports a transmit queue length for every link (1000 unless set).
    const link: FakeLink = { vlans: [], qdiscs: [], txqlen: 1000, ...l, index };
    ns.links.set(index, link);
    return link;
  }

  /** Remove a link and everything that hangs on it (and a veth's other end). */
  removeLink(path: string, index: number): void {
    const ns = this.ns(path);
    const link = ns.links.get(index);
    if (!link) return;
    ns.links.delete(index);
    ns.addresses = ns.addresses.filter((a) => a.index !== index);
    ns.routes = ns.routes.filter((r) => r.oif !== index);
    ns.neighbours = ns.neighbours.filter((n) => n.index !== index);
    ns.fdb = ns.fdb.filter((e) => e.index !== index);
    for (const l of ns.links.values()) {
      if (l.master === index) { delete l.master; delete l.bridgePort; l.vlans = []; }
      if (l.redirect === index) delete l.redirect;
    }
    if (link.master !== undefined) this.adjustBridgeMtu(ns, link.master);
    if (link.peer && this.namespaces.has(link.peer.ns)) this.removeLink(link.peer.ns, link.peer.index);
  }

  adjustBridgeMtu(ns: Namespace, bridgeIndex: number): void {
    const br = ns.links.get(bridgeIndex);
    if (!br?.autoMtu) return;
    const ports = [...ns.links.values()].filter((l) => l.master === bridgeIndex);
    br.mtu = ports.length ? Math.min(...ports.map((p) => p.mtu)) : 1500;
  }

  /** A link's public shape, operUp derived like the kernel does (a veth is up when both ends are). */
  view(l: FakeLink): Link {
    const { peer, vlans: _v, qdiscs: _q, redirect: _r, autoMtu: _a, ...pub } = l;
    const peerUp = peer ? this.namespaces.get(peer.ns)?.links.get(peer.index)?.up ?? false : true;
    return clone({ ...pub, operUp: l.up && peerUp && l.name !== 'lo' });
  }
}

function fakeNetns(path: string): Netns {
  const ns = Object.create(Netns.prototype) as Netns;
  Object.defineProperty(ns, 'path', { value: path });
  Object.defineProperty(ns, 'run', { value: () => { throw new Error(`fake namespace "${path}" cannot be entered: something bypassed the Kernel`); } });
  Object.defineProperty(ns, 'close', { value: () => undefined });
  return ns;
}

function describeRef(ref: LinkRef): string {
  return typeof ref === 'number' ? `#${ref}` : typeof ref === 'string' ? ref : ref.name;
}

/** The Rtnl of one fake namespace. */
export class FakeRtnl implements Rtnl {
  private closed = false;

  constructor(private readonly k: FakeKernel, private readonly path: string, readonly netns?: Netns) {}

  close(): void {
    this.closed = true;
  }

  private get ns(): Namespace {
    return this.k.ns(this.path);
  }

  private step(op: string): void {
    if (this.closed) throw new NetlinkError('EBADF', `${op}: the netlink socket is closed`);
    this.k.step(this.path, op);
  }

  private find(ref: LinkRef): FakeLink | undefined {
    if (typeof ref === 'number') return this.ns.links.get(ref);
    if (typeof ref === 'object') return this.ns.links.get(ref.index);
    return [...this.ns.links.values()].find((l) => l.name === ref);
  }

  private must(ref: LinkRef, what: string): FakeLink {
    const l = this.find(ref);
    if (!l) throw kernelError(errnoOf('ENODEV'), `${what} link ${describeRef(ref)}`);
    return l;
  }

  private change(ref: LinkRef, what: string, fn: (l: FakeLink) => void): Promise<void> {
    return this.run(`${what} ${describeRef(ref)}`, () => fn(this.must(ref, what)));
  }

  /** One step, answered asynchronously like a socket. */
  private async run<T>(op: string, fn: () => T): Promise<T> {
    await Promise.resolve();
    this.step(op);
    return fn();
  }

  async indexOf(ref: LinkRef): Promise<number> {
    if (typeof ref === 'number') return ref;
    if (typeof ref === 'object') return ref.index;
    return this.run(`indexOf ${ref}`, () => this.must(ref, 'looking up').index);
  }

  getLink(ref: number | string): Promise<Link | undefined> {
    return this.run(`getLink ${ref}`, () => { const l = this.find(ref); return l && this.k.view(l); });
  }

  requireLink(ref: LinkRef): Promise<Link> {
    return this.run(`requireLink ${describeRef(ref)}`, () => this.k.view(this.must(ref, 'getting')));
  }

  listLinks(): Promise<Link[]> {
    return this.run('listLinks', () => [...this.ns.links.values()].map((l) => this.k.view(l)));
  }

  private create(what: string, l: Omit<Link, 'index' | 'mac' | 'mtu' | 'up' | 'operUp' | 'flags'> & Partial<Link>): Promise<Link> {
    return this.run(`${what} ${l.name}`, () => this.k.view(this.k.insertLink(this.ns, { mac: randomMac(this.k.steps.length), mtu: 1500, up: false, operUp: false, flags: 0, ...l })));
  }

  createVeth(o: VethOptions): Promise<Link> {
    return this.run(`createVeth ${o.name} peer ${o.peerName}`, () => {
      const peerPath = o.peerNetns === undefined ? this.path : this.k.pathOf(o.peerNetns);
      const peerNs = this.k.ns(peerPath);
      if ([...peerNs.links.values()].some((l) => l.name === o.peerName) || (peerPath === this.path && o.peerName === o.name)) {
        throw kernelError(errnoOf('EEXIST'), `creating veth "${o.name}" (peer "${o.peerName}")`);
      }
      const mtu = o.mtu || 1500;
      const end = this.k.insertLink(this.ns, { name: o.name, kind: 'veth', mac: o.mac ?? randomMac(this.k.steps.length), mtu, up: false, operUp: false, flags: 0 });
      const peer = this.k.insertLink(peerNs, { name: o.peerName, kind: 'veth', mac: o.peerMac ?? randomMac(this.k.steps.length + 500), mtu, up: false, operUp: false, flags: 0 });
      end.peer = { ns: peerPath, index: peer.index };
      peer.peer = { ns: this.path, index: end.index };
      end.peerIndex = peer.index;
      peer.peerIndex = end.index;
      return this.k.view(end);
    });
  }

  createBridge(o: BridgeOptions): Promise<Link> {
    return this.run(`createBridge ${o.name}`, () => this.k.view(this.k.insertLink(this.ns, {
      name: o.name, kind: 'bridge', mtu: o.mtu || 1500, mac: '00:00:00:00:00:00', up: false, operUp: false, flags: 0, autoMtu: !o.mtu,
    })));
  }

  async ensureBridge(o: BridgeOptions): Promise<Link> {
    const existing = this.find(o.name);
    if (!existing) return this.createBridge(o);
    return this.run(`ensureBridge ${o.name}`, () => {
      if (existing.kind !== 'bridge') throw new NetlinkError('EEXIST', `"${o.name}" already exists and is a ${existing.kind ?? 'device'}, not a bridge`);
      return this.k.view(existing);
    });
  }

  createMacvlan(o: MacvlanOptions): Promise<Link> {
    return this.run(`createMacvlan ${o.name}`, () => {
      const parent = this.must(o.parentIndex, 'creating a macvlan on');
      const targetPath = o.netns === undefined ? this.path : this.k.pathOf(o.netns);
      const link = this.k.insertLink(this.k.ns(targetPath), {
        name: o.name, kind: 'macvlan', mac: o.mac ?? randomMac(this.k.steps.length), mtu: o.mtu || parent.mtu, up: false, operUp: false, flags: 0,
        macvlanMode: o.mode ?? 'bridge', linkIndex: parent.index, peerIndex: parent.index,
        ...(targetPath !== this.path ? { linkNetnsId: 0 } : {}),
      });
      return this.k.view(link);
    });
  }

  createVxlan(o: VxlanOptions): Promise<Link> {
    return this.create('createVxlan', { name: o.name, kind: 'vxlan', mtu: o.mtu || 1450, ...(o.mac ? { mac: o.mac } : {}) });
  }

  createIfb(o: { name: string; mtu?: number; txqlen?: number; alias?: string }): Promise<Link> {
    return this.create('createIfb', { name: o.name, kind: 'ifb', mtu: o.mtu || 1500, txqlen: o.txqlen, alias: o.alias });
  }

  createVlan(o: VlanOptions): Promise<Link> {
    return this.run(`createVlan ${o.name}`, () => {
      const parent = this.must(o.parentIndex, 'creating a VLAN on');
      return this.k.view(this.k.insertLink(this.ns, { name: o.name, kind: 'vlan', mac: parent.mac, mtu: o.mtu || parent.mtu, up: false, operUp: false, flags: 0, linkIndex: parent.index, peerIndex: parent.index }));
    });
  }

  setLinkUp(ref: LinkRef): Promise<void> {
    return this.change(ref, 'setLinkUp', (l) => { l.up = true; l.flags |= IFF_UP; });
  }

  setLinkDown(ref: LinkRef): Promise<void> {
    return this.change(ref, 'setLinkDown', (l) => { l.up = false; l.flags &= ~IFF_UP; });
  }

  async setMaster(ref: LinkRef, bridge: LinkRef | null): Promise<void> {
    return this.change(ref, bridge === null ? 'detaching' : `setMaster ${describeRef(bridge)}`, (l) => {
      if (bridge === null) {
        const was = l.master;
        delete l.master; delete l.bridgePort; l.vlans = [];
        if (was !== undefined) this.k.adjustBridgeMtu(this.ns, was);
        return;
      }
      const br = this.must(bridge, 'attaching to');
      if (br.kind !== 'bridge') throw kernelError(errnoOf('EINVAL'), `attaching ${l.name} to ${br.name}`);
      l.master = br.index;
      l.bridgePort = { hairpin: false, learning: true, isolated: false };
      l.vlans = [{ vid: 1, pvid: true, untagged: true }];
      this.k.adjustBridgeMtu(this.ns, br.index);
    });
  }

  setPromisc(ref: LinkRef, on: boolean): Promise<void> {
    return this.change(ref, `setPromisc ${on}`, (l) => { l.flags = on ? l.flags | IFF_PROMISC : l.flags & ~IFF_PROMISC; });
  }

  setAllmulti(ref: LinkRef, on: boolean): Promise<void> {
    return this.change(ref, `setAllmulti ${on}`, (l) => { l.flags = on ? l.flags | IFF_ALLMULTI : l.flags & ~IFF_ALLMULTI; });
  }

  setTxqlen(ref: LinkRef, txqlen: number): Promise<void> {
    return this.change(ref, `setTxqlen ${txqlen}`, (l) => { l.txqlen = txqlen; });
  }

  setMtu(ref: LinkRef, mtu: number): Promise<void> {
    return this.change(ref, `setMtu ${mtu}`, (l) => {
      l.mtu = mtu;
      if (l.kind === 'bridge') l.autoMtu = false;
      else if (l.master !== undefined) this.k.adjustBridgeMtu(this.ns, l.master);
    });
  }

  setMac(ref: LinkRef, mac: string): Promise<void> {
    return this.change(ref, `setMac ${mac}`, (l) => { l.mac = mac.toLowerCase(); });
  }

  setAlias(ref: LinkRef, alias: string): Promise<void> {
    return this.change(ref, `setAlias ${alias}`, (l) => { l.alias = alias; });
  }

  rename(ref: LinkRef, newName: string): Promise<void> {
    return this.change(ref, `rename to ${newName}`, (l) => {
      if (l.name === newName) return;
      if (this.find(newName)) throw kernelError(errnoOf('EEXIST'), `renaming ${l.name} to ${newName}`);
      if (l.up) throw kernelError(errnoOf('EBUSY'), `renaming ${l.name}`);
      l.name = newName;
    });
  }

  moveToNetns(ref: LinkRef, netns: NetnsRef): Promise<void> {
    return this.change(ref, 'moveToNetns', (l) => {
      const to = this.k.pathOf(netns);
      if (to === this.path) return;
      const target = this.k.ns(to);
      if ([...target.links.values()].some((x) => x.name === l.name)) throw kernelError(errnoOf('EEXIST'), `moving ${l.name}`);
      // Addresses, routes and the bridge stay behind; the link goes down; its index is kept when free there.
      const { peer } = l;
      delete l.peer;
      this.k.removeLink(this.path, l.index);
      const { index: _i, master: _m, bridgePort: _b, ...rest } = l;
      const moved = this.k.insertLink(target, { ...rest, vlans: [], up: false, operUp: false, flags: l.flags & ~IFF_UP, index: l.index });
      if (peer) {
        moved.peer = peer;
        const other = this.k.ns(peer.ns).links.get(peer.index);
        if (other) other.peer = { ns: to, index: moved.index };
      }
    });
  }

  deleteLink(ref: LinkRef): Promise<void> {
    return this.run(`deleteLink ${describeRef(ref)}`, () => this.k.removeLink(this.path, this.must(ref, 'deleting').index));
  }

  setBridgePortFlags(ref: LinkRef, flags: BridgePortFlags): Promise<void> {
    return this.change(ref, `setBridgePortFlags ${JSON.stringify(flags)}`, (l) => {
      if (l.master === undefined) throw kernelError(errnoOf('EOPNOTSUPP'), `port flags of ${l.name}`);
      l.bridgePort = { ...l.bridgePort, ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) };
    });
  }

  addBridgeVlan(ref: LinkRef, v: BridgeVlan): Promise<void> {
    return this.change(ref, `addBridgeVlan ${v.vid}`, (l) => {
      l.vlans = l.vlans.filter((x) => x.vid !== v.vid).map((x) => (v.pvid ? { ...x, pvid: false } : x));
      l.vlans.push({ vid: v.vid, pvid: !!v.pvid, untagged: !!v.untagged });
      l.vlans.sort((a, b) => a.vid - b.vid);
    });
  }

  deleteBridgeVlan(ref: LinkRef, v: BridgeVlan): Promise<void> {
    return this.change(ref, `deleteBridgeVlan ${v.vid}`, (l) => {
      if (!l.vlans.some((x) => x.vid === v.vid)) throw kernelError(errnoOf('ENOENT'), `deleting VLAN ${v.vid} of ${l.name}`);
      l.vlans = l.vlans.filter((x) => x.vid !== v.vid);
    });
  }

  listBridgeVlans(ref: LinkRef): Promise<BridgeVlan[]> {
    return this.run(`listBridgeVlans ${describeRef(ref)}`, () => clone(this.must(ref, 'listing the VLANs of').vlans));
  }

  listBridgePorts(bridge: LinkRef): Promise<BridgePortVlans[]> {
    return this.run(`listBridgePorts ${describeRef(bridge)}`, () => {
      const br = this.must(bridge, 'listing the ports of');
      return [...this.ns.links.values()].filter((l) => l.master === br.index).map((l) => ({ index: l.index, name: l.name, vlans: clone(l.vlans) }));
    });
  }

  waitOperUp(ref: LinkRef, _timeoutMs?: number): Promise<Link> {
    return this.run(`waitOperUp ${describeRef(ref)}`, () => {
      const link = this.k.view(this.must(ref, 'waiting for'));
      if (!link.operUp) throw new NetlinkError('ETIMEDOUT', `link ${describeRef(ref)} is not operationally up`);
      return link;
    });
  }

  replaceRootTbf(ref: LinkRef, p: TbfParams): Promise<void> {
    return this.change(ref, `replaceRootTbf ${p.rate}`, (l) => {
      l.qdiscs = [...l.qdiscs.filter((q) => q.parent !== TC_H.ROOT), { ifindex: l.index, handle: 0x10000, parent: TC_H.ROOT, kind: 'tbf', tbf: { ...p } }];
    });
  }

  addIngressQdisc(ref: LinkRef): Promise<void> {
    return this.change(ref, 'addIngressQdisc', (l) => {
      if (l.qdiscs.some((q) => q.parent === TC_H.INGRESS)) throw kernelError(errnoOf('EEXIST'), `adding an ingress qdisc to ${l.name}`);
      l.qdiscs.push({ ifindex: l.index, handle: 0xffff0000, parent: TC_H.INGRESS, kind: 'ingress' });
    });
  }

  addIngressRedirect(ref: LinkRef, target: LinkRef): Promise<void> {
    return this.change(ref, `addIngressRedirect ${describeRef(target)}`, (l) => {
      if (!l.qdiscs.some((q) => q.parent === TC_H.INGRESS)) throw kernelError(errnoOf('EINVAL'), `redirecting the ingress of ${l.name}`);
      l.redirect = this.must(target, 'redirecting to').index;
    });
  }

  getQdisc(ref: LinkRef, parent: number): Promise<Qdisc | undefined> {
    return this.run(`getQdisc ${describeRef(ref)}`, () => clone(this.must(ref, 'getting the qdisc of').qdiscs.find((q) => q.parent === parent)));
  }

  deleteQdisc(ref: LinkRef, parent: number): Promise<void> {
    return this.change(ref, 'deleteQdisc', (l) => {
      if (!l.qdiscs.some((q) => q.parent === parent)) throw kernelError(errnoOf('ENOENT'), `deleting the qdisc of ${l.name}`);
      l.qdiscs = l.qdiscs.filter((q) => q.parent !== parent);
      if (parent === TC_H.INGRESS) delete l.redirect;
    });
  }

  addAddress(ref: LinkRef, cidr: string, o: AddressOptions = {}): Promise<void> {
    return this.change(ref, `addAddress ${cidr}`, (l) => {
      const ip = cidr.split('/')[0];
      if (this.ns.addresses.some((a) => a.index === l.index && a.cidr.split('/')[0] === ip)) throw kernelError(errnoOf('EEXIST'), `adding address ${cidr}`);
      this.ns.addresses.push({ index: l.index, cidr, flags: 0x80 | (o.nodad ? 0x02 : 0), scope: o.scope ?? 0 });
    });
  }

  deleteAddress(ref: LinkRef, cidr: string): Promise<void> {
    return this.change(ref, `deleteAddress ${cidr}`, (l) => {
      const before = this.ns.addresses.length;
      this.ns.addresses = this.ns.addresses.filter((a) => !(a.index === l.index && a.cidr === cidr));
      if (this.ns.addresses.length === before) throw kernelError(errnoOf('EADDRNOTAVAIL'), `deleting address ${cidr}`);
      // The kernel flushes the routes whose gateway no remaining address of the link reaches.
      const reached = (gw: string) => this.ns.addresses.some((a) => a.index === l.index && containsText(a.cidr, gw));
      this.ns.routes = this.ns.routes.filter((r) => !(r.oif === l.index && r.gw && !(r.flags & 4) && familyOfIp(r.gw) === familyOfIp(cidr) && containsText(cidr, r.gw) && !reached(r.gw)));
    });
  }

  listAddresses(ref?: LinkRef, family?: 4 | 6): Promise<Address[]> {
    return this.run(`listAddresses ${ref === undefined ? '' : describeRef(ref)}`, () => {
      const index = ref === undefined ? undefined : this.must(ref, 'listing the addresses of').index;
      return this.ns.addresses
        .filter((a) => (index === undefined || a.index === index) && (family === undefined || familyOfIp(a.cidr) === family))
        .map((a) => {
          const [ip, prefix] = a.cidr.split('/');
          return { cidr: a.cidr, ip, prefix: Number(prefix), family: familyOfIp(ip), index: a.index, scope: a.scope, flags: a.flags };
        });
    });
  }

  private routeOf(r: RouteSpec): Route {
    const dst = normaliseDst(r.dst, r.gw);
    const oif = r.dev === undefined ? undefined : this.must(r.dev, 'routing through').index;
    const route: Route = { dst, family: familyOfIp(dst), table: r.table ?? 254, scope: r.scope ?? (r.gw ? 0 : 253), flags: r.onlink ? 4 : 0, protocol: 3, type: 1 };
    if (r.gw) route.gw = r.gw;
    if (oif !== undefined) route.oif = oif;
    if (r.metric !== undefined) route.metric = route.family === 6 && r.metric === 0 ? 1024 : r.metric;
    else if (route.family === 6) route.metric = 1024;
    if (r.mtu) route.mtu = r.mtu;
    if (r.src) route.src = r.src;
    return route;
  }

  private sameRoute(a: Route, b: Route): boolean {
    return a.dst === b.dst && a.table === b.table && (a.metric ?? 0) === (b.metric ?? 0);
  }

  addRoute(r: RouteSpec): Promise<void> {
    return this.run(`addRoute ${r.dst}${r.gw ? ` via ${r.gw}` : ''}`, () => {
      const route = this.routeOf(r);
      if (this.ns.routes.some((x) => this.sameRoute(x, route))) throw kernelError(errnoOf('EEXIST'), `adding route ${r.dst}`);
      this.ns.routes.push(route);
    });
  }

  replaceRoute(r: RouteSpec): Promise<void> {
    return this.run(`replaceRoute ${r.dst}`, () => {
      const route = this.routeOf(r);
      this.ns.routes = [...this.ns.routes.filter((x) => !this.sameRoute(x, route)), route];
    });
  }

  deleteRoute(r: RouteSpec): Promise<void> {
    return this.run(`deleteRoute ${r.dst}`, () => {
      const route = this.routeOf(r);
      const i = this.ns.routes.findIndex((x) => x.dst === route.dst && x.table === route.table && (r.metric === undefined || this.sameRoute(x, route)));
      if (i < 0) throw kernelError(errnoOf('ESRCH'), `deleting route ${r.dst}`);
      this.ns.routes.splice(i, 1);
    });
  }

  listRoutes(f: RouteFilter = {}): Promise<Route[]> {
    return this.run('listRoutes', () => {
      const oif = f.dev === undefined ? undefined : this.must(f.dev, 'listing the routes of').index;
      const table = f.table ?? 254;
      return clone(this.ns.routes.filter((r) => (f.family === undefined || r.family === f.family) && (table === 0 || r.table === table) && (oif === undefined || r.oif === oif)));
    });
  }

  /** Longest prefix over the main table's routes and the subnets of the addresses on up links, as the kernel answers RTM_GETROUTE. */
  routeTo(ip: string): Promise<Route | undefined> {
    return this.run(`routeTo ${ip}`, () => {
      const family = familyOfIp(ip);
      const up = (index: number | undefined) => index !== undefined && [...this.ns.links.values()].some((l) => l.index === index && l.up);
      const candidates = [
        ...this.ns.routes.filter((r) => r.table === 254 && r.family === family && up(r.oif)).map((r) => ({ dst: r.dst, oif: r.oif!, gw: r.gw, metric: r.metric ?? 0 })),
        ...this.ns.addresses.filter((a) => familyOfIp(a.cidr.split('/')[0]) === family && up(a.index)).map((a) => ({ dst: a.cidr, oif: a.index, gw: undefined, metric: 0 })),
      ].filter((c) => containsText(c.dst, ip));
      const prefix = (c: { dst: string }) => Number(c.dst.split('/')[1]);
      const best = candidates.sort((a, b) => prefix(b) - prefix(a) || a.metric - b.metric)[0];
      if (!best) return undefined;
      const route: Route = { dst: `${ip}/${family === 4 ? 32 : 128}`, family, table: 254, scope: 0, flags: 0, protocol: 0, type: 1, oif: best.oif };
      if (best.gw) route.gw = best.gw;
      return route;
    });
  }

  addNeighbour(ref: LinkRef, ip: string, mac: string): Promise<void> {
    return this.change(ref, `addNeighbour ${ip}`, (l) => {
      this.ns.neighbours = [...this.ns.neighbours.filter((n) => !(n.index === l.index && n.ip === ip)), { ip, mac: mac.toLowerCase(), index: l.index, state: 0x80 }];
    });
  }

  deleteNeighbour(ref: LinkRef, ip: string): Promise<void> {
    return this.change(ref, `deleteNeighbour ${ip}`, (l) => {
      const i = this.ns.neighbours.findIndex((n) => n.index === l.index && n.ip === ip);
      if (i < 0) throw kernelError(errnoOf('ENOENT'), `deleting neighbour ${ip}`);
      this.ns.neighbours.splice(i, 1);
    });
  }

  listNeighbours(ref?: LinkRef, family?: 4 | 6): Promise<Neighbour[]> {
    return this.run('listNeighbours', () => {
      const index = ref === undefined ? undefined : this.must(ref, 'listing the neighbours of').index;
      return clone(this.ns.neighbours.filter((n) => (index === undefined || n.index === index) && (family === undefined || familyOfIp(n.ip) === family)));
    });
  }

  addFdb(ref: LinkRef, mac: string, dst?: string, o: { append?: boolean } = {}): Promise<void> {
    return this.change(ref, `addFdb ${mac}${dst ? ` dst ${dst}` : ''}`, (l) => {
      const m = mac.toLowerCase();
      const same = (e: FdbEntry) => e.index === l.index && e.mac === m && (o.append ? e.dst === dst : true);
      this.ns.fdb = [...this.ns.fdb.filter((e) => !same(e)), { mac: m, index: l.index, state: 0x80, flags: 0x02, ...(dst ? { dst } : {}) }];
    });
  }

  deleteFdb(ref: LinkRef, mac: string, dst?: string): Promise<void> {
    return this.change(ref, `deleteFdb ${mac}`, (l) => {
      const i = this.ns.fdb.findIndex((e) => e.index === l.index && e.mac === mac.toLowerCase() && (dst === undefined || e.dst === dst));
      if (i < 0) throw kernelError(errnoOf('ENOENT'), `deleting FDB entry ${mac}`);
      this.ns.fdb.splice(i, 1);
    });
  }

  listFdb(ref?: LinkRef): Promise<FdbEntry[]> {
    return this.run('listFdb', () => {
      const index = ref === undefined ? undefined : this.must(ref, 'listing the FDB of').index;
      return clone(this.ns.fdb.filter((e) => index === undefined || e.index === index));
    });
  }
}
