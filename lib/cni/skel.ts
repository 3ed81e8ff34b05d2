// The skel: the only code that reads the CNI_* environment and stdin, prints
// to stdout and exits. handleInvocation() is the pure-ish core (env + stdin in,
// stdout/stderr/exit code out) that the unit tests drive; runPlugin() wires it
// to the process. Order of checks (CONFORMANCE §1–§4, §8):
//   CNI_COMMAND → VERSION (validates nothing) → required env (one code-4 error)
//   → container ID / ifname → stdin JSON (5/6) → name (7) → cniVersion (6/1)
//   → verb allowed for that version (1) → CNI_ARGS (4) → own netns (8)
//   → prevResult to 1.x → handler → result converted to the config version.

import { CniError, ErrorCode, toCniError } from './errors';
import { parseCniArgs } from './args';
import { envValue, readCniEnv, validateNetworkName } from './env';
import type { GcInvocation, Plugin } from './plugin';
import type { Attachment, CniEnv, Invocation, NetConf, Verb } from './types';
import { LATEST_VERSION, SUPPORTED_VERSIONS, formatResult, parsePrevResult, versionAtLeast } from './version';
import { isHostNetns } from '../netns';
import { createLogger } from '../util/log';
import { startMain } from '../util/main';
import { readStdin, stdinIsTerminal, writeOut } from './stdio';

export interface InvocationOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Env var naming a log file for every plugin of this project (the config key "logFile" wins). */
export const LOG_FILE_ENV = 'NODE_CNI_LOG_FILE';

/** Minimum config version per verb (CONFORMANCE §3.1). */
const MIN_VERSION: Partial<Record<Verb, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** stdin → the config object. Empty or non-JSON or not an object → 6; JSON null → {} (then "missing network name", like Go). */
export function decodeStdin(stdin: Buffer): Record<string, unknown> {
  const text = stdin.toString('utf8');
  if (text.trim() === '') throw new CniError(ErrorCode.DecodingFailure, 'error unmarshalling network config', 'stdin is empty');
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
  if (typeof v !== 'string') throw new CniError(ErrorCode.DecodingFailure, 'error decoding cniVersion', `"cniVersion" must be a string, got ${JSON.stringify(v)}`);
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
      throw new CniError(ErrorCode.DecodingFailure, `error decoding "${key}"`, `entry ${n} must be {"containerID": string, "ifname": string}, got ${JSON.stringify(a)}`);
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
  const stderr: string[] = [];
  let logFile = envValue(env, LOG_FILE_ENV);
  let cniEnv: CniEnv | undefined;
  let errorVersion = LATEST_VERSION; // the version an error object claims until we know the config's
  const supported = plugin.supportedVersions ?? SUPPORTED_VERSIONS;
  try {
    cniEnv = readCniEnv(env);
    if (cniEnv.command === 'VERSION') return { stdout: versionInfo(stdin, supported), stderr: '', exitCode: 0 };

    const raw = decodeStdin(stdin);
    if (typeof raw.logFile === 'string' && raw.logFile) logFile = raw.logFile;
    validateNetworkName(raw.name);
    const version = decodeConfigVersion(raw.cniVersion);
    checkVersionSupported(version, supported);
    errorVersion = version;
    checkVerbAllowed(cniEnv.command, version, supported);
    const cniArgs = parseCniArgs(cniEnv.args, plugin.knownArgs);
    checkNotOwnNetns(env, cniEnv.netns);

    const conf = { ...raw, cniVersion: version } as NetConf;
    if (raw.prevResult !== undefined && raw.prevResult !== null) conf.prevResult = parsePrevResult(raw.prevResult, version);
    else delete conf.prevResult;

    const log = createLogger({ tag: describe(plugin, cniEnv), stderr: (l) => stderr.push(l), file: logFile });
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
    return { stdout, stderr: stderr.join(''), exitCode: 0 };
  } catch (thrown) {
    return failure(plugin, thrown, { cniEnv, errorVersion, logFile, stderr });
  }
}

interface FailureContext {
  cniEnv?: CniEnv;
  errorVersion: string;
  logFile?: string;
  stderr: string[];
}

/** One error object on stdout (nothing else), one human line on stderr and in the log file. */
function failure(plugin: Plugin, thrown: unknown, ctx: FailureContext): InvocationOutput {
  const err = toCniError(thrown);
  const log = createLogger({ tag: describe(plugin, ctx.cniEnv), stderr: (l) => ctx.stderr.push(l), file: ctx.logFile });
  log.error(`${err.message} (CNI error code ${err.code})${err.details ? `: ${err.details}` : ''}`);
  if (!(thrown instanceof CniError) && thrown instanceof Error && thrown.stack) log.debug(thrown.stack);
  const obj = { cniVersion: ctx.errorVersion, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) };
  return { stdout: `${JSON.stringify(obj)}\n`, stderr: ctx.stderr.join(''), exitCode: 1 };
}

/** Read all of stdin (async: works for pipes, files and non-blocking fds). */
function finish(out: InvocationOutput): void {
  // Exit explicitly: a plugin may leave handles open (sockets, timers). Exit
  // only once stdout is written, so a pipe reader gets the whole JSON.
  const exit = () => process.exit(out.exitCode);
  if (out.stderr) writeOut(2, out.stderr, () => writeOut(1, out.stdout, exit));
  else writeOut(1, out.stdout, exit);
}

/** The entry point of every plugin binary: `runPlugin(plugin)` is all a main.ts contains. */
export function runPlugin(plugin: Plugin): void {
  startMain(() => runPluginNow(plugin), { cniVersions: plugin.supportedVersions ?? SUPPORTED_VERSIONS });
}

function runPluginNow(plugin: Plugin): void {
  const env = process.env;
  if (envValue(env, 'CNI_COMMAND') === undefined) {
    // Lazy: only a human running the binary by hand pays for yargs.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { runHelp } = require('./help') as typeof import('./help');
    const out = runHelp(plugin, process.argv.slice(2));
    finish(out);
    return;
  }
  // VERSION never needs stdin, and a TTY would block: read it only when it is piped or a file.
  const skipStdin = env.CNI_COMMAND === 'VERSION' && stdinIsTerminal();
  (skipStdin ? Promise.resolve(Buffer.alloc(0)) : readStdin())
    .then(
      (stdin) => handleInvocation(plugin, env, stdin),
      (err: Error) => failure(plugin, new CniError(ErrorCode.IoFailure, 'error reading from stdin', err.message), { errorVersion: LATEST_VERSION, logFile: envValue(env, LOG_FILE_ENV), stderr: [] }),
    )
    .then(finish, (err: unknown) => finish(failure(plugin, err, { errorVersion: LATEST_VERSION, logFile: envValue(env, LOG_FILE_ENV), stderr: [] })));
}
