// The dnsmasq process of one network: started detached (dnsmasq forks, calls
// setsid and reports start-up errors to its parent before the parent exits,
// so a synchronous spawn returns once the sockets are bound), found again
// through its pid file, stopped with SIGTERM.

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { CniError, ErrorCode } from '../cni/errors';

const START_TIMEOUT_MS = 10000;
const STOP_WAIT_MS = 3000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = parseInt(fs.readFileSync(pidFile, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Live (not a zombie), started with this conf file and in our network
 * namespace: neither a recycled pid nor a daemon left in a namespace that was
 * torn down without DEL (it would hold the pid file but serve nobody) counts.
 */
function isOurDaemon(pid: number, confFile: string): boolean {
  try {
    if (fs.statSync(`/proc/${pid}/ns/net`).ino !== fs.statSync('/proc/self/ns/net').ino) return false;
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes(`--conf-file=${confFile}`);
  } catch {
    return false;
  }
}

/** The daemon's pid when it is running, else undefined. */
export function runningDaemon(pidFile: string, confFile: string): number | undefined {
  const pid = readPid(pidFile);
  return pid !== undefined && isOurDaemon(pid, confFile) ? pid : undefined;
}

/** Start dnsmasq with this conf file; returns its pid. Throws with dnsmasq's own message on failure. */
export function startDaemon(o: { dnsmasq: string; confFile: string; pidFile: string; network: string }): number {
  fs.rmSync(o.pidFile, { force: true });
  const r = spawnSync(o.dnsmasq, [`--conf-file=${o.confFile}`], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: START_TIMEOUT_MS });
  if (r.error) throw new CniError(ErrorCode.Internal, `bridge: failed to start the DNS service of network "${o.network}" (${o.dnsmasq}): ${r.error.message}`);
  if (r.status !== 0) {
    throw new CniError(ErrorCode.Internal, `bridge: the DNS service of network "${o.network}" did not start: ${(r.stderr || `${o.dnsmasq} exited with ${r.status}`).trim()}`);
  }
  const pid = runningDaemon(o.pidFile, o.confFile);
  if (pid === undefined) throw new CniError(ErrorCode.Internal, `bridge: the DNS service of network "${o.network}" exited right after starting`);
  return pid;
}

/** SIGTERM, wait for it to go, SIGKILL if it does not. Idempotent. */
export function stopDaemon(pidFile: string, confFile: string): void {
  const pid = runningDaemon(pidFile, confFile);
  if (pid !== undefined) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
    const deadline = Date.now() + STOP_WAIT_MS;
    while (isOurDaemon(pid, confFile) && Date.now() < deadline) sleepSync(10);
    if (isOurDaemon(pid, confFile)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  fs.rmSync(pidFile, { force: true });
}
