// DNS checks shared by the name-resolution e2e tests (bridge and vxlan-overlay).
import * as fs from 'fs';
import type { Sandbox } from './sandbox';

export const DNSMASQ = '/usr/sbin/dnsmasq';

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Live (not a zombie). */
export function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Every live dnsmasq whose command line mentions `needle`. */
export function dnsmasqPids(needle: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.startsWith(DNSMASQ) && cmd.includes(needle) && alive(+d)) out.push(+d);
    } catch { /* gone */ }
  }
  return out;
}

/** A records of `name` asked of `server` from namespace `ns`; null when there is no answer (NXDOMAIN, refused, timeout). */
export function lookup(sb: Sandbox, ns: string, name: string, server: string): string[] | null {
  const r = sb.inNs(ns, 'busybox', ['nslookup', '-type=a', name, server], { timeout: 12000 });
  const lines = (r.stdout ?? '').split('\n');
  const at = lines.findIndex((l) => l.startsWith('Name:'));
  if (r.status !== 0 || at < 0) return null;
  return lines.slice(at + 1).map((l) => /^Address: (\S+)$/.exec(l)?.[1]).filter((x): x is string => !!x);
}

/** dnsmasq reads hosts.d through inotify: give it a moment to see a new or removed file. */
export function lookupUntil(sb: Sandbox, ns: string, name: string, server: string, want: (a: string[] | null) => boolean): string[] | null {
  let got = lookup(sb, ns, name, server);
  for (let i = 0; i < 20 && !want(got); i++) {
    sleepSync(100);
    got = lookup(sb, ns, name, server);
  }
  return got;
}
