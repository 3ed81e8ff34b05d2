// Isolation between container networks (Docker's user-defined networks),
// in our own nftables table, with a cost that stays O(1) per network:
//
//   table inet node_cni_isolation
//     set isolated { ifname }                 one element per isolated bridge
//     map isolated_from { ifname : verdict }  the same bridges → goto their chain
//     chain forward (filter hook, before the usual filter priority)
//         connections to a published port (portmap's ct mark) → accept
//         oifname @isolated iifname vmap @isolated_from
//     chain iso-<h16(network,bridge)>         oifname != "<bridge>" drop
//
// A packet forwarded out of an isolated bridge that came in on another
// isolated bridge is dropped; everything else passes (traffic to the
// outside, replies from it, traffic to non-isolated networks), and so does a
// connection to a port published on the host (./portmap.ts marks it), so a
// container reaches another network's published port through the host's
// address, as in Docker (containers/netavark#709). Traffic
// between two ports of the same bridge is bridged, or (br_netfilter) seen
// here with iifname == oifname == the bridge, so it is never dropped:
// hairpin and portIsolation keep their meanings. nftables cannot compare
// iifname with oifname directly (no register-to-register compare), hence
// the one-rule chain per network.
//
// A join checks the forward chain and the network's chain hold exactly their
// rules (tagged comments, one small dump each) and then sends element
// operations only; when something is missing or differs it re-states the
// structure in the same transaction. The table goes with the last isolated
// bridge (removeTableIfUnused, atomic against a concurrent join).

import { sha256Hex } from '../util/hash';
import type { Netns } from '../netns';
import { PUBLISHED_CT_MATCH } from './portmap';
import { applyNft, applyNftDeletions, isNftMissing, listTable, nftJson, nftQuote, removeTableIfUnused, renderChain, verifyChains, type RenderedChain, type SharedTable } from './nft';

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
  return `iso-${sha256Hex(`${m.network}\0${m.bridge}`).slice(0, 16)}`;
}

const quote = nftQuote;

/** The table and parts every isolated network shares. */
export function isolationSharedTable(table = ISOLATION_TABLE): SharedTable {
  return { family: 'inet', table, chains: ['forward'], sets: ['isolated', 'isolated_from'] };
}

function isolationChains(m: IsolationMember, t: string): RenderedChain[] {
  return [
    // Before the default filter priority, so a drop here happens whatever other tables accept.
    renderChain('inet', t, 'forward', 'type filter hook forward priority filter - 10; policy accept;', [`${PUBLISHED_CT_MATCH} accept`, 'oifname @isolated iifname vmap @isolated_from']),
    renderChain('inet', t, isolationChain(m), `comment ${quote(`network ${m.network} bridge ${m.bridge}`.slice(0, 120))};`, [`oifname != ${quote(m.bridge)} drop`]),
  ];
}

/**
 * This network's elements, each added, deleted and added again so a stale
 * element for the same bridge (another network's chain) is replaced.
 */
export function renderIsolationElements(m: IsolationMember, table = ISOLATION_TABLE): string {
  const chain = isolationChain(m);
  const br = quote(m.bridge);
  const comment = quote(`network ${m.network}`.slice(0, 120));
  return [
    `add element inet ${table} isolated { ${br} }`,
    `delete element inet ${table} isolated { ${br} }`,
    `add element inet ${table} isolated { ${br} comment ${comment} }`,
    `add element inet ${table} isolated_from { ${br} : goto ${chain} }`,
    `delete element inet ${table} isolated_from { ${br} }`,
    `add element inet ${table} isolated_from { ${br} comment ${comment} : goto ${chain} }`,
  ].join('\n') + '\n';
}

/** The full join: the fixed parts and this network's chain re-stated (idempotent), then its elements. */
export function renderIsolationJoin(m: IsolationMember, table = ISOLATION_TABLE): string {
  return [
    `add table inet ${table} { comment "isolation between node-cni-plugins networks"; }`,
    `add set inet ${table} isolated { type ifname; }`,
    `add map inet ${table} isolated_from { type ifname : verdict; }`,
    ...isolationChains(m, table).flatMap((c) => c.lines),
  ].join('\n') + '\n' + renderIsolationElements(m, table);
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

/** Element operations once the chains are checked; the full join when something is missing or differs. */
export async function applyIsolationJoin(m: IsolationMember, opts: IsolationOptions = {}): Promise<void> {
  const table = opts.table ?? ISOLATION_TABLE;
  if (await verifyChains('inet', table, isolationChains(m, table), opts.netns)) {
    try {
      applyNft(renderIsolationElements(m, table), opts.netns);
      return;
    } catch (err) {
      if (!isNftMissing(err)) throw err;
    }
  }
  applyNft(renderIsolationJoin(m, table), opts.netns);
}

/**
 * Take the network out of the isolation group (missing parts count as
 * done), then the table if no other bridge is isolated.
 */
export async function applyIsolationLeave(m: IsolationMember, opts: IsolationOptions = {}): Promise<void> {
  const table = opts.table ?? ISOLATION_TABLE;
  if (!(await listTable('inet', table, opts.netns))) return; // never joined, or left already: nothing to do
  applyNftDeletions(renderIsolationLeave(m, table).trim().split('\n'), opts.netns);
  await removeTableIfUnused(isolationSharedTable(table), opts.netns);
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
