// host-local configuration: parse and validate, pure. Accepts the reference
// plugin's config unchanged (reference-plugins.md §11.1): `ranges` (range sets),
// the legacy top-level subnet/rangeStart/rangeEnd/gateway (prepended as its own
// set), runtimeConfig.ipRanges (prepended before that), routes, dataDir,
// resolvConf, and requested IPs from CNI_ARGS IP, args.cni.ips and
// runtimeConfig.ips. Every mistake is a CniError with code 7.

import { argsCniIps } from '../../lib/cni/args';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { goFields } from '../../lib/cni/go-json';
import type { Dns, NetConf, Route } from '../../lib/cni/types';
import { versionAtLeast } from '../../lib/cni/version';
import { parseReadFile, parseStateDir } from '../../lib/util/paths';
import { Addr, Family, formatAddr, lastOf, networkOf, parseAddr, parseAddrMaybeCidr, parseCidr } from './addr';
import { show } from '../../lib/util/show';
import { isObject } from '../../lib/util/is-object';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

/** One pool: allocatable addresses are [start, end] minus network, IPv4 broadcast and gateway. */
export interface Range {
  family: Family;
  network: bigint;
  prefix: number;
  last: bigint; // last address of the subnet (the IPv4 broadcast)
  start: bigint;
  end: bigint;
  gateway: bigint;
}

/** One address per set; the ranges of a set are disjoint and of one family. */
export type RangeSet = readonly Range[];

export interface HostLocalConfig {
  name: string;
  cniVersion: string;
  dataDir: string;
  resolvConf?: string;
  routes: Route[];
  sets: readonly RangeSet[];
  /** Requested addresses, deduplicated, in the order CNI_ARGS, args.cni.ips, runtimeConfig.ips (the reference appends all three). */
  requested: readonly Addr[];
}

const invalid = (msg: string, details?: string) => new CniError(ErrorCode.InvalidConfig, msg, details);

export function rangeString(r: Range): string {
  return `${formatAddr({ family: r.family, value: r.start })}-${formatAddr({ family: r.family, value: r.end })}`;
}

export function setString(set: RangeSet): string {
  return set.map(rangeString).join(',');
}

function optionalAddr(v: unknown, field: string, family: Family, where: string): bigint | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const a = typeof v === 'string' ? parseAddr(v) : undefined;
  if (!a) throw invalid(`${where}: ${field} ${show(v)} is not an IP address`);
  if (a.family !== family) throw invalid(`${where}: ${field} ${v} is not an IPv${family} address like the subnet`);
  return a.value;
}

function parseRange(given: unknown, where: string): Range {
  if (!isObject(given)) throw invalid(`${where}: a range must be an object with "subnet"`, `got ${show(given)}`);
  // Go-style keys too: containerd's go-cni sends runtimeConfig.ipRanges as {"Subnet":..,"RangeStart":..} (go-json.ts).
  const raw = goFields(given, ['subnet', 'rangeStart', 'rangeEnd', 'gateway']);
  const subnetText = raw.subnet;
  const cidr = typeof subnetText === 'string' ? parseCidr(subnetText) : undefined;
  if (!cidr) throw invalid(`${where}: subnet ${show(subnetText)} is not a CIDR like "10.1.0.0/24"`);
  const family = cidr.addr.family;
  const bits = family === 4 ? 32 : 128;
  // Two addresses at least: the network address is never handed out.
  if (cidr.prefix > bits - 2) throw invalid(`${where}: network ${subnetText} is too small to allocate from (at most /${bits - 2})`);
  const network = networkOf(cidr);
  if (network !== cidr.addr.value) {
    throw invalid(`${where}: subnet ${subnetText} has host bits set; for a /${cidr.prefix} the network address is ${formatAddr({ family, value: network })}`);
  }
  const last = lastOf(cidr);
  const inSubnet = (v: bigint) => v >= network && v <= last;
  const gateway = optionalAddr(raw.gateway, 'gateway', family, where) ?? network + 1n;
  const start = optionalAddr(raw.rangeStart, 'rangeStart', family, where) ?? network + 1n;
  // Default end: the last address of the prefix, minus the IPv4 broadcast (the reference does the same).
  const end = optionalAddr(raw.rangeEnd, 'rangeEnd', family, where) ?? (family === 4 ? last - 1n : last);
  if (!inSubnet(start)) throw invalid(`${where}: rangeStart ${raw.rangeStart} is not in network ${subnetText}`);
  if (!inSubnet(end)) throw invalid(`${where}: rangeEnd ${raw.rangeEnd} is not in network ${subnetText}`);
  if (start > end) throw invalid(`${where}: rangeStart ${raw.rangeStart ?? ''} is after rangeEnd ${raw.rangeEnd ?? ''}`.replace(/ +/g, ' '));
  return { family, network, prefix: cidr.prefix, last, start, end, gateway };
}

const overlaps = (a: Range, b: Range) => a.family === b.family && a.start <= b.end && b.start <= a.end;

function parseRangeSet(raw: unknown, index: number): Range[] {
  const where = `invalid range set ${index}`;
  if (!Array.isArray(raw)) throw invalid(`${where}: a range set must be a list of ranges`, `got ${show(raw)}`);
  if (raw.length === 0) throw invalid(`${where}: empty range set`);
  const set = raw.map((r) => parseRange(r, where));
  if (set.some((r) => r.family !== set[0].family)) throw invalid(`${where}: mixed address families (a set holds one family; use another set for the other)`);
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      if (overlaps(set[i], set[j])) throw invalid(`${where}: subnets ${rangeString(set[i])} and ${rangeString(set[j])} overlap`);
    }
  }
  return set;
}

function parseRoutes(raw: unknown): Route[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('ipam.routes must be a list of {"dst", "gw"}');
  return raw.map((r, n) => {
    if (!isObject(r) || typeof r.dst !== 'string' || !parseCidr(r.dst)) throw invalid(`ipam.routes[${n}]: dst must be a CIDR`, `got ${show(r)}`);
    const route: Route = { dst: r.dst };
    if (r.gw !== undefined && r.gw !== null && r.gw !== '') {
      if (typeof r.gw !== 'string' || !parseAddr(r.gw)) throw invalid(`ipam.routes[${n}]: gw ${show(r.gw)} is not an IP address`);
      route.gw = r.gw;
    }
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      const v = r[k];
      if (v === undefined || v === null) continue;
      // Go's types.Route has ints here: anything else fails to decode there; say which field here.
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalid(`ipam.routes[${n}].${k} must be a whole number, got ${show(v)}`);
      route[k] = v;
    }
    return route;
  });
}

function stringList(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw invalid(`${where} must be a list of strings`, `got ${show(v)}`);
  return v as string[];
}

function parseRequested(conf: NetConf, cniArgs: Readonly<Record<string, string>>): Addr[] {
  const texts: Array<[string, string]> = [];
  if (cniArgs.IP) for (const ip of cniArgs.IP.split(',').filter(Boolean)) texts.push([ip, 'CNI_ARGS IP']);
  for (const ip of argsCniIps(conf) ?? []) texts.push([ip, 'args.cni.ips']);
  const rc = conf.runtimeConfig?.ips;
  if (rc !== undefined && rc !== null) for (const ip of stringList(rc, 'runtimeConfig.ips')) texts.push([ip, 'runtimeConfig.ips']);
  const out: Addr[] = [];
  for (const [text, source] of texts) {
    const a = parseAddrMaybeCidr(text);
    if (!a) throw invalid(`cannot understand requested IP ${show(text)} from ${source}`);
    if (!out.some((b) => b.family === a.family && b.value === a.value)) out.push(a);
  }
  return out;
}

/** Parse the request configuration (the whole stdin object; host-local reads `ipam`, `runtimeConfig` and `args`). */
export function parseHostLocalConfig(conf: NetConf, cniArgs: Readonly<Record<string, string>> = {}): HostLocalConfig {
  const ipam = conf.ipam as Record<string, unknown> | undefined;
  if (!isObject(ipam)) throw invalid('IPAM config missing "ipam" key');
  const rawSets: unknown[] = [];
  const ipRanges = conf.runtimeConfig?.ipRanges;
  if (ipRanges !== undefined && ipRanges !== null) {
    if (!Array.isArray(ipRanges)) throw invalid('runtimeConfig.ipRanges must be a list of range sets');
    rawSets.push(...ipRanges);
  }
  if (typeof ipam.subnet === 'string' && ipam.subnet !== '') {
    rawSets.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  } else if (ipam.subnet !== undefined && ipam.subnet !== null && ipam.subnet !== '') {
    throw invalid(`ipam.subnet ${show(ipam.subnet)} is not a CIDR string`);
  }
  if (ipam.ranges !== undefined && ipam.ranges !== null) {
    if (!Array.isArray(ipam.ranges)) throw invalid('ipam.ranges must be a list of range sets (a list of lists of ranges)');
    rawSets.push(...ipam.ranges);
  }
  if (rawSets.length === 0) throw invalid('no IP ranges specified (set ipam.ranges or ipam.subnet)');
  const sets = rawSets.map(parseRangeSet);

  if (!versionAtLeast(conf.cniVersion, '0.3.0')) {
    const v4 = sets.filter((s) => s[0].family === 4).length;
    if (v4 > 1 || sets.length - v4 > 1) throw invalid(`CNI version ${conf.cniVersion} does not support more than 1 address per family`);
  }
  for (let i = 0; i < sets.length; i++) {
    for (let j = i + 1; j < sets.length; j++) {
      if (sets[i].some((a) => sets[j].some((b) => overlaps(a, b)))) {
        throw invalid(`range set ${i} overlaps with ${j}`, `${setString(sets[i])} and ${setString(sets[j])}`);
      }
    }
  }

  const given = (v: unknown) => v !== undefined && v !== null && v !== '';
  const dataDir = parseStateDir(given(ipam.dataDir) ? ipam.dataDir : DEFAULT_DATA_DIR, { plugin: 'host-local', field: 'ipam.dataDir' });
  const resolvConf = given(ipam.resolvConf) ? parseReadFile(ipam.resolvConf, { plugin: 'host-local', field: 'ipam.resolvConf' }) : undefined;

  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    dataDir,
    resolvConf,
    routes: parseRoutes(ipam.routes),
    sets,
    requested: parseRequested(conf, cniArgs),
  };
}

/** Whether an address may ever be handed out from this range. */
export function isAllocatable(r: Range, a: Addr): boolean {
  if (a.family !== r.family || a.value < r.start || a.value > r.end) return false;
  if (a.value === r.network || a.value === r.gateway) return false;
  return !(r.family === 4 && a.value === r.last);
}

export function rangeFor(set: RangeSet, a: Addr): Range | undefined {
  return set.find((r) => r.family === a.family && a.value >= r.start && a.value <= r.end);
}

/**
 * Map each requested address to its range set (at most one per set). An
 * address outside every set, a second address for one set, or one that can
 * never be handed out (network, IPv4 broadcast, gateway) is a config error.
 */
export function assignRequested(conf: HostLocalConfig): Array<Addr | undefined> {
  const bySet: Array<Addr | undefined> = conf.sets.map(() => undefined);
  for (const a of conf.requested) {
    const i = conf.sets.findIndex((s) => rangeFor(s, a));
    const text = formatAddr(a);
    if (i < 0) throw invalid(`requested IP ${text} is not in any range set`, conf.sets.map((s, n) => `${n}: ${setString(s)}`).join('; '));
    const r = rangeFor(conf.sets[i], a) as Range;
    if (a.value === r.gateway) throw invalid(`requested IP ${text} is the gateway of range set ${i} (${setString(conf.sets[i])})`);
    if (!isAllocatable(r, a)) throw invalid(`requested IP ${text} is the network or broadcast address of range set ${i} (${setString(conf.sets[i])})`);
    if (bySet[i]) throw invalid(`requested IPs ${formatAddr(bySet[i] as Addr)} and ${text} are both in range set ${i}; one address per set`);
    bySet[i] = a;
  }
  return bySet;
}

/** resolv.conf text → result DNS (nameserver, domain, search, options), like the reference. */
export function parseResolvConf(text: string): Dns {
  const dns: Dns = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line[0] === '#' || line[0] === ';') continue;
    const fields = line.split(/\s+/);
    if (fields.length < 2) continue;
    switch (fields[0]) {
      case 'nameserver': (dns.nameservers ??= []).push(fields[1]); break;
      case 'domain': dns.domain = fields[1]; break;
      case 'search': (dns.search ??= []).push(...fields.slice(1)); break;
      case 'options': (dns.options ??= []).push(...fields.slice(1)); break;
    }
  }
  return dns;
}
