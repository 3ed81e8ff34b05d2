// Masquerade for container networks, in our own nftables table, with a cost
// that stays flat as containers come and go:
//
//   table inet node_cni_masq
//     map masq4 { ipv4_addr : verdict }   one element per container address
//     map masq6 { ipv6_addr : verdict }     → jump to its (network, subnet) chain
//     chain postrouting (nat hook)        two fixed rules: ip saddr vmap @masq4, ip6 saddr vmap @masq6
//     chain masq-<h16(network,subnet)>    daddr in subnet → return; multicast → return; masquerade
//
//     set ok-<mark> (empty)               one per (network, subnet): its name is a hash of
//                                         the schema, the base and that chain
//
// A container ADD is one transaction of element operations only: it adds and
// deletes a dummy element in the marker sets of its chains (ENOENT unless the
// base and those chains were declared, by this schema; the sets stay empty,
// so listings show no elements of ours after the last DEL) and adds its
// elements. On
// ENOENT the structure is declared (idempotent: add/flush/re-add) in the same
// transaction as the elements, and retried once. A DEL deletes its elements.
// Nothing grows per container except map elements (hash lookup); nothing
// lists the table on the ADD/DEL path, and nft 1.0.6 fetches no set contents
// for element operations (scripts/bench/nft.js). Element comments carry
// hashes of the network and the attachment so GC can find strays.

import { spawnSync } from 'child_process';
import { createHash } from 'crypto';
import type { Netns } from '../netns';
import { applyNft, NftError, nftJson } from './nft';

export const MASQ_TABLE = 'node_cni_masq';
/** Bump when the structure's meaning changes without its text changing. */
export const MASQ_SCHEMA = 2;

export interface MasqOwner {
  network: string;
  containerId: string;
  ifname: string;
}

export interface MasqEntry {
  /** The container address, no prefix: "10.88.0.5" or "fd00::5". */
  address: string;
  /** The network it belongs to: "10.88.0.0/16". Traffic to it is not masqueraded. */
  subnet: string;
}

export interface MasqOptions {
  table?: string;
  netns?: Netns;
}

function h(s: string, n: number): string {
  return createHash('sha256').update(s).digest('hex').slice(0, n);
}

export function networkTag(network: string): string {
  return h(`net\0${network}`, 12);
}

export function attachmentTag(containerId: string, ifname: string): string {
  return h(`att\0${containerId}\0${ifname}`, 16);
}

export function subnetChain(network: string, subnet: string): string {
  return `masq-${h(`${network}\0${subnet}`, 16)}`;
}

/** Element comment: "<net tag> <attachment tag> <cid prefix>/<ifname>" (nft comments are capped at 128 bytes). */
export function elementComment(owner: MasqOwner): string {
  return `${networkTag(owner.network)} ${attachmentTag(owner.containerId, owner.ifname)} ${owner.containerId.slice(0, 32)}/${owner.ifname}`;
}

function isV6(address: string): boolean {
  return address.includes(':');
}

function mapOf(address: string): string {
  return isV6(address) ? 'masq6' : 'masq4';
}

function quote(s: string): string {
  // Names and ids are validated by the skel; keep quotes and backslashes out regardless.
  return `"${s.replace(/["\\]/g, '_')}"`;
}

function renderBase(t: string): string[] {
  return [
    `add table inet ${t} { comment "masquerade for node-cni-plugins bridge networks"; }`,
    `add chain inet ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add map inet ${t} masq4 { type ipv4_addr : verdict; }`,
    `add map inet ${t} masq6 { type ipv6_addr : verdict; }`,
    `flush chain inet ${t} postrouting`,
    `add rule inet ${t} postrouting ip saddr vmap @masq4`,
    `add rule inet ${t} postrouting ip6 saddr vmap @masq6`,
  ];
}

function renderSubnetChain(t: string, network: string, subnet: string): string[] {
  const chain = subnetChain(network, subnet);
  const v6 = isV6(subnet);
  const ipf = v6 ? 'ip6' : 'ip';
  return [
    `add chain inet ${t} ${chain} { comment ${quote(`network ${network} subnet ${subnet}`)}; }`,
    `flush chain inet ${t} ${chain}`,
    `add rule inet ${t} ${chain} ${ipf} daddr ${subnet} return`,
    `add rule inet ${t} ${chain} ${ipf} daddr ${v6 ? 'ff00::/8' : '224.0.0.0/4'} return`,
    `add rule inet ${t} ${chain} masquerade`,
  ];
}

/** Name of the (empty) set whose existence says: the base and this chain are declared, by this schema. */
export function markerSet(network: string, subnet: string, table = MASQ_TABLE): string {
  const text = [...renderBase(table), ...renderSubnetChain(table, network, subnet)].join('\n');
  return `ok-${h(`${MASQ_SCHEMA}\0${text}`, 16)}`;
}

/** The base, this owner's subnet chains, and their marker sets (idempotent). */
export function renderMasqDeclare(owner: MasqOwner, entries: readonly MasqEntry[], table = MASQ_TABLE): string {
  const lines = renderBase(table);
  const subnets = [...new Set(entries.map((e) => e.subnet))];
  for (const s of subnets) {
    lines.push(...renderSubnetChain(table, owner.network, s));
    lines.push(`add set inet ${table} ${markerSet(owner.network, s, table)} { type mark; comment ${quote(`declared: network ${owner.network} subnet ${s}`.slice(0, 120))}; }`);
  }
  return lines.join('\n') + '\n';
}

/**
 * The steady-state ADD: element operations only. A dummy element is added to
 * and deleted from each marker set (no change; ENOENT if not declared). Each element is
 * added, deleted and added again with this owner's comment, so a stale
 * element for the same address (a leaked attachment) is replaced rather than
 * left labelled with its old owner.
 */
export function renderMasqAdd(owner: MasqOwner, entries: readonly MasqEntry[], table = MASQ_TABLE): string {
  const lines: string[] = [];
  for (const set of new Set(entries.map((e) => markerSet(owner.network, e.subnet, table)))) {
    lines.push(`add element inet ${table} ${set} { 0x1 }`, `delete element inet ${table} ${set} { 0x1 }`);
  }
  const comment = quote(elementComment(owner));
  for (const e of entries) {
    const chain = subnetChain(owner.network, e.subnet);
    const map = mapOf(e.address);
    lines.push(`add element inet ${table} ${map} { ${e.address} : jump ${chain} }`);
    lines.push(`delete element inet ${table} ${map} { ${e.address} }`);
    lines.push(`add element inet ${table} ${map} { ${e.address} comment ${comment} : jump ${chain} }`);
  }
  return lines.join('\n') + '\n';
}

export function renderMasqDel(addresses: readonly string[], table = MASQ_TABLE): string {
  return addresses.map((a) => `delete element inet ${table} ${mapOf(a)} { ${a} }\n`).join('');
}

function isMissing(err: unknown): boolean {
  return err instanceof NftError && /No such file or directory|does not exist/.test(err.stderr);
}

/** One transaction of element operations; declares the structure (same transaction) only when it is missing. */
export function applyMasqAdd(owner: MasqOwner, entries: readonly MasqEntry[], opts: MasqOptions = {}): void {
  if (entries.length === 0) return;
  const elements = renderMasqAdd(owner, entries, opts.table);
  try {
    applyNft(elements, opts.netns);
    return;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  applyNft(renderMasqDeclare(owner, entries, opts.table) + elements, opts.netns);
}

/**
 * Remove the elements of these addresses. One transaction in the normal case;
 * when some are already gone (repeated DEL, table never made) the rest are
 * removed one by one and the missing ones count as done.
 */
export function removeMasq(addresses: readonly string[], opts: MasqOptions = {}): void {
  if (addresses.length === 0) return;
  const table = opts.table ?? MASQ_TABLE;
  try {
    applyNft(renderMasqDel(addresses, table), opts.netns);
    return;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  for (const a of addresses) {
    try {
      applyNft(renderMasqDel([a], table), opts.netns);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }
}

export interface MasqElement {
  address: string;
  comment: string;
  chain: string;
}

/** Every element of both maps (GC and diagnostics only: this lists the maps). */
export function listMasqElements(opts: MasqOptions = {}): MasqElement[] {
  const table = opts.table ?? MASQ_TABLE;
  const out: MasqElement[] = [];
  for (const map of ['masq4', 'masq6']) {
    const j = nftJson(['list', 'map', 'inet', table, map], opts.netns);
    for (const obj of j?.nftables ?? []) {
      const elems = obj.map?.elem as unknown[] | undefined;
      for (const pair of elems ?? []) {
        const [key, verdict] = pair as [any, any];
        const address = typeof key === 'string' ? key : key?.elem?.val;
        const comment = typeof key === 'object' ? key?.elem?.comment ?? '' : '';
        out.push({ address: String(address), comment, chain: verdict?.jump?.target ?? verdict?.goto?.target ?? '' });
      }
    }
  }
  return out;
}

/** Whether this owner's element for this address is present (CHECK): one `nft get element`, no listing. */
export function hasMasq(owner: MasqOwner, entry: MasqEntry, opts: MasqOptions = {}): boolean {
  const table = opts.table ?? MASQ_TABLE;
  // nft 1.0.6 ignores -j for `get element` and prints text, so read the text.
  const run = () => spawnSync('nft', ['get', 'element', 'inet', table, mapOf(entry.address), `{ ${entry.address} }`], { encoding: 'utf8' });
  const r = opts.netns ? opts.netns.run(run) : run();
  if (r.error) throw r.error;
  if (r.status !== 0) return false;
  const text = r.stdout;
  return text.includes(attachmentTag(owner.containerId, owner.ifname)) && text.includes(subnetChain(owner.network, entry.subnet));
}

/**
 * GC: the elements of `network` whose attachment is not in `valid`. Returns
 * the addresses removed.
 */
export function gcMasq(network: string, valid: ReadonlyArray<{ containerID: string; ifname: string }>, opts: MasqOptions = {}): string[] {
  const net = networkTag(network);
  const keep = new Set(valid.map((a) => attachmentTag(a.containerID, a.ifname)));
  const stale = listMasqElements(opts)
    .filter((e) => {
      const [n, att] = e.comment.split(' ');
      return n === net && !keep.has(att);
    })
    .map((e) => e.address);
  removeMasq(stale, opts);
  return stale;
}
