// MAC spoof check for bridge ports (the reference bridge's `macspoofchk`):
// a frame entering the bridge from a guarded host veth must carry the
// container's MAC as its source, or it is dropped. One fixed rule, two sets,
// so the cost per frame and per ADD stays flat as containers come and go:
//
//   table bridge node_cni_macspoof
//     set guarded { ifname }                  host veths under the check
//     set allowed { ifname . ether_addr }     each one's container MAC
//     chain prerouting (filter, priority -300)
//       iifname @guarded iifname . ether saddr != @allowed drop
//
// Like masquerade.ts: an ADD checks the chain holds exactly its rule (tagged
// comment, one small dump), then sends element operations only; when the
// structure is missing or differs it is declared in the same transaction.
// A DEL deletes the two elements, found from the attachment record. The
// table goes when no port is guarded any more (removeMacspoofIfUnused, at a
// network's teardown: atomic, kept while any element is left).

import type { Netns } from '../netns';
import { applyNftDeletions, applyNft, getNftElement, isNftMissing, nftQuote, removeTableIfUnused, renderChain, verifyChains, type RenderedChain, type SharedTable } from './nft';
import { parseColonMac } from '../util/mac';

export const MACSPOOF_TABLE = 'node_cni_macspoof';

export interface MacspoofEntry {
  /** The host end of the container's veth (the bridge port). */
  hostVeth: string;
  /** The container's MAC, lower case "02:00:00:00:00:01". */
  mac: string;
}

export interface MacspoofOptions {
  table?: string;
  netns?: Netns;
}

const quote = nftQuote;

function mac(m: string): string {
  const canonical = parseColonMac(m);
  if (!canonical) throw new Error(`macspoof: invalid MAC address ${JSON.stringify(m)}`);
  return canonical;
}

function prerouting(t: string): RenderedChain {
  return renderChain('bridge', t, 'prerouting', 'type filter hook prerouting priority -300; policy accept;', ['iifname @guarded iifname . ether saddr != @allowed drop']);
}

/** The table and its parts, shared by every bridge network with macspoofchk. */
export function macspoofSharedTable(table = MACSPOOF_TABLE): SharedTable {
  return { family: 'bridge', table, chains: ['prerouting'], sets: ['guarded', 'allowed'], legacySets: /^ok-[0-9a-f]{16}$/ };
}

/** The table, sets and chain with its one rule (idempotent). */
export function renderMacspoofDeclare(table = MACSPOOF_TABLE): string {
  return [
    `add table bridge ${table} { comment "MAC spoof check for node-cni-plugins bridge networks"; }`,
    `add set bridge ${table} guarded { type ifname; }`,
    `add set bridge ${table} allowed { type ifname . ether_addr; }`,
    ...prerouting(table).lines,
  ].join('\n') + '\n';
}

/** The steady-state ADD: the entry's two elements. */
export function renderMacspoofAdd(e: MacspoofEntry, table = MACSPOOF_TABLE): string {
  return [
    `add element bridge ${table} allowed { ${quote(e.hostVeth)} . ${mac(e.mac)} }`,
    `add element bridge ${table} guarded { ${quote(e.hostVeth)} }`,
  ].join('\n') + '\n';
}

/** Guarded goes first: with it gone, the port is unchecked before its allowed MAC disappears. */
export function renderMacspoofDel(e: MacspoofEntry, table = MACSPOOF_TABLE): string {
  return [
    `delete element bridge ${table} guarded { ${quote(e.hostVeth)} }`,
    `delete element bridge ${table} allowed { ${quote(e.hostVeth)} . ${mac(e.mac)} }`,
  ].join('\n') + '\n';
}

/** One transaction of element operations once the chain is checked; declares the structure (same transaction) when it is missing or differs. */
export async function applyMacspoofAdd(e: MacspoofEntry, opts: MacspoofOptions = {}): Promise<void> {
  const table = opts.table ?? MACSPOOF_TABLE;
  const elements = renderMacspoofAdd(e, table);
  if (await verifyChains('bridge', table, [prerouting(table)], opts.netns)) {
    try {
      applyNft(elements, opts.netns);
      return;
    } catch (err) {
      if (!isNftMissing(err)) throw err;
    }
  }
  applyNft(renderMacspoofDeclare(table) + elements, opts.netns);
}

/** Remove the entry's elements; idempotent (a missing element or table counts as removed). */
export function removeMacspoof(e: MacspoofEntry, opts: MacspoofOptions = {}): void {
  applyNftDeletions(renderMacspoofDel(e, opts.table ?? MACSPOOF_TABLE).trim().split('\n'), opts.netns);
}

/** The table goes when no port is guarded any more (atomic: kept while any element is left). */
export async function removeMacspoofIfUnused(opts: MacspoofOptions = {}): Promise<void> {
  await removeTableIfUnused(macspoofSharedTable(opts.table ?? MACSPOOF_TABLE), opts.netns);
}

function hasElement(table: string, set: string, element: string, netns?: Netns): boolean {
  return getNftElement('bridge', table, set, element, netns) !== undefined;
}

/** Which of the entry's elements are missing (CHECK): [] when the check is in place. Two `nft get element`, no listing. */
export function missingMacspoof(e: MacspoofEntry, opts: MacspoofOptions = {}): string[] {
  const table = opts.table ?? MACSPOOF_TABLE;
  const missing: string[] = [];
  if (!hasElement(table, 'guarded', quote(e.hostVeth), opts.netns)) missing.push(`guarded ${e.hostVeth}`);
  if (!hasElement(table, 'allowed', `${quote(e.hostVeth)} . ${mac(e.mac)}`, opts.netns)) missing.push(`allowed ${e.hostVeth} . ${mac(e.mac)}`);
  return missing;
}
