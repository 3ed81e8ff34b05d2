// Plain objects the facade returns and accepts. No raw netlink shapes leak out.
import type { Netns } from '../netns';

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: "veth", "bridge", "macvlan", "vxlan"...; undefined for lo and physical devices. */
  kind?: string;
  mac: string;
  mtu: number;
  /** IFF_UP: administratively up. */
  up: boolean;
  /** operstate UP (carrier and peer up). lo reports UNKNOWN, so operUp is false for lo. */
  operUp: boolean;
  flags: number;
  /** Index of the bridge (or other master) it is attached to. */
  master?: number;
  /** IFLA_LINK: a veth's peer index, a macvlan/vxlan parent index (may live in another namespace). */
  peerIndex?: number;
  /**
   * IFLA_LINK exactly as the kernel sent it, also when it equals this link's
   * own index (peerIndex drops that case unless IFLA_LINK_NETNSID is set).
   * A macvlan's parent index, in the parent's namespace.
   */
  linkIndex?: number;
  /** A macvlan's mode (IFLA_MACVLAN_MODE); "unknown (n)" for a mode this code has no name for. */
  macvlanMode?: MacvlanMode | string;
  /** Set when peerIndex lives in another namespace (IFLA_LINK_NETNSID). */
  linkNetnsId?: number;
  txqlen?: number;
  /** IFLA_IFALIAS, when set (`ip link set dev X alias ...`). */
  alias?: string;
  /** When enslaved to a bridge: its port flags (IFLA_INFO_SLAVE_DATA). */
  bridgePort?: BridgePortFlags;
}

export type LinkRef = number | string | Pick<Link, 'index' | 'name'>;

/** A namespace to put something in: an open fd, a Netns, or a path such as /run/netns/x or /proc/self/ns/net. */
export type NetnsRef = number | Netns | string;

export interface VethOptions {
  name: string;
  peerName: string;
  /** Where the peer goes. Create from the container side and send the peer to the host. */
  peerNetns?: NetnsRef;
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

export interface BridgeOptions {
  name: string;
  mtu?: number;
  mac?: string;
  vlanFiltering?: boolean;
}

export type MacvlanMode = 'private' | 'vepa' | 'bridge' | 'passthru' | 'source';

export interface MacvlanOptions {
  /** Final name inside the target namespace. */
  name: string;
  parentIndex: number;
  mode?: MacvlanMode;
  mtu?: number;
  mac?: string;
  bcqueuelen?: number;
  /** Create the link directly in this namespace (must be a Netns or path so we can rename inside it). */
  netns?: Netns | string;
}

export interface VxlanOptions {
  name: string;
  vni: number;
  local?: string;
  port?: number;
  /** Default false: the overlay agent fills the FDB itself. */
  learning?: boolean;
  mtu?: number;
  /** Underlay device index. */
  dev?: number;
  mac?: string;
}

export interface VlanOptions {
  name: string;
  parentIndex: number;
  vlanId: number;
  mtu?: number;
}

/** One VLAN on a bridge port (what `bridge vlan add/del dev <port> vid <vid> [pvid] [untagged] master` sends). */
export interface BridgeVlan {
  vid: number;
  /** Untagged frames arriving on the port get this VID. */
  pvid?: boolean;
  /** Frames of this VID leave the port untagged. */
  untagged?: boolean;
}

/** A bridge port and its VLANs, from one AF_BRIDGE dump (`bridge vlan show`). */
export interface BridgePortVlans {
  index: number;
  name: string;
  vlans: BridgeVlan[];
}

export interface BridgePortFlags {
  hairpin?: boolean;
  isolated?: boolean;
  learning?: boolean;
}

export interface Address {
  /** "10.0.0.5/24" with host bits kept. */
  cidr: string;
  ip: string;
  prefix: number;
  family: 4 | 6;
  index: number;
  scope: number;
  flags: number;
  label?: string;
}

export interface AddressOptions {
  /** IPv6: skip duplicate address detection, so the address is usable at once. */
  nodad?: boolean;
  noprefixroute?: boolean;
  scope?: number;
}

export interface RouteSpec {
  /** "10.0.0.0/8", "default", "0.0.0.0/0", "::/0". */
  dst: string;
  gw?: string;
  /** Output link. */
  dev?: LinkRef;
  table?: number;
  /** RT_SCOPE_* number; default universe with a gateway, link without. */
  scope?: number;
  /** The metric (RTA_PRIORITY). */
  metric?: number;
  mtu?: number;
  advmss?: number;
  src?: string;
  /** RTNH_F_ONLINK: the gateway is on the link even though no address of the link covers it (`ip route ... onlink`). */
  onlink?: boolean;
}

export interface Route {
  dst: string;
  family: 4 | 6;
  gw?: string;
  oif?: number;
  table: number;
  scope: number;
  metric?: number;
  mtu?: number;
  src?: string;
  /** RTNH_F_* flags of the route (rtm_flags), e.g. RTNH_F.ONLINK. */
  flags: number;
  protocol: number;
  type: number;
}

export interface RouteFilter {
  family?: 4 | 6;
  /** Default: main table. 0 = every table. */
  table?: number;
  dev?: LinkRef;
}

export interface Neighbour {
  ip: string;
  mac?: string;
  index: number;
  state: number;
}

export interface FdbEntry {
  mac: string;
  dst?: string;
  index: number;
  state: number;
  flags: number;
}
