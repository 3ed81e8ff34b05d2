// The one place that talks to nftables. Every change is one `nft -f -`
// transaction (atomic: all of it or none), rendered as text by the table's
// module, run by libnftables in this process where the host has it (the nft
// CLI otherwise: runNft). Over nfnetlink (lib/netlink/nfnetlink.ts) go the
// things the CLI cannot do cheaply: reading the rules of one chain (to verify a
// structure without listing the table's sets), deleting a table only if
// nobody uses it any more (atomic, so a concurrent ADD is never cut off), and
// a script of element changes only (./nft-elements.ts: the same messages nft
// sends, without loading libnftables and its cache).
// Verification without markers: see ./render.ts (tagged rules).
//
// Everything above goes through one NftBackend: HOST_NFT (libnftables or the
// CLI, and nfnetlink) in a plugin; a test may put a fake in its place
// (useNftBackend; test/helpers/fake-nft.ts records every transaction and models
// tables, chains, rules and set elements).

import type { Netns } from '../netns';
import { kernelError } from '../netlink/errors';
import { native } from '../sys/native';
import { NFNL_SUBSYS, NFPROTO, NLM_F_NONREC, openNfnl, type BatchOp, type Nfnl, type NfMessage } from '../netlink/nfnetlink';
import { attrMap, encodeAttrs, readStr, str } from '../netlink/wire';
import { parseElementScript, runElementOps } from './nft-elements';
import type { NftFamily, RenderedChain, SharedTable } from './render';

export { nftQuote, renderChain, ruleTag, type NftFamily, type RenderedChain, type SharedTable } from './render';

/** nft's words for "a table, chain, set or element named in the script does not exist". */
function saysMissing(stderr: string): boolean {
  return /No such file or directory|does not exist/.test(stderr);
}

export class NftError extends Error {
  constructor(readonly stderr: string, readonly script: string) {
    super(`nft failed: ${stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
    this.name = 'NftError';
  }

  /** A table, chain, set or element named in the script does not exist. */
  get missing(): boolean {
    return saysMissing(this.stderr);
  }

  /** An element or object that must be new already exists (`create element`). */
  get exists(): boolean {
    return /File exists/.test(this.stderr);
  }

  /** Something still refers to what the script deletes. */
  get busy(): boolean {
    return /Device or resource busy/.test(this.stderr);
  }
}

export function isNftMissing(err: unknown): boolean {
  return err instanceof NftError && err.missing;
}

export interface NftRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run nft (in `netns` when given): through libnftables in this process when
 * the host has it (native/cni_native.c nftRun: the same parser and netlink
 * code as the CLI, without a fork/exec of nft and Node's child_process per
 * change, docs/benchmarks/startup.md), else the nft CLI. Output is read whole.
 */
export function runNft(args: readonly string[], opts: { input?: string; netns?: Netns } = {}): NftRun {
  return backend.run(args, opts);
}

function runHostNft(args: readonly string[], opts: { input?: string; netns?: Netns }): NftRun {
  const inProcess = libraryCommand(args, opts.input);
  // Element changes only (an ADD's or DEL's): one nfnetlink batch, no libnftables (./nft-elements.ts).
  const elements = inProcess && !inProcess.json ? parseElementScript(inProcess.commands) : undefined;
  const exec = (): NftRun => {
    if (elements) {
      const n = native();
      return runElementOps(elements, (request, acks) => n.nfnlTransact(request, acks));
    }
    const r = inProcess && native().nftRun(inProcess.commands, inProcess.json);
    return r ?? spawnNft(args, opts.input);
  };
  return opts.netns ? opts.netns.run(exec) : exec();
}

/** What `nft <args>` asks libnftables to do, or undefined for options only the CLI handles. */
export function libraryCommand(args: readonly string[], input?: string): { commands: string; json: boolean } | undefined {
  let json = false;
  const words: string[] = [];
  let fromInput = false;
  for (let i = 0; i < args.length; i++) {
    if (words.length === 0 && args[i] === '-j') json = true;
    else if (words.length === 0 && args[i] === '-f' && args[i + 1] === '-') { fromInput = true; i++; }
    else if (words.length === 0 && args[i].startsWith('-')) return undefined;
    else words.push(args[i]);
  }
  if (fromInput) return words.length === 0 ? { commands: input ?? '', json } : undefined;
  // The CLI joins its arguments with spaces into one command line, and so do we.
  return words.length > 0 ? { commands: words.join(' '), json } : undefined;
}

/** The nft CLI itself (hosts without libnftables; tests compare the two). */
export function spawnNft(args: readonly string[], input?: string): NftRun {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: child_process only where libnftables is missing
  const { spawnSync } = require('child_process') as typeof import('child_process');
  const r = spawnSync('nft', args, { input, encoding: 'utf8', maxBuffer: Infinity });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Apply a ruleset script as one atomic transaction. */
export function applyNft(script: string, netns?: Netns): void {
  const r = runNft(['-f', '-'], { input: script, netns });
  if (r.status !== 0) throw new NftError(r.stderr, script);
}

/**
 * Apply a script of independent deletions: one transaction normally; when
 * part of it is gone already, line by line, the missing ones counting as done.
 */
export function applyNftDeletions(lines: readonly string[], netns?: Netns): void {
  if (lines.length === 0) return;
  try {
    applyNft(lines.join('\n') + '\n', netns);
    return;
  } catch (err) {
    if (!isNftMissing(err)) throw err;
  }
  for (const line of lines) {
    try {
      applyNft(`${line}\n`, netns);
    } catch (err) {
      if (!isNftMissing(err)) throw err;
    }
  }
}

/** `nft -j <args>` parsed; undefined when the object does not exist. */
export function nftJson(args: readonly string[], netns?: Netns): { nftables: Array<Record<string, any>> } | undefined {
  const r = runNft(['-j', ...args], { netns });
  if (r.status !== 0) {
    if (saysMissing(r.stderr)) return undefined;
    throw new NftError(r.stderr, args.join(' '));
  }
  return JSON.parse(r.stdout || '{"nftables":[]}');
}

/** `nft get element` as text (nft 1.0.6 ignores -j here), or undefined when the element (or its set) is missing. */
export function getNftElement(family: NftFamily, table: string, set: string, key: string, netns?: Netns): string | undefined {
  const r = runNft(['get', 'element', family, table, set, `{ ${key} }`], { netns });
  return r.status === 0 ? r.stdout : undefined;
}

/** What this module runs on. Its functions above and below are the only way the project changes or reads nftables. */
export interface NftBackend {
  /** `nft <args>` (stdin `input`), in `netns` when given. */
  run(args: readonly string[], opts: { input?: string; netns?: Netns }): NftRun;
  verifyChains(family: NftFamily, table: string, chains: readonly Pick<RenderedChain, 'name' | 'tags'>[], netns?: Netns): Promise<boolean>;
  listChains(family: NftFamily, table: string, netns?: Netns): Promise<Array<{ name: string; comment: string }>>;
  tableExists(family: NftFamily, table: string, netns?: Netns): Promise<boolean>;
  listTable(family: NftFamily, table: string, netns?: Netns): Promise<{ chains: Array<{ name: string; comment: string }>; sets: string[] } | undefined>;
  deleteObjects(family: NftFamily, table: string, ops: readonly NftDeletion[], what: string, netns?: Netns): Promise<number[]>;
}

/** The kernel's nftables: libnftables (or the CLI) for text transactions, nfnetlink for the reads and the conditional deletes. */
export const HOST_NFT: NftBackend = {
  run: runHostNft,
  verifyChains: hostVerifyChains,
  listChains: hostListChains,
  tableExists: hostTableExists,
  listTable: hostListTable,
  deleteObjects: hostDeleteObjects,
};

let backend: NftBackend = HOST_NFT;

/** Tests: every nft operation of this process goes to `b` until the returned function restores the previous backend. */
export function useNftBackend(b: NftBackend): () => void {
  const previous = backend;
  backend = b;
  return () => { backend = previous; };
}

/**
 * Whether each chain holds exactly its expected rules (by their tags): one
 * small dump per chain, whatever the size of the table's sets. A missing
 * table or chain reads as "not intact".
 */
export function verifyChains(family: NftFamily, table: string, chains: readonly Pick<RenderedChain, 'name' | 'tags'>[], netns?: Netns): Promise<boolean> {
  return backend.verifyChains(family, table, chains, netns);
}

/** The chains of one table with their comments (teardown: finding a network's chains by comment). */
export function listChains(family: NftFamily, table: string, netns?: Netns): Promise<Array<{ name: string; comment: string }>> {
  return backend.listChains(family, table, netns);
}

/** Whether a table exists: one netlink request, no listing. */
export function tableExists(family: NftFamily, table: string, netns?: Netns): Promise<boolean> {
  return backend.tableExists(family, table, netns);
}

/** A table's chains (with comments) and sets, no rules and no elements; undefined when the table does not exist. */
export function listTable(family: NftFamily, table: string, netns?: Netns): Promise<{ chains: Array<{ name: string; comment: string }>; sets: string[] } | undefined> {
  return backend.listTable(family, table, netns);
}

const NFT_MSG = { GETTABLE: 1, DELTABLE: 2, GETCHAIN: 4, DELCHAIN: 5, GETRULE: 7, GETSET: 10, DELSET: 11 } as const;
const NFTA_TABLE_NAME = 1;
const NFTA_CHAIN = { TABLE: 1, NAME: 3, USERDATA: 12 } as const;
const NFTA_RULE = { TABLE: 1, CHAIN: 2, USERDATA: 7 } as const;
const NFTA_SET = { TABLE: 1, NAME: 2 } as const;
/** NFTNL_UDATA_RULE_COMMENT and NFTNL_UDATA_CHAIN_COMMENT: the comment in a rule's or chain's user data. */
const UDATA_COMMENT = 0;

function nfproto(f: NftFamily): number {
  return f === 'inet' ? NFPROTO.INET : NFPROTO.BRIDGE;
}

/** The comment stored in nft user data (type-length-value records), or ''. */
function udataComment(udata: Buffer | undefined): string {
  for (let off = 0; udata && off + 2 <= udata.length; off += 2 + udata[off + 1]) {
    if (udata[off] === UDATA_COMMENT) return readStr(udata.subarray(off + 2, off + 2 + udata[off + 1]));
  }
  return '';
}

async function withSocket<T>(netns: Netns | undefined, fn: (nfnl: Nfnl) => Promise<T>): Promise<T> {
  const nfnl = openNfnl(netns);
  try {
    return await fn(nfnl);
  } finally {
    nfnl.close();
  }
}

async function ruleComments(nfnl: Nfnl, family: NftFamily, table: string, chain: string): Promise<string[]> {
  const attrs = encodeAttrs([{ type: NFTA_RULE.TABLE, data: str(table) }, { type: NFTA_RULE.CHAIN, data: str(chain) }]);
  const msgs = await nfnl.dump(NFNL_SUBSYS.NFTABLES, NFT_MSG.GETRULE, nfproto(family), attrs, `listing the rules of ${family} ${table} ${chain}`);
  return msgs.map((m) => udataComment(attrMap(m.data.subarray(4)).get(NFTA_RULE.USERDATA)));
}

/**
 * Whether each chain holds exactly its expected rules (by their tags): one
 * small dump per chain, whatever the size of the table's sets. A missing
 * table or chain reads as "not intact".
 */
async function hostVerifyChains(family: NftFamily, table: string, chains: readonly Pick<RenderedChain, 'name' | 'tags'>[], netns?: Netns): Promise<boolean> {
  return withSocket(netns, async (nfnl) => {
    for (const c of chains) {
      let found: string[];
      try {
        found = await ruleComments(nfnl, family, table, c.name);
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOENT') return false;
        throw err;
      }
      if (found.length !== c.tags.length || found.some((t, i) => t !== c.tags[i])) return false;
    }
    return true;
  });
}

/** The chains of one table with their comments (teardown: finding a network's chains by comment). */
async function hostListChains(family: NftFamily, table: string, netns?: Netns): Promise<Array<{ name: string; comment: string }>> {
  return withSocket(netns, async (nfnl) => {
    const msgs = await nfnl.dump(NFNL_SUBSYS.NFTABLES, NFT_MSG.GETCHAIN, nfproto(family), Buffer.alloc(0), `listing the chains of ${family} ${table}`);
    const out: Array<{ name: string; comment: string }> = [];
    for (const m of msgs) {
      const a = attrMap(m.data.subarray(4));
      if (readStr(a.get(NFTA_CHAIN.TABLE) ?? Buffer.alloc(0)) !== table) continue;
      out.push({ name: readStr(a.get(NFTA_CHAIN.NAME) ?? Buffer.alloc(0)), comment: udataComment(a.get(NFTA_CHAIN.USERDATA)) });
    }
    return out;
  });
}

/** Whether a table exists: one netlink request, no listing. */
async function hostTableExists(family: NftFamily, table: string, netns?: Netns): Promise<boolean> {
  return withSocket(netns, async (nfnl) => {
    try {
      await nfnl.request(NFNL_SUBSYS.NFTABLES, NFT_MSG.GETTABLE, nfproto(family), encodeAttrs([{ type: NFTA_TABLE_NAME, data: str(table) }]), 0, `looking up ${family} ${table}`);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return false;
      throw err;
    }
  });
}

/** A table's chains (with comments) and sets, no rules and no elements; undefined when the table does not exist. */
async function hostListTable(family: NftFamily, table: string, netns?: Netns): Promise<{ chains: Array<{ name: string; comment: string }>; sets: string[] } | undefined> {
  return withSocket(netns, async (nfnl) => {
    const f = nfproto(family);
    try {
      await nfnl.request(NFNL_SUBSYS.NFTABLES, NFT_MSG.GETTABLE, f, encodeAttrs([{ type: NFTA_TABLE_NAME, data: str(table) }]), 0, `looking up ${family} ${table}`);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
    const ofTable = (m: NfMessage, tableAttr: number) => readStr(attrMap(m.data.subarray(4)).get(tableAttr) ?? Buffer.alloc(0)) === table;
    const chainMsgs = await nfnl.dump(NFNL_SUBSYS.NFTABLES, NFT_MSG.GETCHAIN, f, Buffer.alloc(0), `listing the chains of ${family} ${table}`);
    const setMsgs = await nfnl.dump(NFNL_SUBSYS.NFTABLES, NFT_MSG.GETSET, f, encodeAttrs([{ type: NFTA_SET.TABLE, data: str(table) }]), `listing the sets of ${family} ${table}`);
    return {
      chains: chainMsgs.filter((m) => ofTable(m, NFTA_CHAIN.TABLE)).map((m) => {
        const a = attrMap(m.data.subarray(4));
        return { name: readStr(a.get(NFTA_CHAIN.NAME)!), comment: udataComment(a.get(NFTA_CHAIN.USERDATA)) };
      }),
      sets: setMsgs.filter((m) => ofTable(m, NFTA_SET.TABLE)).map((m) => readStr(attrMap(m.data.subarray(4)).get(NFTA_SET.NAME)!)),
    };
  });
}

/** One deletion of an nfnetlink batch; `ifUnused`: only if nothing is in it (NLM_F_NONREC: a set without elements, a table without chains or sets). */
export interface NftDeletion {
  kind: 'chain' | 'set' | 'table';
  /** Chain or set name; none for the table. */
  name?: string;
  ifUnused?: boolean;
}

/** One batch of deletions in one table: one transaction, all or nothing; the errno of each (0: done). */
async function hostDeleteObjects(family: NftFamily, table: string, ops: readonly NftDeletion[], what: string, netns?: Netns): Promise<number[]> {
  const f = nfproto(family);
  const t = str(table);
  const batch: BatchOp[] = ops.map((o) => {
    const flags = o.ifUnused ? NLM_F_NONREC : undefined;
    if (o.kind === 'table') return { msg: NFT_MSG.DELTABLE, family: f, flags, attrs: encodeAttrs([{ type: NFTA_TABLE_NAME, data: t }]) };
    if (o.kind === 'chain') return { msg: NFT_MSG.DELCHAIN, family: f, flags, attrs: encodeAttrs([{ type: NFTA_CHAIN.TABLE, data: t }, { type: NFTA_CHAIN.NAME, data: str(o.name!) }]) };
    return { msg: NFT_MSG.DELSET, family: f, flags, attrs: encodeAttrs([{ type: NFTA_SET.TABLE, data: t }, { type: NFTA_SET.NAME, data: str(o.name!) }]) };
  });
  return withSocket(netns, (nfnl) => nfnl.batch(batch, what));
}

/** Delete these chains (with their rules) and sets (with their elements) of one table, in one transaction. */
export async function deleteTableObjects(family: NftFamily, table: string, o: { chains: readonly string[]; sets: readonly string[] }, netns?: Netns): Promise<void> {
  if (o.chains.length === 0 && o.sets.length === 0) return;
  const ops: NftDeletion[] = [...o.chains.map((name) => ({ kind: 'chain' as const, name })), ...o.sets.map((name) => ({ kind: 'set' as const, name }))];
  const what = `removing ${[...o.chains, ...o.sets].join(', ')} from ${family} ${table}`;
  const errnos = await backend.deleteObjects(family, table, ops, what, netns);
  const failed = errnos.find((e) => e !== 0);
  if (failed !== undefined) throw kernelError(failed, what);
}

export type TableRemoval = 'removed' | 'in use' | 'absent';

/**
 * Delete a shared table if nobody uses it: in one kernel transaction, its
 * shared chains, its shared sets if they hold no element, and the table if
 * nothing else is left in it (a chain, set or map of some network). If
 * anything is still used, nothing changes. Atomic against concurrent ADDs:
 * one that commits first keeps the table, one that commits later creates it
 * again.
 */
export async function removeTableIfUnused(t: SharedTable, netns?: Netns): Promise<TableRemoval> {
  const ops: NftDeletion[] = [
    ...t.chains.map((name) => ({ kind: 'chain' as const, name })),
    ...t.sets.map((name) => ({ kind: 'set' as const, name, ifUnused: true })),
    { kind: 'table', ifUnused: true },
  ];
  const what = `removing the unused table ${t.family} ${t.table}`;
  const errnos = await backend.deleteObjects(t.family, t.table, ops, what, netns);
  const failed = errnos.find((e) => e !== 0);
  if (failed === undefined) return 'removed';
  if (failed === 16 /* EBUSY */) {
    // An older release's markers may be all that is left: take them along and try once more.
    const legacy = t.legacySets ? (await listTable(t.family, t.table, netns))?.sets.filter((s) => t.legacySets!.test(s) && !t.sets.includes(s)) ?? [] : [];
    if (legacy.length) return removeTableIfUnused({ ...t, sets: [...t.sets, ...legacy], legacySets: undefined }, netns);
    return 'in use';
  }
  if (failed === 2 /* ENOENT */) {
    // The table is gone, or someone removed one of its shared parts by hand: retry with what is there.
    const present = await presentParts(t, netns);
    if (!present) return 'absent';
    if (present.chains.length < t.chains.length || present.sets.length < t.sets.length) return removeTableIfUnused(present, netns);
  }
  throw kernelError(failed, what);
}

/** The shared parts that exist, or undefined when the table itself is gone. */
async function presentParts(t: SharedTable, netns?: Netns): Promise<SharedTable | undefined> {
  const found = await listTable(t.family, t.table, netns);
  if (!found) return undefined;
  const names = new Set([...found.chains.map((c) => c.name), ...found.sets]);
  return { ...t, chains: t.chains.filter((c) => names.has(c)), sets: t.sets.filter((s) => names.has(s)) };
}
