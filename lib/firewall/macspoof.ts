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
//     set ok-<mark> (empty)                   its name is a hash of the schema and the structure
//
// Like masquerade.ts: an ADD is element operations only (plus a no-op on the
// marker set, which fails with ENOENT until the structure is declared); on
// ENOENT the structure is declared in the same transaction and retried once.
// A DEL deletes the two elements, found from the attachment record.

import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import type { Netns } from '../netns';
import { applyNft, NftError } from './nft';

export const MACSPOOF_TABLE = 'node_cni_macspoof';
/** Bump when the structure's meaning changes without its text changing. */
export const MACSPOOF_SCHEMA = 1;

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

function quote(s: string): string {
  // Interface names are ours (veth + hex); keep quotes and backslashes out regardless.
  return `"${s.replace(/["\\]/g, '_')}"`;
}

function mac(m: string): string {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(m)) throw new Error(`macspoof: invalid MAC address ${JSON.stringify(m)}`);
  return m.toLowerCase();
}

function renderStructure(t: string): string[] {
  return [
    `add table bridge ${t} { comment "MAC spoof check for node-cni-plugins bridge networks"; }`,
    `add set bridge ${t} guarded { type ifname; }`,
    `add set bridge ${t} allowed { type ifname . ether_addr; }`,
    `add chain bridge ${t} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `flush chain bridge ${t} prerouting`,
    `add rule bridge ${t} prerouting iifname @guarded iifname . ether saddr != @allowed drop`,
  ];
}

/** Name of the (empty) set whose existence says: the structure is declared, by this schema. */
export function macspoofMarker(table = MACSPOOF_TABLE): string {
  const text = renderStructure(table).join('\n');
  return `ok-${createHash('sha256').update(`${MACSPOOF_SCHEMA}\0${text}`).digest('hex').slice(0, 16)}`;
}

/** The table, sets, chain with its one rule, and the marker set (idempotent). */
export function renderMacspoofDeclare(table = MACSPOOF_TABLE): string {
  return [...renderStructure(table), `add set bridge ${table} ${macspoofMarker(table)} { type mark; }`].join('\n') + '\n';
}

/** The steady-state ADD: a no-op on the marker set (ENOENT if undeclared), then the entry's two elements. */
export function renderMacspoofAdd(e: MacspoofEntry, table = MACSPOOF_TABLE): string {
  const marker = macspoofMarker(table);
  return [
    `add element bridge ${table} ${marker} { 0x1 }`,
    `delete element bridge ${table} ${marker} { 0x1 }`,
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

function isMissing(err: unknown): boolean {
  return err instanceof NftError && /No such file or directory|does not exist/.test(err.stderr);
}

/** One transaction of element operations; declares the structure (same transaction) only when it is missing. */
export function applyMacspoofAdd(e: MacspoofEntry, opts: MacspoofOptions = {}): void {
  const table = opts.table ?? MACSPOOF_TABLE;
  const elements = renderMacspoofAdd(e, table);
  try {
    applyNft(elements, opts.netns);
    return;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  applyNft(renderMacspoofDeclare(table) + elements, opts.netns);
}

/** Remove the entry's elements; idempotent (a missing element or table counts as removed). */
export function removeMacspoof(e: MacspoofEntry, opts: MacspoofOptions = {}): void {
  const table = opts.table ?? MACSPOOF_TABLE;
  try {
    applyNft(renderMacspoofDel(e, table), opts.netns);
    return;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  // Some are gone already (repeated DEL, crash between record and elements): the rest one by one.
  for (const line of renderMacspoofDel(e, table).trim().split('\n')) {
    try {
      applyNft(line + '\n', opts.netns);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }
}

function hasElement(table: string, set: string, element: string, netns?: Netns): boolean {
  const run = () => spawnSync('nft', ['get', 'element', 'bridge', table, set, `{ ${element} }`], { encoding: 'utf8' });
  const r = netns ? netns.run(run) : run();
  if (r.error) throw r.error;
  return r.status === 0;
}

/** Which of the entry's elements are missing (CHECK): [] when the check is in place. Two `nft get element`, no listing. */
export function missingMacspoof(e: MacspoofEntry, opts: MacspoofOptions = {}): string[] {
  const table = opts.table ?? MACSPOOF_TABLE;
  const missing: string[] = [];
  if (!hasElement(table, 'guarded', quote(e.hostVeth), opts.netns)) missing.push(`guarded ${e.hostVeth}`);
  if (!hasElement(table, 'allowed', `${quote(e.hostVeth)} . ${mac(e.mac)}`, opts.netns)) missing.push(`allowed ${e.hostVeth} . ${mac(e.mac)}`);
  return missing;
}
