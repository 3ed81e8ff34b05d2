// The skel: the only code that reads the CNI_* environment and stdin, prints
// to stdout and exits. handleInvocation() is the pure-ish core (env + stdin in,
// stdout/stderr/exit code out) that the unit tests drive; runPlugin() wires it
// to the process. Order of checks (CONFORMANCE §1–§4, §8):
//   CNI_COMMAND → VERSION (validates nothing) → required env (one code-4 error)
//   → container ID / ifname → NODE_CNI_LOG_FILE (4) → stdin size, JSON
//   and nesting (6) → logFile (7) → name (7) → cniVersion (6/1) → verb
//   allowed for that version (1) → CNI_ARGS (4, when the plugin takes any)
//   → types of the common fields (7) → DEL: a CNI_NETNS that is gone or no
//   network namespace is dropped → own netns (8) → prevResult to 1.x → handler →
//   result converted to the config version. Log lines reach a log file only
//   at the end, and the config's logFile only when the config was accepted.

import { CniError, ErrorCode, toCniError } from './errors';
import { parseCniArgs } from './args';
import { envValue, readCniEnv, validateNetworkName } from './env';
import type { GcInvocation, Plugin } from './plugin';
import type { Attachment, CniEnv, Invocation, NetConf, Verb } from './types';
import { LATEST_VERSION, SUPPORTED_VERSIONS, formatResult, parsePrevResult, versionAtLeast } from './version';
import { isHostNetns, isNetnsGone, probeNetns } from '../netns';
import { createLogger, logDirOf, logFileProblem, writeLogFile } from '../util/log';
import { startMain } from '../util/main';
import { readStdin, stdinIsTerminal, writeOut } from './stdio';
import { show } from '../util/show';
import { isObject } from '../util/is-object';

export interface InvocationOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Env var naming a log file for every plugin of this project (the config key "logFile" wins). */
export const LOG_FILE_ENV = 'NODE_CNI_LOG_FILE';

/**
 * The largest stdin we read: ten times the largest real config we know (10 000
 * port mappings with their prevResult, ~0.8 MB), and a bound on the memory a
 * hostile one can take.
 */
export const MAX_STDIN_BYTES = 8 * 1024 * 1024;

/**
 * The deepest JSON nesting ADD, CHECK, GC and STATUS accept. Real configs
 * nest about 6 levels (conflist → plugins → ipam → ranges → set → range);
 * 1000 is far above that and far below where V8's recursive walks
 * (JSON.stringify, structuredClone) overflow the stack (~4 000). Go's decoder
 * allows 10 000. DEL takes any depth: it must clean up whatever ADD made, and
 * nothing on its path walks a config recursively.
 */
export const MAX_JSON_DEPTH = 1000;

/** Codes that mean "your input is wrong": with those, the config's logFile is not used (the config was refused). */
const INPUT_ERRORS: ReadonlySet<number> = new Set([ErrorCode.IncompatibleVersion, ErrorCode.UnsupportedField, ErrorCode.InvalidEnvironment, ErrorCode.DecodingFailure, ErrorCode.InvalidConfig]);

/** Minimum config version per verb (CONFORMANCE §3.1). */
const MIN_VERSION: Partial<Record<Verb, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

/** How deep `text` nests arrays and objects, counting until `limit` is passed (a linear scan, no recursion). */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/**
 * stdin → the config object. Empty, larger than MAX_STDIN_BYTES, non-JSON,
 * nested deeper than `maxDepth` or not an object → 6; JSON null → {} (then
 * "missing network name", like Go).
 */
export function decodeStdin(stdin: Buffer, maxDepth: number = MAX_JSON_DEPTH): Record<string, unknown> {
  if (stdin.length > MAX_STDIN_BYTES) throw new CniError(ErrorCode.DecodingFailure, 'error unmarshalling network config', `stdin is larger than ${MAX_STDIN_BYTES} bytes`);
  const text = stdin.toString('utf8');
  if (text.trim() === '') throw new CniError(ErrorCode.DecodingFailure, 'error unmarshalling network config', 'stdin is empty');
  if (jsonDepthExceeds(text, maxDepth)) throw new CniError(ErrorCode.DecodingFailure, 'error unmarshalling network config', `the network config nests arrays and objects deeper than ${maxDepth} levels`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CniError(ErrorCode.DecodingFailure, 'error unmarshalling network config', (err as Error).message);
  }
  if (parsed === null) return {};
  if (!isObject(parsed)) throw new CniError(ErrorCode.DecodingFailure, 'error unmarshalling network config', 'the network config must be a JSON object');
  return parsed;
}

/** Absent → 0.1.0 (Go create.DecodeVersion); a non-string → 6. */
export function decodeConfigVersion(v: unknown): string {
  if (v === undefined || v === null || v === '') return '0.1.0';
  if (typeof v !== 'string') throw new CniError(ErrorCode.DecodingFailure, 'error decoding cniVersion', `"cniVersion" must be a string, got ${show(v)}`);
  return v;
}

function checkVersionSupported(version: string, supported: readonly string[]): void {
  if (!supported.includes(version)) {
    throw new CniError(ErrorCode.IncompatibleVersion, 'incompatible CNI versions', `config is "${version}", plugin supports [${supported.map((v) => `"${v}"`).join(' ')}]`);
  }
}

function checkVerbAllowed(verb: Verb, version: string, supported: readonly string[]): void {
  const min = MIN_VERSION[verb];
  if (!min) return;
  if (!versionAtLeast(version, min)) throw new CniError(ErrorCode.IncompatibleVersion, `config version does not allow ${verb}`, `${verb} needs cniVersion >= ${min}, config is "${version}"`);
  if (!supported.some((v) => versionAtLeast(v, min))) throw new CniError(ErrorCode.IncompatibleVersion, `plugin version does not allow ${verb}`, `${verb} needs a plugin that supports >= ${min}`);
}

/**
 * DEL with a CNI_NETNS that is gone or no network namespace (an unmounted pin
 * is an empty file, a reused path anything): the container is gone, and DEL
 * cleans up the host side as with an empty CNI_NETNS. ADD and CHECK open it
 * through lib/netns Netns.open, which checks it the same way before anything
 * else touches it (never blocking on a FIFO) and refuses with code 4 naming
 * it, in every plugin, after the plugin has checked its config (the
 * reference's order of errors).
 */
function dropGoneNetns(env: CniEnv, log: (line: string) => void): CniEnv {
  if (!env.netns || env.command !== 'DEL') return env;
  try {
    probeNetns(env.netns);
    return env;
  } catch (err) {
    if (!isNetnsGone(err)) throw err;
    log(`CNI_NETNS ignored: ${(err as Error).message}`);
    return { ...env, netns: undefined };
  }
}

/** Fields every config shares: when present (and not null) they must have their type (code 7 naming the field). */
const COMMON_FIELD_TYPES: ReadonlyArray<[string, 'object' | 'string']> = [
  ['type', 'string'], ['ipam', 'object'], ['dns', 'object'], ['runtimeConfig', 'object'], ['args', 'object'], ['capabilities', 'object'], ['prevResult', 'object'],
];

export function checkCommonFields(raw: Record<string, unknown>): void {
  for (const [key, want] of COMMON_FIELD_TYPES) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (want === 'object' ? !isObject(v) : typeof v !== want) {
      throw new CniError(ErrorCode.InvalidConfig, `invalid network config: "${key}" must be ${want === 'object' ? 'an object' : 'a string'}, got ${show(v)}`);
    }
  }
  const cni = (raw.args as Record<string, unknown> | undefined)?.cni;
  if (cni !== undefined && cni !== null && !isObject(cni)) throw new CniError(ErrorCode.InvalidConfig, `invalid network config: "args.cni" must be an object, got ${show(cni)}`);
}

/** The log file a name points to, or a CniError with `code` when the name breaks the rules of lib/util/log.ts. */
function checkedLogFile(v: unknown, env: NodeJS.ProcessEnv, what: string, code: number): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new CniError(code, `${what} must be a string (a path), got ${show(v)}`);
  const why = logFileProblem(v, logDirOf(env));
  if (why) throw new CniError(code, `${what} ${show(v)} ${why}`, 'log files live in /var/log/cni, or in the root-owned directory NODE_CNI_LOG_DIR names (docs/security.md)');
  return v;
}

/** E20: a plugin runs in the runtime's netns; CNI_NETNS naming that same netns is a runtime bug (unless CNI_NETNS_OVERRIDE). */
function checkNotOwnNetns(env: NodeJS.ProcessEnv, netns: string | undefined): void {
  if (!netns) return;
  const override = (envValue(env, 'CNI_NETNS_OVERRIDE') ?? '').toLowerCase();
  if (override === '1' || override === 'true') return;
  if (isHostNetns(netns)) {
    throw new CniError(ErrorCode.InvalidNetns, `plugin's netns and CNI_NETNS "${netns}" are the same`, 'CNI_NETNS must name the container\'s network namespace, not the one the plugin runs in (set CNI_NETNS_OVERRIDE=1 to allow it)');
  }
}

function parseAttachments(v: unknown, key: string): Attachment[] {
  if (!Array.isArray(v)) throw new CniError(ErrorCode.DecodingFailure, `error decoding "${key}"`, 'must be a list of {"containerID","ifname"}');
  return v.map((a, n) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      throw new CniError(ErrorCode.DecodingFailure, `error decoding "${key}"`, `entry ${n} must be {"containerID": string, "ifname": string}, got ${show(a)}`);
    }
    return { containerID: a.containerID, ifname: a.ifname };
  });
}

/**
 * GC's valid attachments: cni.dev/valid-attachments (spec main), else the
 * 1.1-tag name cni.dev/attachments, else [] — libcni sends neither only right
 * after it DELed every cached attachment, so "absent" means "nothing is valid".
 */
export function validAttachmentsOf(conf: Record<string, unknown>): Attachment[] {
  for (const key of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
    if (conf[key] !== undefined && conf[key] !== null) return parseAttachments(conf[key], key);
  }
  return [];
}

/** VERSION output: echo the runtime's version when we support it (SPEC), else our newest. Garbage stdin is fine. */
function versionInfo(stdin: Buffer, supported: readonly string[]): string {
  let asked: unknown;
  try {
    asked = (JSON.parse(stdin.toString('utf8')) as { cniVersion?: unknown })?.cniVersion;
  } catch { /* libcni's skel never reads stdin for VERSION; neither do we care */ }
  const cniVersion = typeof asked === 'string' && supported.includes(asked) ? asked : LATEST_VERSION;
  return `${JSON.stringify({ cniVersion, supportedVersions: [...supported] })}\n`;
}

function describe(plugin: Plugin, env: CniEnv | undefined): string {
  if (!env) return plugin.name;
  const who = env.containerId ? ` ${env.containerId}${env.ifname ? `/${env.ifname}` : ''}` : '';
  return `${plugin.name} ${env.command}${who}`;
}

export async function handleInvocation(plugin: Plugin, env: NodeJS.ProcessEnv, stdin: Buffer): Promise<InvocationOutput> {
  const ctx: FailureContext = { errorVersion: LATEST_VERSION, stderr: [], fileLines: [] };
  const supported = plugin.supportedVersions ?? SUPPORTED_VERSIONS;
  try {
    // First, so that even an error about the other variables reaches NODE_CNI_LOG_FILE (VERSION ignores it).
    let envLogProblem: unknown;
    try {
      ctx.envLogFile = checkedLogFile(envValue(env, LOG_FILE_ENV), env, LOG_FILE_ENV, ErrorCode.InvalidEnvironment);
    } catch (err) {
      envLogProblem = err;
    }
    let cniEnv = readCniEnv(env);
    ctx.cniEnv = cniEnv;
    if (cniEnv.command === 'VERSION') return { stdout: versionInfo(stdin, supported), stderr: '', exitCode: 0 };
    if (envLogProblem) throw envLogProblem;

    const raw = decodeStdin(stdin, cniEnv.command === 'DEL' ? Infinity : MAX_JSON_DEPTH);
    const confLogFile = checkedLogFile(raw.logFile, env, '"logFile"', ErrorCode.InvalidConfig);
    validateNetworkName(raw.name);
    const version = decodeConfigVersion(raw.cniVersion);
    checkVersionSupported(version, supported);
    ctx.errorVersion = version;
    checkVerbAllowed(cniEnv.command, version, supported);
    // A plugin that takes no CNI_ARGS ignores them, as the reference loopback does (its tests send CNI_ARGS=none).
    const cniArgs = plugin.knownArgs ? parseCniArgs(cniEnv.args, plugin.knownArgs) : undefined;
    checkCommonFields(raw);
    if (!plugin.ignoresNetns) cniEnv = dropGoneNetns(cniEnv, (l) => ctx.stderr.push(`${describe(plugin, cniEnv)}: ${l}\n`));
    ctx.cniEnv = cniEnv;
    checkNotOwnNetns(env, cniEnv.netns);

    const conf = { ...raw, cniVersion: version } as NetConf;
    if (raw.prevResult !== undefined && raw.prevResult !== null) conf.prevResult = parsePrevResult(raw.prevResult, version);
    else delete conf.prevResult;

    ctx.confLogFile = confLogFile;
    const log = createLogger({ tag: describe(plugin, cniEnv), stderr: (l) => ctx.stderr.push(l), fileLines: (l) => ctx.fileLines.push(l) });
    const inv: Invocation = { env: cniEnv, conf, raw: stdin, cniArgs, log };
    let stdout = '';
    switch (cniEnv.command) {
      case 'ADD': {
        const result = await plugin.add(inv);
        if (!result || typeof result !== 'object') throw new CniError(ErrorCode.Internal, `${plugin.name} ADD returned no result`);
        stdout = formatResult(result, version);
        break;
      }
      case 'DEL':
        await plugin.del(inv);
        break;
      case 'CHECK':
        if (plugin.check) await plugin.check(inv);
        break;
      case 'GC': {
        // No handler: success, like the reference skel.
        const gcInv: GcInvocation = { ...inv, validAttachments: validAttachmentsOf(raw) };
        if (plugin.gc) await plugin.gc(gcInv);
        break;
      }
      case 'STATUS':
        if (plugin.status) await plugin.status(inv);
        break;
    }
    flushLog(ctx, ctx.confLogFile ?? ctx.envLogFile);
    return { stdout, stderr: ctx.stderr.join(''), exitCode: 0 };
  } catch (thrown) {
    return failure(plugin, thrown, ctx);
  }
}

interface FailureContext {
  cniEnv?: CniEnv;
  errorVersion: string;
  /** NODE_CNI_LOG_FILE, once checked. */
  envLogFile?: string;
  /** The config's logFile, once the skel accepted the config. */
  confLogFile?: string;
  stderr: string[];
  /** Timestamped lines for the log file, written once at the end. */
  fileLines: string[];
}

function flushLog(ctx: FailureContext, file: string | undefined): void {
  if (file) writeLogFile(file, ctx.fileLines);
}

/**
 * One error object on stdout (nothing else), one human line on stderr and in
 * the log file: the config's, unless the error says the config (or the
 * environment) was refused; then only NODE_CNI_LOG_FILE's.
 */
function failure(plugin: Plugin, thrown: unknown, ctx: FailureContext): InvocationOutput {
  const err = toCniError(thrown);
  const log = createLogger({ tag: describe(plugin, ctx.cniEnv), stderr: (l) => ctx.stderr.push(l), fileLines: (l) => ctx.fileLines.push(l) });
  log.error(`${err.message} (CNI error code ${err.code})${err.details ? `: ${err.details}` : ''}`);
  if (!(thrown instanceof CniError) && thrown instanceof Error && thrown.stack) log.debug(thrown.stack);
  flushLog(ctx, (INPUT_ERRORS.has(err.code) ? undefined : ctx.confLogFile) ?? ctx.envLogFile);
  const obj = { cniVersion: ctx.errorVersion, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) };
  return { stdout: `${JSON.stringify(obj)}\n`, stderr: ctx.stderr.join(''), exitCode: 1 };
}

function finish(out: InvocationOutput): void {
  // Exit explicitly: a plugin may leave handles open (sockets, timers). Exit
  // only once stdout is written, so a pipe reader gets the whole JSON.
  const exit = () => process.exit(out.exitCode);
  if (out.stderr) writeOut(2, out.stderr, () => writeOut(1, out.stdout, exit));
  else writeOut(1, out.stdout, exit);
}

/** Failures outside handleInvocation: stderr only (the log file names are not checked yet). */
function bareContext(): FailureContext {
  return { errorVersion: LATEST_VERSION, stderr: [], fileLines: [] };
}

/** The entry point of every plugin binary: `runPlugin(plugin)` is all a main.ts contains. */
export function runPlugin(plugin: Plugin): void {
  startMain(() => runPluginNow(plugin), { cniVersions: plugin.supportedVersions ?? SUPPORTED_VERSIONS });
}

function runPluginNow(plugin: Plugin): void {
  const env = process.env;
  if (envValue(env, 'CNI_COMMAND') === undefined) {
    // Lazy: only a human running the binary by hand loads the help text.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy (start-up)
    const { runHelp } = require('./help') as typeof import('./help');
    finish(runHelp(plugin, process.argv.slice(2)));
    return;
  }
  // VERSION never needs stdin, and a TTY would block: read it only when it is piped or a file.
  const skipStdin = env.CNI_COMMAND === 'VERSION' && stdinIsTerminal();
  (skipStdin ? Promise.resolve(Buffer.alloc(0)) : readStdin(MAX_STDIN_BYTES))
    .then(
      (stdin) => handleInvocation(plugin, env, stdin),
      (err: Error) => failure(plugin, new CniError(ErrorCode.IoFailure, 'error reading from stdin', err.message), bareContext()),
    )
    .then(finish, (err: unknown) => finish(failure(plugin, err, bareContext())));
}
