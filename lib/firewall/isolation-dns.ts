// The guard of the per-network DNS services: a query to a network's gateway
// address is accepted only from that network's bridge (or from the host
// itself, on lo). dnsmasq binds exactly the gateway address, but Linux
// delivers a packet for a local address whatever interface it came in on:
// without this, containers of other networks, or anything routed to the
// host, could query a network's names.
//
//   table inet node_cni_dns
//     set dns4 { ipv4_addr }  set served4 { ipv4_addr . ifname }   one element per gateway
//     set dns6 { ipv6_addr }  set served6 { ipv6_addr . ifname }
//     chain input (filter hook): port 53 to @dns4 not from its (address . bridge) → drop
//
// The guard's elements come and go with the network's DNS service
// (lib/dns/service.ts); the table goes with the last one (removeTableIfUnused,
// atomic: kept while any network's element is left). Each registration checks
// the input chain's tagged rules (one small dump) and re-states the guard if
// they are not exactly what this module renders.

import type { Netns } from '../netns';
import { applyNft, applyNftDeletions, nftQuote, removeTableIfUnused, renderChain, verifyChains, type RenderedChain, type SharedTable } from './nft';

export const DNS_GUARD_TABLE = 'node_cni_dns';

export interface DnsGuard {
  /** The bridge the service's network is on. */
  bridge: string;
  /** Gateway addresses the service listens on, without prefix. */
  addresses: readonly string[];
}

const quote = nftQuote;

function v6(a: string): boolean {
  return a.includes(':');
}

function inputChain(t: string): RenderedChain {
  return renderChain('inet', t, 'input', 'type filter hook input priority filter - 10; policy accept;', [
    'iifname "lo" accept',
    'meta l4proto { tcp, udp } th dport 53 ip daddr @dns4 ip daddr . iifname != @served4 drop',
    'meta l4proto { tcp, udp } th dport 53 ip6 daddr @dns6 ip6 daddr . iifname != @served6 drop',
  ]);
}

/** The table and parts every network's DNS service shares. */
export function dnsGuardSharedTable(table = DNS_GUARD_TABLE): SharedTable {
  return { family: 'inet', table, chains: ['input'], sets: ['dns4', 'dns6', 'served4', 'served6'] };
}

function renderBase(t: string): string[] {
  return [
    `add table inet ${t} { comment "node-cni-plugins: per-network DNS answers only its own bridge"; }`,
    `add set inet ${t} dns4 { type ipv4_addr; }`,
    `add set inet ${t} dns6 { type ipv6_addr; }`,
    `add set inet ${t} served4 { type ipv4_addr . ifname; }`,
    `add set inet ${t} served6 { type ipv6_addr . ifname; }`,
    ...inputChain(t).lines,
  ];
}

export function renderDnsGuardAdd(g: DnsGuard, table = DNS_GUARD_TABLE): string {
  const lines = renderBase(table);
  for (const a of g.addresses) {
    const f = v6(a) ? '6' : '4';
    lines.push(`add element inet ${table} dns${f} { ${a} }`);
    lines.push(`add element inet ${table} served${f} { ${a} . ${quote(g.bridge)} }`);
  }
  return lines.join('\n') + '\n';
}

export function renderDnsGuardDel(g: DnsGuard, table = DNS_GUARD_TABLE): string[] {
  const lines: string[] = [];
  for (const a of g.addresses) {
    const f = v6(a) ? '6' : '4';
    lines.push(`delete element inet ${table} served${f} { ${a} . ${quote(g.bridge)} }`);
    lines.push(`delete element inet ${table} dns${f} { ${a} }`);
  }
  return lines;
}

export function applyDnsGuardAdd(g: DnsGuard, opts: { table?: string; netns?: Netns } = {}): void {
  applyNft(renderDnsGuardAdd(g, opts.table), opts.netns);
}

/** Remove the guard's elements; missing ones count as done. */
export function applyDnsGuardDel(g: DnsGuard, opts: { table?: string; netns?: Netns } = {}): void {
  applyNftDeletions(renderDnsGuardDel(g, opts.table), opts.netns);
}

/** Whether the guard's rules are exactly ours (a registration re-states the guard when not). */
export function dnsGuardIntact(opts: { table?: string; netns?: Netns } = {}): Promise<boolean> {
  const table = opts.table ?? DNS_GUARD_TABLE;
  return verifyChains('inet', table, [inputChain(table)], opts.netns);
}

/** The table goes with the last network's DNS service (atomic: kept while any element is left). */
export async function removeDnsGuardIfUnused(opts: { table?: string; netns?: Netns } = {}): Promise<void> {
  await removeTableIfUnused(dnsGuardSharedTable(opts.table ?? DNS_GUARD_TABLE), opts.netns);
}
