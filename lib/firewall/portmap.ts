// nftables rendering for portmap (pure: text in, text out; golden-tested).
//
// One table, `inet cni_portmap`, shared by every network:
//   claims4/claims6   (hostIP . proto . hostPort) -> owner mark. Global, so a
//                     host port can be published once per host whatever the
//                     network; `create element` makes a second claim fail
//                     atomically instead of overwriting (no read-then-write).
// Per network N (prefix n_<hash of name>, so any network name is safe):
//   N_any4/6          (proto . hostPort)          -> containerIP . containerPort
//   N_ip4/6           (hostIP . proto . hostPort) -> containerIP . containerPort
//   N_targets4/6      (containerIP . proto . containerPort): masquerade localhost / masqAll
//   N_hairpin4/6      (containerIP . containerIP): masquerade a container reaching itself
//   N_dnat            the four map lookups, behind the network's conditions; each
//                     hit also sets PUBLISHED_CT_MARK on the connection
//   N_prerouting/N_output/N_postrouting   base chains of that network
// Per packet: a constant number of hash lookups per network; per ADD: one
// transaction whose size depends only on this container's mappings.
//
// Lifecycle (plugins/portmap): the network's part exists from its first
// publishing attachment to its last; the table and the claim maps go with
// the last network (removeTableIfUnused). The steady-state ADD is element
// operations only, after checking the network's chains hold exactly the
// rules this config renders (verifyChains: their tagged comments, one small
// dump per chain); if not, the structure is declared again in the same
// transaction as the elements. nft 1.0.6 fetches no set contents for
// add/create/delete element (scripts/bench/nft.js), so the cost does not grow
// with the elements already published.

import { sha256, sha256Hex } from '../util/hash';
import { renderChain, type RenderedChain, type SharedTable } from './render';

export const PORTMAP_TABLE = 'cni_portmap';

/**
 * The conntrack mark bit of a connection DNAT'd to a published port. Network
 * isolation (./isolation.ts) and ICC off (./netpolicy.ts) let such
 * connections through, both directions: a published port answers containers
 * of every network through the host's address, as in Docker
 * (containers/netavark#709 had that wrong until 2026). A bit of the ct mark
 * (per connection), not of the packet mark the firewall plugin uses.
 */
export const PUBLISHED_CT_MARK = 0x00400000;
const hexMark = `0x${PUBLISHED_CT_MARK.toString(16).padStart(8, '0')}`;
/** The nft match of a connection to a published port. */
export const PUBLISHED_CT_MATCH = `ct mark & ${hexMark} == ${hexMark}`;
const SET_PUBLISHED = `ct mark set ct mark | ${hexMark}`;
export type Family = 4 | 6;

export interface PortmapNetwork {
  name: string;
  snat: boolean;
  masqAll: boolean;
  conditionsV4: readonly string[];
  conditionsV6: readonly string[];
}

/** One published port in one family. */
export interface PortmapEntry {
  family: Family;
  /** A specific host address; undefined = every local address of the family. */
  hostIP?: string;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostPort: number;
  containerIP: string;
  containerPort: number;
}

export interface PortmapAttachment {
  network: string;
  containerID: string;
  ifname: string;
  entries: readonly PortmapEntry[];
}

/** One element this attachment owns. `exclusive`: refuse if the key exists (a claim), else add-or-keep. */
export interface ElementOp {
  set: string;
  key: string;
  value?: string;
  comment?: string;
  exclusive: boolean;
}

/** Chain/set name prefix of a network: stable, short, and safe for any network name. */
export function networkPrefix(network: string): string {
  return `n_${sha256Hex(network).slice(0, 12)}`;
}

/** The 32-bit value a claim carries: tells this attachment's claims from anyone else's. */
export function ownerMark(att: Pick<PortmapAttachment, 'network' | 'containerID' | 'ifname'>): string {
  const h = sha256(`${att.network}\0${att.containerID}\0${att.ifname}`);
  // Top bit set: always 8 hex digits, printed by nft exactly as we render it.
  return `0x${((h.readUInt32BE(0) | 0x80000000) >>> 0).toString(16)}`;
}

/** What a claim's comment says (for humans and conflict messages); nft comments are at most 128 bytes. */
export function ownerComment(att: Pick<PortmapAttachment, 'network' | 'containerID' | 'ifname'>): string {
  return `${att.network}/${att.containerID}/${att.ifname}`.replace(/[^A-Za-z0-9_.:/-]/g, '_').slice(0, 127);
}

/** Parse an owner comment back; undefined if it is not ours. */
export function parseOwnerComment(comment: string): { network: string; containerID: string; ifname: string } | undefined {
  const m = /^([^/]+)\/([^/]+)\/([^/]+)$/.exec(comment);
  return m ? { network: m[1], containerID: m[2], ifname: m[3] } : undefined;
}

const anyAddr = (f: Family): string => (f === 4 ? '0.0.0.0' : '::');
const ipKw = (f: Family): string => (f === 4 ? 'ip' : 'ip6');
const addrType = (f: Family): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');

/** The table and claim maps every network shares. */
export function portmapSharedTable(table = PORTMAP_TABLE): SharedTable {
  return { family: 'inet', table, chains: [], sets: ['claims4', 'claims6'] };
}

/** The sets and maps of one network (teardown), with the structure mark an older release kept in `<n>_declared`. */
export function networkSets(network: string): string[] {
  const n = networkPrefix(network);
  return [...[4, 6].flatMap((f) => [`${n}_any${f}`, `${n}_ip${f}`, `${n}_targets${f}`, `${n}_hairpin${f}`]), `${n}_declared`];
}

/** The chains of one network, in the order they must be deleted (hooked chains first: they jump to dnat). */
export function networkChainNames(network: string): string[] {
  const n = networkPrefix(network);
  return [`${n}_prerouting`, `${n}_output`, `${n}_postrouting`, `${n}_dnat`];
}

/** The network's chains as this config renders them: what verifyChains checks before the steady-state ADD. */
export function networkChains(net: PortmapNetwork, table = PORTMAP_TABLE): RenderedChain[] {
  const n = networkPrefix(net.name);
  const chain = (name: string, spec: string, rules: string[]): RenderedChain => renderChain('inet', table, `${n}_${name}`, spec, rules);
  const dnat: string[] = [];
  for (const f of [4, 6] as const) {
    const cond = (f === 4 ? net.conditionsV4 : net.conditionsV6).map((c) => `${c} `).join('');
    const ip = ipKw(f);
    // A lookup that will DNAT marks the connection first (a nat statement ends the rule).
    dnat.push(
      `${cond}${ip} daddr . meta l4proto . th dport @${n}_ip${f} ${SET_PUBLISHED}`,
      `${cond}dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @${n}_ip${f}`,
      `${cond}fib daddr type local meta l4proto . th dport @${n}_any${f} ${SET_PUBLISHED}`,
      `${cond}fib daddr type local dnat ${ip} to meta l4proto . th dport map @${n}_any${f}`,
    );
  }
  const masq: string[] = [];
  for (const f of [4, 6] as const) {
    const ip = ipKw(f);
    const toTarget = `ct status dnat ${ip} daddr . meta l4proto . th dport @${n}_targets${f}`;
    if (!net.snat) continue; // like the reference, snat:false turns masqAll off too
    if (net.masqAll) {
      masq.push(`${toTarget} masquerade`);
    } else {
      masq.push(`ct status dnat ${ip} saddr . ${ip} daddr @${n}_hairpin${f} masquerade`);
      // Connections to 127.0.0.1:hostPort (route_localnet); IPv6 has no equivalent of route_localnet.
      if (f === 4) masq.push(`ip saddr 127.0.0.0/8 ${toTarget} masquerade`);
    }
  }
  return [
    chain('dnat', `comment "portmap network ${net.name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100)}";`, dnat),
    chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', [`jump ${n}_dnat`]),
    chain('output', 'type nat hook output priority -100; policy accept;', [`jump ${n}_dnat`]),
    chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', masq),
  ];
}

/** The table, the claim maps and the network's maps, sets and chains; idempotent (rules are flushed and rewritten). */
export function renderSkeleton(net: PortmapNetwork, table = PORTMAP_TABLE): string {
  const t = `inet ${table}`;
  const n = networkPrefix(net.name);
  const out: string[] = [`add table ${t} { comment "node-cni-plugins portmap: published container ports"; }`];
  for (const f of [4, 6] as const) {
    out.push(`add map ${t} claims${f} { type ${addrType(f)} . inet_proto . inet_service : mark; comment "published host ports -> owner"; }`);
  }
  for (const f of [4, 6] as const) {
    const a = addrType(f);
    out.push(
      `add map ${t} ${n}_any${f} { type inet_proto . inet_service : ${a} . inet_service; }`,
      `add map ${t} ${n}_ip${f} { type ${a} . inet_proto . inet_service : ${a} . inet_service; }`,
      `add set ${t} ${n}_targets${f} { type ${a} . inet_proto . inet_service; }`,
      `add set ${t} ${n}_hairpin${f} { type ${a} . ${a}; }`,
    );
  }
  for (const c of networkChains(net, table)) out.push(...c.lines);
  return out.join('\n') + '\n';
}

/**
 * The 32-bit claim value of a container (records of version 2): every
 * network of one container claims a host port with the same value, so a
 * container on several networks may publish the same port on each
 * (plugins/portmap/publications.ts chooses which one answers); any other
 * container is still refused.
 */
export function containerMark(containerID: string): string {
  const h = sha256(`container\0${containerID}`);
  return `0x${((h.readUInt32BE(0) | 0x80000000) >>> 0).toString(16)}`;
}

export interface PlanOptions {
  /**
   * "attachment" (records of version 1): the claims carry ownerMark and are
   * created (a second claim fails). "container": they carry containerMark and
   * are added (a no-op when this container holds them already, a failure when
   * another does).
   */
  claimBy?: 'attachment' | 'container';
  /** The entries that answer (their DNAT elements); the others are answered by another network of the container. Default: all. */
  answers?: (e: PortmapEntry) => boolean;
  /** The entries whose claims to include. Default: all. */
  claims?: (e: PortmapEntry) => boolean;
}

/** Every element an attachment owns (or the part `o` selects), deduplicated, in a stable order. */
export function planElements(att: PortmapAttachment, o: PlanOptions = {}): ElementOp[] {
  const n = networkPrefix(att.network);
  const byContainer = o.claimBy === 'container';
  const owner = byContainer ? containerMark(att.containerID) : ownerMark(att);
  const comment = ownerComment(att);
  const ops = new Map<string, ElementOp>();
  const put = (op: ElementOp): void => {
    const k = `${op.set} ${op.key}`;
    if (!ops.has(k)) ops.set(k, op);
  };
  for (const e of att.entries) {
    const target = `${e.containerIP} . ${e.containerPort}`;
    if (o.claims?.(e) ?? true) {
      put({ set: `claims${e.family}`, key: `${e.hostIP ?? anyAddr(e.family)} . ${e.protocol} . ${e.hostPort}`, value: owner, comment, exclusive: !byContainer });
    }
    if (o.answers?.(e) ?? true) {
      if (e.hostIP === undefined) {
        put({ set: `${n}_any${e.family}`, key: `${e.protocol} . ${e.hostPort}`, value: target, comment, exclusive: true });
      } else {
        put({ set: `${n}_ip${e.family}`, key: `${e.hostIP} . ${e.protocol} . ${e.hostPort}`, value: target, comment, exclusive: true });
      }
    }
    put({ set: `${n}_targets${e.family}`, key: `${e.containerIP} . ${e.protocol} . ${e.containerPort}`, exclusive: false });
    put({ set: `${n}_hairpin${e.family}`, key: `${e.containerIP} . ${e.containerIP}`, exclusive: false });
  }
  return [...ops.values()];
}

function groupBySet(ops: readonly ElementOp[]): Map<string, ElementOp[]> {
  const by = new Map<string, ElementOp[]>();
  for (const op of ops) {
    const list = by.get(op.set);
    if (list) list.push(op);
    else by.set(op.set, [op]);
  }
  return by;
}

const elem = (op: ElementOp, withComment: boolean): string =>
  `${op.key}${withComment && op.comment ? ` comment "${op.comment}"` : ''}${op.value !== undefined ? ` : ${op.value}` : ''}`;

/** First ADD of a network (or a repair, or a config change): declare the structure and publish, one transaction. */
export function renderDeclareAndPublish(net: PortmapNetwork, ops: readonly ElementOp[], table = PORTMAP_TABLE): string {
  return renderSkeleton(net, table) + renderAddElements(ops, table);
}

/** Publish: claims and DNAT entries are created (fail if present), the shared-by-key sets are added. */
export function renderAddElements(ops: readonly ElementOp[], table = PORTMAP_TABLE): string {
  const out: string[] = [];
  for (const [set, list] of groupBySet(ops)) {
    for (const exclusive of [true, false]) {
      const sel = list.filter((o) => o.exclusive === exclusive);
      if (sel.length) out.push(`${exclusive ? 'create' : 'add'} element inet ${table} ${set} { ${sel.map((o) => elem(o, true)).join(', ')} }`);
    }
  }
  return out.join('\n') + (out.length ? '\n' : '');
}

/**
 * Unpublish, without listing, in one transaction: each claim is first added
 * with our own owner mark (a no-op if it is ours, a create if it is gone)
 * and then deleted, so a claim that now belongs to someone else fails the
 * whole transaction and nothing changes. The other elements exist only
 * behind our claims: they are deleted directly. If anything is missing
 * (a repeated or partial DEL) the transaction fails too, and the caller goes
 * set by set with renderRemoveSet.
 */
export function renderRemoveElements(ops: readonly ElementOp[], table = PORTMAP_TABLE): string {
  const out: string[] = [];
  const sets = [...groupBySet(ops)];
  for (const [set, list] of sets) {
    if (set.startsWith('claims')) out.push(`add element inet ${table} ${set} { ${list.map((o) => elem(o, false)).join(', ')} }`);
  }
  for (const [set, list] of sets) out.push(`delete element inet ${table} ${set} { ${list.map((o) => o.key).join(', ')} }`);
  return out.join('\n') + (out.length ? '\n' : '');
}

/**
 * Unpublish one set's elements idempotently: `add` each with our own value
 * (a no-op if it is there, a create if it is gone), then `delete`. Fails only
 * if the set is gone (then so are its elements) or a key now holds someone
 * else's value (the caller then goes element by element and leaves theirs).
 */
export function renderRemoveSet(set: string, ops: readonly ElementOp[], table = PORTMAP_TABLE): string {
  return `add element inet ${table} ${set} { ${ops.map((o) => elem(o, false)).join(', ')} }\n` +
    `delete element inet ${table} ${set} { ${ops.map((o) => o.key).join(', ')} }\n`;
}

/** Elements grouped by set, in a stable order. */
export function elementsBySet(ops: readonly ElementOp[]): Array<[string, ElementOp[]]> {
  return [...groupBySet(ops)];
}

/** The keys to look up per set, to check that elements exist (CHECK). */
export function renderGetElements(ops: readonly ElementOp[]): Array<{ set: string; keys: string[]; expect: ElementOp[] }> {
  return [...groupBySet(ops)].map(([set, list]) => ({ set, keys: list.map((o) => o.key), expect: list }));
}
