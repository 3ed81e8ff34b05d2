// The pure half of attaching a container to a local bridge (bridge and
// vxlan-overlay): from what the plugin wants (AttachSpec: its config and IPAM
// result in lib/bridge's terms) and what the kernel holds now (AttachObserved,
// read by ./apply.ts observeAttach), every link, sysctl, address, route metric,
// VLAN op, firewall element, DNS name and record of the attachment. No I/O:
// ./apply.ts carries the plan out step by step and decides nothing.
//
//   const plan = planAttach(spec, await observeAttach(kernel, spec, false));
//   const att = await applyAttachPlan(plan, kernel, undo);

import { CniError, ErrorCode, attachmentExists } from '../cni/errors';
import type { IpConfig, Route } from '../cni/types';
import type { MasqEntry, MasqOwner } from '../firewall/masquerade';
import type { NetworkPolicy } from '../firewall/netpolicy';
import { containerNames, type NameResolutionConfig } from '../dns/config';
import type { Invocation } from '../cni/types';
import { addressText, familyOf, overlapsText, sameIP, type Family } from '../ip';
import type { Address, BridgeVlan, Link, Route as KernelRoute } from '../netlink';
import { planRouteMetrics, type PlannedRoute } from '../routes/plan';
import type { AttachmentRecord } from './records';

export interface GatewayAddress {
  family: Family;
  /** Gateway with the subnet's prefix, as it goes on the bridge: "10.1.0.1/24". */
  cidr: string;
}

/** A bridge port's VLANs: the VIDs it came with (the bridge's default PVID) go unless kept, then these are added. */
export interface PortVlans {
  dropExisting: boolean;
  add: BridgeVlan[];
}

export interface AttachIsolation {
  /** CNI network name. */
  network: string;
  /** Directory for the per-bridge lock file (the plugin's state directory). */
  lockDir: string;
  /** nftables table; default node_cni_isolation. */
  table?: string;
}

export interface AttachNameService {
  network: string;
  config: NameResolutionConfig;
  containerId: string;
  /** The container's names on this network (lib/dns/config.ts containerNames). */
  names: readonly string[];
}

/**
 * The name service of one invocation, or undefined when the network has none. Names (ADD only) come
 * from the `aliases` capability and CNI_ARGS K8S_POD_NAME; a name DNS cannot carry throws code 7.
 */
export function nameServiceOf(o: { network: string; config?: NameResolutionConfig; inv: Invocation; podName?: string }): AttachNameService | undefined {
  if (!o.config) return undefined;
  const names = o.inv.env.command === 'ADD' ? containerNames({ network: o.network, aliases: o.inv.conf.runtimeConfig?.aliases, podName: o.podName }) : [];
  return { network: o.network, config: o.config, containerId: o.inv.env.containerId!, names };
}

/** The VLAN gateway interface `<bridge>.<vlan>` (./vlan-gateway.ts) that carries the gateway addresses instead of the bridge. */
export interface VlanGatewayTarget {
  name: string;
  vlan: number;
  /** Its own bridge port: an access port of its VLAN. */
  portVlans: PortVlans;
  /** Directory of the per-bridge lock file (the plugin's state directory). */
  lockDir: string;
}

/** What a bridge-family plugin wants for one container, from its config and its IPAM result. */
export interface AttachSpec {
  /** For messages: "bridge", "vxlan-overlay". */
  plugin: string;
  network: string;
  containerId: string;
  /** Interface name inside the container. */
  ifname: string;
  /** Bridge to create or reuse in the host namespace. */
  bridge: string;
  /** 0/undefined: kernel default. Both veth ends, and the bridge when it is created. */
  mtu?: number;
  /** Container-side MAC. */
  mac?: string;
  promisc?: boolean;
  hairpin?: boolean;
  portIsolation?: boolean;
  /** Create the bridge with vlan_filtering (only takes effect on creation). */
  vlanFiltering?: boolean;
  portVlans?: PortVlans;
  enableDad?: boolean;
  /** Leave the container interface down (L2 only). */
  disableContainerInterface?: boolean;
  /** Container addresses (CIDR, host bits kept), gateways filled in. */
  ips: readonly IpConfig[];
  routes: readonly Route[];
  /** The attachment's gateway priority (lib/routes/priority.ts): the metric band of routes without their own. */
  gwPriority: number;
  /** Gateway addresses to ensure on the bridge, or on the VLAN gateway when there is one. */
  bridgeAddresses: readonly GatewayAddress[];
  vlanGateway?: VlanGatewayTarget;
  forceAddress?: boolean;
  forwardV4: boolean;
  forwardV6: boolean;
  masq: readonly MasqEntry[];
  /** MAC spoof check elements for the port (lib/firewall/macspoof.ts). */
  macspoof?: boolean;
  isolation?: AttachIsolation;
  nameService?: AttachNameService;
  /** Internal network, ICC off (lib/firewall/netpolicy.ts). */
  policy?: NetworkPolicy;
  /** The plugin's own record fields beyond AttachmentRecord (the bridge's VLAN gateway, the overlay's subnets). */
  recordExtra?: Record<string, unknown>;
}

/** What the kernel holds before the attachment, as far as its decisions depend on it. */
export interface AttachObserved {
  /** The container already has an interface named like ours. */
  containerHasIfname: boolean;
  /** The device called like the bridge, if there is one. */
  bridge?: Link;
  /** Addresses on the device that gets the gateway addresses (bridge or VLAN gateway), of the families wanted. */
  gatewayDeviceAddresses: readonly Address[];
  /** Every route in the container (all tables): the metrics other attachments took. */
  containerRoutes: readonly KernelRoute[];
}

export interface Sysctl {
  /** Under /proc/sys: "net/ipv6/conf/eth0/accept_dad". */
  path: string;
  value: string;
}

/** A sysctl of the host end, whose name (veth + 8 random hex) the kernel settles: `net/<family>/conf/<host veth>/<key>`. */
export interface HostVethSysctl {
  family: 'ipv4' | 'ipv6';
  key: string;
  value: string;
}

export interface AttachPlan {
  plugin: string;
  bridge: { name: string; mtu?: number; promisc: boolean; vlanFiltering: boolean };
  /** The veth pair, made from the container side; the host end gets a random free name. */
  veth: { ifname: string; mtu?: number; mac?: string };
  /** The host end as a bridge port. */
  port: { hairpin: boolean; isolated: boolean; vlans?: PortVlans };
  /** Best-effort tuning: a sysctl the kernel does not have (IPv6 off) is skipped. */
  sysctls: { hostVeth: HostVethSysctl[]; container: Sysctl[] };
  container: {
    addresses: Array<{ cidr: string; nodad: boolean }>;
    up: boolean;
    /** Wait this long for IPv6 DAD to finish (enableDad); undefined: no wait. */
    dadTimeoutMs?: number;
    routes: PlannedRoute[];
    /** The band a route metric is picked again from when a concurrent ADD took the planned one. */
    gwPriority: number;
  };
  /** Gateway addresses, and the conflicting ones forceAddress removes first; absent when the network has none. */
  gateway?: { vlanGateway?: VlanGatewayTarget; addresses: GatewayAddress[]; remove: string[] };
  forwarding: { v4: boolean; v6: boolean };
  firewall: {
    masq?: { owner: MasqOwner; entries: MasqEntry[] };
    macspoof: boolean;
    isolation?: AttachIsolation & { bridge: string };
    policy?: NetworkPolicy;
  };
  /** The container's names for the network's DNS service, served on the gateway addresses. */
  names?: AttachNameService & { ifname: string; bridge: string; addresses: string[]; listen: string[] };
  /** Written (with the host veth, then the MAC spoof entry) as soon as what DEL needs exists. */
  record: AttachmentRecord & Record<string, unknown>;
  /** How long the host port may take to come up (0: the container interface stays down, no wait). */
  portUpTimeoutMs: number;
}

const DAD_TIMEOUT_MS = 5000;
const PORT_UP_TIMEOUT_MS = 2550;

function fail(msg: string, code: number = ErrorCode.Internal): CniError {
  return new CniError(code, msg);
}

/**
 * The gateway-address policy: an address already there is kept; a different
 * one conflicts (IPv4: any other global address, one per bridge; IPv6: an
 * overlapping prefix) and is removed with forceAddress, else refused.
 */
function planGatewayAddresses(spec: AttachSpec, present: readonly Address[]): { addresses: GatewayAddress[]; remove: string[] } {
  const dev = spec.vlanGateway?.name ?? spec.bridge;
  const addresses: GatewayAddress[] = [];
  const remove: string[] = [];
  for (const gw of spec.bridgeAddresses) {
    const [ip, prefix] = gw.cidr.split('/');
    if (present.some((a) => sameIP(a.ip, ip) && a.cidr.split('/')[1] === prefix)) continue;
    const conflicts = present.filter((a) => a.family === gw.family && (gw.family === 4 ? a.scope === 0 : overlapsText(a.cidr, gw.cidr)) && !a.ip.startsWith('fe80:'));
    for (const c of conflicts) {
      if (!spec.forceAddress) throw fail(`${spec.plugin}: "${dev}" already has an IP address different from ${gw.cidr} (${c.cidr}); set "forceAddress" to replace it`);
      if (!remove.includes(c.cidr)) remove.push(c.cidr);
    }
    addresses.push(gw);
  }
  return { addresses, remove };
}

/** The container's sysctls: DAD as configured, gratuitous ARP on up, IPv6 on when it has IPv6 addresses. */
function containerSysctls(spec: AttachSpec, hasV6: boolean): Sysctl[] {
  const dev = spec.ifname;
  const out: Sysctl[] = [{ path: `net/ipv6/conf/${dev}/accept_dad`, value: spec.enableDad ? '1' : '0' }];
  if (spec.enableDad) out.push({ path: `net/ipv6/conf/${dev}/enhanced_dad`, value: '1' });
  out.push({ path: `net/ipv4/conf/${dev}/arp_notify`, value: '1' });
  if (hasV6) {
    out.push({ path: 'net/ipv6/conf/lo/disable_ipv6', value: '0' });
    out.push({ path: `net/ipv6/conf/${dev}/disable_ipv6`, value: '0' });
    out.push({ path: `net/ipv6/conf/${dev}/keep_addr_on_down`, value: '1' });
  }
  return out;
}

/** Every decision of the attachment; throws the CniError the ADD fails with when the kernel's state forbids it. */
export function planAttach(spec: AttachSpec, observed: AttachObserved): AttachPlan {
  const who = spec.plugin;
  if (observed.containerHasIfname) throw attachmentExists(`${who}: container already has an interface named "${spec.ifname}"`);
  if (observed.bridge && observed.bridge.kind !== 'bridge') {
    throw fail(`${who}: "${spec.bridge}" already exists and is a ${observed.bridge.kind ?? 'device'}, not a bridge`, ErrorCode.InvalidConfig);
  }
  const hasV6 = spec.ips.some((ip) => familyOf(ip.address) === 6);
  const owner = { network: spec.network, containerId: spec.containerId, ifname: spec.ifname };
  // The VLAN gateway carries the addresses only when there are any (an L2-only network makes none).
  const vlanGateway = spec.bridgeAddresses.length ? spec.vlanGateway : undefined;
  const gateway = spec.bridgeAddresses.length ? { vlanGateway, ...planGatewayAddresses(spec, observed.gatewayDeviceAddresses) } : undefined;
  return {
    plugin: who,
    bridge: { name: spec.bridge, mtu: spec.mtu || undefined, promisc: !!spec.promisc, vlanFiltering: !!spec.vlanFiltering },
    veth: { ifname: spec.ifname, mtu: spec.mtu || undefined, mac: spec.mac },
    port: { hairpin: !!spec.hairpin, isolated: !!spec.portIsolation, vlans: spec.portVlans },
    sysctls: {
      // The host end must not autoconfigure from RAs the container sends.
      hostVeth: [{ family: 'ipv6', key: 'accept_ra', value: '0' }],
      container: containerSysctls(spec, hasV6),
    },
    container: {
      addresses: spec.ips.map((ip) => ({ cidr: ip.address, nodad: familyOf(ip.address) === 6 && !spec.enableDad })),
      up: !spec.disableContainerInterface,
      dadTimeoutMs: hasV6 && spec.enableDad ? DAD_TIMEOUT_MS : undefined,
      routes: planRouteMetrics({ plugin: who, routes: spec.routes, gwPriority: spec.gwPriority }, observed.containerRoutes),
      gwPriority: spec.gwPriority,
    },
    gateway,
    forwarding: { v4: spec.forwardV4, v6: spec.forwardV6 },
    firewall: {
      masq: spec.masq.length ? { owner, entries: [...spec.masq] } : undefined,
      macspoof: !!spec.macspoof,
      isolation: spec.isolation && { ...spec.isolation, bridge: spec.bridge },
      policy: spec.policy,
    },
    names: spec.nameService && {
      ...spec.nameService, ifname: spec.ifname, bridge: spec.bridge,
      addresses: spec.ips.map((ip) => addressText(ip.address)),
      listen: spec.bridgeAddresses.map((b) => addressText(b.cidr)),
    },
    record: {
      ...spec.recordExtra,
      network: spec.network, containerId: spec.containerId, ifname: spec.ifname,
      addresses: spec.ips.map((ip) => ip.address), masq: [...spec.masq],
    },
    portUpTimeoutMs: spec.disableContainerInterface ? 0 : PORT_UP_TIMEOUT_MS,
  };
}
