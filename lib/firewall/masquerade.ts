// Masquerade for container networks, in our own nftables table, with a cost
// that stays flat as containers come and go:
//
//   table inet node_cni_masq
//     map masq4 { ipv4_addr : verdict }   one element per container address
//     map masq6 { ipv6_addr : verdict }     → jump to its (network, subnet) chain
//     chain postrouting (nat hook)        two fixed rules: ip saddr vmap @masq4, ip6 saddr vmap @masq6
//     chain masq-<h16(network,subnet)>    daddr in subnet → return; multicast → return; masquerade
//
// Lifecycle (lib/bridge/lifecycle.ts): a subnet chain comes with the
// network's first container and goes with its last (removeMasqNetwork); the
// table goes with the last network (removeTableIfUnused: atomic, so a
// concurrent ADD is never cut off). A container ADD checks that the base
// chain and its subnet chains hold exactly their rules (tagged comments, one
// small dump per chain: no listing of the maps, no "declared" marker to
// trust), then sends one transaction of element operations; when something
// is missing or differs the structure is declared again in that same
// transaction. A DEL deletes its elements. Nothing grows per container
// except map elements (hash lookup), and nft 1.0.6 fetches no set contents
// for element operations (scripts/bench/nft.js). Element comments carry
// hashes of the network and the attachment so GC can find strays.

import { sha256Hex } from '../util/hash';
import type { Netns } from '../netns';
import { applyNft, deleteTableObjects, getNftElement, isNftMissing, listTable, NftError, nftJson, nftQuote, removeTableIfUnused, renderChain, verifyChains, type RenderedChain, type SharedTable } from './nft';

export const MASQ_TABLE = 'node_cni_masq';

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
  return sha256Hex(s).slice(0, n);
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

/** The table and base every network shares. */
export function masqSharedTable(table = MASQ_TABLE): SharedTable {
  return { family: 'inet', table, chains: ['postrouting'], sets: ['masq4', 'masq6'], legacySets: /^ok-[0-9a-f]{16}$/ };
}

function baseChain(t: string): RenderedChain {
  return renderChain('inet', t, 'postrouting', 'type nat hook postrouting priority srcnat; policy accept;', ['ip saddr vmap @masq4', 'ip6 saddr vmap @masq6']);
}

function renderBase(t: string): string[] {
  return [
    `add table inet ${t} { comment "masquerade for node-cni-plugins bridge networks"; }`,
    `add map inet ${t} masq4 { type ipv4_addr : verdict; }`,
    `add map inet ${t} masq6 { type ipv6_addr : verdict; }`,
    ...baseChain(t).lines,
  ];
}

/** The chain comment: the network's tag first (teardown finds the network's chains by it), then for people. */
export function subnetChainComment(network: string, subnet: string): string {
  return `${networkTag(network)} ${subnet} network ${network}`.slice(0, 127);
}

function subnetChainOf(t: string, network: string, subnet: string): RenderedChain {
  const v6 = isV6(subnet);
  const ipf = v6 ? 'ip6' : 'ip';
  return renderChain('inet', t, subnetChain(network, subnet), `comment ${nftQuote(subnetChainComment(network, subnet))};`, [
    `${ipf} daddr ${subnet} return`,
    `${ipf} daddr ${v6 ? 'ff00::/8' : '224.0.0.0/4'} return`,
    'masquerade',
  ]);
}

/** What an ADD needs in place: the base chain and the subnet chains of its entries. */
export function masqChains(network: string, entries: readonly MasqEntry[], table = MASQ_TABLE): RenderedChain[] {
  return [baseChain(table), ...[...new Set(entries.map((e) => e.subnet))].map((s) => subnetChainOf(table, network, s))];
}

/** The base and this owner's subnet chains (idempotent: chains are flushed and refilled). */
export function renderMasqDeclare(owner: MasqOwner, entries: readonly MasqEntry[], table = MASQ_TABLE): string {
  const lines = renderBase(table);
  for (const s of [...new Set(entries.map((e) => e.subnet))]) lines.push(...subnetChainOf(table, owner.network, s).lines);
  return lines.join('\n') + '\n';
}

/**
 * The steady-state ADD: element operations only, each element created new. `create` fails (EEXIST) when an
 * element for the address is there already (a leaked attachment): then renderMasqTakeover. An element's jump
 * fails with ENOENT when its chain is missing.
 */
export function renderMasqCreate(owner: MasqOwner, entries: readonly MasqEntry[], table = MASQ_TABLE): string {
  const comment = nftQuote(elementComment(owner));
  return entries.map((e) => `create element inet ${table} ${mapOf(e.address)} { ${e.address} comment ${comment} : jump ${subnetChain(owner.network, e.subnet)} }\n`).join('');
}

/**
 * Each element added, deleted and added again with this owner's comment, so a stale element for the same
 * address is replaced rather than left labelled with its old owner. Only where one may be there: a transaction
 * that deletes makes the kernel flush its destroy work, an RCU grace period (~9 ms here), when libnftables
 * closes its socket.
 */
export function renderMasqTakeover(owner: MasqOwner, entries: readonly MasqEntry[], table = MASQ_TABLE): string {
  const lines: string[] = [];
  const comment = nftQuote(elementComment(owner));
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

/**
 * One transaction of element operations once the chains are checked; the
 * structure is declared (same transaction) when something of it is missing
 * or differs.
 */
export async function applyMasqAdd(owner: MasqOwner, entries: readonly MasqEntry[], opts: MasqOptions = {}): Promise<void> {
  if (entries.length === 0) return;
  const table = opts.table ?? MASQ_TABLE;
  if (await verifyChains('inet', table, masqChains(owner.network, entries, table), opts.netns)) {
    try {
      applyNft(renderMasqCreate(owner, entries, table), opts.netns);
      return;
    } catch (err) {
      if (err instanceof NftError && err.exists) {
        applyNft(renderMasqTakeover(owner, entries, table), opts.netns);
        return;
      }
      if (!isNftMissing(err)) throw err;
    }
  }
  applyNft(renderMasqDeclare(owner, entries, table) + renderMasqTakeover(owner, entries, table), opts.netns);
}

/**
 * The network's last container is gone: its subnet chains go, then the
 * table if no other network uses it. A chain some element still jumps to
 * (a container without a record, leaked) is first freed by the GC of that
 * network's elements.
 */
export async function removeMasqNetwork(network: string, opts: MasqOptions = {}): Promise<void> {
  const table = opts.table ?? MASQ_TABLE;
  const present = await listTable('inet', table, opts.netns);
  if (!present) return;
  const tag = `${networkTag(network)} `;
  const chains = present.chains.filter((c) => c.comment.startsWith(tag)).map((c) => c.name);
  try {
    await deleteTableObjects('inet', table, { chains, sets: [] }, opts.netns);
  } catch (err) {
    if ((err as { code?: string }).code !== 'EBUSY') throw err;
    gcMasq(network, [], opts);
    await deleteTableObjects('inet', table, { chains, sets: [] }, opts.netns);
  }
  await removeTableIfUnused(masqSharedTable(table), opts.netns);
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
    if (!isNftMissing(err)) throw err;
  }
  for (const a of addresses) {
    try {
      applyNft(renderMasqDel([a], table), opts.netns);
    } catch (err) {
      if (!isNftMissing(err)) throw err;
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
  const text = getNftElement('inet', opts.table ?? MASQ_TABLE, mapOf(entry.address), entry.address, opts.netns);
  return text !== undefined && text.includes(attachmentTag(owner.containerId, owner.ifname)) && text.includes(subnetChain(owner.network, entry.subnet));
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
