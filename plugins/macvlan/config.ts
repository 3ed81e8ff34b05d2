// Pure parsing of the macvlan configuration: the reference plugin's fields
// unchanged (master, mode, mtu, mac, linkInContainer, bcqueuelen, ipam, dns),
// plus Docker's trunk mode (`vlan`: use the 802.1q sub-interface
// <master>.<vlan> as the parent) and `dataDir` (where trunk-mode records
// live). Bad values throw CniError code 7 naming the field and the value.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import { parseConfigDns } from '../../lib/cni/dns';
import { pickContainerMac } from '../../lib/cni/mac';
import type { Dns, NetConf } from '../../lib/cni/types';
import { GW_PRIORITY_ARG, gwPriorityOf } from '../../lib/routes/priority';
import { parseStateDir } from '../../lib/util/paths';
import { show } from '../../lib/util/show';
import { isValidIfname } from '../../lib/util/ifname';

export type MacvlanMode = 'bridge' | 'private' | 'vepa' | 'passthru';
export const MACVLAN_MODES: readonly MacvlanMode[] = ['bridge', 'private', 'vepa', 'passthru'];

export interface MacvlanConfig {
  readonly cniVersion: string;
  readonly name: string;
  /** undefined: the interface of the default route (host, or container with linkInContainer). */
  readonly master?: string;
  readonly mode: MacvlanMode;
  /** 0: the master's MTU. */
  readonly mtu: number;
  /** config mac < CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac. */
  readonly mac?: string;
  readonly linkInContainer: boolean;
  /** undefined: the kernel default. */
  readonly bcqueuelen?: number;
  /** Empty: no IPAM, the interface is L2 only and up. */
  readonly ipamType: string;
  readonly dns?: Dns;
  /** Trunk mode: 802.1q id 1-4094; 0 = off (the master itself is the parent). */
  readonly vlan: number;
  /** Trunk-mode records: which sub-interfaces we created and who uses them. */
  readonly dataDir: string;
  /** The attachment's gateway priority (Docker's --gw-priority): the metric of its routes, lib/routes/priority.ts. */
  readonly gwPriority: number;
}

export const DEFAULT_DATA_DIR = '/run/cni/macvlan';
/** CNI_ARGS macvlan reads: MAC, IP for host-local (in-process), the gateway priority. */
export const MACVLAN_ARGS: readonly string[] = ['MAC', 'IP', GW_PRIORITY_ARG];

function bad(msg: string, details?: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, msg, details);
}

function isSet(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function optionalString(conf: Record<string, unknown>, key: string): string | undefined {
  const v = conf[key];
  if (!isSet(v) || v === '') return undefined;
  if (typeof v !== 'string') throw bad(`macvlan: "${key}" must be a string, got ${show(v)}`);
  return v;
}

function int(v: unknown, key: string, min: number, max: number): number | undefined {
  if (!isSet(v)) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw bad(`macvlan: "${key}" must be an integer from ${min} to ${max}, got ${show(v)}`);
  }
  return v;
}

function parseMode(v: unknown): MacvlanMode {
  if (!isSet(v) || v === '') return 'bridge';
  if (typeof v !== 'string' || !(MACVLAN_MODES as readonly string[]).includes(v)) {
    throw bad(`macvlan: unknown mode ${show(v)}`, `"mode" must be one of ${MACVLAN_MODES.join(', ')}`);
  }
  return v as MacvlanMode;
}

function parseBool(v: unknown, key: string): boolean {
  if (!isSet(v)) return false;
  if (typeof v !== 'boolean') throw bad(`macvlan: "${key}" must be true or false, got ${show(v)}`);
  return v;
}

export function parseMacvlanConfig(conf: NetConf, cniArgs: Readonly<Record<string, string>> = {}): MacvlanConfig {
  const master = optionalString(conf, 'master');
  if (master !== undefined && !isValidIfname(master)) throw bad(`macvlan: "master" ${show(master)} is not a valid interface name`);
  const vlanRaw = conf.vlan;
  if (isSet(vlanRaw) && (typeof vlanRaw !== 'number' || !Number.isInteger(vlanRaw) || vlanRaw < 1 || vlanRaw > 4094)) {
    throw bad(`macvlan: "vlan" must be an 802.1q id from 1 to 4094, got ${show(vlanRaw)}`);
  }
  const vlan = (vlanRaw as number | undefined) ?? 0;
  const linkInContainer = parseBool(conf.linkInContainer, 'linkInContainer');
  if (vlan && linkInContainer) {
    throw bad('macvlan: "vlan" cannot be combined with "linkInContainer"', 'trunk mode creates the 802.1q sub-interface on the host');
  }
  const ipamType = conf.ipam?.type;
  if (isSet(ipamType) && typeof ipamType !== 'string') throw bad(`macvlan: "ipam.type" must be a string, got ${show(ipamType)}`);
  const dns = parseConfigDns(conf.dns, 'macvlan');
  const dataDir = parseStateDir(isSet(conf.dataDir) && conf.dataDir !== '' ? conf.dataDir : DEFAULT_DATA_DIR, { plugin: 'macvlan', field: 'dataDir' });
  const bcqueuelen = int(conf.bcqueuelen, 'bcqueuelen', 0, 0xffffffff);
  return {
    cniVersion: conf.cniVersion,
    name: conf.name,
    master,
    mode: parseMode(conf.mode),
    mtu: int(conf.mtu, 'mtu', 0, 0x7fffffff) ?? 0,
    mac: pickContainerMac(conf, cniArgs, 'macvlan', conf.mac),
    linkInContainer,
    bcqueuelen: bcqueuelen || undefined,
    ipamType: (ipamType as string | undefined) ?? '',
    dns,
    vlan,
    dataDir,
    gwPriority: gwPriorityOf(conf, cniArgs, 'macvlan'),
  };
}
