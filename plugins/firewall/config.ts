// Parse the firewall configuration (pure): every field of the reference
// firewall plugin (reference-plugins.md §8), unchanged. `backend` may be
// anything the reference takes ("iptables", "firewalld", "" as podman writes
// it): ours is our nftables table plus one iptables jump either way.

import * as path from 'path';
import { invalidConfig } from '../../lib/cni/errors';
import type { NetConf, Result } from '../../lib/cni/types';
import { IPTABLES_CHAIN_NAME } from '../../lib/firewall/iptables';

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
  if (typeof v !== 'string') throw invalidConfig(`firewall: "${key}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

export function parseFirewallConfig(conf: NetConf): FirewallConfig {
  const backend = optionalString(conf, 'backend') ?? '';
  const adminChain = optionalString(conf, 'iptablesAdminChainName') || DEFAULT_ADMIN_CHAIN;
  if (!IPTABLES_CHAIN_NAME.test(adminChain)) throw invalidConfig(`firewall: iptablesAdminChainName must be an iptables chain name (1-28 characters: letters, digits, _ . : + -), got ${JSON.stringify(adminChain)}`);
  const firewalldZone = optionalString(conf, 'firewalldZone') || 'trusted';
  const policy = optionalString(conf, 'ingressPolicy') || 'open';
  if (!(INGRESS_POLICIES as readonly string[]).includes(policy)) {
    throw invalidConfig(`firewall: unknown ingressPolicy ${JSON.stringify(policy)} (one of "open", "same-bridge", "isolated")`);
  }
  const stateDir = optionalString(conf, 'stateDir') || DEFAULT_STATE_DIR;
  if (!path.isAbsolute(stateDir) || path.normalize(stateDir) !== stateDir || /[\0\n]/.test(stateDir)) {
    throw invalidConfig(`firewall: stateDir must be an absolute, normalized path, got ${JSON.stringify(stateDir)}`);
  }
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
