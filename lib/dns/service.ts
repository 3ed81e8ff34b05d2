// The per-network DNS service: one dnsmasq per network, bound to the
// network's gateway addresses, answering the names of the network's
// containers from one hosts file per attachment (dnsmasq's hostsdir watches
// the directory: files added, changed or removed take effect without a
// signal), forwarding other names upstream.
//
//   <runDir>/<network>.lock          flock: start/stop/membership changes
//   <runDir>/<network>/dnsmasq.conf  the whole configuration
//   <runDir>/<network>/dnsmasq.pid
//   <runDir>/<network>/guard.json    the nft guard elements to remove at stop
//   <runDir>/<network>/hosts.d/<attachment key>   (lib/util/attachment-key.ts; older releases: <containerId>.<ifname>)
//
// The first registration starts the daemon, the last unregistration (or GC)
// stops it and removes the directory, the lock and (with the last network's
// service) the guard's table. Registration finds a dead daemon and
// starts it again. Called from lib/bridge/apply.ts and detach.ts (bridge plugin; the
// overlay can opt in the same way).

import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode } from '../cni/errors';
import { applyDnsGuardAdd, applyDnsGuardDel, dnsGuardIntact, removeDnsGuardIfUnused, type DnsGuard } from '../firewall/isolation-dns';
import type { NameResolutionConfig } from './config';
import { runningDaemon, startDaemon, stopDaemon } from './daemon';
import { withFileLock, type HeldLock } from '../sys/lock';
import { hostsFileName, legacyHostsFileName, renderDnsmasqConf, renderHostsFile } from './render';
import { ensureSafeDir, writeFileAtomic } from '../util/fs';

export interface NameServiceScope {
  network: string;
  config: NameResolutionConfig;
}

export interface NameRegistration extends NameServiceScope {
  /** The bridge whose gateway addresses the daemon listens on. */
  bridge: string;
  containerId: string;
  ifname: string;
  /** The container's names on this network (may be empty: it still keeps the service up). */
  names: readonly string[];
  /** The container's addresses, without prefix. */
  addresses: readonly string[];
  /** Gateway addresses on the bridge, without prefix: where the daemon listens. */
  listen: readonly string[];
}

export interface ServicePaths {
  lock: string;
  dir: string;
  hostsDir: string;
  confFile: string;
  pidFile: string;
  guardFile: string;
}

export function servicePaths(s: NameServiceScope): ServicePaths {
  const dir = path.join(s.config.runDir, s.network);
  return {
    lock: path.join(s.config.runDir, `${s.network}.lock`),
    dir,
    hostsDir: path.join(dir, 'hosts.d'),
    confFile: path.join(dir, 'dnsmasq.conf'),
    pidFile: path.join(dir, 'dnsmasq.pid'),
    guardFile: path.join(dir, 'guard.json'),
  };
}

/** dnsmasq drops to user nobody before it reads hosts.d: every directory above it must be searchable by others. */
function requireSearchable(dir: string, runDir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    const st = fs.statSync(d);
    if ((st.mode & 0o001) === 0) {
      throw new CniError(ErrorCode.InvalidConfig, `bridge: "nameResolution.runDir" ${runDir}: directory "${d}" is not searchable by others, and dnsmasq (running as nobody) must read ${path.join(dir, 'hosts.d')}`);
    }
    if (d === path.dirname(d)) return;
  }
}

/** A directory dnsmasq (nobody) must read: created safely (lib/util/fs.ts), 0755 whatever the umask. */
function mkdirShared(dir: string): void {
  ensureSafeDir(dir, { mode: 0o755 });
}

function writeShared(file: string, text: string): void {
  // Its temporary file is a dotfile, which dnsmasq's hostsdir ignores: dnsmasq only ever sees the renamed, complete file.
  writeFileAtomic(file, text, { mode: 0o644 });
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The attachment's hosts file, and the name an older release gave it (removed too; never written). */
function hostsFilesOf(p: ServicePaths, network: string, containerId: string, ifname: string): { current: string; legacy: string } {
  return {
    current: path.join(p.hostsDir, hostsFileName({ network, containerId, ifname })),
    legacy: path.join(p.hostsDir, legacyHostsFileName(containerId, ifname)),
  };
}

function removeHostsFiles(p: ServicePaths, network: string, containerId: string, ifname: string): void {
  const f = hostsFilesOf(p, network, containerId, ifname);
  fs.rmSync(f.current, { force: true });
  try {
    fs.rmSync(f.legacy, { force: true });
  } catch { /* a long container ID never had a legacy file (ENAMETOOLONG) */ }
}

/**
 * The resolver file dnsmasq will read must be a regular file when it exists
 * (a FIFO or /dev/zero would hang or spin the daemon); it may appear later.
 */
function requireResolverFile(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return;
  }
  if (!st.isFile()) throw new CniError(ErrorCode.InvalidConfig, `bridge: "nameResolution.resolvConf" "${file}" is not a regular file`);
}

function members(hostsDir: string): string[] {
  try {
    return fs.readdirSync(hostsDir).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
}

function readGuard(p: ServicePaths): DnsGuard | undefined {
  const text = readText(p.guardFile);
  try {
    return text ? (JSON.parse(text) as DnsGuard) : undefined;
  } catch {
    return undefined;
  }
}

/** The last member is gone: the daemon, its guard (and the guard's table if no other network has one), its directory and lock go. */
async function shutDown(p: ServicePaths, lock: HeldLock): Promise<void> {
  stopDaemon(p.pidFile, p.confFile);
  const guard = readGuard(p);
  if (guard) applyDnsGuardDel(guard);
  await removeDnsGuardIfUnused();
  fs.rmSync(p.dir, { recursive: true, force: true });
  lock.removeOnRelease();
}

/** Start the daemon (with its nft guard) unless it runs with exactly this configuration (a changed one restarts it). Returns whether it started one. */
function ensureDaemon(s: NameServiceScope, p: ServicePaths, conf: string, guard: DnsGuard): boolean {
  const pid = runningDaemon(p.pidFile, p.confFile);
  if (pid !== undefined && readText(p.confFile) === conf) return false;
  if (pid !== undefined) stopDaemon(p.pidFile, p.confFile);
  const old = readGuard(p);
  if (old && JSON.stringify(old) !== JSON.stringify(guard)) applyDnsGuardDel(old);
  // The guard goes in before the daemon answers anything.
  writeShared(p.guardFile, JSON.stringify(guard));
  applyDnsGuardAdd(guard);
  writeShared(p.confFile, conf);
  startDaemon({ confFile: p.confFile, pidFile: p.pidFile, network: s.network });
  return true;
}

/**
 * Add (or replace) this attachment's names, starting the network's daemon
 * if none is running. Returns whether a daemon was started.
 */
export async function registerNames(r: NameRegistration): Promise<{ started: boolean }> {
  if (r.listen.length === 0) {
    throw new CniError(ErrorCode.InvalidConfig, `bridge: "nameResolution" of network "${r.network}" needs a gateway address on the bridge to listen on (set "isGateway")`);
  }
  const p = servicePaths(r);
  // Everything that can be refused is refused before a file is written.
  const hosts = renderHostsFile(r.addresses, r.names, { network: r.network, containerId: r.containerId, ifname: r.ifname });
  const conf = renderDnsmasqConf({
    network: r.network, listen: r.listen, domain: r.config.domain, hostsDir: p.hostsDir, pidFile: p.pidFile,
    upstream: r.config.upstream, resolvConf: r.config.resolvConf,
  });
  if (r.config.upstream.length === 0) requireResolverFile(r.config.resolvConf);
  mkdirShared(r.config.runDir);
  return withFileLock(p.lock, async (lock) => {
    mkdirShared(p.dir);
    mkdirShared(p.hostsDir);
    requireSearchable(p.dir, r.config.runDir);
    const file = hostsFilesOf(p, r.network, r.containerId, r.ifname).current;
    writeShared(file, hosts);
    const guard = { bridge: r.bridge, addresses: r.listen };
    try {
      const started = ensureDaemon(r, p, conf, guard);
      // A running service's guard is checked, not trusted: re-stated if its rules are not ours.
      if (!started && !(await dnsGuardIntact())) applyDnsGuardAdd(guard);
      return { started };
    } catch (err) {
      // Do not leave a member file behind that would keep a dead service "in use".
      fs.rmSync(file, { force: true });
      if (members(p.hostsDir).length === 0) await shutDown(p, lock);
      throw err;
    }
  }, 0o755);
}

/** Remove this attachment's names; the last one stops the daemon. Idempotent. Returns whether the daemon was stopped. */
export async function unregisterNames(s: NameServiceScope & { containerId: string; ifname: string }): Promise<{ stopped: boolean }> {
  const p = servicePaths(s);
  if (!fs.existsSync(p.dir)) return { stopped: false };
  return withFileLock(p.lock, async (lock) => {
    removeHostsFiles(p, s.network, s.containerId, s.ifname);
    if (members(p.hostsDir).length > 0) return { stopped: false };
    await shutDown(p, lock);
    return { stopped: true };
  }, 0o755);
}

/**
 * GC: drop the names of attachments that are not valid; stop the daemon when
 * none is left, start it again when some are left and it died.
 */
export async function gcNames(s: NameServiceScope, valid: ReadonlyArray<{ containerID: string; ifname: string }>): Promise<string[]> {
  const p = servicePaths(s);
  if (!fs.existsSync(p.dir)) return [];
  const keep = new Set(valid.flatMap((a) => {
    const f = hostsFilesOf(p, s.network, a.containerID, a.ifname);
    return [path.basename(f.current), path.basename(f.legacy)];
  }));
  return withFileLock(p.lock, async (lock) => {
    const stale = members(p.hostsDir).filter((n) => !keep.has(n));
    for (const n of stale) fs.rmSync(path.join(p.hostsDir, n), { force: true });
    if (members(p.hostsDir).length === 0) {
      await shutDown(p, lock);
    } else if (runningDaemon(p.pidFile, p.confFile) === undefined && fs.existsSync(p.confFile)) {
      const guard = readGuard(p);
      if (guard) applyDnsGuardAdd(guard);
      startDaemon({ confFile: p.confFile, pidFile: p.pidFile, network: s.network });
    }
    return stale;
  }, 0o755);
}

/** CHECK: the daemon runs and this attachment's names are registered. */
export function checkNames(s: NameServiceScope & { containerId: string; ifname: string }): void {
  const p = servicePaths(s);
  if (runningDaemon(p.pidFile, p.confFile) === undefined) throw new CniError(ErrorCode.Internal, `bridge CHECK: the DNS service of network "${s.network}" is not running`);
  const f = hostsFilesOf(p, s.network, s.containerId, s.ifname);
  if (!fs.existsSync(f.current) && !fs.existsSync(f.legacy)) {
    throw new CniError(ErrorCode.Internal, `bridge CHECK: ${s.containerId}/${s.ifname} is not registered with the DNS service of network "${s.network}"`);
  }
}

/** The running daemon's pid (tests, diagnostics). */
export function serviceDaemonPid(s: NameServiceScope): number | undefined {
  const p = servicePaths(s);
  return runningDaemon(p.pidFile, p.confFile);
}
