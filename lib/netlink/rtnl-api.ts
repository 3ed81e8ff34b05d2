// What plugins and lib/ use of rtnetlink: the kernel facade as an interface
// (DESIGN.md "Test seam below the facade"). ./rtnl.ts implements it over a
// node-netlink socket; test/helpers/fake-rtnl.ts models it per namespace and
// fails the k-th call with a chosen errno. Code that works through the kernel
// takes an Rtnl (or an OpenRtnl to make one per namespace) and never names the
// implementation, so either can stand behind it.
//
// Errors: every method rejects with a NetlinkError carrying the errno name
// (./errors.ts isExists/isNotFound), whichever implementation answers.
import type { Netns } from '../netns';
import type { Family } from './addr';
import type { Qdisc, TbfParams } from './tc';
import type {
  Address, AddressOptions, BridgeOptions, BridgePortFlags, BridgePortVlans, BridgeVlan, FdbEntry, Link, LinkRef, MacvlanOptions, Neighbour, NetnsRef,
  Route, RouteFilter, RouteSpec, VethOptions, VlanOptions, VxlanOptions,
} from './types';

export interface Rtnl {
  /** The namespace the socket was opened in (undefined: the caller's own). */
  readonly netns?: Netns;
  close(): void;

  /** The index of a link reference; names are looked up (ENODEV when missing). */
  indexOf(ref: LinkRef): Promise<number>;

  // links
  getLink(ref: number | string): Promise<Link | undefined>;
  /** Like getLink but rejects with a not-found NetlinkError. */
  requireLink(ref: LinkRef): Promise<Link>;
  listLinks(): Promise<Link[]>;
  /** A veth pair; returns the end in this namespace (the peer goes to `peerNetns`). */
  createVeth(o: VethOptions): Promise<Link>;
  /** EEXIST when the bridge exists: see ensureBridge. */
  createBridge(o: BridgeOptions): Promise<Link>;
  /** Create or reuse; an existing non-bridge of that name is EEXIST. */
  ensureBridge(o: BridgeOptions): Promise<Link>;
  /** With `netns`: created there under a temporary name and renamed inside; the Link is read from there. */
  createMacvlan(o: MacvlanOptions): Promise<Link>;
  createVxlan(o: VxlanOptions): Promise<Link>;
  createIfb(o: { name: string; mtu?: number; txqlen?: number; alias?: string }): Promise<Link>;
  /** 802.1q sub-interface (EOPNOTSUPP without the 8021q module). */
  createVlan(o: VlanOptions): Promise<Link>;
  setLinkUp(ref: LinkRef): Promise<void>;
  setLinkDown(ref: LinkRef): Promise<void>;
  /** Attach to a bridge, or detach with null. */
  setMaster(ref: LinkRef, bridge: LinkRef | null): Promise<void>;
  setPromisc(ref: LinkRef, on: boolean): Promise<void>;
  setAllmulti(ref: LinkRef, on: boolean): Promise<void>;
  setTxqlen(ref: LinkRef, txqlen: number): Promise<void>;
  setMtu(ref: LinkRef, mtu: number): Promise<void>;
  setMac(ref: LinkRef, mac: string): Promise<void>;
  setAlias(ref: LinkRef, alias: string): Promise<void>;
  /** Most devices must be down (EBUSY otherwise). */
  rename(ref: LinkRef, newName: string): Promise<void>;
  /** Its index there may differ: re-read it from there. */
  moveToNetns(ref: LinkRef, netns: NetnsRef): Promise<void>;
  /** A missing link rejects with a not-found NetlinkError. */
  deleteLink(ref: LinkRef): Promise<void>;

  // bridge ports and VLANs
  setBridgePortFlags(ref: LinkRef, flags: BridgePortFlags): Promise<void>;
  addBridgeVlan(ref: LinkRef, v: BridgeVlan): Promise<void>;
  deleteBridgeVlan(ref: LinkRef, v: BridgeVlan): Promise<void>;
  /** [] when the port has none or the kernel has no VLAN filtering. */
  listBridgeVlans(ref: LinkRef): Promise<BridgeVlan[]>;
  /** Every port of a bridge with its VLANs. */
  listBridgePorts(bridge: LinkRef): Promise<BridgePortVlans[]>;
  /** Until the link is operationally up (veth: both ends up); ETIMEDOUT after timeoutMs. */
  waitOperUp(ref: LinkRef, timeoutMs?: number): Promise<Link>;

  // traffic control
  replaceRootTbf(ref: LinkRef, p: TbfParams): Promise<void>;
  /** EEXIST when the device has one. */
  addIngressQdisc(ref: LinkRef): Promise<void>;
  addIngressRedirect(ref: LinkRef, target: LinkRef): Promise<void>;
  /** At TC_H.ROOT or TC_H.INGRESS; undefined for none or the built-in default. */
  getQdisc(ref: LinkRef, parent: number): Promise<Qdisc | undefined>;
  deleteQdisc(ref: LinkRef, parent: number): Promise<void>;

  // addresses
  addAddress(ref: LinkRef, cidr: string, o?: AddressOptions): Promise<void>;
  deleteAddress(ref: LinkRef, cidr: string): Promise<void>;
  listAddresses(ref?: LinkRef, family?: Family): Promise<Address[]>;

  // routes
  addRoute(r: RouteSpec): Promise<void>;
  replaceRoute(r: RouteSpec): Promise<void>;
  deleteRoute(r: RouteSpec): Promise<void>;
  /** Routes of one table (main by default; table 0 = all). */
  listRoutes(f?: RouteFilter): Promise<Route[]>;
  /** The route the kernel picks for `ip` (`ip route get`, policy rules included); undefined when it has none. */
  routeTo(ip: string): Promise<Route | undefined>;

  // neighbours and FDB
  /** Permanent; replaces an existing entry. */
  addNeighbour(ref: LinkRef, ip: string, mac: string): Promise<void>;
  deleteNeighbour(ref: LinkRef, ip: string): Promise<void>;
  listNeighbours(ref?: LinkRef, family?: Family): Promise<Neighbour[]>;
  addFdb(ref: LinkRef, mac: string, dst?: string, o?: { append?: boolean }): Promise<void>;
  deleteFdb(ref: LinkRef, mac: string, dst?: string): Promise<void>;
  listFdb(ref?: LinkRef): Promise<FdbEntry[]>;
}

/** Opens an Rtnl in `netns` (or in the caller's namespace): how a plugin gets its kernel. */
export type OpenRtnl = (netns?: Netns) => Rtnl;
