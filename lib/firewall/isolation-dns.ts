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

import type { Netns } from '../netns';
import { applyNft, NftError } from './nft';

export const DNS_GUARD_TABLE = 'node_cni_dns';

export interface DnsGuard {
  /** The bridge the service's network is on. */
  bridge: string;
  /** Gateway addresses the service listens on, without prefix. */
  addresses: readonly string[];
}

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, '_')}"`;
}

function v6(a: string): boolean {
  return a.includes(':');
}

function renderBase(t: string): string[] {
  return [
    `add table inet ${t} { comment "node-cni-plugins: per-network DNS answers only its own bridge"; }`,
    `add set inet ${t} dns4 { type ipv4_addr; }`,
    `add set inet ${t} dns6 { type ipv6_addr; }`,
    `add set inet ${t} served4 { type ipv4_addr . ifname; }`,
    `add set inet ${t} served6 { type ipv6_addr . ifname; }`,
    `add chain inet ${t} input { type filter hook input priority filter - 10; policy accept; }`,
    `flush chain inet ${t} input`,
    `add rule inet ${t} input iifname "lo" accept`,
    `add rule inet ${t} input meta l4proto { tcp, udp } th dport 53 ip daddr @dns4 ip daddr . iifname != @served4 drop`,
    `add rule inet ${t} input meta l4proto { tcp, udp } th dport 53 ip6 daddr @dns6 ip6 daddr . iifname != @served6 drop`,
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

function isMissing(err: unknown): boolean {
  return err instanceof NftError && /No such file or directory|does not exist/.test(err.stderr);
}

/** Remove the guard's elements; missing ones count as done. */
export function applyDnsGuardDel(g: DnsGuard, opts: { table?: string; netns?: Netns } = {}): void {
  const lines = renderDnsGuardDel(g, opts.table);
  if (lines.length === 0) return;
  try {
    applyNft(lines.join('\n') + '\n', opts.netns);
    return;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  for (const l of lines) {
    try { applyNft(`${l}\n`, opts.netns); } catch (err) { if (!isMissing(err)) throw err; }
  }
}
