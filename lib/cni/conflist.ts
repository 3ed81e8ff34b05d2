// What libcni does for a runtime (CONFORMANCE §5.1, §5.3, §7): load a network
// (.conflist, or a single .conf/.json up-converted), build each plugin's stdin
// (name, cniVersion, runtimeConfig, prevResult injected), and run the chain:
// ADD in order, DEL in reverse with the cached final ADD result, CHECK in
// order, GC in order past errors, STATUS in order up to the first error.
// Used by cnictl and by tests; plugins never use it.

import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode, toCniError } from './errors';
import { execPlugin, findInPath, parseResultStdout, validatePluginType } from './exec';
import { ResultCache } from './cache';
import type { Attachment, Result, Verb } from './types';
import { DEFAULT_CONFIG_VERSION, LATEST_VERSION, compareVersions, convertResult, parseVersion, versionAtLeast } from './version';
import { isObject } from '../util/is-object';

export type PluginConf = { type: string; capabilities?: Record<string, boolean>; [key: string]: unknown };

export interface NetworkConfigList {
  name: string;
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  plugins: PluginConf[];
  /** The file's bytes (stored in the result cache like libcni does). */
  bytes: Buffer;
  source?: string;
}

export const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'];

function invalid(msg: string, source?: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, msg, source ? `in ${source}` : undefined);
}

/** libcni accepts JSON booleans and the strings strconv.ParseBool knows. */
function parseBool(v: unknown, key: string, source?: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    if (['1', 't', 'true'].includes(v.toLowerCase())) return true;
    if (['0', 'f', 'false'].includes(v.toLowerCase())) return false;
  }
  throw invalid(`"${key}" must be a boolean, got ${JSON.stringify(v)}`, source);
}

/** The version the runtime uses: the highest of cniVersion ∪ cniVersions that we know (≤ LATEST_VERSION). */
export function negotiateListVersion(cniVersion: unknown, cniVersions: unknown, source?: string): string {
  const candidates: string[] = [];
  if (cniVersion !== undefined && cniVersion !== null && cniVersion !== '') {
    if (typeof cniVersion !== 'string') throw invalid(`"cniVersion" must be a string, got ${JSON.stringify(cniVersion)}`, source);
    candidates.push(cniVersion);
  }
  if (cniVersions !== undefined && cniVersions !== null) {
    if (!Array.isArray(cniVersions)) throw invalid('"cniVersions" must be a list of version strings', source);
    for (const v of cniVersions) {
      if (typeof v !== 'string' || !parseVersion(v)) throw invalid(`"cniVersions" entry ${JSON.stringify(v)} is not a version`, source);
      if (compareVersions(v, LATEST_VERSION) <= 0) candidates.push(v);
    }
  }
  if (candidates.length === 0) return DEFAULT_CONFIG_VERSION;
  return candidates.reduce((best, v) => (parseVersion(v) && compareVersions(v, best) > 0 ? v : best));
}

/** Parse a conflist, or a single plugin config (which becomes a one-plugin list). */
export function parseNetworkConfig(bytes: Buffer, source?: string): NetworkConfigList {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new CniError(ErrorCode.DecodingFailure, `cannot parse network config: ${(err as Error).message}`, source ? `in ${source}` : undefined);
  }
  if (!isObject(raw)) throw invalid('a network config must be a JSON object', source);
  if (typeof raw.name !== 'string' || raw.name === '') throw invalid('missing network name', source);
  const isList = raw.plugins !== undefined;
  const plugins = isList ? raw.plugins : [raw];
  if (!Array.isArray(plugins) || plugins.length === 0) throw invalid(`network "${raw.name}": "plugins" must be a non-empty list`, source);
  plugins.forEach((p, n) => {
    if (!isObject(p)) throw invalid(`network "${raw.name}": plugins[${n}] must be an object`, source);
    validatePluginType(p.type, `plugins[${n}].type`);
  });
  return {
    name: raw.name,
    cniVersion: negotiateListVersion(raw.cniVersion, raw.cniVersions, source),
    disableCheck: parseBool(raw.disableCheck, 'disableCheck', source),
    disableGC: parseBool(raw.disableGC, 'disableGC', source),
    plugins: plugins as PluginConf[],
    bytes,
    source,
  };
}

/** Config files of a directory, sorted by name (libcni ConfFiles). */
export function listConfFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => CONF_EXTENSIONS.includes(path.extname(n)))
    .sort()
    .map((n) => path.join(dir, n))
    .filter((f) => fs.statSync(f).isFile());
}

/** Find a network by name in a directory: .conflist files first, then .conf/.json (libcni LoadConfList). */
export function loadNetwork(dir: string, name: string): NetworkConfigList {
  const files = listConfFiles(dir);
  const ordered = [...files.filter((f) => f.endsWith('.conflist')), ...files.filter((f) => !f.endsWith('.conflist'))];
  const broken: string[] = [];
  for (const file of ordered) {
    let list: NetworkConfigList;
    try {
      list = parseNetworkConfig(fs.readFileSync(file), file);
    } catch (err) {
      broken.push(`${file}: ${toCniError(err).message}`);
      continue;
    }
    if (list.name === name) return list;
  }
  throw new CniError(ErrorCode.InvalidConfig, `no network named "${name}" in ${dir}`, broken.length ? `unreadable files: ${broken.join('; ')}` : undefined);
}

/** The runtime's view of one attachment. */
export interface RuntimeConf {
  containerId: string;
  netns?: string;
  ifname: string;
  /** Raw CNI_ARGS "K=V;K2=V2". */
  args?: string;
  /** Capability arguments (portMappings, ips, mac...): only the ones a plugin declares reach it. */
  capabilityArgs?: Record<string, unknown>;
}

/** One plugin's stdin: its object plus name, cniVersion, runtimeConfig (declared ∩ given, omitted when empty) and prevResult. */
export function buildPluginConfig(list: NetworkConfigList, plugin: PluginConf, opts: { prevResult?: Result; capabilityArgs?: Record<string, unknown>; extra?: Record<string, unknown> } = {}): Buffer {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  delete conf.runtimeConfig; // only the runtime sets it
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
    if (on === true && opts.capabilityArgs && Object.prototype.hasOwnProperty.call(opts.capabilityArgs, cap)) runtimeConfig[cap] = opts.capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  if (opts.prevResult) conf.prevResult = convertResult(opts.prevResult, list.cniVersion);
  Object.assign(conf, opts.extra ?? {});
  return Buffer.from(JSON.stringify(conf));
}

export function argsToPairs(args: string | undefined): [string, string][] {
  return (args ?? '').split(';').filter(Boolean).map((kv) => {
    const i = kv.indexOf('=');
    return (i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)]) as [string, string];
  });
}

export interface ChainRunnerOptions {
  cniPath: string[];
  /** libcni CacheDir (results in <cacheDir>/results). */
  cacheDir?: string;
  /** Base environment of the plugins (default process.env); CNI_* are set per call. */
  env?: NodeJS.ProcessEnv;
  onStderr?: (chunk: Buffer) => void;
}

/** Runs network lists like libcni's CNIConfig. */
export class ChainRunner {
  readonly cache: ResultCache;

  constructor(private readonly opts: ChainRunnerOptions) {
    this.cache = new ResultCache(opts.cacheDir);
  }

  private async exec(verb: Verb, plugin: PluginConf, stdin: Buffer, rt?: RuntimeConf): Promise<string> {
    const pluginPath = findInPath(plugin.type, this.opts.cniPath);
    const env = {
      ...(this.opts.env ?? process.env),
      CNI_COMMAND: verb,
      CNI_CONTAINERID: rt?.containerId ?? '',
      CNI_NETNS: rt?.netns ?? '',
      CNI_IFNAME: rt?.ifname ?? '',
      CNI_ARGS: rt?.args ?? '',
      CNI_PATH: this.opts.cniPath.join(':'),
    };
    return execPlugin({ pluginPath, env, stdin, onStderr: this.opts.onStderr });
  }

  /** ADD every plugin in order, each getting the previous result; cache and return the final result. */
  async add(list: NetworkConfigList, rt: RuntimeConf): Promise<Result> {
    let prev: Result | undefined;
    for (const plugin of list.plugins) {
      const stdin = buildPluginConfig(list, plugin, { prevResult: prev, capabilityArgs: rt.capabilityArgs });
      const stdout = await this.exec('ADD', plugin, stdin, rt);
      prev = parseResultStdout(stdout, list.cniVersion, plugin.type);
    }
    const result = { ...(prev as Result), cniVersion: list.cniVersion };
    this.cache.save({ network: list.name, containerID: rt.containerId, ifname: rt.ifname, netns: rt.netns, cniArgs: argsToPairs(rt.args), capabilityArgs: rt.capabilityArgs, config: list.bytes, result, cniVersion: list.cniVersion });
    return result;
  }

  /** DEL in reverse order with the cached result (≥0.4.0; absent when not cached); drop the cache entry after. */
  async del(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    const cached = versionAtLeast(list.cniVersion, '0.4.0') ? this.cache.load(list.name, rt.containerId, rt.ifname)?.result : undefined;
    for (const plugin of [...list.plugins].reverse()) {
      const stdin = buildPluginConfig(list, plugin, { prevResult: cached, capabilityArgs: rt.capabilityArgs });
      await this.exec('DEL', plugin, stdin, rt);
    }
    this.cache.remove(list.name, rt.containerId, rt.ifname);
  }

  /** CHECK in order with the cached result; needs cniVersion ≥ 0.4.0; skipped with disableCheck. */
  async check(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '0.4.0')) {
      throw new CniError(ErrorCode.IncompatibleVersion, `configuration version "${list.cniVersion}" does not support the CHECK command`);
    }
    if (list.disableCheck) return;
    const cached = this.cache.load(list.name, rt.containerId, rt.ifname)?.result;
    if (!cached) throw new CniError(ErrorCode.UnknownContainer, `no cached result for network "${list.name}", container "${rt.containerId}", interface "${rt.ifname}"`, `looked in ${this.cache.dir}`);
    for (const plugin of list.plugins) {
      await this.exec('CHECK', plugin, buildPluginConfig(list, plugin, { prevResult: cached, capabilityArgs: rt.capabilityArgs }), rt);
    }
  }

  /** What is cached for this network. */
  cachedAttachments(network: string): Attachment[] {
    return this.cache.list(network).map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
  }

  /**
   * libcni GCNetworkList: DEL every cached attachment not in `valid` (all of
   * them when `valid` is undefined), then GC every plugin (≥1.1.0) with both
   * attachment keys. Carries on past errors and throws them together at the end.
   */
  async gc(list: NetworkConfigList, valid?: Attachment[]): Promise<void> {
    if (list.disableGC) return;
    const errors: { what: string; err: CniError }[] = [];
    const keep = new Set((valid ?? []).map((a) => `${a.containerID}\0${a.ifname}`));
    for (const cached of this.cache.list(list.name)) {
      if (keep.has(`${cached.containerID}\0${cached.ifname}`)) continue;
      const args = cached.cniArgs?.map(([k, v]) => `${k}=${v}`).join(';');
      try {
        await this.del(list, { containerId: cached.containerID, ifname: cached.ifname, netns: cached.netns, args, capabilityArgs: cached.capabilityArgs });
      } catch (err) {
        errors.push({ what: `failed to delete stale attachment ${cached.containerID} ${cached.ifname}`, err: toCniError(err) });
      }
    }
    if (versionAtLeast(list.cniVersion, '1.1.0')) {
      const extra = valid ? { 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': valid } : {};
      for (const plugin of list.plugins) {
        try {
          await this.exec('GC', plugin, buildPluginConfig(list, stripRuntimeKeys(plugin), { extra }));
        } catch (err) {
          errors.push({ what: `plugin "${plugin.type}"`, err: toCniError(err) });
        }
      }
    }
    if (errors.length === 1) throw new CniError(errors[0].err.code, `GC of network "${list.name}" failed: ${errors[0].what}: ${errors[0].err.message}`, errors[0].err.details);
    if (errors.length) throw new CniError(ErrorCode.Internal, `GC of network "${list.name}" failed ${errors.length} times`, errors.map((e) => `${e.what}: ${describeError(e.err)}`).join('; '));
  }

  /** STATUS in order (≥1.1.0, a no-op below), stopping at the first error. */
  async status(list: NetworkConfigList): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '1.1.0')) return;
    for (const plugin of list.plugins) {
      await this.exec('STATUS', plugin, buildPluginConfig(list, stripRuntimeKeys(plugin)));
    }
  }
}

/** GC and STATUS get only the plugin object plus name/cniVersion (no runtimeConfig/prevResult). */
function stripRuntimeKeys(plugin: PluginConf): PluginConf {
  const { runtimeConfig: _rc, prevResult: _pr, ...rest } = plugin;
  return rest as PluginConf;
}

export function describeError(err: unknown): string {
  const e = toCniError(err);
  return `${e.message} (CNI error code ${e.code})${e.details ? `: ${e.details}` : ''}`;
}
