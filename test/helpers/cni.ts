// Run a plugin the way a runtime does: CNI_* env (and PATH, nothing else of
// ours), the config on stdin, inside a throwaway "host" namespace; the result
// parsed when it is JSON. Every e2e test invokes plugins through this.
import * as path from 'path';
import { spawnSync } from 'child_process';
import { DIST_BIN } from './sandbox';

export interface CniRun {
  status: number | null;
  stdout: string;
  stderr: string;
  json?: any;
  /** stdout then stderr, for failure messages. */
  out: string;
  /** Wall time of the run. */
  ms: number;
}

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION' | string;
  /** CNI_CONTAINERID; default empty. */
  containerId?: string;
  /** CNI_NETNS; '' or undefined sends it empty, as nerdctl and ctr do on DEL. */
  netns?: string;
  /** CNI_IFNAME; default "eth0", empty for GC and STATUS. */
  ifname?: string;
  /** CNI_ARGS, sent only when given. */
  args?: string;
  /** CNI_PATH; default dist/bin. */
  path?: string;
}

/** The environment a runtime gives a plugin for `call`. */
export function cniEnv(call: CniCall): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH, CNI_PATH: call.path ?? DIST_BIN, CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId ?? '', CNI_NETNS: call.netns ?? '', CNI_IFNAME: call.ifname ?? (call.command === 'GC' || call.command === 'STATUS' ? '' : 'eth0'),
    ...(call.args !== undefined ? { CNI_ARGS: call.args } : {}),
  };
}

export interface ExecOptions {
  /** Run the plugin through this command line (e.g. strace), the plugin last. */
  wrap?: string[];
  /** Default 120 s. */
  timeout?: number;
  /** Exactly this environment (PATH added, undefined values left out) instead of cniEnv(call): for tests of what a runtime must not send. */
  rawEnv?: Record<string, string | undefined>;
  cwd?: string;
}

/** Run `bin` in host namespace `hostNs` with `stdin` (an object is sent as JSON, a string as it is). */
export function execCni(hostNs: string, bin: string, call: CniCall, stdin: unknown, o: ExecOptions = {}): CniRun {
  let env = cniEnv(call);
  if (o.rawEnv) {
    env = { PATH: process.env.PATH };
    for (const [k, v] of Object.entries(o.rawEnv)) if (v !== undefined) env[k] = v;
  }
  const argv = [...(o.wrap ?? []), bin];
  const t0 = Date.now();
  const r = spawnSync('ip', ['netns', 'exec', hostNs, ...argv], {
    input: typeof stdin === 'string' ? stdin : JSON.stringify(stdin), env, encoding: 'utf8', cwd: o.cwd, timeout: o.timeout ?? 120_000, maxBuffer: 64 * 1024 * 1024,
  });
  const ms = Date.now() - t0;
  let json: any;
  try { json = r.stdout?.trim() ? JSON.parse(r.stdout) : undefined; } catch { /* not JSON */ }
  const stdout = r.stdout ?? '';
  const stderr = r.stderr ?? '';
  return { status: r.status, stdout, stderr, json, out: `${stdout}${stderr}`, ms };
}

/** `plugin` of dist/bin (or `o.bin`) in `hostNs`. */
export function runCni(hostNs: string, plugin: string, call: CniCall, conf: unknown, o: ExecOptions & { bin?: string } = {}): CniRun {
  return execCni(hostNs, o.bin ?? path.join(DIST_BIN, plugin), call, conf, { timeout: 60_000, ...o });
}
