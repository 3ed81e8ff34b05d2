// The one place that runs iptables/ip6tables. Why not nft: the drop to
// overrule is the FORWARD policy of iptables' own filter table (Docker sets
// it to DROP), and an accept in any other table cannot overrule a drop there
// (every base chain on the hook must accept). So one rule must live in that
// table, in a form iptables itself reads back: written by iptables, it is
// right for the iptables-nft and the legacy backend alike, and `iptables -S`
// (Docker, firewall tools) keeps working. We add exactly one jump, to our own
// small chain, whatever the number of containers:
//
//   FORWARD           -m comment --comment "node-cni-plugins firewall" -j NODE-CNI-FORWARD   (inserted first)
//   NODE-CNI-FORWARD  -m comment --comment "..." -j CNI-ADMIN              the admin's overrides go first
//                     -m mark --mark 0x1000/0x1000 -m comment --comment "..." -j ACCEPT
//
// The mark is set by our nftables table (lib/firewall/forward.ts) on the
// packets of containers, from per-container set elements; it is cleared again
// after the filter hook.

import { spawnSync } from 'child_process';
import type { Netns } from '../netns';

export type IpFamily = 4 | 6;

/** Our chain in iptables' filter table. */
export const FORWARD_CHAIN = 'NODE-CNI-FORWARD';
/** The packet mark bit our nftables table sets on containers' forwarded traffic. */
export const FORWARD_MARK = 0x1000;

/** iptables chain names: 1-28 characters, no spaces or quotes, not an option. */
export const IPTABLES_CHAIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,27}$/;

export interface ForwardAccept {
  /** The chain the admin's override rules live in (the reference's iptablesAdminChainName, default CNI-ADMIN). */
  adminChain: string;
  netns?: Netns;
}

export class IptablesError extends Error {
  constructor(readonly family: IpFamily, readonly args: readonly string[], readonly stderr: string) {
    super(`${family === 4 ? 'iptables' : 'ip6tables'} ${args.join(' ')}: ${stderr.trim().split('\n')[0] || 'failed'}`);
    this.name = 'IptablesError';
  }
}

interface Run {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** What runs the commands: the host's iptables (HOST_IPTABLES), or a test's fake (useIptablesRunner; test/helpers/fake-iptables.ts). */
export interface IptablesRunner {
  /** `bin` is iptables, ip6tables or their -restore (stdin `input`); `error` when it could not be started (ENOENT: not installed). */
  exec(bin: string, args: readonly string[], o: { input?: string; netns?: Netns }): { status: number | null; stdout: string; stderr: string; error?: Error };
}

export const HOST_IPTABLES: IptablesRunner = {
  exec(bin, args, o) {
    const exec = () => spawnSync(bin, args, { encoding: 'utf8', input: o.input });
    const r = o.netns ? o.netns.run(exec) : exec();
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
  },
};

let runner: IptablesRunner = HOST_IPTABLES;

/** Whether iptables for this family can be used at all (installed, kernel support). */
const usable: Partial<Record<IpFamily, boolean>> = {};
const unusable = (family: IpFamily): boolean => usable[family] === false;

/** Tests: every iptables command of this process goes to `r` until the returned function restores the previous runner. */
export function useIptablesRunner(r: IptablesRunner): () => void {
  const previous = runner;
  const forget = () => { delete usable[4]; delete usable[6]; };
  runner = r;
  forget();
  return () => { runner = previous; forget(); };
}

function run(family: IpFamily, args: readonly string[], netns?: Netns, o: { restore?: string } = {}): Run {
  const bin = (family === 4 ? 'iptables' : 'ip6tables') + (o.restore !== undefined ? '-restore' : '');
  // -w: wait for the xtables lock instead of failing when Docker or kube-proxy holds it.
  const r = runner.exec(bin, ['-w', ...args], { input: o.restore, netns });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') usable[family] = false;
    return { ok: false, stdout: '', stderr: r.error.message };
  }
  // No IPv6 (or no netfilter) in this kernel: there is no such policy to overrule.
  if (r.status !== 0 && /can't initialize|Address family not supported|Protocol not supported/i.test(r.stderr)) usable[family] = false;
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

function must(family: IpFamily, args: readonly string[], netns?: Netns): string {
  const r = run(family, args, netns);
  if (!r.ok) throw new IptablesError(family, args, r.stderr);
  return r.stdout;
}

const JUMP_COMMENT = 'node-cni-plugins firewall';
const ADMIN_COMMENT = 'node-cni-plugins firewall: admin overrides';
const ACCEPT_COMMENT = 'node-cni-plugins firewall: containers';
const MARK = `0x${FORWARD_MARK.toString(16)}/0x${FORWARD_MARK.toString(16)}`;

function jumpRule(): string[] {
  return ['-m', 'comment', '--comment', JUMP_COMMENT, '-j', FORWARD_CHAIN];
}

/** Our chain: a jump to each admin chain (configs may name different ones), then the accept. */
function chainRules(adminChains: readonly string[]): string[][] {
  return [
    ...adminChains.map((c) => ['-m', 'comment', '--comment', ADMIN_COMMENT, '-j', c]),
    ['-m', 'mark', '--mark', MARK, '-m', 'comment', '--comment', ACCEPT_COMMENT, '-j', 'ACCEPT'],
  ];
}

/** How `iptables -S` prints a rule of ours (it quotes a comment with spaces). */
function asListed(chain: string, rule: readonly string[]): string {
  return [`-A ${chain}`, ...rule.map((t) => (/\s/.test(t) ? `"${t}"` : t))].join(' ');
}

/** `iptables -S NODE-CNI-FORWARD` as we write it. */
export function expectedChainListing(adminChains: readonly string[]): string {
  return [`-N ${FORWARD_CHAIN}`, ...chainRules(adminChains).map((r) => asListed(FORWARD_CHAIN, r))].join('\n');
}

const ADMIN_JUMP = new RegExp(`^-A ${FORWARD_CHAIN} -m comment --comment "${ADMIN_COMMENT}" -j (\\S+)$`);

/** Our chain as it is: the admin chains it jumps to, and whether it is exactly what we write for them; undefined when missing. */
function readChain(family: IpFamily, netns?: Netns): { adminChains: string[]; intact: boolean } | undefined {
  const r = run(family, ['-S', FORWARD_CHAIN], netns);
  if (!r.ok) return undefined;
  const listing = r.stdout.trim();
  const adminChains = listing.split('\n').map((l) => ADMIN_JUMP.exec(l)?.[1]).filter((c): c is string => !!c);
  return { adminChains, intact: listing === expectedChainListing(adminChains) };
}

function jumpPresent(family: IpFamily, netns?: Netns): boolean {
  return run(family, ['-C', 'FORWARD', ...jumpRule()], netns).ok;
}

function ensureChain(family: IpFamily, chain: string, netns?: Netns): void {
  const r = run(family, ['-N', chain], netns);
  if (!r.ok && !/exists/i.test(r.stderr)) throw new IptablesError(family, ['-N', chain], r.stderr);
}

/**
 * Make sure FORWARD jumps to our chain and our chain is as written, with a
 * jump to this config's admin chain. The steady state is two lookups (`-C`
 * of the jump, `-S` of our small chain); only what is missing or changed is
 * written again (our chain in one atomic restore). Returns false when this
 * family has no iptables (not installed): then there is no iptables policy
 * to overrule either. Callers serialize repairs (two concurrent ones could
 * both insert the jump).
 */
export function ensureForwardAccept(family: IpFamily, o: ForwardAccept): boolean {
  if (unusable(family)) return false;
  const jump = jumpPresent(family, o.netns);
  if (unusable(family)) return false;
  const chain = readChain(family, o.netns);
  if (jump && chain?.intact && chain.adminChains.includes(o.adminChain)) return true;
  const admins = [...new Set([...(chain?.adminChains ?? []), o.adminChain])];
  for (const a of admins) ensureChain(family, a, o.netns);
  // --noflush: only the chain declared here is replaced; nothing else of the table is touched.
  const script = ['*filter', `:${FORWARD_CHAIN} - [0:0]`, ...chainRules(admins).map((r) => asListed(FORWARD_CHAIN, r)), 'COMMIT', ''].join('\n');
  const r = run(family, ['--noflush'], o.netns, { restore: script });
  if (!r.ok) throw new IptablesError(family, ['-restore', '--noflush'], r.stderr);
  if (!jump) must(family, ['-I', 'FORWARD', '1', ...jumpRule()], o.netns);
  return true;
}

/** CHECK: what is missing of the jump and our chain in this family ([] when intact or iptables is absent). */
export function missingForwardAccept(family: IpFamily, o: ForwardAccept): string[] {
  if (unusable(family)) return [];
  const missing: string[] = [];
  const bin = family === 4 ? 'iptables' : 'ip6tables';
  if (!jumpPresent(family, o.netns)) {
    if (unusable(family)) return [];
    missing.push(`${bin}: FORWARD has no jump to ${FORWARD_CHAIN}`);
  }
  const chain = readChain(family, o.netns);
  if (!chain?.intact) missing.push(`${bin}: chain ${FORWARD_CHAIN} is missing or changed`);
  else if (!chain.adminChains.includes(o.adminChain)) missing.push(`${bin}: chain ${FORWARD_CHAIN} does not jump to ${o.adminChain}`);
  return missing;
}

/**
 * Take the jump and our chain out (the last container is gone). The admin
 * chains go too when they are empty and nothing else jumps to them (the
 * admin's rules stay). Idempotent.
 */
export function removeForwardAccept(family: IpFamily, o: ForwardAccept): void {
  if (unusable(family)) return;
  while (jumpPresent(family, o.netns)) must(family, ['-D', 'FORWARD', ...jumpRule()], o.netns);
  if (unusable(family)) return;
  const admins = [...new Set([...(readChain(family, o.netns)?.adminChains ?? []), o.adminChain])];
  for (const chain of [FORWARD_CHAIN, ...admins]) {
    const listing = run(family, ['-S', chain], o.netns);
    if (!listing.ok) continue; // gone
    const rules = listing.stdout.split('\n').filter((l) => l.startsWith('-A '));
    if (chain === FORWARD_CHAIN) must(family, ['-F', chain], o.netns);
    else if (rules.length > 0) continue; // the admin's rules: theirs
    // -X refuses a chain something still jumps to (another tool's reference): leave it then.
    const r = run(family, ['-X', chain], o.netns);
    if (!r.ok && !/No chain|does not exist|Too many links|in use|Device or resource busy/i.test(r.stderr)) throw new IptablesError(family, ['-X', chain], r.stderr);
  }
}

