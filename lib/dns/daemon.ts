// The dnsmasq process of one network: started detached (dnsmasq forks, calls
// setsid and reports start-up errors to its parent before the parent exits,
// so a synchronous spawn returns once the sockets are bound), found again
// through its pid file, stopped with SIGTERM.

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode } from '../cni/errors';
import { DNSMASQ_LOCATIONS } from './config';

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

/** Root-owned and writable by nobody else, and so is every directory above it. */
function rootOnly(file: string): boolean {
  try {
    for (let p = fs.realpathSync(file); ; p = path.dirname(p)) {
      const st = fs.statSync(p);
      if (st.uid !== 0 || (st.mode & 0o022) !== 0) return false;
      if (p === path.dirname(p)) return true;
    }
  } catch {
    return false;
  }
}

/** The dnsmasq executable: the first of the fixed system locations that is a root-owned regular file (never a config's choice). */
export function findDnsmasq(locations: readonly string[] = DNSMASQ_LOCATIONS): string {
  for (const file of locations) {
    try {
      if (fs.statSync(file).isFile() && rootOnly(file)) return file;
    } catch { /* not here */ }
  }
  throw new CniError(ErrorCode.Internal, `the DNS service needs dnsmasq, found at none of ${locations.join(', ')} (as a root-owned file): install dnsmasq-base`);
}

/** Start dnsmasq with this conf file; returns its pid. Throws with dnsmasq's own message on failure. */
export function startDaemon(o: { confFile: string; pidFile: string; network: string }): number {
  fs.rmSync(o.pidFile, { force: true });
  const dnsmasq = findDnsmasq();
  // Only our conf file: no environment of the runtime reaches the daemon.
  const r = spawnSync(dnsmasq, [`--conf-file=${o.confFile}`], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: START_TIMEOUT_MS, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  if (r.error) throw new CniError(ErrorCode.Internal, `bridge: failed to start the DNS service of network "${o.network}" (${dnsmasq}): ${r.error.message}`);
  if (r.status !== 0) {
    throw new CniError(ErrorCode.Internal, `bridge: the DNS service of network "${o.network}" did not start: ${(r.stderr || `${dnsmasq} exited with ${r.status}`).trim()}`);
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
