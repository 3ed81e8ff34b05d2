// Parse the firewall configuration (pure): every field of the reference
// firewall plugin (reference-plugins.md §8), unchanged. `backend` may be
// anything the reference takes ("iptables", "firewalld", "" as podman writes
// it): ours is our nftables table plus one iptables jump either way.

import { invalidConfig } from '../../lib/cni/errors';
import type { NetConf, Result } from '../../lib/cni/types';
import { IPTABLES_CHAIN_NAME } from '../../lib/firewall/iptables';
import { parseStateDir } from '../../lib/util/paths';
import { show } from '../../lib/util/show';

export type IngressPolicy = 'open' | 'same-bridge' | 'isolated';
export const INGRESS_POLICIES: readonly IngressPolicy[] = ['open', 'same-bridge', 'isolated'];
export const DEFAULT_ADMIN_CHAIN = 'CNI-ADMIN';
export const DEFAULT_STATE_DIR = '/run/cni/firewall';

export interface FirewallConfig {
  cniVersion: string;
  network: string;
  /** As written; informational (logged at debug level). */
  backend: string;
  adminChain: string;
  /** Accepted for the reference's firewalld backend; not used (see README). */
  firewalldZone: string;
  ingressPolicy: IngressPolicy;
  /** Our extension: per-attachment records and the lock of the host's firewall state. */
  stateDir: string;
  prevResult?: Result;
}

function optionalString(conf: NetConf, key: string): string | undefined {
  const v = conf[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidConfig(`firewall: "${key}" must be a string, got ${show(v)}`);
  return v;
}

export function parseFirewallConfig(conf: NetConf): FirewallConfig {
  const backend = optionalString(conf, 'backend') ?? '';
  const adminChain = optionalString(conf, 'iptablesAdminChainName') || DEFAULT_ADMIN_CHAIN;
  if (!IPTABLES_CHAIN_NAME.test(adminChain)) throw invalidConfig(`firewall: iptablesAdminChainName must be an iptables chain name (1-28 characters: letters, digits, _ . : + -), got ${show(adminChain)}`);
  const firewalldZone = optionalString(conf, 'firewalldZone') || 'trusted';
  const policy = optionalString(conf, 'ingressPolicy') || 'open';
  if (!(INGRESS_POLICIES as readonly string[]).includes(policy)) {
    throw invalidConfig(`firewall: unknown ingressPolicy ${show(policy)} (one of "open", "same-bridge", "isolated")`);
  }
  // A "state" path (lib/util/paths.ts, docs/security.md), like every plugin's.
  const stateDir = parseStateDir(optionalString(conf, 'stateDir') || DEFAULT_STATE_DIR, { plugin: 'firewall', field: 'stateDir' });
  return {
    cniVersion: conf.cniVersion,
    network: conf.name,
    backend,
    adminChain,
    firewalldZone,
    ingressPolicy: policy as IngressPolicy,
    stateDir,
    prevResult: conf.prevResult,
  };
}
