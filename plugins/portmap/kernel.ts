// The parts of portmap that talk to the kernel: one nft transaction per
// change, the network's structure (verified on ADD, removed with its last
// attachment), conntrack flushes, route_localnet. Everything runs in the
// process's own network namespace (the host's, as CNI runs plugins).

import { CniError, ErrorCode } from '../../lib/cni/errors';
import { applyNft, deleteTableObjects, getNftElement, listTable, NftError, nftJson, removeTableIfUnused, verifyChains } from '../../lib/firewall/nft';
import {
  ElementOp,
  networkChainNames,
  networkChains,
  networkSets,
  parseOwnerComment,
  PORTMAP_TABLE,
  portmapSharedTable,
  PortmapEntry,
  PortmapNetwork,
  renderAddElements,
  renderDeclareAndPublish,
  renderGetElements,
  renderRemoveElements,
  renderRemoveSet,
  renderSkeleton,
  elementsBySet,
} from '../../lib/firewall/portmap';
import { deleteConntrackEntries, IPPROTO } from '../../lib/netlink/conntrack';
import { withNfnl } from '../../lib/netlink/nfnetlink';
import type { Kernel } from '../../lib/kernel';
import { openContainerNetnsIfPresent, type Netns } from '../../lib/netns';

function describeClaim(op: ElementOp): string {
  const [addr, proto, port] = op.key.split(' . ');
  return `${proto} port ${port} on ${addr === '0.0.0.0' || addr === '::' ? `every ${addr === '::' ? 'IPv6' : 'IPv4'} address` : addr}`;
}

/** Who holds a claim, from the element's comment. */
function holderOf(comment: string | undefined): string {
  const holder = comment ? parseOwnerComment(comment) : undefined;
  return holder ? `container "${holder.containerID}" (network "${holder.network}", interface "${holder.ifname}")` : 'another container';
}

/**
 * The claims of ours that someone else holds: first from where nft says the
 * transaction failed (one lookup), else, when nft could not say (a huge
 * failing transaction can overflow its netlink buffer), from a listing of
 * the claim maps (the error path only).
 */
function heldClaims(ops: readonly ElementOp[], err: NftError, table: string): Array<{ op: ElementOp; comment?: string }> {
  const claims = ops.filter((o) => o.set.startsWith('claims'));
  const lines = err.script.split('\n');
  for (const m of err.stderr.matchAll(/:(\d+):(\d+)-(\d+): Error: Could not process rule: File exists/g)) {
    const text = lines[Number(m[1]) - 1]?.slice(Number(m[2]) - 1, Number(m[3]));
    const op = text && claims.find((o) => lines[Number(m[1]) - 1].includes(` ${o.set} `) && text.startsWith(`${o.key} `));
    const found = op ? getNftElement('inet', table, op.set, op.key) : undefined;
    if (op && found !== undefined) return [{ op, comment: /comment "([^"]*)"/.exec(found)?.[1] }];
  }
  const held: Array<{ op: ElementOp; comment?: string }> = [];
  for (const set of new Set(claims.map((o) => o.set))) {
    const byKey = new Map<string, { mark: string; comment?: string }>();
    for (const obj of nftJson(['list', 'map', 'inet', table, set])?.nftables ?? []) {
      for (const pair of (obj.map?.elem as unknown[] | undefined) ?? []) {
        const [k, v] = pair as [any, any];
        const key = (k?.elem?.val ?? k)?.concat as unknown[] | undefined;
        if (key) byKey.set(key.join(' . '), { mark: `0x${Number(v).toString(16)}`, comment: k?.elem?.comment });
      }
    }
    for (const op of claims.filter((o) => o.set === set)) {
      const h = byKey.get(op.key);
      if (h && h.mark !== op.value) held.push({ op, comment: h.comment });
    }
  }
  return held;
}

/** After a refused transaction: say which port and who holds it, or undefined if no claim of ours is held by someone else. */
function explainConflict(ops: readonly ElementOp[], err: NftError, table: string): CniError | undefined {
  const held = heldClaims(ops, err, table);
  if (held.length === 0) return undefined;
  const more = held.length > 1 ? ` (and ${held.length - 1} more of the requested ports)` : '';
  return new CniError(ErrorCode.InvalidConfig, `portmap: host ${describeClaim(held[0].op)} is already published by ${holderOf(held[0].comment)}${more}`, firstLines(err.stderr));
}

/** nft repeats every failing command of a big transaction, and each can be a very long line: keep the message readable. */
function firstLines(text: string, n = 6, width = 300): string {
  const lines = text.trim().split('\n').map((l) => (l.length > width ? `${l.slice(0, width)}...` : l));
  return lines.length > n ? [...lines.slice(0, n), `... (${lines.length - n} more lines)`].join('\n') : lines.join('\n');
}

function failure(ops: readonly ElementOp[], err: unknown, table: string): CniError {
  if (err instanceof NftError) {
    const conflict = explainConflict(ops, err, table);
    if (conflict) return conflict;
    if (err.exists) return new CniError(ErrorCode.InvalidConfig, 'portmap: a requested host port is already published', firstLines(err.stderr));
    return new CniError(ErrorCode.IoFailure, 'portmap: nft failed', firstLines(err.stderr));
  }
  return new CniError(ErrorCode.IoFailure, `portmap: ${(err as Error).message}`);
}

/**
 * Publish the elements in one transaction. Steady state: the network's
 * chains are checked (their tagged rules, one small dump each), then element
 * operations only. When something of the structure is missing or differs
 * (first ADD, a rule removed by hand, another config), the structure is
 * declared and the elements published in one transaction. A claim someone
 * else holds fails it atomically (EEXIST): nothing is left.
 */
export async function publish(net: PortmapNetwork, ops: readonly ElementOp[], table = PORTMAP_TABLE): Promise<void> {
  if (await verifyChains('inet', table, networkChains(net, table))) {
    try {
      applyNft(renderAddElements(ops, table));
      return;
    } catch (err) {
      if (!(err instanceof NftError && err.missing)) throw failure(ops, err, table);
      // A map or the table went away since the check: declare below.
    }
  }
  try {
    applyNft(renderDeclareAndPublish(net, ops, table));
  } catch (err) {
    throw failure(ops, err, table);
  }
}

/** A change of the container's publications: what goes (removed first) and what comes, per network. */
export interface Change {
  remove: readonly ElementOp[];
  add: ReadonlyArray<{ net: PortmapNetwork; ops: readonly ElementOp[] }>;
}

/**
 * One transaction: the removals, then the additions; a network that gains
 * elements has its chains checked first and is declared in the same
 * transaction when they are missing or differ. If the transaction fails on
 * something already gone (a repeated DEL), the removals go set by set
 * (unpublish) and the additions are published network by network. A claim
 * another container holds fails it atomically.
 */
export async function applyChange(c: Change, table = PORTMAP_TABLE): Promise<void> {
  const adds = c.add.filter((a) => a.ops.length);
  const addOps = adds.flatMap((a) => a.ops);
  let declare = '';
  for (const a of adds) {
    if (!(await verifyChains('inet', table, networkChains(a.net, table)))) declare += renderSkeleton(a.net, table);
  }
  const script = (c.remove.length ? renderRemoveElements(c.remove, table) : '') + declare + renderAddElements(addOps, table);
  if (!script) return;
  try {
    applyNft(script);
    return;
  } catch (err) {
    if (!(err instanceof NftError && err.missing)) throw failure(addOps, err, table);
  }
  const errors = unpublish(c.remove, table);
  if (errors.length) throw new CniError(ErrorCode.IoFailure, `portmap: ${errors.join('; ')}`);
  for (const a of adds) await publish(a.net, a.ops, table);
}

/**
 * The metric of the attachment's default route per family, read in the
 * container: the rule by which the kernel picks the container's default
 * route (lib/routes/priority.ts) also picks which of its networks answers a
 * host port they all publish. A namespace or interface that cannot be read
 * counts as no default route.
 */
export async function defaultRouteMetrics(kernel: Kernel, netnsPath: string | undefined, ifname: string): Promise<Partial<Record<4 | 6, number>>> {
  const out: Partial<Record<4 | 6, number>> = {};
  let ns: Netns | undefined;
  try {
    ns = openContainerNetnsIfPresent(netnsPath, kernel.openNetns);
  } catch {
    return out;
  }
  if (!ns) return out;
  const rtnl = kernel.openRtnl(ns);
  try {
    const link = await rtnl.getLink(ifname);
    if (!link) return out;
    for (const family of [4, 6] as const) {
      for (const r of await rtnl.listRoutes({ family })) {
        if (r.oif !== link.index || !r.dst.endsWith('/0')) continue;
        const m = r.metric ?? 0;
        if (out[family] === undefined || m < out[family]!) out[family] = m;
      }
    }
    return out;
  } finally {
    rtnl.close();
    ns.close();
  }
}

/**
 * Remove an attachment's elements. One transaction normally; if it fails
 * (part of it is gone already, or a claim was published again by someone
 * else), set by set, and in a set whose key someone else holds, element by
 * element, leaving theirs. Returns the errors it could not ignore.
 */
export function unpublish(ops: readonly ElementOp[], table = PORTMAP_TABLE): string[] {
  if (ops.length === 0) return [];
  try {
    applyNft(renderRemoveElements(ops, table));
    return [];
  } catch { /* fall through to the careful path */ }
  const errors: string[] = [];
  for (const [set, list] of elementsBySet(ops)) {
    try {
      applyNft(renderRemoveSet(set, list, table));
      continue;
    } catch (err) {
      if (err instanceof NftError && err.missing) continue; // the set is gone, and its elements with it
      if (!(err instanceof NftError && err.exists)) {
        errors.push(`removing elements of ${set}: ${(err as Error).message}`);
        continue;
      }
    }
    for (const op of list) {
      try {
        applyNft(renderRemoveSet(set, [op], table));
      } catch (err) {
        if (err instanceof NftError && (err.exists || err.missing)) continue; // someone else's now, or gone
        errors.push(`removing ${set} { ${op.key} }: ${(err as Error).message}`);
      }
    }
  }
  return errors;
}

/**
 * The network's last attachment is gone: remove its chains and maps, then
 * the table if no other network uses it. Costs a listing of the table's
 * chains and sets (no elements) and two kernel transactions.
 */
export async function removeNetworkStructure(network: string, table = PORTMAP_TABLE): Promise<void> {
  const present = await listTable('inet', table);
  if (!present) return;
  const chains = new Set(present.chains.map((c) => c.name));
  const sets = new Set(present.sets);
  await deleteTableObjects('inet', table, {
    chains: networkChainNames(network).filter((c) => chains.has(c)),
    sets: networkSets(network).filter((s) => sets.has(s)),
  });
  await removeTableIfUnused(portmapSharedTable(table));
}

/** CHECK: every element exists and maps to our value. Returns what is wrong. */
export function verifyPublished(ops: readonly ElementOp[], table = PORTMAP_TABLE): string[] {
  const problems: string[] = [];
  for (const q of renderGetElements(ops)) {
    const text = getNftElement('inet', table, q.set, q.keys.join(', '))?.replace(/\s+/g, ' ');
    if (text === undefined) {
      problems.push(`nft set ${q.set} lacks some of { ${q.keys.join(', ')} }`);
      continue;
    }
    for (const op of q.expect) {
      if (op.value === undefined) continue;
      const re = new RegExp(`${escapeRe(op.key)}( comment "[^"]*")? : ${escapeRe(op.value)}(?![0-9a-fx:.])`);
      if (!re.test(text)) problems.push(`nft map ${q.set}: ${op.key} does not map to ${op.value}`);
    }
  }
  return problems;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Drop stale UDP conntrack entries for these host ports, so new datagrams
 * hit the new DNAT: one dump of the conntrack table per family, whatever the
 * number of ports. Returns warnings (a failure here does not fail the verb).
 */
export async function flushUdpConntrack(entries: readonly PortmapEntry[]): Promise<string[]> {
  const ports = { 4: new Set<number>(), 6: new Set<number>() };
  for (const e of entries) if (e.protocol === 'udp') ports[e.family].add(e.hostPort);
  if (ports[4].size === 0 && ports[6].size === 0) return [];
  const warnings: string[] = [];
  await withNfnl(undefined, async (nfnl) => {
    for (const family of [4, 6] as const) {
      try {
        await deleteConntrackEntries(nfnl, { family, protocol: IPPROTO.UDP, dstPorts: ports[family] });
      } catch (err) {
        warnings.push(`conntrack: flushing IPv${family} UDP entries of the published ports: ${(err as Error).message}`);
      }
    }
  });
  return warnings;
}

/**
 * Let connections to 127.0.0.1:hostPort leave towards the container: the
 * kernel drops packets with a loopback source on other interfaces unless
 * route_localnet is set on the interface that routes to the container
 * (found by the kernel's own route lookup, as `ip route get` does).
 */
export async function enableRouteLocalnet(kernel: Kernel, containerIPv4: string): Promise<void> {
  const rtnl = kernel.openRtnl();
  try {
    const route = await rtnl.routeTo(containerIPv4);
    const link = route?.oif === undefined ? undefined : await rtnl.getLink(route.oif);
    if (!link) throw new CniError(ErrorCode.IoFailure, `portmap: the host has no route to the container address ${containerIPv4}`);
    kernel.sysctl.ensure(`net/ipv4/conf/${link.name}/route_localnet`, 1);
  } finally {
    rtnl.close();
  }
}
