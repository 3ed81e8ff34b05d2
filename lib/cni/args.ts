// CNI_ARGS (CONFORMANCE §5.6) and the `args.cni` config convention (§5.5).
// CNI_ARGS follows the Go types.LoadArgs rules: `K=V` pairs split on ";",
// each pair has exactly one "=", keys are case-sensitive, unknown keys are an
// error unless IgnoreUnknown is true. The plugin declares the keys it knows.

import { CniError, ErrorCode } from './errors';
import type { Invocation, NetConf } from './types';
import { show } from '../util/show';
import { isObject } from '../util/is-object';

/** Keys every plugin accepts (containerd sends all of them). */
export const ALWAYS_KNOWN_ARGS: readonly string[] = ['IgnoreUnknown', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'];

export type CniArgs = Readonly<Record<string, string>>;

function argsError(msg: string): CniError {
  return new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_ARGS: ${msg}`);
}

/** Go's UnmarshallableBool: 1/0/true/false in any case. */
function parseArgBool(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw argsError(`${key}=${show(value)} is not a boolean (1, 0, true or false)`);
}

/**
 * Parse CNI_ARGS. `knownKeys` are the plugin's own keys (e.g. ["IP", "MAC"]);
 * ALWAYS_KNOWN_ARGS are added. Unknown keys are dropped when IgnoreUnknown is
 * true and an error otherwise. Empty or unset → {}. A repeated key: last wins.
 */
export function parseCniArgs(raw: string | undefined, knownKeys: readonly string[] = []): CniArgs {
  const out: Record<string, string> = {};
  if (!raw) return out;
  const known = new Set([...ALWAYS_KNOWN_ARGS, ...knownKeys]);
  const unknown: string[] = [];
  let ignoreUnknown = false;
  for (const pair of raw.split(';')) {
    const kv = pair.split('=');
    if (kv.length !== 2) throw argsError(`invalid pair ${show(pair)} (want KEY=VALUE)`);
    const [key, value] = kv;
    if (!known.has(key)) {
      unknown.push(pair);
      continue;
    }
    if (key === 'IgnoreUnknown') ignoreUnknown = parseArgBool(key, value);
    out[key] = value;
  }
  if (unknown.length && !ignoreUnknown) {
    throw argsError(`unknown args [${unknown.join(' ')}] (set IgnoreUnknown=1 to allow them)`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The `args.cni` convention. Plugins that understand a key must reject a
// malformed value (code 7); keys they do not read are ignored.

export interface Label {
  key: string;
  value: string;
}

function argsCni(conf: NetConf): Record<string, unknown> | undefined {
  const cni = conf.args?.cni;
  return isObject(cni) ? cni : undefined;
}

function stringList(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    throw new CniError(ErrorCode.InvalidConfig, `${where} must be a list of strings`, `got ${show(v)}`);
  }
  return [...(v as string[])];
}

/** args.cni.ips, e.g. ["10.2.2.42/24", "2001:db8::5"]; undefined when absent. */
export function argsCniIps(conf: NetConf): string[] | undefined {
  const v = argsCni(conf)?.ips;
  return v === undefined ? undefined : stringList(v, 'args.cni.ips');
}

/** args.cni.mac; undefined when absent. */
export function argsCniMac(conf: NetConf): string | undefined {
  const v = argsCni(conf)?.mac;
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new CniError(ErrorCode.InvalidConfig, 'args.cni.mac must be a string', `got ${show(v)}`);
  return v;
}

/** args.cni.labels: [{key, value}]; [] when absent. */
export function argsCniLabels(conf: NetConf): Label[] {
  const v = argsCni(conf)?.labels;
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((l) => !l || typeof l !== 'object' || typeof l.key !== 'string' || typeof l.value !== 'string')) {
    throw new CniError(ErrorCode.InvalidConfig, 'args.cni.labels must be a list of {"key","value"} strings', `got ${show(v)}`);
  }
  return (v as Label[]).map((l) => ({ key: l.key, value: l.value }));
}

/** The CNI_ARGS of an invocation (parsed by the skel; parsed here if the Invocation was built by hand). */
export function cniArgsOf(inv: Invocation, knownKeys: readonly string[] = []): CniArgs {
  return inv.cniArgs ?? parseCniArgs(inv.env.args, knownKeys);
}

/**
 * The container MAC asked for, by precedence runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC
 * (the project rule; the reference bridge uses the same order).
 */
export function requestedMac(inv: Invocation): string | undefined {
  const rc = inv.conf.runtimeConfig?.mac;
  if (rc !== undefined) {
    if (typeof rc !== 'string') throw new CniError(ErrorCode.InvalidConfig, 'runtimeConfig.mac must be a string', `got ${show(rc)}`);
    return rc;
  }
  return argsCniMac(inv.conf) ?? (cniArgsOf(inv, ['MAC']).MAC || undefined);
}

/**
 * The static IPs asked for, by precedence runtimeConfig.ips > args.cni.ips > CNI_ARGS IP
 * (IP may be a comma-separated list). The first source that is present wins.
 */
export function requestedIps(inv: Invocation): string[] | undefined {
  const rc = inv.conf.runtimeConfig?.ips;
  if (rc !== undefined) return stringList(rc, 'runtimeConfig.ips');
  const fromArgs = argsCniIps(inv.conf);
  if (fromArgs !== undefined) return fromArgs;
  const ip = cniArgsOf(inv, ['IP']).IP;
  return ip ? ip.split(',').filter(Boolean) : undefined;
}
