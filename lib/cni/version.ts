// CNI versions and result conversion (CONFORMANCE §3). In memory a result is
// always the 1.1 shape (lib/cni/types Result); we convert once on input
// (prevResult, delegated IPAM results) and once at print time.
//
// Stricter than the Go library on purpose: at print time we emit only the
// fields the target version defines. libcni leaks 1.1 fields into "1.0.0"
// output and route mtu/table/scope into "0.4.0" output (CONFORMANCE §3.5,
// §9.8); we drop them, so the output validates against that version's schema.

import { isIP } from '../ip';
import { CniError, ErrorCode } from './errors';
import type { Dns, Interface, IpConfig, Result, Route } from './types';
import { show } from '../util/show';
import { isObject } from '../util/is-object';

export const SUPPORTED_VERSIONS: readonly string[] = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
export const LATEST_VERSION = '1.1.0';
/** What a config without cniVersion means (Go create.DecodeVersion). */
export const DEFAULT_CONFIG_VERSION = '0.1.0';

/** The result types: 0.1.0/0.2.0 (ip4/ip6), 0.3.0–0.4.0 (ips with version), 1.x. */
export type ResultFamily = '0.2' | '0.4' | '1';

const FAMILY_MEMBERS: Record<ResultFamily, readonly string[]> = {
  '0.2': ['0.1.0', '0.2.0'],
  '0.4': ['0.3.0', '0.3.1', '0.4.0'],
  '1': ['1.0.0', '1.1.0'],
};

export function resultFamily(version: string): ResultFamily | undefined {
  for (const [fam, members] of Object.entries(FAMILY_MEMBERS)) {
    if (members.includes(version)) return fam as ResultFamily;
  }
  return undefined;
}

/** "1.2.3" → [1,2,3]; anything else (e.g. "1.0", "v1.0.0") → undefined. */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Numeric comparison of two well-formed versions; a malformed one sorts lowest. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a) ?? [-1, -1, -1];
  const pb = parseVersion(b) ?? [-1, -1, -1];
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
}

export function versionAtLeast(v: string, min: string): boolean {
  return parseVersion(v) !== undefined && compareVersions(v, min) >= 0;
}

// ---------------------------------------------------------------------------
// Output: 1.x in memory → the wire shape of one version.

/** The JSON a plugin prints for `result` when the config says `cniVersion`. Throws for an unknown version or a result 0.2.0 cannot express. */
export function convertResult(result: Result, cniVersion: string): Record<string, unknown> {
  switch (resultFamily(cniVersion)) {
    case '1':
      return cniVersion === '1.0.0' ? to100(result) : to110(result);
    case '0.4':
      return to04x(result, cniVersion);
    case '0.2':
      return to02x(result, cniVersion);
    default:
      throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI versions', `cannot convert a result to unknown version "${cniVersion}"`);
  }
}

export function formatResult(result: Result, cniVersion: string): string {
  return `${JSON.stringify(convertResult(result, cniVersion), null, 2)}\n`;
}

function withoutUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function outDns(dns: Dns | undefined): Dns | undefined {
  if (!dns) return undefined;
  const out = withoutUndefined({
    nameservers: dns.nameservers ? [...dns.nameservers] : undefined,
    domain: dns.domain,
    search: dns.search ? [...dns.search] : undefined,
    options: dns.options ? [...dns.options] : undefined,
  });
  return Object.keys(out).length ? out : undefined;
}

function nonEmpty<T>(list: T[] | undefined): T[] | undefined {
  return list && list.length ? list : undefined;
}

function to110(r: Result): Record<string, unknown> {
  return withoutUndefined({
    cniVersion: '1.1.0',
    interfaces: nonEmpty(r.interfaces?.map((i) => withoutUndefined({ name: i.name, mac: i.mac, mtu: i.mtu, sandbox: i.sandbox, socketPath: i.socketPath, pciID: i.pciID }))),
    ips: nonEmpty(r.ips?.map((ip) => withoutUndefined({ address: ip.address, gateway: ip.gateway, interface: ip.interface }))),
    routes: nonEmpty(r.routes?.map((rt) => withoutUndefined({ dst: rt.dst, gw: rt.gw, mtu: rt.mtu, advmss: rt.advmss, priority: rt.priority, table: rt.table, scope: rt.scope }))),
    dns: outDns(r.dns),
  });
}

/** 1.0.0 lacks the 1.1 additions: interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope. */
function to100(r: Result): Record<string, unknown> {
  return withoutUndefined({
    cniVersion: '1.0.0',
    interfaces: nonEmpty(r.interfaces?.map(baseInterface)),
    ips: nonEmpty(r.ips?.map((ip) => withoutUndefined({ address: ip.address, gateway: ip.gateway, interface: ip.interface }))),
    routes: nonEmpty(r.routes?.map(baseRoute)),
    dns: outDns(r.dns),
  });
}

function to04x(r: Result, cniVersion: string): Record<string, unknown> {
  return withoutUndefined({
    cniVersion,
    interfaces: nonEmpty(r.interfaces?.map(baseInterface)),
    ips: nonEmpty(r.ips?.map((ip) => withoutUndefined({ version: ipFamilyOfCidr(ip.address), address: ip.address, gateway: ip.gateway, interface: ip.interface }))),
    routes: nonEmpty(r.routes?.map(baseRoute)),
    dns: outDns(r.dns),
  });
}

/** 0.1.0/0.2.0: the first IPv4 and first IPv6 address only; routes go under the family of their dst. */
function to02x(r: Result, cniVersion: string): Record<string, unknown> {
  type Ip02 = { ip: string; gateway?: string; routes?: { dst: string; gw?: string }[] };
  let ip4: Ip02 | undefined;
  let ip6: Ip02 | undefined;
  for (const ip of r.ips ?? []) {
    const fam = ipFamilyOfCidr(ip.address);
    if (fam === '4' && !ip4) ip4 = withoutUndefined({ ip: ip.address, gateway: ip.gateway });
    if (fam === '6' && !ip6) ip6 = withoutUndefined({ ip: ip.address, gateway: ip.gateway });
  }
  if (!ip4 && !ip6) {
    throw new CniError(ErrorCode.IncompatibleVersion, 'cannot convert: no valid IP addresses', `a ${cniVersion} result needs at least one IP address`);
  }
  for (const rt of r.routes ?? []) {
    const target = ipFamilyOfCidr(rt.dst) === '4' ? ip4 : ip6;
    if (target) (target.routes ??= []).push(baseRoute(rt));
  }
  return withoutUndefined({ cniVersion, ip4, ip6, dns: outDns(r.dns) });
}

function baseInterface(i: Interface): Interface {
  return withoutUndefined({ name: i.name, mac: i.mac, sandbox: i.sandbox });
}

function baseRoute(rt: Route): { dst: string; gw?: string } {
  return withoutUndefined({ dst: rt.dst, gw: rt.gw });
}

/** "4" or "6" from "10.1.0.5/24" or "fd00::5/64" (or a bare address). */
export function ipFamilyOfCidr(cidr: string): '4' | '6' {
  return isIP(cidr.split('/')[0]) === 6 ? '6' : '4';
}

// ---------------------------------------------------------------------------
// Input: a result of any version → the 1.x shape.

function decodeError(what: string): CniError {
  return new CniError(ErrorCode.DecodingFailure, 'failed to decode result', what);
}

function optString(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw decodeError(`${where}.${key} must be a string, got ${show(v)}`);
  return v;
}

function optUint(o: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw decodeError(`${where}.${key} must be a non-negative integer, got ${show(v)}`);
  return v;
}

function optList(o: Record<string, unknown>, key: string, where: string): unknown[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw decodeError(`${where}.${key} must be a list`);
  return v;
}

function cidr(o: Record<string, unknown>, key: string, where: string): string {
  const v = optString(o, key, where);
  if (v === undefined) throw decodeError(`${where}.${key} is missing`);
  const [addr, prefix, extra] = v.split('/');
  const max = isIP(addr) === 6 ? 128 : 32;
  if (!isIP(addr) || extra !== undefined || prefix === undefined || !/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
    throw decodeError(`${where}.${key} is not a CIDR address: ${show(v)}`);
  }
  return v;
}

function optIp(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = optString(o, key, where);
  if (v !== undefined && !isIP(v)) throw decodeError(`${where}.${key} is not an IP address: ${show(v)}`);
  return v;
}

function parseDns(v: unknown, where: string): Dns | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw decodeError(`${where}.dns must be an object`);
  const strings = (key: string): string[] | undefined => {
    const list = v[key];
    if (list === undefined || list === null) return undefined;
    if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) throw decodeError(`${where}.dns.${key} must be a list of strings`);
    return [...(list as string[])];
  };
  const dns = withoutUndefined({ nameservers: strings('nameservers'), domain: optString(v, 'domain', `${where}.dns`), search: strings('search'), options: strings('options') });
  return Object.keys(dns).length ? dns : undefined;
}

function parseRoute(v: unknown, where: string): Route {
  if (!isObject(v)) throw decodeError(`${where} must be an object`);
  return withoutUndefined({
    dst: cidr(v, 'dst', where),
    gw: optIp(v, 'gw', where),
    mtu: optUint(v, 'mtu', where),
    advmss: optUint(v, 'advmss', where),
    priority: optUint(v, 'priority', where),
    table: optUint(v, 'table', where),
    scope: optUint(v, 'scope', where),
  });
}

// (Module functions, not closures made per parse: the snapshot carries their bytecode.)
function parseInterface(v: unknown, n: number): Interface {
  const where = `result.interfaces[${n}]`;
  if (!isObject(v)) throw decodeError(`${where} must be an object`);
  return withoutUndefined({
    name: optString(v, 'name', where) ?? '',
    mac: optString(v, 'mac', where),
    mtu: optUint(v, 'mtu', where),
    sandbox: optString(v, 'sandbox', where),
    socketPath: optString(v, 'socketPath', where),
    pciID: optString(v, 'pciID', where),
  });
}

function parseIpConfig(v: unknown, n: number): IpConfig {
  const where = `result.ips[${n}]`;
  if (!isObject(v)) throw decodeError(`${where} must be an object`);
  // ips[].version (0.3.x/0.4.0) is dropped: the address says the family.
  return withoutUndefined({ address: cidr(v, 'address', where), gateway: optIp(v, 'gateway', where), interface: optUint(v, 'interface', where) });
}

function parseFamily1or04(o: Record<string, unknown>, cniVersion: string): Result {
  const interfaces = optList(o, 'interfaces', 'result').map(parseInterface);
  const ips = optList(o, 'ips', 'result').map(parseIpConfig);
  const routes = optList(o, 'routes', 'result').map((v, n) => parseRoute(v, `result.routes[${n}]`));
  return withoutUndefined({
    cniVersion,
    interfaces: interfaces.length ? interfaces : undefined,
    ips: ips.length ? ips : undefined,
    routes: routes.length ? routes : undefined,
    dns: parseDns(o.dns, 'result'),
  });
}

function parseFamily02(o: Record<string, unknown>, cniVersion: string): Result {
  const ips: IpConfig[] = [];
  const routes: Route[] = [];
  for (const key of ['ip4', 'ip6']) {
    const v = o[key];
    if (v === undefined || v === null) continue;
    const where = `result.${key}`;
    if (!isObject(v)) throw decodeError(`${where} must be an object`);
    ips.push(withoutUndefined({ address: cidr(v, 'ip', where), gateway: optIp(v, 'gateway', where) }));
    optList(v, 'routes', where).forEach((rt, n) => routes.push(baseRoute(parseRoute(rt, `${where}.routes[${n}]`))));
  }
  return withoutUndefined({
    cniVersion,
    ips: ips.length ? ips : undefined,
    routes: routes.length ? routes : undefined,
    dns: parseDns(o.dns, 'result'),
  });
}

/**
 * Parse a result printed by any supported version (a delegated plugin's
 * stdout, a cached result) into the 1.x shape. A result without cniVersion
 * is taken to be `fallbackVersion` (libcni fixupResultVersion). The returned
 * cniVersion is the one the result said.
 */
export function parseResult(raw: unknown, fallbackVersion: string): Result {
  if (raw === null) raw = {}; // libcni reads stdout "null" as an empty result
  if (!isObject(raw)) throw decodeError('a result must be a JSON object');
  const declared = raw.cniVersion;
  if (declared !== undefined && typeof declared !== 'string') throw decodeError(`result.cniVersion must be a string, got ${show(declared)}`);
  const version = declared || fallbackVersion;
  const fam = resultFamily(version);
  if (!fam) throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI versions', `result version "${version}" is not one of [${SUPPORTED_VERSIONS.join(' ')}]`);
  return fam === '0.2' ? parseFamily02(raw, version) : parseFamily1or04(raw, version);
}

/**
 * prevResult uses the config's schema: it must be of the config version's
 * result family (like the reference ParsePrevResult; it answers 999 there, we
 * say code 1 because it is a version mismatch). Missing cniVersion → config version.
 */
export function parsePrevResult(raw: unknown, confVersion: string): Result {
  const declared = isObject(raw) && typeof raw.cniVersion === 'string' && raw.cniVersion ? raw.cniVersion : confVersion;
  const want = resultFamily(confVersion);
  if (want && resultFamily(declared) !== want) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `result type supports [${FAMILY_MEMBERS[want].join(' ')}] but unmarshalled CNIVersion is "${declared}"`,
      `prevResult has cniVersion "${declared}", the config has "${confVersion}"`,
    );
  }
  if (!isObject(raw)) throw new CniError(ErrorCode.DecodingFailure, 'failed to decode prevResult', 'prevResult must be a JSON object');
  const res = parseResult(raw, confVersion);
  return { ...res, cniVersion: declared };
}

/** Strip what an IPAM (abbreviated) result must not carry: interfaces and ips[].interface. */
export function abbreviateIpamResult(r: Result): Result {
  return withoutUndefined({
    cniVersion: r.cniVersion,
    ips: r.ips?.map((ip) => withoutUndefined({ address: ip.address, gateway: ip.gateway })),
    routes: r.routes,
    dns: r.dns,
  });
}
