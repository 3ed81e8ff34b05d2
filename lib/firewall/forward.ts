// Letting containers' traffic through a host whose FORWARD policy is DROP
// (Docker sets it), the firewall plugin's job, with a cost that stays flat:
//
//   table inet node_cni_firewall
//     set allowed4 { ipv4_addr }   set allowed6 { ipv6_addr }     one element per container address
//     chain let-through (filter hook, before iptables' filter)     marks the packets to let through:
//         from a container; replies to it; new connections DNAT'd to it (published ports, as Docker)
//     chain clear-mark  (filter hook, after iptables' filter)      clears the mark again
//
// and one jump in iptables' FORWARD to a two-rule chain that accepts marked
// packets (lib/firewall/iptables.ts: a drop there cannot be overruled from here).
// Like portmap (lib/firewall/nft.ts): an ADD checks the two chains by their
// tagged rules (one small dump each, never the sets) and is then one
// transaction of element operations, each added, deleted and added again so a
// stale element of the same address takes this owner; when a chain is missing
// or differs, the structure is declared in the same transaction. The table
// goes with the last element (removeTableIfUnused: atomic against an ADD).

import type { Netns } from '../netns';
import { FORWARD_MARK } from './iptables';
import { attachmentTag, elementComment, networkTag, type MasqOwner } from './masquerade';
import {
  applyNft, applyNftDeletions, getNftElement, isNftMissing, nftJson, nftQuote, removeTableIfUnused, renderChain, verifyChains,
  type RenderedChain, type SharedTable, type TableRemoval,
} from './nft';

export const FORWARD_TABLE = 'node_cni_firewall';

export interface ForwardOptions {
  table?: string;
  netns?: Netns;
}

const isV6 = (a: string): boolean => a.includes(':');
const setOf = (a: string): string => (isV6(a) ? 'allowed6' : 'allowed4');
const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** The two chains, their rules tagged for verifyChains. */
export function forwardChains(t = FORWARD_TABLE): RenderedChain[] {
  const mark = `meta mark set meta mark | ${hex(FORWARD_MARK)}`;
  const marking: string[] = [];
  for (const [ip, set] of [['ip', 'allowed4'], ['ip6', 'allowed6']]) {
    marking.push(`${ip} saddr @${set} ${mark}`, `${ip} daddr @${set} ct state established,related ${mark}`, `${ip} daddr @${set} ct status dnat ${mark}`);
  }
  return [
    // Before iptables' filter chains (priority filter), so they see the mark; cleared right after them.
    renderChain('inet', t, 'let-through', 'type filter hook forward priority filter - 5; policy accept;', marking),
    renderChain('inet', t, 'clear-mark', 'type filter hook forward priority filter + 1; policy accept;',
      [`meta mark & ${hex(FORWARD_MARK)} == ${hex(FORWARD_MARK)} meta mark set meta mark & ${hex(~FORWARD_MARK >>> 0)}`]),
  ];
}

export function forwardSharedTable(t = FORWARD_TABLE): SharedTable {
  return { family: 'inet', table: t, chains: ['let-through', 'clear-mark'], sets: ['allowed4', 'allowed6'] };
}

/** The fixed structure: table, the two sets, the two chains with their rules (idempotent). */
export function renderForwardDeclare(t = FORWARD_TABLE): string[] {
  return [
    `add table inet ${t} { comment "node-cni-plugins firewall: containers' forwarded traffic passes the host's FORWARD policy"; }`,
    `add set inet ${t} allowed4 { type ipv4_addr; comment "container addresses"; }`,
    `add set inet ${t} allowed6 { type ipv6_addr; comment "container addresses"; }`,
    ...forwardChains(t).flatMap((c) => c.lines),
  ];
}

/** The owner's elements (a stale element of the same address is replaced). */
export function renderForwardElements(owner: MasqOwner, addresses: readonly string[], t = FORWARD_TABLE): string[] {
  const comment = nftQuote(elementComment(owner));
  return addresses.flatMap((a) => [
    `add element inet ${t} ${setOf(a)} { ${a} }`,
    `delete element inet ${t} ${setOf(a)} { ${a} }`,
    `add element inet ${t} ${setOf(a)} { ${a} comment ${comment} }`,
  ]);
}

export function renderForwardDel(addresses: readonly string[], t = FORWARD_TABLE): string[] {
  return addresses.map((a) => `delete element inet ${t} ${setOf(a)} { ${a} }`);
}

/** ADD: element operations only while the chains are intact; the structure declared with them when not. */
export async function applyForwardAdd(owner: MasqOwner, addresses: readonly string[], o: ForwardOptions = {}): Promise<void> {
  const t = o.table ?? FORWARD_TABLE;
  const elements = renderForwardElements(owner, addresses, t);
  if (await verifyChains('inet', t, forwardChains(t), o.netns)) {
    try {
      applyNft(elements.join('\n') + '\n', o.netns);
      return;
    } catch (err) {
      if (!isNftMissing(err)) throw err;
      // A set or the table went away since the check: declare below.
    }
  }
  applyNft([...renderForwardDeclare(t), ...elements].join('\n') + '\n', o.netns);
}

/** Remove these addresses' elements; the missing ones count as removed. */
export function removeForwardElements(addresses: readonly string[], o: ForwardOptions = {}): void {
  applyNftDeletions(renderForwardDel(addresses, o.table), o.netns);
}

/** The table, unless an element is still in it (then nothing changes). */
export function removeForwardTableIfUnused(o: ForwardOptions = {}): Promise<TableRemoval> {
  return removeTableIfUnused(forwardSharedTable(o.table), o.netns);
}

/** Whether this owner's element for the address is there (CHECK): one `nft get element`, no listing. */
export function hasForwardElement(owner: MasqOwner, address: string, o: ForwardOptions = {}): boolean {
  const text = getNftElement('inet', o.table ?? FORWARD_TABLE, setOf(address), address, o.netns);
  return text !== undefined && text.includes(attachmentTag(owner.containerId, owner.ifname));
}

/** GC and leftovers: every element with its comment (this lists the sets). */
export function listForwardElements(o: ForwardOptions = {}): Array<{ address: string; comment: string }> {
  const out: Array<{ address: string; comment: string }> = [];
  for (const set of ['allowed4', 'allowed6']) {
    const j = nftJson(['list', 'set', 'inet', o.table ?? FORWARD_TABLE, set], o.netns);
    for (const obj of j?.nftables ?? []) {
      for (const e of (obj.set?.elem as unknown[] | undefined) ?? []) {
        const x = e as any;
        out.push(typeof x === 'string' ? { address: x, comment: '' } : { address: String(x?.elem?.val), comment: String(x?.elem?.comment ?? '') });
      }
    }
  }
  return out;
}

/** GC: the addresses of `network`'s elements whose attachment is not valid. */
export function staleForwardAddresses(network: string, valid: ReadonlyArray<{ containerID: string; ifname: string }>, o: ForwardOptions = {}): string[] {
  const net = networkTag(network);
  const keep = new Set(valid.map((a) => attachmentTag(a.containerID, a.ifname)));
  return listForwardElements(o).filter((e) => {
    const [n, att] = e.comment.split(' ');
    return n === net && !keep.has(att);
  }).map((e) => e.address);
}
