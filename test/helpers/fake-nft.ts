// A recording fake of the one nft runner (lib/firewall/nft.ts NftBackend):
// every transaction is kept (`transactions`), and tables, chains (comment and
// rule tags), sets and maps (elements with their comments and values) are
// modelled per namespace, so a test can say "no firewall element left". A
// script is all or nothing, like `nft -f -`; the errors read like nft's
// (NftError.missing / .exists work on them). Anything the model does not know
// throws, so a renderer that grows a new statement fails here loudly rather
// than passing unchecked. With `failAt` a step fails like the kernel's
// (ENOBUFS), counted in the same sequence as the fake kernel's steps.
import type { NftBackend, NftDeletion, NftRun, NftFamily, RenderedChain } from '../../lib/firewall/nft';
import type { Netns } from '../../lib/netns';

interface NftChain { comment: string; tags: string[]; rules: string[] }
interface NftElement { text: string; comment?: string; value?: string }
interface NftSet { map: boolean; elements: Map<string, NftElement> }
interface NftTable { chains: Map<string, NftChain>; sets: Map<string, NftSet> }
/** Tables by "<family> <name>". */
type Ruleset = Map<string, NftTable>;

export interface NftSnapshot {
  [netns: string]: { [table: string]: { chains: Record<string, { comment: string; tags: string[] }>; sets: Record<string, string[]> } };
}

/** Where a step's count comes from: the fake kernel, so kernel and nft steps share one sequence. */
export interface StepCounter {
  step(ns: string, op: string): void;
}

class ScriptError extends Error {
  constructor(readonly line: number, readonly text: string, readonly reason: 'No such file or directory' | 'File exists' | 'Device or resource busy') {
    super(`/dev/stdin:${line}:1-${text.length}: Error: Could not process rule: ${reason}\n${text}`);
  }
}

function splitTop(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && ch === '{') depth++;
    if (!quoted && ch === '}') depth--;
    if (!quoted && depth === 0 && ch === sep) { out.push(cur); cur = ''; continue; }
    cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x !== '');
}

/** `{ a, b }` -> its elements. */
function braceBody(s: string): string {
  const open = s.indexOf('{');
  const close = s.lastIndexOf('}');
  if (open < 0 || close < open) throw new Error(`fake nft: no { ... } in "${s}"`);
  return s.slice(open + 1, close);
}

function parseElement(text: string): { key: string; el: NftElement } {
  const comment = /\scomment\s+"([^"]*)"/.exec(text)?.[1];
  // "key : value"; an IPv6 key has colons of its own, but never " : ".
  const [key, value] = text.replace(/\s+comment\s+"[^"]*"/, '').split(' : ');
  return { key: key.trim().replace(/\s+/g, ' '), el: { text: text.trim(), comment, value: value?.trim() } };
}

function clone(r: Ruleset): Ruleset {
  const out: Ruleset = new Map();
  for (const [k, t] of r) {
    out.set(k, {
      chains: new Map([...t.chains].map(([n, c]) => [n, { comment: c.comment, tags: [...c.tags], rules: [...c.rules] }])),
      sets: new Map([...t.sets].map(([n, s]) => [n, { map: s.map, elements: new Map(s.elements) }])),
    });
  }
  return out;
}

function references(t: NftTable, chain: string): boolean {
  const re = new RegExp(`\\b(jump|goto)\\s+${chain.replace(/[-]/g, '\\-')}\\b`);
  for (const c of t.chains.values()) if (c.rules.some((r) => re.test(r))) return true;
  for (const s of t.sets.values()) for (const e of s.elements.values()) if (e.value && re.test(e.value)) return true;
  return false;
}

export class FakeNft implements NftBackend {
  private readonly rulesets = new Map<string, Ruleset>();
  /** Every call, in order: scripts as sent, other operations as one line. */
  readonly transactions: Array<{ ns: string; text: string }> = [];

  constructor(private readonly steps?: StepCounter) {}

  private rs(netns?: Netns): Ruleset {
    const key = netns?.path ?? 'host';
    let r = this.rulesets.get(key);
    if (!r) { r = new Map(); this.rulesets.set(key, r); }
    return r;
  }

  /** Record a call and count it as a step; an injected failure throws (nfnetlink calls) or comes back as nft's failure (text runs). */
  private record(netns: Netns | undefined, text: string): void {
    const ns = netns?.path ?? 'host';
    this.transactions.push({ ns, text });
    this.steps?.step(ns, `nft ${text.trim().split('\n')[0]}${text.trim().includes('\n') ? ' …' : ''}`);
  }

  private recordRun(netns: Netns | undefined, text: string): NftRun | undefined {
    try {
      this.record(netns, text);
      return undefined;
    } catch (err) {
      return { status: 1, stdout: '', stderr: `Error: Could not process rule: ${(err as Error).message}` };
    }
  }

  snapshot(): NftSnapshot {
    const out: NftSnapshot = {};
    for (const [ns, r] of this.rulesets) {
      if (r.size === 0) continue;
      out[ns] = {};
      for (const [name, t] of [...r].sort()) {
        out[ns][name] = {
          chains: Object.fromEntries([...t.chains].sort().map(([n, c]) => [n, { comment: c.comment, tags: c.tags }])),
          sets: Object.fromEntries([...t.sets].sort().map(([n, s]) => [n, [...s.elements.values()].map((e) => e.text).sort()])),
        };
      }
    }
    return out;
  }

  /** Every element of every set, as "<ns> <table> <set> <element>". */
  elements(): string[] {
    const out: string[] = [];
    for (const [ns, tables] of Object.entries(this.snapshot())) {
      for (const [t, { sets }] of Object.entries(tables)) for (const [s, els] of Object.entries(sets)) for (const e of els) out.push(`${ns} ${t} ${s} ${e}`);
    }
    return out.sort();
  }

  // ---- NftBackend ------------------------------------------------------------

  run(args: readonly string[], opts: { input?: string; netns?: Netns }): NftRun {
    if (args[0] === '-f' && args[1] === '-' && args.length === 2) return this.applyScript(opts.input ?? '', opts.netns);
    if (args[0] === '-j' && args[1] === 'list' && (args[2] === 'set' || args[2] === 'map')) return this.listJson(args[2], args[3] as NftFamily, args[4], args[5], opts.netns);
    if (args[0] === 'get' && args[1] === 'element') return this.getElement(args[2] as NftFamily, args[3], args[4], args[5], opts.netns);
    throw new Error(`fake nft: cannot model "nft ${args.join(' ')}"`);
  }

  private applyScript(script: string, netns?: Netns): NftRun {
    const failed = this.recordRun(netns, script);
    if (failed) return failed;
    const next = clone(this.rs(netns));
    const lines = script.split('\n');
    try {
      lines.forEach((line, i) => this.applyLine(next, line.trim(), i + 1));
    } catch (err) {
      if (err instanceof ScriptError) return { status: 1, stdout: '', stderr: err.message };
      throw err;
    }
    this.rulesets.set(netns?.path ?? 'host', next);
    return { status: 0, stdout: '', stderr: '' };
  }

  private applyLine(r: Ruleset, line: string, n: number): void {
    if (line === '' || line.startsWith('#')) return;
    const missing = () => new ScriptError(n, line, 'No such file or directory');
    const words = line.split(/\s+/);
    const [verb, what, family, tableName, name] = words;
    const tkey = `${family} ${tableName}`;
    const table = r.get(tkey);
    const needTable = (): NftTable => { if (!table) throw missing(); return table; };
    if (what === 'table') {
      if (verb === 'add') { if (!table) r.set(tkey, { chains: new Map(), sets: new Map() }); return; }
      if (verb === 'delete') { if (!table) throw missing(); r.delete(tkey); return; }
      if (verb === 'flush') { needTable(); for (const c of table!.chains.values()) { c.rules = []; c.tags = []; } return; }
    }
    if (what === 'chain') {
      const t = needTable();
      if (verb === 'add') {
        const c = t.chains.get(name) ?? { comment: '', tags: [], rules: [] };
        const comment = /comment\s+"([^"]*)"/.exec(line)?.[1];
        if (comment !== undefined) c.comment = comment;
        t.chains.set(name, c);
        return;
      }
      const c = t.chains.get(name);
      if (!c) throw missing();
      if (verb === 'flush') { c.rules = []; c.tags = []; return; }
      if (verb === 'delete') {
        if (references(t, name)) throw new ScriptError(n, line, 'Device or resource busy');
        t.chains.delete(name);
        return;
      }
    }
    if (what === 'rule' && (verb === 'add' || verb === 'insert')) {
      const c = needTable().chains.get(name);
      if (!c) throw missing();
      const text = words.slice(5).join(' ');
      const tag = /comment\s+"([^"]*)"\s*$/.exec(text)?.[1] ?? '';
      if (verb === 'add') { c.rules.push(text); c.tags.push(tag); } else { c.rules.unshift(text); c.tags.unshift(tag); }
      return;
    }
    if (what === 'set' || what === 'map') {
      const t = needTable();
      if (verb === 'add') { if (!t.sets.has(name)) t.sets.set(name, { map: what === 'map', elements: new Map() }); return; }
      const s = t.sets.get(name);
      if (!s) throw missing();
      if (verb === 'flush') { s.elements.clear(); return; }
      if (verb === 'delete') { t.sets.delete(name); return; }
    }
    if (what === 'element') {
      const s = needTable().sets.get(name);
      if (!s) throw missing();
      for (const text of splitTop(braceBody(line), ',')) {
        const { key, el } = parseElement(text);
        if (verb === 'add') { if (!s.elements.has(key)) s.elements.set(key, el); continue; }
        if (verb === 'create') { if (s.elements.has(key)) throw new ScriptError(n, line, 'File exists'); s.elements.set(key, el); continue; }
        if (verb === 'delete') { if (!s.elements.delete(key)) throw missing(); continue; }
        throw new Error(`fake nft: cannot model "${line}"`);
      }
      return;
    }
    throw new Error(`fake nft: cannot model "${line}"`);
  }

  private findSet(family: NftFamily, table: string, set: string, netns?: Netns): NftSet | undefined {
    return this.rs(netns).get(`${family} ${table}`)?.sets.get(set);
  }

  private getElement(family: NftFamily, table: string, set: string, keys: string, netns?: Netns): NftRun {
    const failed = this.recordRun(netns, `get element ${family} ${table} ${set} ${keys}`);
    if (failed) return failed;
    const s = this.findSet(family, table, set, netns);
    const found = s && splitTop(braceBody(keys), ',').map((k) => s.elements.get(parseElement(k).key));
    if (!found || found.some((e) => e === undefined)) return { status: 1, stdout: '', stderr: 'Error: Could not process rule: No such file or directory' };
    const body = found.map((e) => e!.text).join(', ');
    return { status: 0, stdout: `table ${family} ${table} {\n\t${s.map ? 'map' : 'set'} ${set} {\n\t\telements = { ${body} }\n\t}\n}\n`, stderr: '' };
  }

  private listJson(kind: 'set' | 'map', family: NftFamily, table: string, set: string, netns?: Netns): NftRun {
    const failed = this.recordRun(netns, `-j list ${kind} ${family} ${table} ${set}`);
    if (failed) return failed;
    const s = this.findSet(family, table, set, netns);
    if (!s) return { status: 1, stdout: '', stderr: 'Error: No such file or directory' };
    const keyOf = (k: string) => (k.includes(' . ') ? { concat: k.split(' . ') } : k);
    const valueOf = (v: string | undefined) => {
      const jump = /^(jump|goto)\s+(\S+)$/.exec(v ?? '');
      return jump ? { [jump[1]]: { target: jump[2] } } : v;
    };
    const elem = [...s.elements].map(([k, e]) => {
      const key = e.comment !== undefined ? { elem: { val: keyOf(k), comment: e.comment } } : keyOf(k);
      return s.map ? [key, valueOf(e.value)] : key;
    });
    const obj = { [kind]: { family, name: set, table, ...(elem.length ? { elem } : {}) } };
    return { status: 0, stdout: JSON.stringify({ nftables: [{ metainfo: {} }, obj] }), stderr: '' };
  }

  async verifyChains(family: NftFamily, table: string, chains: readonly Pick<RenderedChain, 'name' | 'tags'>[], netns?: Netns): Promise<boolean> {
    this.record(netns, `verify chains ${family} ${table} ${chains.map((c) => c.name).join(' ')}`);
    const t = this.rs(netns).get(`${family} ${table}`);
    return chains.every((c) => {
      const have = t?.chains.get(c.name);
      return have !== undefined && have.tags.length === c.tags.length && have.tags.every((x, i) => x === c.tags[i]);
    });
  }

  async listChains(family: NftFamily, table: string, netns?: Netns): Promise<Array<{ name: string; comment: string }>> {
    this.record(netns, `list chains ${family} ${table}`);
    const t = this.rs(netns).get(`${family} ${table}`);
    return t ? [...t.chains].map(([name, c]) => ({ name, comment: c.comment })) : [];
  }

  async tableExists(family: NftFamily, table: string, netns?: Netns): Promise<boolean> {
    this.record(netns, `table exists ${family} ${table}`);
    return this.rs(netns).has(`${family} ${table}`);
  }

  async listTable(family: NftFamily, table: string, netns?: Netns): Promise<{ chains: Array<{ name: string; comment: string }>; sets: string[] } | undefined> {
    this.record(netns, `list table ${family} ${table}`);
    const t = this.rs(netns).get(`${family} ${table}`);
    return t && { chains: [...t.chains].map(([name, c]) => ({ name, comment: c.comment })), sets: [...t.sets.keys()] };
  }

  async deleteObjects(family: NftFamily, table: string, ops: readonly NftDeletion[], _what: string, netns?: Netns): Promise<number[]> {
    this.record(netns, `delete ${family} ${table}: ${ops.map((o) => `${o.kind}${o.name ? ` ${o.name}` : ''}${o.ifUnused ? ' if unused' : ''}`).join(', ')}`);
    const next = clone(this.rs(netns));
    const key = `${family} ${table}`;
    const errnos = ops.map((o) => {
      const t = next.get(key);
      if (!t) return 2;
      if (o.kind === 'table') {
        if (o.ifUnused && (t.chains.size || t.sets.size)) return 16;
        next.delete(key);
        return 0;
      }
      if (o.kind === 'chain') {
        if (!t.chains.has(o.name!)) return 2;
        if (references(t, o.name!)) return 16;
        t.chains.delete(o.name!);
        return 0;
      }
      const s = t.sets.get(o.name!);
      if (!s) return 2;
      if (o.ifUnused && s.elements.size) return 16;
      t.sets.delete(o.name!);
      return 0;
    });
    if (errnos.every((e) => e === 0)) this.rulesets.set(netns?.path ?? 'host', next);
    return errnos;
  }
}
