// Pure renderers of the per-network DNS service: the dnsmasq configuration,
// one hosts file per attachment, and the result's dns field.

import type { Dns } from '../cni/types';

export interface DnsmasqConfInput {
  network: string;
  /** Gateway addresses on the bridge: the only addresses dnsmasq binds. */
  listen: readonly string[];
  domain: string;
  hostsDir: string;
  pidFile: string;
  /** Explicit upstream servers; empty: read resolvConf. */
  upstream: readonly string[];
  resolvConf: string;
  port?: number;
}

/** The whole configuration; the daemon is started with only --conf-file=<this file>. */
export function renderDnsmasqConf(c: DnsmasqConfInput): string {
  const lines = [
    `# node-cni-plugins bridge: DNS service of network "${c.network}" (generated; rewritten on restart)`,
    `port=${c.port ?? 53}`,
    // Bind exactly the gateway addresses (never a wildcard socket): not an open resolver elsewhere.
    'bind-interfaces',
    ...c.listen.map((a) => `listen-address=${a}`),
    'no-hosts',
    `hostsdir=${c.hostsDir}`,
    `domain=${c.domain}`,
    // Names in our domain are answered here or not at all; bare names never go upstream.
    `local=/${c.domain}/`,
    'expand-hosts',
    'domain-needed',
    'bogus-priv',
    `pid-file=${c.pidFile}`,
  ];
  if (c.upstream.length) lines.push('no-resolv', ...c.upstream.map((s) => `server=${s}`));
  else lines.push(`resolv-file=${c.resolvConf}`);
  return lines.join('\n') + '\n';
}

/** One line per container address: "<address> <name>...". No names: an empty file (the attachment still counts as a member). */
export function renderHostsFile(addresses: readonly string[], names: readonly string[]): string {
  if (names.length === 0) return '';
  return addresses.map((a) => `${a} ${names.join(' ')}\n`).join('');
}

/** The hosts file of one attachment (not a dotfile: dnsmasq skips those, which is what the temp file relies on). */
export function hostsFileName(containerId: string, ifname: string): string {
  return `${containerId}.${ifname}`;
}

/**
 * The result's dns: the gateways first in nameservers and the network's
 * domain first in search, followed by whatever the config's dns (or IPAM's)
 * already had.
 */
export function mergeResultDns(existing: Dns | undefined, nameservers: readonly string[], domain: string): Dns {
  const uniq = (xs: string[]): string[] => [...new Set(xs)];
  const out: Dns = { ...(existing ?? {}) };
  out.nameservers = uniq([...nameservers, ...(existing?.nameservers ?? [])]);
  out.search = uniq([domain, ...(existing?.search ?? [])]);
  return out;
}
