// Parse the tuning configuration (pure): every field of the reference tuning
// plugin (reference-plugins.md §9), unchanged. Values given in several
// places follow the reference's precedence: args.cni > runtimeConfig.mac >
// CNI_ARGS MAC > the static config (sysctl maps are merged, args.cni winning).

import * as path from 'path';
import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors';
import type { NetConf, Result } from '../../lib/cni/types';
import { normalizeMac } from '../../lib/util/mac';
import { repeatedKeys } from '../../lib/util/json-keys';
import { parseStateDir } from '../../lib/util/paths';
import { isObject } from '../../lib/util/is-object';

export const DEFAULT_DATA_DIR = '/run/cni/tuning';
/** The reference's allowlist: when it exists, every sysctl key must match one of its lines (regular expressions). */
export const ALLOWLIST_FILE = '/etc/cni/tuning/allowlist.conf';

export interface SysctlSetting {
  /** As written in the config, for messages and the allowlist: "net.ipv4.conf.IFNAME.arp_filter". */
  key: string;
  /** Under /proc/sys, IFNAME replaced: "net/ipv4/conf/eth0/arp_filter". */
  path: string;
  value: string;
}

/** Interface attributes to set; undefined = leave alone. */
export interface LinkSettings {
  mac?: string;
  mtu?: number;
  /** Only true acts (reference: false does not turn promiscuous mode off). */
  promisc?: true;
  allmulti?: boolean;
  txQLen?: number;
}

export interface TuningConfig {
  cniVersion: string;
  network: string;
  sysctls: readonly SysctlSetting[];
  link: LinkSettings;
  /** Where the interface's original attributes are kept until DEL: <dataDir>/<containerID>_<ifname>.json. */
  dataDir: string;
  prevResult?: Result;
}

/**
 * A sysctl key → its path under /proc/sys. Dotted ("net.ipv4.ip_forward") or
 * slashed ("net/ipv4/conf/eth0.100/rp_filter": dots kept, for interface names
 * with dots); the first "IFNAME" becomes the container's interface name. Only
 * keys under net/, no "." or ".." components: nothing outside /proc/sys/net.
 */
export function sysctlKeyPath(key: string, ifname: string): string {
  const parts = (key.includes('/') ? key : key.replace(/\./g, '/')).split('/');
  if (parts.length < 2 || parts[0] !== 'net' || parts.some((p) => p === '' || p === '.' || p === '..' || /[\0\s]/.test(p))) {
    throw invalidConfig(`tuning: sysctl ${JSON.stringify(key)} is not allowed: only keys under net. (net.ipv4..., net.ipv6..., net.core...) can be set`);
  }
  const joined = parts.join('/').replace('IFNAME', ifname);
  if (path.posix.normalize(joined) !== joined || joined.split('/').includes('..')) throw invalidConfig(`tuning: sysctl ${JSON.stringify(key)} does not name a file under /proc/sys/net`);
  return joined;
}

function sysctlValue(key: string, v: unknown): string {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw invalidConfig(`tuning: the value of sysctl ${JSON.stringify(key)} must be a string, got ${JSON.stringify(v)}`);
  if (/[\0\n\r]/.test(v)) throw invalidConfig(`tuning: the value of sysctl ${JSON.stringify(key)} must be one line`);
  return v;
}

function sysctlMap(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw invalidConfig(`tuning: ${where} must be an object of "key": "value" strings, got ${JSON.stringify(v)}`);
  return v;
}

function mac(v: unknown, where: string): string {
  const m = typeof v === 'string' ? normalizeMac(v) : undefined;
  if (!m) throw invalidConfig(`tuning: ${where} is not a MAC address: ${JSON.stringify(v)}`);
  if (parseInt(m.slice(0, 2), 16) & 1) throw invalidConfig(`tuning: ${where} "${v}" is a multicast address; an interface needs a unicast MAC`);
  return m;
}

function int(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalidConfig(`tuning: ${where} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return v;
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== 'boolean') throw invalidConfig(`tuning: ${where} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

const present = (v: unknown): boolean => v !== undefined && v !== null;

/** dataDir alone (DEL, GC and STATUS need no more): a "state" path (lib/util/paths.ts, docs/security.md), like every plugin's dataDir. */
export function parseTuningDataDir(conf: NetConf): string {
  return parseStateDir(conf.dataDir === undefined || conf.dataDir === '' ? DEFAULT_DATA_DIR : conf.dataDir, { plugin: 'tuning', field: 'dataDir' });
}

/** The highest-precedence source that sets `key`: args.cni, then the static config. */
function pick(conf: NetConf, argsCni: Record<string, unknown>, key: string): { value: unknown; where: string } | undefined {
  if (present(argsCni[key])) return { value: argsCni[key], where: `args.cni.${key}` };
  if (present(conf[key])) return { value: conf[key], where: `"${key}"` };
  return undefined;
}

function pickMac(conf: NetConf, argsCni: Record<string, unknown>, cniArgs: Readonly<Record<string, string>>): string | undefined {
  if (present(argsCni.mac) && argsCni.mac !== '') return mac(argsCni.mac, 'args.cni.mac');
  const rc = conf.runtimeConfig?.mac;
  if (present(rc) && rc !== '') return mac(rc, 'runtimeConfig.mac');
  if (cniArgs.MAC) return mac(cniArgs.MAC, 'CNI_ARGS MAC');
  if (present(conf.mac) && conf.mac !== '') return mac(conf.mac, '"mac"');
  return undefined;
}

export interface TuningParseOptions {
  /** CNI_IFNAME (replaces IFNAME in sysctl keys); required when the config has sysctls. */
  ifname?: string;
  /** CNI_ARGS, parsed (MAC). */
  cniArgs?: Readonly<Record<string, string>>;
  /** stdin as received: a sysctl key written twice is refused, like the reference. */
  rawConfig?: string;
}

export function parseTuningConfig(conf: NetConf, o: TuningParseOptions = {}): TuningConfig {
  const argsCni = isObject(conf.args?.cni) ? conf.args!.cni as Record<string, unknown> : {};
  if (o.rawConfig !== undefined) {
    const twice = repeatedKeys(o.rawConfig, ['sysctl']);
    if (twice.length) throw invalidConfig(`tuning: sysctl ${JSON.stringify(twice[0])} is given twice (duplicated sysctl keys are not allowed)`);
  }
  const merged = { ...sysctlMap(conf.sysctl, '"sysctl"'), ...sysctlMap(argsCni.sysctl, 'args.cni.sysctl') };
  const sysctls: SysctlSetting[] = [];
  const byPath = new Map<string, string>();
  for (const [key, raw] of Object.entries(merged)) {
    if (!o.ifname) throw new CniError(ErrorCode.InvalidEnvironment, 'tuning: CNI_IFNAME is required');
    const p = sysctlKeyPath(key, o.ifname);
    const other = byPath.get(p);
    if (other !== undefined) throw invalidConfig(`tuning: sysctl ${JSON.stringify(key)} and ${JSON.stringify(other)} name the same file /proc/sys/${p}`);
    byPath.set(p, key);
    sysctls.push({ key, path: p, value: sysctlValue(key, raw) });
  }

  const link: LinkSettings = {};
  const m = pickMac(conf, argsCni, o.cniArgs ?? {});
  if (m) link.mac = m;
  const mtu = pick(conf, argsCni, 'mtu');
  // 0 = leave it, as in the reference.
  if (mtu && mtu.value !== 0) link.mtu = int(mtu.value, mtu.where, 68, 65535);
  const promisc = pick(conf, argsCni, 'promisc');
  if (promisc && bool(promisc.value, promisc.where)) link.promisc = true;
  const allmulti = pick(conf, argsCni, 'allmulti');
  if (allmulti) link.allmulti = bool(allmulti.value, allmulti.where);
  const txQLen = pick(conf, argsCni, 'txQLen');
  if (txQLen) link.txQLen = int(txQLen.value, txQLen.where, 0, 0xffffffff);

  const dataDir = parseTuningDataDir(conf);
  return { cniVersion: conf.cniVersion, network: conf.name, sysctls, link, dataDir, prevResult: conf.prevResult };
}

/** Whether ADD changes interface attributes (then it keeps the originals for DEL). */
export function changesLink(l: LinkSettings): boolean {
  return l.mac !== undefined || l.mtu !== undefined || l.promisc !== undefined || l.allmulti !== undefined || l.txQLen !== undefined;
}

/**
 * The allowlist's lines (regular expressions, unanchored like Go's
 * regexp.MatchString) applied to each key as written. No file = no limit.
 */
export function checkAllowlist(sysctls: readonly SysctlSetting[], allowlistText: string | undefined): void {
  if (allowlistText === undefined) return;
  const patterns = allowlistText.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    try {
      return new RegExp(l);
    } catch (err) {
      throw invalidConfig(`tuning: ${ALLOWLIST_FILE} has an invalid pattern ${JSON.stringify(l)}: ${(err as Error).message}`);
    }
  });
  for (const s of sysctls) {
    if (!patterns.some((p) => p.test(s.key))) {
      throw invalidConfig(`tuning: sysctl ${JSON.stringify(s.key)} is not allowed by ${ALLOWLIST_FILE}`, `allowed: ${patterns.map((p) => p.source).join(', ')}`);
    }
  }
}
