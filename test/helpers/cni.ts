// Run a built plugin the way a runtime does: CNI_* env, the config on stdin,
// inside a throwaway "host" namespace; the result parsed when it is JSON.
import * as path from 'path';
import { DIST_BIN, Sandbox } from './sandbox';

export interface CniRun {
  status: number | null;
  stdout: string;
  stderr: string;
  json?: any;
}

export interface CniCall {
  command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
  containerId?: string;
  /** CNI_NETNS; '' or undefined sends it empty, as nerdctl and ctr do on DEL. */
  netns?: string;
  ifname?: string;
  args?: string;
}

export function runCni(sb: Sandbox, hostNs: string, plugin: string, call: CniCall, conf: unknown, o: { bin?: string; wrap?: string[] } = {}): CniRun {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, CNI_PATH: DIST_BIN, CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId ?? '', CNI_NETNS: call.netns ?? '', CNI_IFNAME: call.ifname ?? (call.command === 'GC' || call.command === 'STATUS' ? '' : 'eth0'),
    ...(call.args !== undefined ? { CNI_ARGS: call.args } : {}),
  };
  const bin = o.bin ?? path.join(DIST_BIN, plugin);
  const r = o.wrap
    ? sb.inNs(hostNs, o.wrap[0], [...o.wrap.slice(1), bin], { input: JSON.stringify(conf), env, timeout: 60000 })
    : sb.inNs(hostNs, bin, [], { input: JSON.stringify(conf), env, timeout: 60000 });
  let json: any;
  try { json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined; } catch { /* not JSON */ }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json };
}
