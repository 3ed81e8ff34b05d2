// What a network lets through the host's forwarding, per network, in our own
// nftables table: Docker's internal networks (`--internal`: nothing forwarded
// between the network and anything outside it) and ICC off
// (`com.docker.network.bridge.enable_icc=false`: nothing forwarded between
// two of its containers, the bridge plugin's "portIsolation" doing the same
// on L2). A network's members are its interfaces on this host: the bridge,
// and the VXLAN device of an overlay (cross-host traffic of the network is
// routed through it).
//
//   table inet node_cni_netpolicy
//     map members { ifname : verdict }       each member of a network → jump its chain
//     set internal { ifname }                members of internal networks (portmap refuses to publish there)
//     chain forward (filter hook, before the usual filter priority)
//         iifname vmap @members
//         oifname vmap @members
//     chain postrouting (nat hook)
//         connections marked "hairpin" → masquerade
//     chain pol-<h16(network)>               the network's rules; comment "<net tag> members a,b network N"
//         internal:  iifname != { members } drop;  oifname != { members } drop
//         ICC off:   member to member, to a published port → mark the connection "hairpin", return
//                    member to member → drop
//
// A container reaching a published port of another container of the same
// ICC-off network (through the host's address) is masqueraded to the
// gateway: the reply then goes back through the host, not across L2, where
// the isolated bridge ports would drop it. (Postrouting cannot see the input
// interface, hence the mark set in the forward hook.)
//
// The gateway itself (DNS on it, the host's own services) is input, not
// forwarding, so it is reached either way. Connections to a published port
// carry portmap's conntrack mark (./portmap.ts): ICC off lets them pass, as
// Docker's userland proxy does; internal networks cannot publish ports at all
// (portmap refuses). O(1) per packet and per ADD: two map lookups, one small
// chain; an ADD checks the chains by their tagged rules and then sends element
// operations only (as ./masquerade.ts). The chain goes with the network's last
// container (lib/bridge/lifecycle.ts), the table with the last network.

import { sha256Hex } from '../util/hash';
import type { Netns } from '../netns';
import { networkTag } from './masquerade';
import { applyNft, applyNftDeletions, getNftElement, isNftMissing, listTable, nftQuote, removeTableIfUnused, renderChain, tableExists, verifyChains, type RenderedChain, type SharedTable } from './nft';
import { PUBLISHED_CT_MATCH } from './portmap';

export const NETPOLICY_TABLE = 'node_cni_netpolicy';
/** The conntrack mark bit of a connection to a published port between two containers of one ICC-off network. */
export const ICC_HAIRPIN_CT_MARK = 0x00800000;
const HAIRPIN = `0x${ICC_HAIRPIN_CT_MARK.toString(16).padStart(8, '0')}`;

export interface NetworkPolicy {
  network: string;
  /** The network's interfaces on this host (bridge; overlay: bridge and VXLAN device). */
  members: readonly string[];
  /** `--internal`: nothing forwarded between the network and the rest. */
  internal: boolean;
  /** ICC off: nothing forwarded between two containers of the network. */
  iccOff: boolean;
}

export interface NetPolicyOptions {
  table?: string;
  netns?: Netns;
}

/** Whether a network needs any of this. */
export function hasPolicy(p: Pick<NetworkPolicy, 'internal' | 'iccOff'>): boolean {
  return p.internal || p.iccOff;
}

export function policyChain(network: string): string {
  return `pol-${sha256Hex(`policy\0${network}`).slice(0, 16)}`;
}

export function netPolicySharedTable(table = NETPOLICY_TABLE): SharedTable {
  return { family: 'inet', table, chains: ['forward', 'postrouting'], sets: ['members', 'internal'] };
}

const set = (names: readonly string[]): string => `{ ${names.map(nftQuote).join(', ')} }`;

/** The chain's comment: the network's tag first (teardown finds the chain by it), then its members (teardown removes their elements). */
export function policyComment(p: Pick<NetworkPolicy, 'network' | 'members'>): string {
  return `${networkTag(p.network)} members ${p.members.join(',')} network ${p.network}`.slice(0, 127);
}

/** The chains an ADD needs: the two shared ones and the network's. */
export function policyChains(p: NetworkPolicy, t = NETPOLICY_TABLE): RenderedChain[] {
  const rules: string[] = [];
  if (p.internal) rules.push(`iifname != ${set(p.members)} drop`, `oifname != ${set(p.members)} drop`);
  if (p.iccOff) {
    const memberToMember = `iifname ${set(p.members)} oifname ${set(p.members)}`;
    rules.push(`${memberToMember} ${PUBLISHED_CT_MATCH} ct mark set ct mark | ${HAIRPIN} return`, `${memberToMember} drop`);
  }
  return [
    // Before the default filter priority, so a drop here happens whatever other tables accept.
    renderChain('inet', t, 'forward', 'type filter hook forward priority filter - 10; policy accept;', ['iifname vmap @members', 'oifname vmap @members']),
    renderChain('inet', t, 'postrouting', 'type nat hook postrouting priority srcnat; policy accept;', [`ct mark & ${HAIRPIN} == ${HAIRPIN} masquerade`]),
    renderChain('inet', t, policyChain(p.network), `comment ${nftQuote(policyComment(p))};`, rules),
  ];
}

/** The network's elements, each added, deleted and added again so a stale one (another network's chain) is replaced. */
export function renderPolicyElements(p: NetworkPolicy, t = NETPOLICY_TABLE): string {
  const chain = policyChain(p.network);
  const comment = nftQuote(`network ${p.network}`.slice(0, 120));
  const lines: string[] = [];
  for (const m of p.members.map(nftQuote)) {
    lines.push(
      `add element inet ${t} members { ${m} : jump ${chain} }`,
      `delete element inet ${t} members { ${m} }`,
      `add element inet ${t} members { ${m} comment ${comment} : jump ${chain} }`,
    );
    if (p.internal) lines.push(`add element inet ${t} internal { ${m} comment ${comment} }`);
    else lines.push(`add element inet ${t} internal { ${m} }`, `delete element inet ${t} internal { ${m} }`);
  }
  return lines.join('\n') + '\n';
}

/** The whole structure re-stated (idempotent), then the network's elements. */
export function renderPolicyDeclare(p: NetworkPolicy, t = NETPOLICY_TABLE): string {
  return [
    `add table inet ${t} { comment "node-cni-plugins: internal networks and ICC off"; }`,
    `add map inet ${t} members { type ifname : verdict; }`,
    `add set inet ${t} internal { type ifname; }`,
    ...policyChains(p, t).flatMap((c) => c.lines),
  ].join('\n') + '\n' + renderPolicyElements(p, t);
}

/** ADD: element operations once the chains are checked; the full declaration when something is missing or differs. */
export async function applyNetworkPolicy(p: NetworkPolicy, opts: NetPolicyOptions = {}): Promise<void> {
  if (!hasPolicy(p)) return;
  const t = opts.table ?? NETPOLICY_TABLE;
  if (await verifyChains('inet', t, policyChains(p, t), opts.netns)) {
    try {
      applyNft(renderPolicyElements(p, t), opts.netns);
      return;
    } catch (err) {
      if (!isNftMissing(err)) throw err;
    }
  }
  applyNft(renderPolicyDeclare(p, t), opts.netns);
}

/** CHECK: what is missing of the network's policy, or undefined. */
export async function missingPolicy(p: NetworkPolicy, opts: NetPolicyOptions = {}): Promise<string | undefined> {
  if (!hasPolicy(p)) return undefined;
  const t = opts.table ?? NETPOLICY_TABLE;
  if (!(await verifyChains('inet', t, policyChains(p, t), opts.netns))) return `the forwarding rules of network "${p.network}" (table inet ${t})`;
  for (const m of p.members) {
    if (!getNftElement('inet', t, 'members', nftQuote(m), opts.netns)?.includes(policyChain(p.network))) return `the element of "${m}" in inet ${t} members`;
    if (p.internal && getNftElement('inet', t, 'internal', nftQuote(m), opts.netns) === undefined) return `the element of "${m}" in inet ${t} internal`;
  }
  return undefined;
}

/** The members named in a chain comment of ours. */
function membersOf(comment: string): string[] {
  const m = / members (\S*) network /.exec(comment);
  return m && m[1] ? m[1].split(',') : [];
}

/**
 * The network's last container is gone: its elements and chain go (missing
 * ones count as done), then the table if no other network has a policy.
 */
export async function removeNetworkPolicy(network: string, opts: NetPolicyOptions = {}): Promise<void> {
  const t = opts.table ?? NETPOLICY_TABLE;
  const present = await listTable('inet', t, opts.netns);
  if (!present) return;
  const tag = `${networkTag(network)} `;
  const lines: string[] = [];
  for (const c of present.chains.filter((x) => x.comment.startsWith(tag))) {
    for (const m of membersOf(c.comment).map(nftQuote)) {
      lines.push(`delete element inet ${t} members { ${m} }`, `delete element inet ${t} internal { ${m} }`);
    }
    lines.push(`delete chain inet ${t} ${c.name}`);
  }
  applyNftDeletions(lines, opts.netns);
  await removeTableIfUnused(netPolicySharedTable(t), opts.netns);
}

/**
 * Whether one of these host interfaces (a prevResult's bridge) belongs to an
 * internal network: portmap refuses to publish there. One netlink lookup
 * when no network has a policy, one `nft get element` per name otherwise.
 */
export async function internalMember(ifnames: readonly string[], opts: NetPolicyOptions = {}): Promise<string | undefined> {
  const t = opts.table ?? NETPOLICY_TABLE;
  if (ifnames.length === 0 || !(await tableExists('inet', t, opts.netns))) return undefined;
  return ifnames.find((n) => getNftElement('inet', t, 'internal', nftQuote(n), opts.netns) !== undefined);
}
