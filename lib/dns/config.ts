// Pure parsing of the container-name DNS option ("nameResolution") and of
// the names a container is known by. Kept apart from the reference bridge
// fields: "dns" is the reference's result-DNS field and keeps its meaning.
//
//   "nameResolution": true
//   "nameResolution": { "domain": "web.internal", "upstream": ["10.0.0.2"],
//                       "resolvConf": "/etc/resolv.conf", "runDir": "/run/node-cni/dnsname" }

import { isIP } from 'net';
import { CniError, ErrorCode } from '../cni/errors';

export interface NameResolutionConfig {
  /** Search domain handed to containers; names answer bare and as <name>.<domain>. */
  readonly domain: string;
  /** Upstream servers ("10.0.0.2", "fd00::2", "10.0.0.2#5353"); empty: the host's resolvConf. */
  readonly upstream: readonly string[];
  /** The host resolver file dnsmasq reads (and re-reads when it changes) when upstream is empty. */
  readonly resolvConf: string;
  /** Per-network daemon state: <runDir>/<network>/{dnsmasq.conf,dnsmasq.pid,hosts.d/}. */
  readonly runDir: string;
  /** The dnsmasq executable. */
  readonly dnsmasq: string;
}

export const DEFAULT_DNS_RUN_DIR = '/run/node-cni/dnsname';
export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
export const DEFAULT_DNSMASQ = '/usr/sbin/dnsmasq';
export const DEFAULT_DOMAIN_SUFFIX = 'cni.internal';

function bad(msg: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, `bridge: ${msg}`);
}

const LABEL_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A host name dnsmasq can serve from a hosts file: dot-separated labels of letters, digits, "-" and "_". */
export function validDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((l) => LABEL_RE.test(l));
}

/** "<network>.cni.internal", the network name lower-cased with characters a DNS label cannot hold replaced by "-". */
export function defaultDomain(network: string): string {
  const label = network.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'net';
  return `${label}.${DEFAULT_DOMAIN_SUFFIX}`;
}

function str(o: Record<string, unknown>, key: string, dflt: string, absolute = false): string {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string' || v === '') throw bad(`"nameResolution.${key}" must be a non-empty string, got ${JSON.stringify(v)}`);
  if (absolute && !v.startsWith('/')) throw bad(`"nameResolution.${key}" must be an absolute path, got ${JSON.stringify(v)}`);
  return v;
}

function parseUpstream(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`"nameResolution.upstream" must be a list of IP addresses, got ${JSON.stringify(v)}`);
  return v.map((s) => {
    const [ip, port, extra] = typeof s === 'string' ? s.split('#') : [];
    const portOk = port === undefined || (/^\d+$/.test(port) && +port > 0 && +port < 65536);
    if (typeof s !== 'string' || !isIP(ip) || !portOk || extra !== undefined) {
      throw bad(`"nameResolution.upstream" entry ${JSON.stringify(s)} is not an IP address (optionally "#port")`);
    }
    return s;
  });
}

/** undefined / false: off. true: every default. An object: overrides. */
export function parseNameResolution(v: unknown, network: string): NameResolutionConfig | undefined {
  if (v === undefined || v === null || v === false) return undefined;
  if (v !== true && (typeof v !== 'object' || Array.isArray(v))) throw bad(`"nameResolution" must be true, false or an object, got ${JSON.stringify(v)}`);
  const o = (v === true ? {} : v) as Record<string, unknown>;
  const domain = str(o, 'domain', defaultDomain(network)).replace(/\.$/, '');
  if (!validDnsName(domain)) throw bad(`"nameResolution.domain" is not a valid DNS name: ${JSON.stringify(domain)}`);
  return Object.freeze({
    domain,
    upstream: Object.freeze(parseUpstream(o.upstream)),
    resolvConf: str(o, 'resolvConf', DEFAULT_RESOLV_CONF, true),
    runDir: str(o, 'runDir', DEFAULT_DNS_RUN_DIR, true),
    dnsmasq: str(o, 'dnsmasq', DEFAULT_DNSMASQ, true),
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
    if (typeof name !== 'string' || !validDnsName(name)) throw bad(`${where}: ${JSON.stringify(name)} is not a valid DNS name (labels of letters, digits, "-", "_", at most 63 bytes each)`);
    if (!out.some((n) => n.toLowerCase() === name.toLowerCase())) out.push(name);
  };
  const a = o.aliases;
  if (Array.isArray(a)) {
    a.forEach((n, i) => push(n, `runtimeConfig.aliases[${i}]`));
  } else if (a !== undefined && a !== null) {
    if (typeof a !== 'object') throw bad(`runtimeConfig.aliases must be a map of network name to names, got ${JSON.stringify(a)}`);
    const mine = (a as Record<string, unknown>)[o.network];
    if (mine !== undefined && mine !== null) {
      if (!Array.isArray(mine)) throw bad(`runtimeConfig.aliases["${o.network}"] must be a list of names, got ${JSON.stringify(mine)}`);
      mine.forEach((n, i) => push(n, `runtimeConfig.aliases["${o.network}"][${i}]`));
    }
  }
  if (o.podName) push(o.podName, 'CNI_ARGS K8S_POD_NAME');
  return out;
}
