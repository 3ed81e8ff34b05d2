// What one container gets on this host's part of the overlay, from the
// agent's readiness state and the config alone (pure: no kernel, no store):
// per family the host's subnet, the gateway on the bridge and the cluster
// CIDR; then the addresses' gateways, the routes and the masquerade entries.

import type { IpConfig, Route } from '../../lib/cni/types';
import type { MasqEntry } from '../../lib/firewall/masquerade';
import { addressText, familyOf, type Family } from '../../lib/ip';
import { gatewayOf } from './model';

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
