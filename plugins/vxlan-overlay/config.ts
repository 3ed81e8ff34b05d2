// The vxlan-overlay network config, shared by the CNI plugin and the agent
// (the agent can read the same conflist). Pure: parse + default, throw a
// CniError code 7 that names the bad field.

import { CniError, ErrorCode, type ErrorCodeValue } from '../../lib/cni/errors';
import { parseConfigDns } from '../../lib/cni/dns';
import { pickContainerMac } from '../../lib/cni/mac';
import type { Dns, NetConf } from '../../lib/cni/types';
import { GW_PRIORITY_ARG, gwPriorityOf } from '../../lib/routes/priority';
import { parseNameResolution, type NameResolutionConfig } from '../../lib/dns/config';
import { parseStateDir } from '../../lib/util/paths';
import { DEFAULT_RUN_DIR } from './readiness';
import { parseIpv4Cidr, parseIpv6Cidr } from './store/subnets';
import { show } from '../../lib/util/show';
import { isObject } from '../../lib/util/is-object';
import { isValidIfname } from '../../lib/util/ifname';

export const DEFAULT_STORE_DIR = '/var/lib/cni/vxlan-overlay/store';
export const DEFAULT_IPAM_DATA_DIR = '/var/lib/cni/networks';

export type OverlayStoreConfig = { type: 'file'; dir: string } | { type: 'etcd'; endpoints: string[] };

export interface OverlayConfig {
  name: string;
  cniVersion: string;
  /** Cluster CIDR; optional for the plugin (the agent's state has it), required by the agent. */
  cidr?: string;
  subnetLength?: number;
  /** Dual-stack: the IPv6 cluster CIDR next to `cidr` (like flannel's IPv6Network); optional for the plugin too. */
  ipv6Cidr?: string;
  ipv6SubnetLength?: number;
  vni?: number;
  port?: number;
  /** 0: underlay MTU minus the VXLAN overhead. */
  mtu: number;
  bridge?: string;
  vxlanDevice?: string;
  ipMasq: boolean;
  /** Also a default route via the bridge (so masquerade has traffic to act on). */
  isDefaultGateway: boolean;
  runDir: string;
  ipamDataDir: string;
  store: OverlayStoreConfig;
  leaseTTL?: number;
  underlayInterface?: string;
  /** Our extension, as the bridge's: no forwarding between this host's overlay bridge and other isolated bridges (docs/dns.md). */
  isolation: boolean;
  /** Our extension, as the bridge's: container names served at the bridge gateway, per host (docs/dns.md). */
  nameResolution?: NameResolutionConfig;
  /** The config's result DNS (checked); undefined when absent or empty. */
  dns?: Dns;
  /** The attachment's gateway priority (Docker's --gw-priority): the metric of its routes, lib/routes/priority.ts. */
  gwPriority: number;
  /** The container veth's MAC (the `mac` capability, args.cni.mac, CNI_ARGS MAC). */
  mac?: string;
  /** Docker's `--internal`: no default route, no masquerade, nothing forwarded between the network (bridge + VXLAN device) and the rest. */
  internal: boolean;
  /** ICC off, as the bridge's: isolated bridge ports, and no forwarding between the network's containers, across hosts too. */
  portIsolation: boolean;
}

/** CNI_ARGS the plugin reads: IP for host-local (in-process), MAC, the gateway priority. */
export const OVERLAY_ARGS: readonly string[] = ['IP', 'MAC', GW_PRIORITY_ARG];

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, `vxlan-overlay: ${msg}`);
}

function nonEmpty(d: Dns | undefined): Dns | undefined {
  return d && Object.keys(d).length ? d : undefined;
}

function optInt(conf: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = conf[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(`"${key}" must be a whole number from ${min} to ${max}, got ${show(v)}`);
  return v;
}

function optString(conf: Record<string, unknown>, key: string): string | undefined {
  const v = conf[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalid(`"${key}" must be a string, got ${show(v)}`);
  return v;
}

function optIfname(conf: Record<string, unknown>, key: string): string | undefined {
  const v = optString(conf, key);
  if (v !== undefined && !isValidIfname(v)) throw invalid(`"${key}" "${v}" is not a valid interface name (1-15 bytes, no "/", ":" or spaces)`);
  return v;
}

/** lib/dns/config.ts names the bridge plugin in its messages: say which plugin refused the config. */
export function asOverlayError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof CniError && e.message.startsWith('bridge: ')) throw new CniError(e.code as ErrorCodeValue, `vxlan-overlay: ${e.message.slice('bridge: '.length)}`);
    throw e;
  }
}

function parseStore(v: unknown): OverlayStoreConfig {
  if (v === undefined || v === null) return { type: 'file', dir: DEFAULT_STORE_DIR };
  if (!isObject(v)) throw invalid('"store" must be an object like {"type": "file", "dir": "..."} or {"type": "etcd", "endpoints": [...]}');
  const s = v as Record<string, unknown>;
  const type = s.type ?? 'file';
  if (type === 'file') {
    return { type: 'file', dir: parseStateDir(s.dir ?? DEFAULT_STORE_DIR, { plugin: 'vxlan-overlay', field: 'store.dir' }) };
  }
  if (type === 'etcd') {
    const eps = s.endpoints;
    if (!Array.isArray(eps) || eps.length === 0 || !eps.every((e) => typeof e === 'string' && /^https?:\/\/\S+$/.test(e))) {
      throw invalid(`"store.endpoints" must be a non-empty list of http(s):// URLs, got ${show(eps)}`);
    }
    return { type: 'etcd', endpoints: eps as string[] };
  }
  throw invalid(`"store.type" must be "file" or "etcd", got ${show(type)}`);
}

/** `cniArgs`: CNI_ARGS as the skel parsed them (none for the agent, which reads the network config alone). */
export function parseOverlayConfig(conf: NetConf | Record<string, unknown>, cniArgs: Readonly<Record<string, string>> = {}): OverlayConfig {
  const c = conf as Record<string, unknown>;
  if (typeof c.name !== 'string' || c.name === '') throw invalid('"name" is required');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(c.name)) throw invalid(`network name "${c.name}" must be letters, digits, "_", "." or "-" (at most 63)`);
  const cidr = optString(c, 'cidr');
  if (cidr !== undefined) {
    try { parseIpv4Cidr(cidr); } catch (e) { throw invalid(`"cidr": ${(e as Error).message}`); }
  }
  let ipv6Cidr = optString(c, 'ipv6Cidr');
  if (ipv6Cidr !== undefined) {
    try { ipv6Cidr = parseIpv6Cidr(ipv6Cidr).text; } catch (e) { throw invalid(`"ipv6Cidr": ${(e as Error).message}`); }
  }
  const ipv6SubnetLength = optInt(c, 'ipv6SubnetLength', 1, 126);
  if (ipv6SubnetLength !== undefined && ipv6Cidr === undefined) throw invalid('"ipv6SubnetLength" needs "ipv6Cidr"');
  const ipMasq = c.ipMasq ?? true;
  if (typeof ipMasq !== 'boolean') throw invalid(`"ipMasq" must be true or false, got ${show(ipMasq)}`);
  const isDefaultGateway = c.isDefaultGateway ?? true;
  if (typeof isDefaultGateway !== 'boolean') throw invalid(`"isDefaultGateway" must be true or false, got ${show(isDefaultGateway)}`);
  const isolation = c.isolation ?? false;
  if (typeof isolation !== 'boolean') throw invalid(`"isolation" must be true or false, got ${show(isolation)}`);
  const internal = c.internal ?? false;
  if (typeof internal !== 'boolean') throw invalid(`"internal" must be true or false, got ${show(internal)}`);
  const portIsolation = c.portIsolation ?? false;
  if (typeof portIsolation !== 'boolean') throw invalid(`"portIsolation" must be true or false, got ${show(portIsolation)}`);
  // The gateway and IPAM the bridge plugin demands for it are always there on an overlay.
  const nameResolution = asOverlayError(() => parseNameResolution(c.nameResolution, c.name as string));
  const runDir = parseStateDir(optString(c, 'runDir') ?? DEFAULT_RUN_DIR, { plugin: 'vxlan-overlay', field: 'runDir' });
  const ipam = c.ipam as Record<string, unknown> | undefined;
  if (ipam !== undefined && !isObject(ipam)) throw invalid('"ipam" must be an object');
  if (ipam?.type !== undefined && ipam.type !== '' && ipam.type !== 'host-local') {
    throw invalid(`"ipam.type" "${String(ipam.type)}" is not supported: addresses come from the host's overlay subnet through built-in host-local (omit ipam.type)`);
  }
  const ipamDataDir = parseStateDir(ipam?.dataDir ?? DEFAULT_IPAM_DATA_DIR, { plugin: 'vxlan-overlay', field: 'ipam.dataDir' });
  return {
    name: c.name,
    cniVersion: typeof c.cniVersion === 'string' ? c.cniVersion : '1.1.0',
    cidr,
    subnetLength: optInt(c, 'subnetLength', 1, 30),
    ipv6Cidr,
    ipv6SubnetLength,
    vni: optInt(c, 'vni', 1, 0xffffff),
    port: optInt(c, 'port', 1, 65535),
    mtu: optInt(c, 'mtu', 0, 65535) ?? 0,
    bridge: optIfname(c, 'bridge'),
    vxlanDevice: optIfname(c, 'vxlanDevice'),
    ipMasq,
    isDefaultGateway,
    runDir,
    ipamDataDir,
    store: parseStore(c.store),
    leaseTTL: optInt(c, 'leaseTTL', 1, 3600),
    underlayInterface: optIfname(c, 'underlayInterface'),
    isolation,
    nameResolution,
    dns: nonEmpty(parseConfigDns(c.dns, 'vxlan-overlay')),
    gwPriority: gwPriorityOf(conf as NetConf, cniArgs, 'vxlan-overlay'),
    mac: pickContainerMac(conf as NetConf, cniArgs, 'vxlan-overlay'),
    internal,
    portIsolation,
  };
}

/** The plugin entry of a .conf or .conflist (the first of type "vxlan-overlay"), for the agent's --conf. */
export function overlayEntryOf(file: Record<string, unknown>): Record<string, unknown> {
  if (Array.isArray(file.plugins)) {
    const entry = (file.plugins as Array<Record<string, unknown>>).find((p) => p && p.type === 'vxlan-overlay');
    if (!entry) throw invalid('the conflist has no plugin of type "vxlan-overlay"');
    return { cniVersion: file.cniVersion, name: file.name, ...entry };
  }
  if (file.type !== 'vxlan-overlay') throw invalid(`the config is of type ${show(file.type)}, not "vxlan-overlay"`);
  return file;
}
