// Throwaway network namespaces, links and temp dirs for kernel and e2e tests.
// Every name carries a per-process unique prefix, and everything is removed in
// cleanup() (call it from afterAll/afterEach; it also runs on failure).
import { execFileSync, spawnSync, SpawnSyncReturns } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Netns } from '../../lib/netns';

export const ROOT = path.resolve(__dirname, '..', '..');
export const DIST_BIN = path.join(ROOT, 'dist', 'bin');
export const REFERENCE_BIN = '/usr/lib/cni';

/** A short unique tag: interface names have only 15 bytes. */
export function uniqueTag(prefix: string): string {
  return `${prefix}${crypto.randomBytes(3).toString('hex')}`;
}

export function sh(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function shTry(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, env: opts.env, timeout: opts.timeout });
}

export class Sandbox {
  readonly tag: string;
  private namespaces: string[] = [];
  private hostLinks: string[] = [];
  private dirs: string[] = [];
  private cleanups: Array<() => void> = [];

  constructor(prefix: string) {
    this.tag = uniqueTag(prefix);
  }

  /** Create a named namespace `<tag>-<suffix>` with lo up; returns its name (path: /run/netns/<name>). */
  netns(suffix: string): string {
    const name = `${this.tag}-${suffix}`;
    sh('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  nsPath(name: string): string {
    return `/run/netns/${name}`;
  }

  /** Run a command inside a namespace. */
  inNs(ns: string, cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
    return shTry('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** Remember a host-namespace link to delete at cleanup. */
  trackHostLink(name: string): void {
    this.hostLinks.push(name);
  }

  tmpdir(suffix = ''): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${this.tag}${suffix}-`));
    this.dirs.push(dir);
    return dir;
  }

  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  cleanup(): void {
    for (const fn of this.cleanups.splice(0).reverse()) {
      try { fn(); } catch { /* best effort */ }
    }
    for (const l of this.hostLinks.splice(0)) shTry('ip', ['link', 'del', l]);
    for (const ns of this.namespaces.splice(0).reverse()) shTry('ip', ['netns', 'del', ns]);
    for (const d of this.dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  }
}

/**
 * One throwaway namespace for a whole test file, opened once: made in beforeAll, closed and removed in afterAll
 * (also when a test failed). `ns` is its name (for `sb.inNs`), `netns` the open handle the code under test takes.
 */
export function throwawayNetns(prefix: string): { readonly sb: Sandbox; readonly ns: string; readonly netns: Netns } {
  const sb = new Sandbox(prefix);
  let ns = '';
  let netns: Netns | undefined;
  beforeAll(() => {
    ns = sb.netns('a');
    netns = Netns.open(sb.nsPath(ns));
  });
  afterAll(() => {
    netns?.close();
    sb.cleanup();
  });
  return {
    sb,
    get ns() { return ns; },
    get netns() {
      if (!netns) throw new Error('throwawayNetns: used before beforeAll ran');
      return netns;
    },
  };
}
