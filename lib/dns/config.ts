// Pure parsing of the container-name DNS option ("nameResolution") and of
// the names a container is known by. Kept apart from the reference bridge
// fields: "dns" is the reference's result-DNS field and keeps its meaning.
//
//   "nameResolution": true
//   "nameResolution": { "domain": "web.internal", "upstream": ["10.0.0.2"],
//                       "resolvConf": "/etc/resolv.conf", "runDir": "/run/node-cni/dnsname" }
//
// Both paths end up in dnsmasq.conf, which dnsmasq (root until it drops to
// nobody) parses line by line: they follow the path rules of lib/util/paths.ts
// ("state" for runDir, "read" for resolvConf) and must be text dnsmasq reads
// as one value (lib/dns/render.ts). The executable is never configurable.

import { isIP } from '../ip';
import { CniError, ErrorCode } from '../cni/errors';
import { readFileProblem, stateDirProblem } from '../util/paths';
import { show } from '../util/show';
import { validDnsName } from './names';
import { dnsmasqValueProblem } from './render';
import { isObject } from '../util/is-object';

export { validDnsName };

export interface NameResolutionConfig {
  /** Search domain handed to containers; names answer bare and as <name>.<domain>. */
  readonly domain: string;
  /** Upstream servers ("10.0.0.2", "fd00::2", "10.0.0.2#5353"); empty: the host's resolvConf. */
  readonly upstream: readonly string[];
  /** The host resolver file dnsmasq reads (and re-reads when it changes) when upstream is empty. */
  readonly resolvConf: string;
  /** Per-network daemon state: <runDir>/<network>/{dnsmasq.conf,dnsmasq.pid,hosts.d/}. */
  readonly runDir: string;
}

export const DEFAULT_DNS_RUN_DIR = '/run/node-cni/dnsname';
export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
/** Where dnsmasq may be run from (root-owned system locations, checked before each start: lib/dns/daemon.ts); never from a config. */
export const DNSMASQ_LOCATIONS: readonly string[] = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'];
export const DEFAULT_DOMAIN_SUFFIX = 'cni.internal';

function bad(msg: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, `bridge: ${msg}`);
}

/** "<network>.cni.internal", the network name lower-cased with characters a DNS label cannot hold replaced by "-". */
export function defaultDomain(network: string): string {
  const label = network.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'net';
  return `${label}.${DEFAULT_DOMAIN_SUFFIX}`;
}

function str(o: Record<string, unknown>, key: string, dflt: string): string {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string' || v === '') throw bad(`"nameResolution.${key}" must be a non-empty string, got ${show(v)}`);
  return v;
}

/** A path that reaches dnsmasq.conf: the path rule of its kind, then dnsmasq's own syntax. */
function dnsmasqPath(o: Record<string, unknown>, key: string, dflt: string, problem: (p: string) => string | undefined): string {
  const v = str(o, key, dflt);
  const why = problem(v) ?? dnsmasqValueProblem(v);
  if (why) throw bad(`"nameResolution.${key}" ${show(v)} ${why}`);
  return v;
}

/** The old "dnsmasq" key: a config may still spell out a system location; anything else is refused. */
function checkNoExecutable(v: unknown): void {
  if (v === undefined || v === null) return;
  if (typeof v === 'string' && DNSMASQ_LOCATIONS.includes(v)) return;
  throw bad(`"nameResolution.dnsmasq" ${show(v)} is not supported: a config never names a program to run as root; dnsmasq is run from ${DNSMASQ_LOCATIONS.join(' or ')}`);
}

function parseUpstream(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`"nameResolution.upstream" must be a list of IP addresses, got ${show(v)}`);
  return v.map((s) => {
    const [ip, port, extra] = typeof s === 'string' ? s.split('#') : [];
    const portOk = port === undefined || (/^\d+$/.test(port) && +port > 0 && +port < 65536);
    if (typeof s !== 'string' || !isIP(ip) || !portOk || extra !== undefined) {
      throw bad(`"nameResolution.upstream" entry ${show(s)} is not an IP address (optionally "#port")`);
    }
    return s;
  });
}

/** undefined / false: off. true: every default. An object: overrides. */
export function parseNameResolution(v: unknown, network: string): NameResolutionConfig | undefined {
  if (v === undefined || v === null || v === false) return undefined;
  if (v !== true && !isObject(v)) throw bad(`"nameResolution" must be true, false or an object, got ${show(v)}`);
  const o = (v === true ? {} : v) as Record<string, unknown>;
  const domain = str(o, 'domain', defaultDomain(network)).replace(/\.$/, '');
  if (!validDnsName(domain)) throw bad(`"nameResolution.domain" is not a valid DNS name: ${show(domain)}`);
  checkNoExecutable(o.dnsmasq);
  return Object.freeze({
    domain,
    upstream: Object.freeze(parseUpstream(o.upstream)),
    resolvConf: dnsmasqPath(o, 'resolvConf', DEFAULT_RESOLV_CONF, readFileProblem),
    runDir: dnsmasqPath(o, 'runDir', DEFAULT_DNS_RUN_DIR, stateDirProblem),
  });
}

/**
 * The names a container is known by on `network`, in order, without
 * duplicates: runtimeConfig.aliases (capability "aliases"; podman sends
 * {"<network>": ["name", "alias"...]}, a plain list is accepted too), then
 * CNI_ARGS K8S_POD_NAME. A name DNS cannot carry is an error naming it.
 */
export function containerNames(o: { network: string; aliases?: unknown; podName?: string }): string[] {
  const out: string[] = [];
  const push = (name: unknown, where: string): void => {
    if (typeof name !== 'string' || !validDnsName(name)) throw bad(`${where}: ${show(name)} is not a valid DNS name (labels of letters, digits, "-", "_", at most 63 bytes each)`);
    if (!out.some((n) => n.toLowerCase() === name.toLowerCase())) out.push(name);
  };
  const a = o.aliases;
  if (Array.isArray(a)) {
    a.forEach((n, i) => push(n, `runtimeConfig.aliases[${i}]`));
  } else if (a !== undefined && a !== null) {
    if (typeof a !== 'object') throw bad(`runtimeConfig.aliases must be a map of network name to names, got ${show(a)}`);
    const mine = (a as Record<string, unknown>)[o.network];
    if (mine !== undefined && mine !== null) {
      if (!Array.isArray(mine)) throw bad(`runtimeConfig.aliases["${o.network}"] must be a list of names, got ${show(mine)}`);
      mine.forEach((n, i) => push(n, `runtimeConfig.aliases["${o.network}"][${i}]`));
    }
  }
  if (o.podName) push(o.podName, 'CNI_ARGS K8S_POD_NAME');
  return out;
}
