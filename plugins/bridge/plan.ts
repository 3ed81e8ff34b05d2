// Pure decisions of a bridge ADD: given the config and what IPAM returned,
// which addresses, routes, gateway addresses, masquerade entries and VLANs
// this container needs (planAdd), as lib/bridge's AttachSpec (attachSpecOf),
// and with what the kernel holds the whole AttachPlan (planAttach). No I/O here.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { IpConfig, Result, Route } from '../../lib/cni/types';
import type { MasqEntry } from '../../lib/firewall/masquerade';
import { hasPolicy, type NetworkPolicy } from '../../lib/firewall/netpolicy';
import { planAttach as planBridgeAttach, type AttachNameService, type AttachObserved, type AttachPlan, type AttachSpec, type GatewayAddress, type PortVlans } from '../../lib/bridge/plan';
import type { BridgeVlanOp } from '../../lib/bridge/port';
import { addressText, type Family, familyOf, firstHostText, networkText } from '../../lib/ip';
import { type BridgeConfig } from './config';
import { isValidIfname } from '../../lib/util/ifname';

export type { GatewayAddress };

export interface AddPlan {
  /** ips for the result (gateway filled in when isGateway computed one). */
  ips: IpConfig[];
  /** Routes inside the container, gw defaulted to the family's first gateway. */
  routes: Route[];
  /** Gateway addresses (isGateway): on the bridge, or on the VLAN gateway interface when there is one. */
  bridgeAddresses: GatewayAddress[];
  /** `vlan` with isGateway: the interface that carries the gateway addresses instead of the bridge. */
  vlanGateway?: VlanGatewayPlan;
  forwardV4: boolean;
  forwardV6: boolean;
  masq: MasqEntry[];
}

export function planAdd(conf: BridgeConfig, ipam: Result | undefined): AddPlan {
  const ips: IpConfig[] = [];
  const bridgeAddresses: GatewayAddress[] = [];
  const firstGw: Partial<Record<Family, string>> = {};
  for (const ip of ipam?.ips ?? []) {
    const fam = familyOf(ip.address);
    let gateway = ip.gateway;
    // Reference calcGateways: no gateway from IPAM + isGateway → network + 1.
    if (!gateway && conf.isGateway) gateway = firstHostText(ip.address);
    ips.push(gateway ? { address: ip.address, gateway } : { address: ip.address });
    if (gateway && firstGw[fam] === undefined) firstGw[fam] = gateway;
    if (conf.isGateway && gateway) {
      const cidr = `${gateway}/${ip.address.split('/')[1]}`;
      if (!bridgeAddresses.some((b) => b.cidr === cidr)) bridgeAddresses.push({ family: fam, cidr });
    }
  }

  const routes: Route[] = (ipam?.routes ?? []).filter((r) => !(conf.internal && isDefault(r.dst))).map((r) => {
    const fam = familyOf(r.dst);
    const gw = r.gw ?? firstGw[fam];
    return gw ? { ...r, gw } : { ...r };
  });
  // An internal network has no way out: no default route, whatever IPAM or isDefaultGateway say.
  if (conf.isDefaultGateway && !conf.internal) {
    for (const fam of [4, 6] as Family[]) {
      const gw = firstGw[fam];
      if (!gw) continue;
      const dflt = fam === 4 ? '0.0.0.0/0' : '::/0';
      const has = routes.some((r) => r.dst === dflt && r.gw);
      if (!has) routes.push({ dst: dflt, gw });
    }
  }

  const hasV4 = ips.some((ip) => familyOf(ip.address) === 4);
  const hasV6 = ips.some((ip) => familyOf(ip.address) === 6);
  const masq: MasqEntry[] = conf.ipMasq && !conf.internal ? ips.map((ip) => ({ address: addressText(ip.address), subnet: networkText(ip.address) })) : [];

  return {
    ips,
    routes,
    bridgeAddresses,
    vlanGateway: bridgeAddresses.length ? planVlanGateway(conf) : undefined,
    // A routed container network needs forwarding; v6 only when there is v6,
    // because turning it on changes how the host treats router advertisements.
    forwardV4: hasV4,
    forwardV6: hasV6,
    masq,
  };
}

function isDefault(dst: string): boolean {
  return dst === 'default' || networkText(dst).endsWith('/0');
}

/** The forwarding policy of the network (internal, ICC off), or undefined when it has none. */
export function planPolicy(conf: BridgeConfig, vlanGateway?: VlanGatewayPlan): NetworkPolicy | undefined {
  const p: NetworkPolicy = { network: conf.name, members: vlanGateway ? [conf.bridge, vlanGateway.name] : [conf.bridge], internal: conf.internal, iccOff: conf.portIsolation };
  return hasPolicy(p) ? p : undefined;
}

/** IPAM must return at least one address when configured (reference: "IPAM plugin returned missing IP config"). */
export function requireAddresses(conf: BridgeConfig, ipam: Result | undefined): void {
  if (conf.ipamType && !(ipam?.ips?.length)) throw new CniError(ErrorCode.Internal, `bridge: IPAM plugin "${conf.ipamType}" returned no IP addresses`);
}

// ---------------------------------------------------------------------------
// VLANs on the host veth port (`bridge vlan add/del ... master`; sent by
// lib/bridge/apply.ts, as PortVlans (portVlansOf), through the facade's
// addBridgeVlan/deleteBridgeVlan).

export type VlanOp = BridgeVlanOp & { pvid: boolean; untagged: boolean };

/**
 * What VIDs the port gets. Without preserveDefaultVlan, every VID already on
 * the port (the bridge's default PVID 1) is removed first. `vlan` is the
 * access VLAN (PVID, untagged); trunk VIDs are tagged; a trunk without
 * `vlan` keeps native VLAN 1 as PVID untagged.
 */
export function planVlans(conf: BridgeConfig, existingVids: readonly number[] = [1]): VlanOp[] {
  if (conf.vlan === 0 && conf.vlanTrunk.length === 0) return [];
  const ops: VlanOp[] = [];
  if (!conf.preserveDefaultVlan) for (const vid of existingVids) ops.push({ op: 'del', vid, pvid: false, untagged: false });
  if (conf.vlan !== 0) ops.push({ op: 'add', vid: conf.vlan, pvid: true, untagged: true });
  else ops.push({ op: 'add', vid: 1, pvid: true, untagged: true });
  for (const vid of conf.vlanTrunk) if (vid !== conf.vlan) ops.push({ op: 'add', vid, pvid: false, untagged: false });
  return ops;
}

/** Whether the bridge must be created with vlan_filtering on. */
export function needsVlanFiltering(conf: BridgeConfig): boolean {
  return conf.vlan !== 0 || conf.vlanTrunk.length > 0;
}

// ---------------------------------------------------------------------------
// The VLAN gateway interface (reference ADD step 7; lib/bridge/vlan-gateway.ts
// builds it and removes it with the last port of its VLAN).

export interface VlanGatewayPlan {
  /** `<bridge>.<vlan>`, as the reference names it. */
  name: string;
  vlan: number;
}

/** With `vlan` and isGateway the gateway lives on `<bridge>.<vlan>`; undefined otherwise. Throws code 7 when the name does not fit. */
export function planVlanGateway(conf: Pick<BridgeConfig, 'bridge' | 'vlan' | 'isGateway'>): VlanGatewayPlan | undefined {
  if (!conf.isGateway || conf.vlan === 0) return undefined;
  const name = `${conf.bridge}.${conf.vlan}`;
  if (!isValidIfname(name)) {
    throw new CniError(ErrorCode.InvalidConfig, `bridge: the VLAN gateway interface "${name}" would be longer than 15 bytes`, `use a "bridge" name of at most ${14 - String(conf.vlan).length} bytes with "vlan" ${conf.vlan}`);
  }
  return { name, vlan: conf.vlan };
}

/** The gateway's own port: an access port of its VLAN (PVID, untagged), no trunk; the defaults go unless preserveDefaultVlan. */
export function planVlanGatewayPort(conf: BridgeConfig, existingVids: readonly number[] = [1]): VlanOp[] {
  return planVlans({ ...conf, vlanTrunk: [] }, existingVids);
}

/** The VLANs of a port as data: the ops planVlans gives a port without VIDs, and whether the VIDs it came with go. */
export function portVlansOf(conf: BridgeConfig): PortVlans | undefined {
  const ops = planVlans(conf, []);
  if (ops.length === 0) return undefined;
  return { dropExisting: !conf.preserveDefaultVlan, add: ops.map(({ vid, pvid, untagged }) => ({ vid, pvid, untagged })) };
}

/** Who attaches: the invocation's container, interface and names. */
export interface BridgeAttachment {
  containerId: string;
  ifname: string;
  nameService?: AttachNameService;
}

/** The bridge's attachment in lib/bridge's terms. Throws when IPAM gave no address although one is configured. */
export function attachSpecOf(conf: BridgeConfig, ipam: Result | undefined, who: BridgeAttachment): AttachSpec {
  requireAddresses(conf, ipam);
  const plan = planAdd(conf, ipam);
  const gw = plan.vlanGateway;
  return {
    plugin: 'bridge', network: conf.name, containerId: who.containerId, ifname: who.ifname,
    bridge: conf.bridge, mtu: conf.mtu, mac: conf.mac,
    promisc: conf.promiscMode, hairpin: conf.hairpinMode, portIsolation: conf.portIsolation,
    vlanFiltering: needsVlanFiltering(conf), portVlans: portVlansOf(conf),
    enableDad: conf.enabledad, disableContainerInterface: conf.disableContainerInterface,
    ips: plan.ips, routes: plan.routes, gwPriority: conf.gwPriority,
    bridgeAddresses: plan.bridgeAddresses, forceAddress: conf.forceAddress,
    vlanGateway: gw && { ...gw, portVlans: portVlansOf({ ...conf, vlanTrunk: [] })!, lockDir: conf.stateDir },
    forwardV4: plan.forwardV4, forwardV6: plan.forwardV6, masq: plan.masq, macspoof: conf.macspoofchk,
    isolation: conf.isolation ? { network: conf.name, lockDir: conf.stateDir } : undefined,
    nameService: who.nameService, policy: planPolicy(conf, gw),
    recordExtra: { bridge: conf.bridge, vlanGateway: gw },
  };
}

/** The whole attachment: config and IPAM result, against what the kernel holds (lib/bridge/apply.ts observeAttach). */
export function planAttach(conf: BridgeConfig, ipam: Result | undefined, observed: AttachObserved, who: BridgeAttachment): AttachPlan {
  return planBridgeAttach(attachSpecOf(conf, ipam, who), observed);
}
