// Small local helpers for what the lib/netlink facade does not cover (yet):
// sysctls, promiscuous mode and bridge VLAN requests. Each runs in the
// current namespace unless a Netns is given.

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import type { Netns } from '../../lib/netns';
import type { VlanOp } from './plan';

function inNs<T>(netns: Netns | undefined, fn: () => T): T {
  return netns ? netns.run(fn) : fn();
}

/** Read a sysctl ("net/ipv6/conf/all/forwarding"); undefined when it does not exist (e.g. IPv6 disabled). */
export function readSysctl(key: string, netns?: Netns): string | undefined {
  return inNs(netns, () => {
    try {
      return fs.readFileSync(`/proc/sys/${key}`, 'utf8').trim();
    } catch {
      return undefined;
    }
  });
}

/** Write a sysctl; `optional` ones that do not exist are skipped. Sync on purpose: it may run inside Netns.run. */
export function writeSysctl(key: string, value: string, netns?: Netns, optional = false): void {
  inNs(netns, () => {
    try {
      fs.writeFileSync(`/proc/sys/${key}`, value);
    } catch (err) {
      if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new Error(`cannot set sysctl ${key.replace(/\//g, '.')}=${value}: ${(err as Error).message}`);
    }
  });
}

/** Set a sysctl only when it differs: writes are cheap, but skipping keeps the steady state read-only. */
export function ensureSysctl(key: string, value: string, netns?: Netns, optional = false): void {
  const cur = readSysctl(key, netns);
  if (cur === undefined && optional) return;
  if (cur !== value) writeSysctl(key, value, netns, optional);
}

/**
 * Turn IPv6 forwarding on without making the host drop router
 * advertisements: with forwarding=1 the kernel ignores RAs on interfaces
 * whose accept_ra is 1, so those become 2 first (reference issue #21).
 * Only walks the interfaces when forwarding is still off, so it stays O(1)
 * once on.
 */
export function enableIpv6Forwarding(): void {
  if (readSysctl('net/ipv6/conf/all/forwarding') === '1') return;
  let names: string[] = [];
  try {
    names = fs.readdirSync('/proc/sys/net/ipv6/conf');
  } catch {
    return; // IPv6 disabled on this host
  }
  for (const n of names) {
    if (readSysctl(`net/ipv6/conf/${n}/accept_ra`) === '1') writeSysctl(`net/ipv6/conf/${n}/accept_ra`, '2', undefined, true);
  }
  writeSysctl('net/ipv6/conf/all/forwarding', '1');
}

function run(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what}: ${(r.stderr || r.stdout).trim()}`);
}

/** The facade has no promisc flag setter; `ip link` does it. */
export function setPromisc(link: string, on: boolean): void {
  run('ip', ['link', 'set', 'dev', link, 'promisc', on ? 'on' : 'off'], `failed to set promiscuous mode on "${link}"`);
}

/**
 * Apply VLAN ops on a bridge port. These are exactly the requests
 * plan.vlanRequest() encodes; we send them through iproute2's `bridge`
 * because the facade has no raw-request call (kernels without bridge VLAN
 * filtering reject them either way).
 */
export function applyVlanOps(port: string, ops: readonly VlanOp[]): void {
  for (const op of ops) {
    const args = ['vlan', op.op, 'dev', port, 'vid', String(op.vid)];
    if (op.pvid) args.push('pvid');
    if (op.untagged) args.push('untagged');
    args.push('master');
    run('bridge', args, `failed to ${op.op} VLAN ${op.vid} on "${port}"`);
  }
}

/** Every VID currently on a bridge port (for "remove the defaults unless preserveDefaultVlan"). */
export function portVids(port: string): number[] {
  const r = spawnSync('bridge', ['-j', 'vlan', 'show', 'dev', port], { encoding: 'utf8' });
  if (r.status !== 0) return [1];
  try {
    const j = JSON.parse(r.stdout) as Array<{ vlans?: Array<{ vlan: number; vlanEnd?: number }> }>;
    const out: number[] = [];
    for (const p of j) for (const v of p.vlans ?? []) for (let x = v.vlan; x <= (v.vlanEnd ?? v.vlan); x++) out.push(x);
    return out;
  } catch {
    return [1];
  }
}
