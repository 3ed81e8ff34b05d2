// Parse and default the portmap configuration (pure). Accepts every field of
// the reference portmap (reference-plugins.md §7.1) so its conflists work
// unchanged. "backend" may be "iptables" or "nftables": ours is nftables
// either way; iptables-syntax conditions are translated, markMasqBit and
// externalSetMarkChain validated (we masquerade without a mark).

import { isIPv4, isIPv6 } from '../../lib/ip';
import { invalidConfig } from '../../lib/cni/errors';
import { goFields } from '../../lib/cni/go-json';
import type { NetConf, Result } from '../../lib/cni/types';
import { parseStateDir } from '../../lib/util/paths';
import { checkNftConditions, conditionsSyntax, translateIptablesConditions } from './conditions';
import { show } from '../../lib/util/show';
import { isObject } from '../../lib/util/is-object';

export type Protocol = 'tcp' | 'udp' | 'sctp';
export const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];
export const DEFAULT_DATA_DIR = '/var/lib/cni/portmap';

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
  /** Normalized; undefined = every local address of both families. "0.0.0.0" / "::" = every address of that family. */
  hostIP?: string;
}

export interface PortmapConfig {
  cniVersion: string;
  network: string;
  mappings: readonly PortMapping[];
  /** Masquerade hairpin and localhost traffic and set route_localnet (default true). */
  snat: boolean;
  /** Masquerade every connection to a published port, whatever its source (macvlan-style setups). */
  masqAll: boolean;
  conditionsV4: readonly string[];
  conditionsV6: readonly string[];
  /** Where the per-attachment records live: <dataDir>/<network>/<containerID>-<ifname>.json. */
  dataDir: string;
  prevResult?: Result;
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 65535;
}

/** Canonical text of an address, so "::FFFF:0" and "::ffff:0" are one key. */
export function normalizeIP(ip: string): string | undefined {
  if (isIPv4(ip)) return ip.split('.').map((o) => String(Number(o))).join('.');
  if (!isIPv6(ip)) return undefined;
  // Let the URL parser canonicalize (lower case, zero compression), avoiding a dependency here.
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

function parseMapping(raw: unknown, i: number): PortMapping {
  const where = `runtimeConfig.portMappings[${i}]`;
  if (!isObject(raw)) throw invalidConfig(`${where} must be an object`, show(raw));
  // containerd sends {"HostPort":..,"ContainerPort":..,"Protocol":..,"HostIP":..} (go-json.ts).
  const m = goFields(raw as Record<string, unknown>, ['hostPort', 'containerPort', 'protocol', 'hostIP']);
  if (!isPort(m.hostPort)) throw invalidConfig(`${where}.hostPort must be an integer 1-65535, got ${show(m.hostPort)}`);
  if (!isPort(m.containerPort)) throw invalidConfig(`${where}.containerPort must be an integer 1-65535, got ${show(m.containerPort)}`);
  let protocol: Protocol = 'tcp';
  if (m.protocol !== undefined && m.protocol !== '') {
    const p = typeof m.protocol === 'string' ? m.protocol.toLowerCase() : m.protocol;
    if (!PROTOCOLS.includes(p as Protocol)) throw invalidConfig(`${where}.protocol must be one of tcp, udp, sctp, got ${show(m.protocol)}`);
    protocol = p as Protocol;
  }
  let hostIP: string | undefined;
  if (m.hostIP !== undefined && m.hostIP !== '') {
    if (typeof m.hostIP !== 'string' || normalizeIP(m.hostIP) === undefined) throw invalidConfig(`${where}.hostIP is not an IP address: ${show(m.hostIP)}`);
    hostIP = normalizeIP(m.hostIP);
  }
  return { hostPort: m.hostPort, containerPort: m.containerPort as number, protocol, hostIP };
}

type Backend = 'iptables' | 'nftables';

function tokenList(raw: unknown, field: string): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw) || raw.some((c) => typeof c !== 'string')) throw invalidConfig(`${field} must be a list of strings`);
  return raw as string[];
}

/**
 * conditionsV4/V6 as nft match expressions. iptables-syntax lists are
 * translated (plugins/portmap/conditions.ts). Like the reference, a list
 * whose syntax contradicts an explicit backend is an error; without a
 * backend, nft syntax is fine (what the reference documents, though its code refuses it).
 */
function parseConditions(raw: unknown, field: 'conditionsV4' | 'conditionsV6', backend: Backend | undefined): string[] {
  const tokens = tokenList(raw, field);
  const syntax = conditionsSyntax(tokens);
  if (syntax === undefined) return [];
  if (backend !== undefined && syntax !== backend) {
    throw invalidConfig(`${backend} backend was requested but ${field} is written in ${syntax} syntax`, show(tokens));
  }
  return syntax === 'iptables' ? translateIptablesConditions(tokens, field === 'conditionsV4' ? 4 : 6, field) : checkNftConditions(tokens, field);
}

/** "iptables" (the reference's default) and "nftables" both give our nftables rules; they only decide which syntax the conditions use. */
function parseBackend(v: unknown): Backend | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (v !== 'iptables' && v !== 'nftables') throw invalidConfig(`backend must be "iptables" or "nftables", got ${show(v)}`);
  return v;
}

/** iptables' chain names: at most 28 characters, no spaces. */
const IPTABLES_CHAIN = /^[A-Za-z0-9_.-][A-Za-z0-9_.:-]{0,27}$/;

/** The families a mapping applies to: no hostIP = both; "0.0.0.0" or a v4 address = v4 only; "::" or v6 = v6 only. */
export function mappingFamilies(m: PortMapping): Array<4 | 6> {
  if (m.hostIP === undefined) return [4, 6];
  return isIPv4(m.hostIP) ? [4] : [6];
}

/** The specific host address of a mapping, or undefined when it listens on every address of its family. */
export function specificHostIP(m: PortMapping): string | undefined {
  return m.hostIP === undefined || m.hostIP === '0.0.0.0' || m.hostIP === '::' ? undefined : m.hostIP;
}

/** The keys a mapping claims on the host, one per family: "4 0.0.0.0 tcp 8080". */
export function claimKeys(m: PortMapping): string[] {
  return mappingFamilies(m).map((f) => `${f} ${specificHostIP(m) ?? (f === 4 ? '0.0.0.0' : '::')} ${m.protocol} ${m.hostPort}`);
}

export function parsePortmapConfig(conf: NetConf): PortmapConfig {
  const backend = parseBackend(conf.backend);
  // markMasqBit and externalSetMarkChain say how the reference's iptables rules mark what it masquerades.
  // We masquerade hairpin and localhost connections directly (no mark), which is what both are for,
  // so they are validated like the reference does and need nothing more.
  if (conf.markMasqBit !== undefined) {
    const b = conf.markMasqBit;
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 31) throw invalidConfig(`markMasqBit must be an integer 0-31, got ${show(b)}`);
    if (conf.externalSetMarkChain !== undefined) throw invalidConfig('markMasqBit and externalSetMarkChain cannot both be set');
  }
  if (conf.externalSetMarkChain !== undefined) {
    const c = conf.externalSetMarkChain;
    if (typeof c !== 'string' || !IPTABLES_CHAIN.test(c)) throw invalidConfig(`externalSetMarkChain must be an iptables chain name (1-28 characters, no spaces), got ${show(c)}`);
    if (backend === 'nftables') throw invalidConfig('nftables backend was requested but externalSetMarkChain is an iptables-only option (the reference refuses this too)');
  }
  for (const f of ['snat', 'masqAll'] as const) {
    if (conf[f] !== undefined && typeof conf[f] !== 'boolean') throw invalidConfig(`${f} must be a boolean, got ${show(conf[f])}`);
  }
  const dataDir = parseStateDir(conf.dataDir ?? DEFAULT_DATA_DIR, { plugin: 'portmap', field: 'dataDir' });

  const rawMappings = conf.runtimeConfig?.portMappings;
  if (rawMappings !== undefined && rawMappings !== null && !Array.isArray(rawMappings)) throw invalidConfig('runtimeConfig.portMappings must be a list');
  const mappings = ((rawMappings as unknown[] | undefined | null) ?? []).map(parseMapping);
  const seen = new Map<string, number>();
  mappings.forEach((m, i) => {
    for (const k of claimKeys(m)) {
      if (seen.has(k)) {
        throw invalidConfig(`runtimeConfig.portMappings[${i}] publishes ${m.protocol} port ${m.hostPort}${m.hostIP ? ` on ${m.hostIP}` : ''} a second time (overlaps portMappings[${seen.get(k)}])`);
      }
      seen.set(k, i);
    }
  });

  return {
    cniVersion: conf.cniVersion,
    network: conf.name,
    mappings,
    snat: (conf.snat as boolean | undefined) ?? true,
    masqAll: (conf.masqAll as boolean | undefined) ?? false,
    conditionsV4: parseConditions(conf.conditionsV4, 'conditionsV4', backend),
    conditionsV6: parseConditions(conf.conditionsV6, 'conditionsV6', backend),
    dataDir,
    prevResult: conf.prevResult,
  };
}
