// Running another CNI plugin binary (CONFORMANCE §6): find it by type in
// CNI_PATH, exec it with the CNI_* env and a stdin, relay its stderr, and read
// its stdout: a result on success, the error object on failure (passed up
// unchanged). Used for IPAM delegation (lib/cni/ipam) and by the conflist
// runner (lib/cni/conflist, cnictl).

import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode } from './errors';
import type { CniEnv, Result, Verb } from './types';
import { parseResult } from './version';

/** The delegate could not be found or started (as opposed to: it ran and failed). */
export class PluginUnavailableError extends CniError {}

/** Plugin types are file names, never paths (SPEC: "type" has no path separators). */
export function validatePluginType(type: unknown, field = 'type'): string {
  if (typeof type !== 'string' || type === '') throw new CniError(ErrorCode.InvalidConfig, `missing "${field}"`, `"${field}" must name a plugin binary`);
  if (type.includes('/') || type === '.' || type === '..' || type.includes('\0')) {
    throw new CniError(ErrorCode.InvalidConfig, `invalid plugin ${field} ${JSON.stringify(type)}`, `"${field}" must be a file name in CNI_PATH, not a path`);
  }
  return type;
}

/** The first regular file <dir>/<type> in CNI_PATH order (Go invoke.FindInPath). */
export function findInPath(type: string, cniPath: readonly string[]): string {
  validatePluginType(type);
  if (cniPath.length === 0) {
    throw new PluginUnavailableError(ErrorCode.InvalidEnvironment, 'required env variables [CNI_PATH] missing', `CNI_PATH is needed to find the "${type}" plugin`);
  }
  for (const dir of cniPath) {
    const candidate = path.join(dir, type);
    try {
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch { /* not here */ }
  }
  throw new PluginUnavailableError(ErrorCode.InvalidConfig, `failed to find plugin "${type}" in path [${cniPath.join(' ')}]`);
}

/** The CNI_* variables for a child, from a parsed env; unset ones become "" so nothing leaks in from our own env. */
export function cniEnvVars(env: CniEnv, command: Verb): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: env.containerId ?? '',
    CNI_NETNS: env.netns ?? '',
    CNI_IFNAME: env.ifname ?? '',
    CNI_ARGS: env.args ?? '',
    CNI_PATH: env.path.join(':'),
  };
}

export interface ExecRequest {
  /** Absolute path of the binary. */
  pluginPath: string;
  /** The complete child environment (CNI_* included). */
  env: NodeJS.ProcessEnv;
  stdin: Buffer;
  /** Kill the child after this long (default: no limit; the runtime owns timeouts). */
  timeoutMs?: number;
  /** Where the child's stderr goes (default: our stderr, as the SPEC asks). */
  onStderr?: (chunk: Buffer) => void;
}

/** Keep only the tail of stderr, for error messages. */
const STDERR_TAIL = 4096;

/**
 * Run a plugin binary. Resolves with its stdout on exit 0. On failure rejects
 * with the plugin's own error object as a CniError (unchanged), or a 999 that
 * says what happened when stdout holds no error object.
 */
export function execPlugin(req: ExecRequest): Promise<string> {
  const name = path.basename(req.pluginPath);
  return new Promise((resolve, reject) => {
    const child = spawn(req.pluginPath, [], { env: req.env, stdio: ['pipe', 'pipe', 'pipe'], timeout: req.timeoutMs });
    const out: Buffer[] = [];
    let errTail = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      (req.onStderr ?? ((b: Buffer) => process.stderr.write(b)))(c);
      errTail = (errTail + c.toString('utf8')).slice(-STDERR_TAIL);
    });
    child.stdin.on('error', () => { /* the child may exit without reading stdin (e.g. VERSION) */ });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(new PluginUnavailableError(ErrorCode.Internal, `failed to run plugin "${name}": ${err.code ?? err.message}`, `${req.pluginPath}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) return resolve(stdout);
      const fromPlugin = parseErrorObject(stdout);
      if (fromPlugin) return reject(fromPlugin);
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const text = (stdout.trim() || errTail.trim()).slice(-STDERR_TAIL);
      reject(new CniError(ErrorCode.Internal, `plugin "${name}" ${how}`, text || undefined));
    });
    child.stdin.end(req.stdin);
  });
}

/** A plugin's error object ({code, msg, details?}) from its stdout, or undefined. */
export function parseErrorObject(stdout: string): CniError | undefined {
  try {
    const obj = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (obj && typeof obj.code === 'number' && typeof obj.msg === 'string') {
      return CniError.fromObject({ code: obj.code, msg: obj.msg, details: typeof obj.details === 'string' ? obj.details : undefined });
    }
  } catch { /* not JSON */ }
  return undefined;
}

/** Parse an ADD result from stdout into the 1.x shape; no cniVersion → `confVersion` (libcni fixupResultVersion). */
export function parseResultStdout(stdout: string, confVersion: string, pluginName: string): Result {
  if (stdout.trim() === '') throw new CniError(ErrorCode.DecodingFailure, `plugin "${pluginName}" printed no result`, 'ADD succeeded with empty stdout');
  let obj: unknown;
  try {
    obj = JSON.parse(stdout);
  } catch (err) {
    throw new CniError(ErrorCode.DecodingFailure, `failed to decode the result of plugin "${pluginName}"`, (err as Error).message);
  }
  return parseResult(obj, confVersion);
}

export interface DelegateRequest {
  type: string;
  verb: Verb;
  /** The parsed env of the calling plugin; only CNI_COMMAND changes. */
  env: CniEnv;
  /** The caller's stdin, byte for byte (the whole request config). */
  stdin: Buffer;
  confVersion: string;
  timeoutMs?: number;
}

/** Exec a delegate by type from CNI_PATH with the caller's env (CNI_COMMAND = verb) and stdin. ADD resolves with the 1.x result. */
export async function execDelegate(req: DelegateRequest): Promise<Result | undefined> {
  const pluginPath = findInPath(req.type, req.env.path);
  const stdout = await execPlugin({
    pluginPath,
    env: { ...process.env, ...cniEnvVars(req.env, req.verb) },
    stdin: req.stdin,
    timeoutMs: req.timeoutMs,
  });
  return req.verb === 'ADD' ? parseResultStdout(stdout, req.confVersion, req.type) : undefined;
}
