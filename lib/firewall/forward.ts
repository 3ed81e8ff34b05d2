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
// An ADD is one nft transaction: the fixed structure re-stated (idempotent,
// atomic: rules are flushed and rewritten in the same transaction, so it also
// repairs) and this container's elements, each added, deleted and added again
// so a stale element of the same address takes this owner. Nothing lists the
// sets; nft 1.0.6 fetches no set contents for these operations.

import { spawnSync } from 'child_process';
import type { Netns } from '../netns';
import { FORWARD_MARK } from './iptables';
import { attachmentTag, elementComment, networkTag, type MasqOwner } from './masquerade';
import { applyNft, NftError, nftJson } from './nft';

export const FORWARD_TABLE = 'node_cni_firewall';

export interface ForwardOptions {
  table?: string;
  netns?: Netns;
}

const isV6 = (a: string): boolean => a.includes(':');
const setOf = (a: string): string => (isV6(a) ? 'allowed6' : 'allowed4');
const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, '_')}"`;
}

/** The fixed structure: table, the two sets, the let-through and clear-mark chains with their rules (idempotent). */
export function renderForwardStructure(t = FORWARD_TABLE): string[] {
  const mark = `meta mark set meta mark | ${hex(FORWARD_MARK)}`;
  const lines = [
    `add table inet ${t} { comment "node-cni-plugins firewall: containers' forwarded traffic passes the host's FORWARD policy"; }`,
    `add set inet ${t} allowed4 { type ipv4_addr; comment "container addresses"; }`,
    `add set inet ${t} allowed6 { type ipv6_addr; comment "container addresses"; }`,
    // Before iptables' filter chains (priority filter), so they see the mark.
    `add chain inet ${t} let-through { type filter hook forward priority filter - 5; policy accept; }`,
    `flush chain inet ${t} let-through`,
  ];
  for (const [ip, set] of [['ip', 'allowed4'], ['ip6', 'allowed6']]) {
    lines.push(
      `add rule inet ${t} let-through ${ip} saddr @${set} ${mark}`,
      `add rule inet ${t} let-through ${ip} daddr @${set} ct state established,related ${mark}`,
      `add rule inet ${t} let-through ${ip} daddr @${set} ct status dnat ${mark}`,
    );
  }
  lines.push(
    `add chain inet ${t} clear-mark { type filter hook forward priority filter + 1; policy accept; }`,
    `flush chain inet ${t} clear-mark`,
    `add rule inet ${t} clear-mark meta mark & ${hex(FORWARD_MARK)} == ${hex(FORWARD_MARK)} meta mark set meta mark & ${hex(~FORWARD_MARK >>> 0)}`,
  );
  return lines;
}

/** The ADD transaction: the structure and the owner's elements. */
export function renderForwardAdd(owner: MasqOwner, addresses: readonly string[], t = FORWARD_TABLE): string {
  const lines = renderForwardStructure(t);
  const comment = quote(elementComment(owner));
  for (const a of addresses) {
    lines.push(
      `add element inet ${t} ${setOf(a)} { ${a} }`,
      `delete element inet ${t} ${setOf(a)} { ${a} }`,
      `add element inet ${t} ${setOf(a)} { ${a} comment ${comment} }`,
    );
  }
  return lines.join('\n') + '\n';
}

export function renderForwardDel(addresses: readonly string[], t = FORWARD_TABLE): string[] {
  return addresses.map((a) => `delete element inet ${t} ${setOf(a)} { ${a} }`);
}

function isMissing(err: unknown): boolean {
  return err instanceof NftError && /No such file or directory|does not exist/.test(err.stderr);
}

export function applyForwardAdd(owner: MasqOwner, addresses: readonly string[], o: ForwardOptions = {}): void {
  applyNft(renderForwardAdd(owner, addresses, o.table), o.netns);
}

/** Remove these addresses' elements; the missing ones count as removed. */
export function removeForwardElements(addresses: readonly string[], o: ForwardOptions = {}): void {
  const lines = renderForwardDel(addresses, o.table);
  if (lines.length === 0) return;
  try {
    applyNft(lines.join('\n') + '\n', o.netns);
    return;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  for (const l of lines) {
    try { applyNft(`${l}\n`, o.netns); } catch (err) { if (!isMissing(err)) throw err; }
  }
}

/** The table goes with the last container (the caller knows it is the last). Idempotent. */
export function removeForwardTable(o: ForwardOptions = {}): void {
  try {
    applyNft(`delete table inet ${o.table ?? FORWARD_TABLE}\n`, o.netns);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

/** Whether this owner's element for the address is there (CHECK): one `nft get element`, no listing. */
export function hasForwardElement(owner: MasqOwner, address: string, o: ForwardOptions = {}): boolean {
  const run = () => spawnSync('nft', ['get', 'element', 'inet', o.table ?? FORWARD_TABLE, setOf(address), `{ ${address} }`], { encoding: 'utf8' });
  const r = o.netns ? o.netns.run(run) : run();
  if (r.error) throw r.error;
  return r.status === 0 && r.stdout.includes(attachmentTag(owner.containerId, owner.ifname));
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
