// Pure request builders: options in, netlink bytes out. No I/O, so the unit
// tests can check exactly what we would send (e.g. an 802.1q request on a
// kernel without the module).
import { broadcastOf, macToBytes, networkOf, parseCidr, afOf, ipToBytes, ipFamily } from './addr';
import { NetlinkError } from './errors';
import type { BridgePortFlags, BridgeVlan, MacvlanMode, RouteSpec } from './types';
import {
  AF, Attr, BRIDGE_FLAGS_MASTER, BRIDGE_VLAN_INFO, ETH_P_8021Q, IFA, IFA_F, IFF_ALLMULTI, IFF_PROMISC, IFF_UP, IFLA, IFLA_BR, IFLA_BRIDGE, IFLA_BRPORT,
  IFLA_INFO, IFLA_MACVLAN, IFLA_VLAN, IFLA_VXLAN, NDA, NLM_F, NlRequest, NTF, NUD, RTA, RTAX_ADVMSS, RTAX_MTU, RTEXT_FILTER_BRVLAN, RTM,
  RTN_UNICAST, RTNH_F, RTPROT_BOOT, RT_SCOPE, RT_TABLE,
  VETH_INFO_PEER, encodeAttrs, ifaddrmsg, ifinfomsg, ndmsg, rtmsg, str, u16, u16be, u32, u8,
} from './wire';
import { isValidIfname } from '../util/ifname';

const CREATE_EXCL = NLM_F.CREATE | NLM_F.EXCL;
export function checkIfname(name: string): void {
  if (!isValidIfname(name)) {
    throw new NetlinkError('EINVAL', `invalid interface name "${name}" (1-15 bytes, no "/", ":" or spaces)`);
  }
}

/** Attributes every link creation shares: name, mtu, mac, and the namespace to create it in. */
function commonLinkAttrs(o: { name: string; mtu?: number; mac?: string; netnsFd?: number }): Attr[] {
  checkIfname(o.name);
  const a: Attr[] = [{ type: IFLA.IFNAME, data: str(o.name) }];
  if (o.mtu) a.push({ type: IFLA.MTU, data: u32(o.mtu) });
  if (o.mac) a.push({ type: IFLA.ADDRESS, data: macToBytes(o.mac) });
  if (o.netnsFd !== undefined) a.push({ type: IFLA.NET_NS_FD, data: u32(o.netnsFd) });
  return a;
}

function linkInfo(kind: string, data?: Attr[]): Attr {
  const children: Attr[] = [{ type: IFLA_INFO.KIND, data: str(kind) }];
  if (data && data.length) children.push({ type: IFLA_INFO.DATA, children: data });
  return { type: IFLA.LINKINFO, children };
}

function newLink(attrs: Attr[]): NlRequest {
  return { type: RTM.NEWLINK, flags: CREATE_EXCL, data: Buffer.concat([ifinfomsg({}), encodeAttrs(attrs)]) };
}

export interface VethRequest {
  name: string;
  peerName: string;
  peerNetnsFd?: number;
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

export function buildVethRequest(o: VethRequest): NlRequest {
  // The peer is a full ifinfomsg + attributes inside VETH_INFO_PEER.
  const peer = Buffer.concat([ifinfomsg({}), encodeAttrs(commonLinkAttrs({ name: o.peerName, mtu: o.mtu, mac: o.peerMac, netnsFd: o.peerNetnsFd }))]);
  return newLink([...commonLinkAttrs(o), linkInfo('veth', [{ type: VETH_INFO_PEER, data: peer }])]);
}

export function buildBridgeRequest(o: { name: string; mtu?: number; mac?: string; vlanFiltering?: boolean }): NlRequest {
  // Sent only to turn it on (off is the default): a kernel built without
  // CONFIG_BRIDGE_VLAN_FILTERING rejects the attribute with EOPNOTSUPP even when it is 0.
  const data: Attr[] = o.vlanFiltering ? [{ type: IFLA_BR.VLAN_FILTERING, data: u8(1) }] : [];
  return newLink([...commonLinkAttrs(o), linkInfo('bridge', data)]);
}

export const MACVLAN_MODES: Record<MacvlanMode, number> = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 };

export function buildMacvlanRequest(o: { name: string; parentIndex: number; mode?: MacvlanMode; mtu?: number; mac?: string; bcqueuelen?: number; netnsFd?: number }): NlRequest {
  const mode = MACVLAN_MODES[o.mode ?? 'bridge'];
  if (mode === undefined) throw new NetlinkError('EINVAL', `invalid macvlan mode "${o.mode}"`);
  const data: Attr[] = [{ type: IFLA_MACVLAN.MODE, data: u32(mode) }];
  if (o.bcqueuelen !== undefined) data.push({ type: IFLA_MACVLAN.BC_QUEUE_LEN, data: u32(o.bcqueuelen) });
  return newLink([...commonLinkAttrs(o), { type: IFLA.LINK, data: u32(o.parentIndex) }, linkInfo('macvlan', data)]);
}

export function buildVxlanRequest(o: { name: string; vni: number; local?: string; port?: number; learning?: boolean; mtu?: number; dev?: number; mac?: string }): NlRequest {
  if (!Number.isInteger(o.vni) || o.vni < 0 || o.vni > 0xffffff) throw new NetlinkError('ERANGE', `vxlan "${o.name}": VNI ${o.vni} is out of range 0-16777215`);
  const data: Attr[] = [{ type: IFLA_VXLAN.ID, data: u32(o.vni) }];
  if (o.local) data.push({ type: ipFamily(o.local) === 4 ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, data: ipToBytes(o.local) });
  if (o.dev) data.push({ type: IFLA_VXLAN.LINK, data: u32(o.dev) });
  data.push({ type: IFLA_VXLAN.LEARNING, data: u8(o.learning ? 1 : 0) });
  data.push({ type: IFLA_VXLAN.PORT, data: u16be(o.port ?? 4789) }); // network byte order; default IANA port, not the kernel's 8472
  return newLink([...commonLinkAttrs(o), linkInfo('vxlan', data)]);
}

export function buildVlanRequest(o: { name: string; parentIndex: number; vlanId: number; mtu?: number }): NlRequest {
  if (!Number.isInteger(o.vlanId) || o.vlanId < 1 || o.vlanId > 4094) throw new NetlinkError('ERANGE', `vlan "${o.name}": id ${o.vlanId} is out of range 1-4094`);
  const data: Attr[] = [{ type: IFLA_VLAN.ID, data: u16(o.vlanId) }, { type: IFLA_VLAN.PROTOCOL, data: u16be(ETH_P_8021Q) }];
  return newLink([...commonLinkAttrs(o), { type: IFLA.LINK, data: u32(o.parentIndex) }, linkInfo('vlan', data)]);
}

/**
 * An IFB (intermediate functional block): traffic redirected to it is shaped on its egress and
 * given back. The kernel ignores IFLA_IFALIAS on creation: set an alias with buildSetLinkRequest.
 */
export function buildIfbRequest(o: { name: string; mtu?: number; txqlen?: number }): NlRequest {
  const a = commonLinkAttrs(o);
  if (o.txqlen !== undefined) a.push({ type: IFLA.TXQLEN, data: u32(o.txqlen) });
  return newLink([...a, linkInfo('ifb')]);
}

function aliasAttr(alias: string): Buffer {
  if (Buffer.byteLength(alias) > 255 || alias.includes('\0')) throw new NetlinkError('ERANGE', `interface alias ${JSON.stringify(alias)} is longer than 255 bytes or has a NUL`);
  return Buffer.from(alias, 'utf8'); // no terminating NUL: the kernel stores the bytes as given
}

export interface LinkChange {
  up?: boolean;
  /** IFF_PROMISC, like `ip link set promisc on|off`. */
  promisc?: boolean;
  /** IFF_ALLMULTI, like `ip link set allmulticast on|off`. */
  allmulti?: boolean;
  mtu?: number;
  /** IFLA_TXQLEN, like `ip link set txqueuelen`. */
  txqlen?: number;
  /** IFLA_IFALIAS, like `ip link set alias` (at most 255 bytes). */
  alias?: string;
  mac?: string;
  name?: string;
  /** 0 detaches from the bridge. */
  master?: number;
  netnsFd?: number;
}

export function buildSetLinkRequest(index: number, c: LinkChange): NlRequest {
  const a: Attr[] = [];
  if (c.name !== undefined) { checkIfname(c.name); a.push({ type: IFLA.IFNAME, data: str(c.name) }); }
  if (c.mtu !== undefined) a.push({ type: IFLA.MTU, data: u32(c.mtu) });
  if (c.txqlen !== undefined) a.push({ type: IFLA.TXQLEN, data: u32(c.txqlen) });
  if (c.alias !== undefined) a.push({ type: IFLA.IFALIAS, data: aliasAttr(c.alias) });
  if (c.mac !== undefined) a.push({ type: IFLA.ADDRESS, data: macToBytes(c.mac) });
  if (c.master !== undefined) a.push({ type: IFLA.MASTER, data: u32(c.master) });
  if (c.netnsFd !== undefined) a.push({ type: IFLA.NET_NS_FD, data: u32(c.netnsFd) });
  // ifi_change names the flags this request sets; the others stay as they are.
  let flags = 0;
  let change = 0;
  if (c.up !== undefined) { change |= IFF_UP; if (c.up) flags |= IFF_UP; }
  if (c.promisc !== undefined) { change |= IFF_PROMISC; if (c.promisc) flags |= IFF_PROMISC; }
  if (c.allmulti !== undefined) { change |= IFF_ALLMULTI; if (c.allmulti) flags |= IFF_ALLMULTI; }
  const hdr = ifinfomsg({ index, flags, change });
  return { type: RTM.SETLINK, flags: 0, data: Buffer.concat([hdr, encodeAttrs(a)]) };
}

export function buildDeleteLinkRequest(index: number): NlRequest {
  return { type: RTM.DELLINK, flags: 0, data: ifinfomsg({ index }) };
}

export function buildGetLinkRequest(ref: number | string): NlRequest {
  if (typeof ref === 'number') return { type: RTM.GETLINK, flags: 0, data: ifinfomsg({ index: ref }) };
  checkIfname(ref);
  return { type: RTM.GETLINK, flags: 0, data: Buffer.concat([ifinfomsg({}), encodeAttrs([{ type: IFLA.IFNAME, data: str(ref) }])]) };
}

/**
 * Bridge port flags: RTM_SETLINK with family AF_BRIDGE and IFLA_PROTINFO.
 * The bridge reads IFLA_PROTINFO as nested attributes only when NLA_F_NESTED
 * is set; without it, it takes the payload as an old-style port state byte.
 */
export function buildBridgePortFlagsRequest(index: number, f: BridgePortFlags): NlRequest {
  const a: Attr[] = [];
  if (f.hairpin !== undefined) a.push({ type: IFLA_BRPORT.MODE, data: u8(f.hairpin ? 1 : 0) });
  if (f.learning !== undefined) a.push({ type: IFLA_BRPORT.LEARNING, data: u8(f.learning ? 1 : 0) });
  if (f.isolated !== undefined) a.push({ type: IFLA_BRPORT.ISOLATED, data: u8(f.isolated ? 1 : 0) });
  const attrs = encodeAttrs([{ type: IFLA.PROTINFO, children: a, nested: true }]);
  return { type: RTM.SETLINK, flags: 0, data: Buffer.concat([ifinfomsg({ family: AF.BRIDGE, index }), attrs]) };
}

/**
 * A VLAN on a bridge port: RTM_SETLINK (add) or RTM_DELLINK (del) with family
 * AF_BRIDGE and IFLA_AF_SPEC { IFLA_BRIDGE_FLAGS = MASTER, IFLA_BRIDGE_VLAN_INFO },
 * which is what `bridge vlan add|del ... master` sends. Needs a bridge with
 * vlan_filtering (a kernel without CONFIG_BRIDGE_VLAN_FILTERING refuses it).
 */
export function buildBridgeVlanRequest(op: 'add' | 'del', index: number, v: BridgeVlan): NlRequest {
  if (!Number.isInteger(v.vid) || v.vid < 1 || v.vid > 4094) throw new NetlinkError('ERANGE', `bridge VLAN ${v.vid} is out of range 1-4094`);
  const info = Buffer.alloc(4);
  info.writeUInt16LE((v.pvid ? BRIDGE_VLAN_INFO.PVID : 0) | (v.untagged ? BRIDGE_VLAN_INFO.UNTAGGED : 0), 0);
  info.writeUInt16LE(v.vid, 2);
  const attrs = encodeAttrs([{ type: IFLA.AF_SPEC, children: [
    { type: IFLA_BRIDGE.FLAGS, data: u16(BRIDGE_FLAGS_MASTER) },
    { type: IFLA_BRIDGE.VLAN_INFO, data: info },
  ] }]);
  return { type: op === 'add' ? RTM.SETLINK : RTM.DELLINK, flags: 0, data: Buffer.concat([ifinfomsg({ family: AF.BRIDGE, index }), attrs]) };
}

/** Dump the bridge ports with their VLANs (`bridge vlan show`): AF_BRIDGE link dump with IFLA_EXT_MASK = RTEXT_FILTER_BRVLAN. */
export function buildBridgeVlanDumpRequest(): NlRequest {
  const attrs = encodeAttrs([{ type: IFLA.EXT_MASK, data: u32(RTEXT_FILTER_BRVLAN) }]);
  return { type: RTM.GETLINK, flags: NLM_F.DUMP, data: Buffer.concat([ifinfomsg({ family: AF.BRIDGE }), attrs]) };
}

export function buildAddressRequest(op: 'add' | 'del', index: number, cidr: string, o: { nodad?: boolean; noprefixroute?: boolean; scope?: number } = {}): NlRequest {
  const c = parseCidr(cidr);
  const addr = ipToBytes(c.ip);
  let flags = 0;
  if (o.nodad) flags |= IFA_F.NODAD;
  if (o.noprefixroute) flags |= IFA_F.NOPREFIXROUTE;
  const a: Attr[] = [{ type: IFA.LOCAL, data: addr }, { type: IFA.ADDRESS, data: addr }];
  // Like `ip addr add ... brd +` and the reference plugins: v4 gets a broadcast address.
  if (op === 'add' && c.family === 4 && c.prefix < 31) a.push({ type: IFA.BROADCAST, data: broadcastOf(c) });
  if (flags > 0xff) a.push({ type: IFA.FLAGS, data: u32(flags) }); // ifa_flags is a u8
  const hdr = ifaddrmsg({ family: afOf(c.family), prefixlen: c.prefix, flags: flags & 0xff, scope: o.scope ?? 0, index });
  return { type: op === 'add' ? RTM.NEWADDR : RTM.DELADDR, flags: op === 'add' ? CREATE_EXCL : 0, data: Buffer.concat([hdr, encodeAttrs(a)]) };
}

/** A RouteSpec with the output link resolved to its index. */
export type RouteRequest = Omit<RouteSpec, 'dev'> & { oif?: number };

export function normaliseDst(dst: string, gw?: string): string {
  if (dst === 'default') return gw && ipFamily(gw) === 6 ? '::/0' : '0.0.0.0/0';
  return dst;
}

export function buildRouteRequest(op: 'add' | 'del' | 'replace', r: RouteRequest): NlRequest {
  const dst = parseCidr(normaliseDst(r.dst, r.gw));
  if (r.gw && ipFamily(r.gw) !== dst.family) throw new NetlinkError('EINVAL', `route to ${r.dst}: gateway ${r.gw} is of another IP family`);
  const table = r.table ?? RT_TABLE.MAIN;
  const scope = r.scope ?? (r.gw ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK);
  const a: Attr[] = [];
  if (dst.prefix > 0) a.push({ type: RTA.DST, data: networkOf(dst) });
  if (r.gw) a.push({ type: RTA.GATEWAY, data: ipToBytes(r.gw) });
  if (r.oif) a.push({ type: RTA.OIF, data: u32(r.oif) });
  if (r.metric !== undefined) a.push({ type: RTA.PRIORITY, data: u32(r.metric) });
  if (r.src) a.push({ type: RTA.PREFSRC, data: ipToBytes(r.src) });
  a.push({ type: RTA.TABLE, data: u32(table) });
  const metrics: Attr[] = [];
  if (r.mtu) metrics.push({ type: RTAX_MTU, data: u32(r.mtu) });
  if (r.advmss) metrics.push({ type: RTAX_ADVMSS, data: u32(r.advmss) });
  if (metrics.length) a.push({ type: RTA.METRICS, children: metrics });
  const hdr = rtmsg({
    family: afOf(dst.family), dstLen: dst.prefix, table, protocol: op === 'del' ? 0 : RTPROT_BOOT,
    scope: op === 'del' ? RT_SCOPE.NOWHERE : scope, type: RTN_UNICAST, flags: r.onlink ? RTNH_F.ONLINK : 0,
  });
  const flags = op === 'add' ? CREATE_EXCL : op === 'replace' ? NLM_F.CREATE | NLM_F.REPLACE : 0;
  return { type: op === 'del' ? RTM.DELROUTE : RTM.NEWROUTE, flags, data: Buffer.concat([hdr, encodeAttrs(a)]) };
}

/** The kernel's route lookup for one address (`ip route get`): answered by one RTM_NEWROUTE, the route it would use. */
export function buildRouteGetRequest(ip: string): NlRequest {
  const family = ipFamily(ip);
  const hdr = rtmsg({ family: afOf(family), dstLen: family === 4 ? 32 : 128, table: 0, protocol: 0, scope: 0, type: 0 });
  return { type: RTM.GETROUTE, flags: 0, data: Buffer.concat([hdr, encodeAttrs([{ type: RTA.DST, data: ipToBytes(ip) }])]) };
}

/** A permanent neighbour (ARP/NDP) entry; `add` replaces an existing one. */
export function buildNeighbourRequest(op: 'add' | 'del', index: number, ip: string, mac?: string): NlRequest {
  const a: Attr[] = [{ type: NDA.DST, data: ipToBytes(ip) }];
  if (op === 'add') {
    if (!mac) throw new NetlinkError('EINVAL', `neighbour ${ip}: a MAC address is required`);
    a.push({ type: NDA.LLADDR, data: macToBytes(mac) });
  }
  const hdr = ndmsg({ family: afOf(ipFamily(ip)), index, state: NUD.PERMANENT, flags: 0 });
  return { type: op === 'add' ? RTM.NEWNEIGH : RTM.DELNEIGH, flags: op === 'add' ? NLM_F.CREATE | NLM_F.REPLACE : 0, data: Buffer.concat([hdr, encodeAttrs(a)]) };
}

/**
 * A bridge FDB entry on the device itself (NTF_SELF), e.g. on a vxlan: MAC -> remote VTEP.
 * `append` adds another destination for the same MAC (flooding list on 00:00:00:00:00:00);
 * otherwise the entry is created or replaced.
 */
export function buildFdbRequest(op: 'add' | 'del', index: number, mac: string, dst?: string, o: { append?: boolean } = {}): NlRequest {
  const a: Attr[] = [{ type: NDA.LLADDR, data: macToBytes(mac) }];
  if (dst) a.push({ type: NDA.DST, data: ipToBytes(dst) });
  const hdr = ndmsg({ family: AF.BRIDGE, index, state: NUD.PERMANENT, flags: NTF.SELF });
  const flags = op === 'del' ? 0 : o.append ? NLM_F.CREATE | NLM_F.APPEND : NLM_F.CREATE | NLM_F.REPLACE;
  return { type: op === 'add' ? RTM.NEWNEIGH : RTM.DELNEIGH, flags, data: Buffer.concat([hdr, encodeAttrs(a)]) };
}

export function buildDumpRequest(type: number, family: number = AF.UNSPEC): NlRequest {
  const header = type === RTM.GETLINK ? ifinfomsg({ family })
    : type === RTM.GETADDR ? ifaddrmsg({ family, prefixlen: 0, index: 0 })
    : type === RTM.GETROUTE ? rtmsg({ family, dstLen: 0, table: 0, protocol: 0, scope: 0, type: 0 })
    : ndmsg({ family, index: 0, state: 0, flags: 0 });
  return { type, flags: NLM_F.DUMP, data: header };
}
