// Isolation between container networks (Docker's user-defined networks),
// in our own nftables table, with a cost that stays O(1) per network:
//
//   table inet node_cni_isolation
//     set isolated { ifname }                 one element per isolated bridge
//     map isolated_from { ifname : verdict }  the same bridges → goto their chain
//     chain forward (filter hook, before the usual filter priority)
//         oifname @isolated iifname vmap @isolated_from
//     chain iso-<h16(network,bridge)>         oifname != "<bridge>" drop
//
// A packet forwarded out of an isolated bridge that came in on another
// isolated bridge is dropped; everything else passes (traffic to the
// outside, replies from it, traffic to non-isolated networks). Traffic
// between two ports of the same bridge is bridged, or (br_netfilter) seen
// here with iifname == oifname == the bridge, so it is never dropped:
// hairpin and portIsolation keep their meanings. nftables cannot compare
// iifname with oifname directly (no register-to-register compare), hence
// the one-rule chain per network.

import { createHash } from 'crypto';
import type { Netns } from '../netns';
import { applyNft, NftError, nftJson } from './nft';

export const ISOLATION_TABLE = 'node_cni_isolation';

export interface IsolationMember {
  /** The CNI network name (for comments and GC). */
  network: string;
  /** The bridge the network's containers are attached to. */
  bridge: string;
}

export interface IsolationOptions {
  table?: string;
  netns?: Netns;
}

export function isolationChain(m: IsolationMember): string {
  return `iso-${createHash('sha256').update(`${m.network}\0${m.bridge}`).digest('hex').slice(0, 16)}`;
}

function quote(s: string): string {
  // Bridge and network names are validated upstream; keep quotes and backslashes out regardless.
  return `"${s.replace(/["\\]/g, '_')}"`;
}

function renderBase(t: string): string[] {
  return [
    `add table inet ${t} { comment "isolation between node-cni-plugins networks"; }`,
    `add set inet ${t} isolated { type ifname; }`,
    `add map inet ${t} isolated_from { type ifname : verdict; }`,
    // Before the default filter priority, so a drop here happens whatever other tables accept.
    `add chain inet ${t} forward { type filter hook forward priority filter - 10; policy accept; }`,
    `flush chain inet ${t} forward`,
    `add rule inet ${t} forward oifname @isolated iifname vmap @isolated_from`,
  ];
}

/**
 * The join transaction: re-states the fixed parts (idempotent) and this
 * network's chain and elements. Elements are added, deleted and added again
 * so a stale element for the same bridge (another network's chain) is replaced.
 */
export function renderIsolationJoin(m: IsolationMember, table = ISOLATION_TABLE): string {
  const chain = isolationChain(m);
  const br = quote(m.bridge);
  const comment = quote(`network ${m.network}`);
  return [
    ...renderBase(table),
    `add chain inet ${table} ${chain} { comment ${quote(`network ${m.network} bridge ${m.bridge}`)}; }`,
    `flush chain inet ${table} ${chain}`,
    `add rule inet ${table} ${chain} oifname != ${br} drop`,
    `add element inet ${table} isolated { ${br} }`,
    `delete element inet ${table} isolated { ${br} }`,
    `add element inet ${table} isolated { ${br} comment ${comment} }`,
    `add element inet ${table} isolated_from { ${br} : goto ${chain} }`,
    `delete element inet ${table} isolated_from { ${br} }`,
    `add element inet ${table} isolated_from { ${br} comment ${comment} : goto ${chain} }`,
  ].join('\n') + '\n';
}

/** The leave transaction: the elements first (they reference the chain), then the chain. */
export function renderIsolationLeave(m: IsolationMember, table = ISOLATION_TABLE): string {
  const br = quote(m.bridge);
  return [
    `delete element inet ${table} isolated { ${br} }`,
    `delete element inet ${table} isolated_from { ${br} }`,
    `delete chain inet ${table} ${isolationChain(m)}`,
  ].join('\n') + '\n';
}

export function applyIsolationJoin(m: IsolationMember, opts: IsolationOptions = {}): void {
  applyNft(renderIsolationJoin(m, opts.table), opts.netns);
}

function isMissing(err: unknown): boolean {
  return err instanceof NftError && /No such file or directory|does not exist/.test(err.stderr);
}

/**
 * Take the network out of the isolation group. One transaction normally;
 * when part of it is already gone (repeated leave, table never made) each
 * line is tried alone and the missing ones count as done.
 */
export function applyIsolationLeave(m: IsolationMember, opts: IsolationOptions = {}): void {
  const script = renderIsolationLeave(m, opts.table);
  try {
    applyNft(script, opts.netns);
    return;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  for (const line of script.split('\n').filter(Boolean)) {
    try {
      applyNft(`${line}\n`, opts.netns);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }
}

/** The isolated bridges (set elements) with their comments; diagnostics, GC and tests. */
export function listIsolatedBridges(opts: IsolationOptions = {}): Array<{ bridge: string; comment: string }> {
  const j = nftJson(['list', 'set', 'inet', opts.table ?? ISOLATION_TABLE, 'isolated'], opts.netns);
  const out: Array<{ bridge: string; comment: string }> = [];
  for (const obj of j?.nftables ?? []) {
    for (const e of (obj.set?.elem as unknown[] | undefined) ?? []) {
      const x = e as any;
      if (typeof x === 'string') out.push({ bridge: x, comment: '' });
      else out.push({ bridge: String(x?.elem?.val), comment: String(x?.elem?.comment ?? '') });
    }
  }
  return out;
}
