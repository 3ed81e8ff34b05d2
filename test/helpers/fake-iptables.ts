// A recording fake of the iptables runner (lib/firewall/iptables.ts
// IptablesRunner): the filter table's chains and rules per family and
// namespace, in `iptables -S` form, for the commands the firewall plugin sends
// (-S, -C, -N, -I, -A, -D, -F, -X, and iptables-restore --noflush). Anything
// else throws. `commands` keeps every call.
import type { IptablesRunner } from '../../lib/firewall/iptables';
import type { Netns } from '../../lib/netns';
import type { StepCounter } from './fake-nft';

type Chains = Map<string, string[]>;
const BUILTIN = ['INPUT', 'FORWARD', 'OUTPUT'];

/** How iptables -S prints a rule: a word with spaces in quotes. */
function listed(chain: string, rule: readonly string[]): string {
  return [`-A ${chain}`, ...rule.map((t) => (/\s/.test(t) ? `"${t}"` : t))].join(' ');
}

export class FakeIptables implements IptablesRunner {
  private readonly tables = new Map<string, Chains>();
  readonly commands: Array<{ ns: string; bin: string; args: string[]; input?: string }> = [];
  /** Binaries that are "not installed" (ENOENT), e.g. ip6tables. */
  readonly missing = new Set<string>();

  /** With a counter (the fake kernel), each command is a step; an injected failure exits 1 with the errno in stderr. */
  constructor(private readonly steps?: StepCounter) {}

  chains(bin: 'iptables' | 'ip6tables', netns?: string): Chains {
    const key = `${netns ?? 'host'} ${bin}`;
    let c = this.tables.get(key);
    if (!c) { c = new Map(BUILTIN.map((b) => [b, []])); this.tables.set(key, c); }
    return c;
  }

  /** Every chain and rule, `iptables -S` style, per namespace and family (what a test compares). */
  snapshot(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const [key, chains] of [...this.tables].sort()) {
      // A table nobody changed reads the same whether it was ever looked at or not.
      if ([...chains].every(([name, rules]) => BUILTIN.includes(name) && rules.length === 0)) continue;
      out[key] = [...chains].flatMap(([name, rules]) => [BUILTIN.includes(name) ? `-P ${name} ACCEPT` : `-N ${name}`, ...rules]);
    }
    return out;
  }

  exec(bin: string, args: readonly string[], o: { input?: string; netns?: Netns }): { status: number | null; stdout: string; stderr: string; error?: Error } {
    const ns = o.netns?.path ?? 'host';
    this.commands.push({ ns, bin, args: [...args], input: o.input });
    const family = bin.startsWith('ip6tables') ? 'ip6tables' : 'iptables';
    try {
      this.steps?.step(ns, `${bin} ${args.filter((a) => a !== '-w').join(' ')}`);
    } catch (err) {
      return { status: 1, stdout: '', stderr: `${bin}: ${(err as Error).message}` };
    }
    if (this.missing.has(family)) return { status: null, stdout: '', stderr: '', error: Object.assign(new Error(`spawnSync ${bin} ENOENT`), { code: 'ENOENT' }) };
    const chains = this.chains(family, o.netns?.path);
    const a = args[0] === '-w' ? args.slice(1) : [...args];
    const ok = (stdout = '') => ({ status: 0, stdout, stderr: '' });
    const fail = (stderr: string) => ({ status: 1, stdout: '', stderr });
    if (bin.endsWith('-restore')) return this.restore(chains, a, o.input ?? '') ? ok() : fail('iptables-restore: line 1 failed');
    const [op, chain, ...rest] = a;
    const rules = chains.get(chain);
    const noChain = () => fail(`${family}: No chain/target/match by that name.`);
    switch (op) {
      case '-S':
        if (!rules) return noChain();
        return ok([BUILTIN.includes(chain) ? `-P ${chain} ACCEPT` : `-N ${chain}`, ...rules].join('\n') + '\n');
      case '-C':
        if (!rules) return noChain();
        return rules.includes(listed(chain, rest)) ? ok() : fail(`${family}: Bad rule (does a matching rule exist in that chain?).`);
      case '-N':
        if (rules) return fail(`${family}: Chain already exists.`);
        chains.set(chain, []);
        return ok();
      case '-I': {
        if (!rules) return noChain();
        const at = /^\d+$/.test(rest[0]) ? Number(rest.shift()) - 1 : 0;
        rules.splice(at, 0, listed(chain, rest));
        return ok();
      }
      case '-A':
        if (!rules) return noChain();
        rules.push(listed(chain, rest));
        return ok();
      case '-D': {
        if (!rules) return noChain();
        const i = rules.indexOf(listed(chain, rest));
        if (i < 0) return fail(`${family}: Bad rule (does a matching rule exist in that chain?).`);
        rules.splice(i, 1);
        return ok();
      }
      case '-F':
        if (!rules) return noChain();
        rules.length = 0;
        return ok();
      case '-X': {
        if (!rules) return noChain();
        if (rules.length) return fail(`${family}: Directory not empty.`);
        const jumpedTo = [...chains.values()].some((rs) => rs.some((r) => r.endsWith(` -j ${chain}`)));
        if (jumpedTo) return fail(`${family}: Too many links.`);
        chains.delete(chain);
        return ok();
      }
    }
    throw new Error(`fake iptables: cannot model "${bin} ${args.join(' ')}"`);
  }

  /** `*filter`, `:CHAIN - [0:0]` (declared: created or flushed), `-A` lines, `COMMIT`; all or nothing. */
  private restore(chains: Chains, args: readonly string[], script: string): boolean {
    if (!args.includes('--noflush')) throw new Error('fake iptables: restore without --noflush would replace the whole table');
    const next = new Map([...chains].map(([k, v]) => [k, [...v]]));
    for (const line of script.split('\n').map((l) => l.trim())) {
      if (line === '' || line === '*filter' || line === 'COMMIT') continue;
      const decl = /^:(\S+) \S+ \[0:0\]$/.exec(line);
      if (decl) { next.set(decl[1], []); continue; }
      const add = /^-A (\S+) /.exec(line);
      if (add) {
        if (!next.has(add[1])) return false;
        next.get(add[1])!.push(line);
        continue;
      }
      throw new Error(`fake iptables: cannot model restore line "${line}"`);
    }
    chains.clear();
    for (const [k, v] of next) chains.set(k, v);
    return true;
  }
}
