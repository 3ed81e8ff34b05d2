// Network sysctls (/proc/sys/net/...), read and written with synchronous fs so
// they can run inside Netns.run: /proc/sys/net shows the values of the
// namespace the *calling thread* is in, and only the main thread switches.
import * as fs from 'fs';
import * as path from 'path';
import type { Netns } from '../netns';

const ROOT = '/proc/sys';

/**
 * "net/ipv4/ip_forward", "net.ipv4.ip_forward" or "/proc/sys/net/ipv4/ip_forward"
 * -> "/proc/sys/net/ipv4/ip_forward". Only keys under net/ are accepted.
 * In the dotted form an interface name may not contain dots (use slashes then),
 * like sysctl(8).
 */
export function sysctlPath(key: string): string {
  let k = key.trim();
  if (k.startsWith(`${ROOT}/`)) k = k.slice(ROOT.length + 1);
  if (!k.includes('/')) k = k.replace(/\./g, '/');
  const parts = k.split('/');
  if (parts.length < 2 || parts[0] !== 'net' || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
    throw new Error(`invalid sysctl key "${key}": it must name a file under ${ROOT}/net`);
  }
  const full = path.join(ROOT, ...parts);
  if (!full.startsWith(`${ROOT}/net/`)) throw new Error(`invalid sysctl key "${key}"`);
  return full;
}

function inNs<T>(netns: Netns | undefined, fn: () => T): T {
  return netns ? netns.run(fn) : fn();
}

export interface SysctlOptions {
  /**
   * Skip a key that does not exist (ENOENT) instead of failing: the
   * net/ipv6/... keys are absent when IPv6 is disabled in the namespace.
   */
  ignoreMissing?: boolean;
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

/** A failed sysctl read or write; `code` is the errno name (ENOENT: no such key here, EACCES/EPERM: read-only). */
export class SysctlError extends Error {
  constructor(msg: string, readonly code: string) {
    super(msg);
    this.name = 'SysctlError';
  }
}

export function readSysctl(key: string, netns?: Netns): string {
  const file = sysctlPath(key);
  try {
    return inNs(netns, () => fs.readFileSync(file, 'utf8')).trim();
  } catch (err) {
    throw new SysctlError(`reading sysctl ${file}${netns ? ` in "${netns.path}"` : ''}: ${codeOf(err)}`, codeOf(err));
  }
}

/** The value, or undefined when the key does not exist (IPv6 disabled, interface gone). */
export function readSysctlIfExists(key: string, netns?: Netns): string | undefined {
  const file = sysctlPath(key);
  try {
    return inNs(netns, () => fs.readFileSync(file, 'utf8')).trim();
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return undefined;
    throw new SysctlError(`reading sysctl ${file}${netns ? ` in "${netns.path}"` : ''}: ${codeOf(err)}`, codeOf(err));
  }
}

/** The entries of a sysctl directory ("net/ipv6/conf": all, default and an entry per interface); [] when it does not exist. */
export function listSysctl(key: string, netns?: Netns): string[] {
  const dir = sysctlPath(key);
  try {
    return inNs(netns, () => fs.readdirSync(dir));
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return [];
    throw new SysctlError(`listing sysctl ${dir}${netns ? ` in "${netns.path}"` : ''}: ${codeOf(err)}`, codeOf(err));
  }
}

export function writeSysctl(key: string, value: string | number, netns?: Netns, o: SysctlOptions = {}): void {
  const file = sysctlPath(key);
  try {
    inNs(netns, () => fs.writeFileSync(file, String(value)));
  } catch (err) {
    if (o.ignoreMissing && codeOf(err) === 'ENOENT') return;
    throw new SysctlError(`writing ${value} to sysctl ${file}${netns ? ` in "${netns.path}"` : ''}: ${codeOf(err)}`, codeOf(err));
  }
}

/** Write only when different (saves a write, and works where the value is read-only but already right). */
export function ensureSysctl(key: string, value: string | number, netns?: Netns, o: SysctlOptions = {}): void {
  const cur = o.ignoreMissing ? readSysctlIfExists(key, netns) : readSysctl(key, netns);
  if (cur === undefined) return;
  if (cur !== String(value)) writeSysctl(key, value, netns, o);
}
