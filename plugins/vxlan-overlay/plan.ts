// What one container gets on this host's part of the overlay, from the
// agent's readiness state and the config alone (pure: no kernel, no store):
// per family the host's subnet, the gateway on the bridge and the cluster
// CIDR; then the addresses' gateways, the routes and the masquerade entries
// (planAttachment); as lib/bridge's AttachSpec (attachSpecOf), and with what
// the kernel holds the whole AttachPlan (planAttach), the bridge plugin's shape.

import { planAttach as planBridgeAttach, type AttachNameService, type AttachObserved, type AttachPlan, type AttachSpec } from '../../lib/bridge/plan';
import type { IpConfig, Result, Route } from '../../lib/cni/types';
import { hasPolicy, type NetworkPolicy } from '../../lib/firewall/netpolicy';
import type { MasqEntry } from '../../lib/firewall/masquerade';
import { addressText, familyOf, type Family } from '../../lib/ip';
import type { OverlayConfig } from './config';
import { gatewayOf } from './model';
import type { AgentState } from './readiness';

export interface OverlayFamily {
  family: Family;
  /** This host's subnet of the family, e.g. "10.244.3.0/24" / "fd00:10:244:3::/64". */
  subnet: string;
  /** The gateway on the host's overlay bridge. */
  gateway: { ip: string; cidr: string };
  /** The cluster CIDR of the family: every host's subnet is in it, so it is routed over the overlay. */
  cluster: string;
  /** The default route's destination in the family. */
  any: string;
}

/** The families the agent serves: IPv4, and IPv6 on a dual-stack network. */
export function overlayFamilies(agent: { subnet: string; cidr: string; subnet6?: string; cidr6?: string }): OverlayFamily[] {
  const v4: OverlayFamily = { family: 4, subnet: agent.subnet, gateway: gatewayOf(agent.subnet), cluster: agent.cidr, any: '0.0.0.0/0' };
  if (!agent.subnet6 || !agent.cidr6) return [v4];
  return [v4, { family: 6, subnet: agent.subnet6, gateway: gatewayOf(agent.subnet6), cluster: agent.cidr6, any: '::/0' }];
}

export interface AttachmentPlan {
  ips: IpConfig[];
  routes: Route[];
  masq: MasqEntry[];
}

/**
 * The container's addresses (from host-local, one per family) with their
 * gateways, its routes (each cluster CIDR via the gateway, and the defaults
 * when it is the default gateway), and the masquerade entries for traffic
 * that leaves the cluster (ipMasq). Throws when IPAM did not give exactly
 * one address per family.
 */
export function planAttachment(families: readonly OverlayFamily[], addresses: readonly string[], o: { isDefaultGateway: boolean; ipMasq: boolean }): AttachmentPlan {
  const of = (address: string): OverlayFamily | undefined => families.find((f) => f.family === familyOf(address));
  if (addresses.length !== families.length || families.some((f) => addresses.filter((a) => familyOf(a) === f.family).length !== 1)) {
    throw new Error(`host-local gave ${addresses.length ? addresses.join(', ') : 'no address'} for ${families.map((f) => f.subnet).join(' and ')}`);
  }
  const ips = addresses.map((address) => ({ address, gateway: of(address)!.gateway.ip }));
  const routes: Route[] = families.map((f) => ({ dst: f.cluster, gw: f.gateway.ip }));
  if (o.isDefaultGateway) routes.push(...families.map((f) => ({ dst: f.any, gw: f.gateway.ip })));
  const masq = o.ipMasq ? addresses.map((a) => ({ address: addressText(a), subnet: of(a)!.cluster })) : [];
  return { ips, routes, masq };
}

/** Internal, ICC off: the network here is its bridge and its VXLAN device (traffic to other hosts' containers is routed through it). */
export function policyOf(conf: OverlayConfig, agent: Pick<AgentState, 'bridge' | 'vxlan'>): NetworkPolicy | undefined {
  const p: NetworkPolicy = { network: conf.name, members: [agent.bridge, agent.vxlan], internal: conf.internal, iccOff: conf.portIsolation };
  return hasPolicy(p) ? p : undefined;
}

/** Who attaches: the invocation's container, interface and names. */
export interface OverlayAttachment {
  containerId: string;
  ifname: string;
  nameService?: AttachNameService;
}

/** The overlay's attachment in lib/bridge's terms, on the agent's bridge. Throws when host-local did not give one address per family. */
export function attachSpecOf(conf: OverlayConfig, agent: AgentState, ipam: Result, who: OverlayAttachment): AttachSpec {
  const families = overlayFamilies(agent);
  const { ips, routes, masq } = planAttachment(families, (ipam.ips ?? []).map((ip) => ip.address), {
    // An internal network has no way out: no default route, no masquerade.
    isDefaultGateway: conf.isDefaultGateway && !conf.internal, ipMasq: conf.ipMasq && !conf.internal,
  });
  return {
    plugin: 'vxlan-overlay', network: conf.name, containerId: who.containerId, ifname: who.ifname,
    bridge: agent.bridge, mtu: agent.mtu, mac: conf.mac, portIsolation: conf.portIsolation,
    ips, routes, gwPriority: conf.gwPriority,
    bridgeAddresses: families.map((f) => ({ family: f.family, cidr: f.gateway.cidr })), forwardV4: true, forwardV6: families.length > 1,
    masq,
    // Isolation as the bridge plugin does it: the VXLAN device is routed (not a bridge port), so cross-host traffic never meets the group's rule.
    isolation: conf.isolation ? { network: conf.name, lockDir: conf.runDir } : undefined,
    nameService: who.nameService, policy: policyOf(conf, agent),
    recordExtra: { subnet: agent.subnet, ...(agent.subnet6 ? { subnet6: agent.subnet6 } : {}), bridge: agent.bridge },
  };
}

/** The whole attachment: config, agent state and IPAM result, against what the kernel holds (lib/bridge/apply.ts observeAttach). */
export function planAttach(conf: OverlayConfig, agent: AgentState, ipam: Result, observed: AttachObserved, who: OverlayAttachment): AttachPlan {
  return planBridgeAttach(attachSpecOf(conf, agent, ipam, who), observed);
}
