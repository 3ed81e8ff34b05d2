// Pure: what the firewall plugin takes from prevResult.

import { invalidConfig } from '../../lib/cni/errors';
import type { Result } from '../../lib/cni/types';
import { addressText, familyOf, type Family } from '../../lib/ip';
import type { IngressPolicy } from './config';

/** Every address of prevResult (the reference lets all of them through), canonical, once each. */
export function allowedAddresses(prev: Result): string[] {
  return [...new Set((prev.ips ?? []).map((ip) => addressText(ip.address)))];
}

export function familiesOf(addresses: readonly string[]): Family[] {
  return [...new Set(addresses.map((a) => familyOf(a)))].sort();
}

/** The bridge an ingress policy isolates: the first interface of prevResult, as in the reference. */
export function policyBridge(prev: Result, policy: IngressPolicy): string | undefined {
  if (policy === 'open') return undefined;
  const name = prev.interfaces?.[0]?.name;
  if (!name) throw invalidConfig(`firewall: ingressPolicy "${policy}" needs the bridge as the first interface of prevResult; chain "firewall" after "bridge"`);
  return name;
}
