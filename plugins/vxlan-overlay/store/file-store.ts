// The embedded overlay store: one directory that every agent on this machine
// shares (one agent per host namespace = a single-machine cluster).
//   state.json  revision counter, keys with revisions and leases, leases with
//               expiry times; replaced by write-temp + fsync + rename, so a
//               crash never leaves it half-written.
//   events.log  append-only, one JSON line per revision with its events; its
//               first line says from which revision on history is kept.
//   lock        flock(LOCK_EX) around every read-modify-write.
// Everything under the lock is synchronous (no await), so one process never
// interleaves with itself either. Lease expiry is lazy: every operation first
// revokes expired leases (deleting their keys with delete events); watchers
// also sweep on their timer so expiries show up without other writers.

import * as fs from 'fs';
import * as path from 'path';
import { LOCK_EX, LOCK_UN, native } from '../../../lib/sys/native';
import { ensurePrivateDir, writeFileAtomic } from '../../../lib/util/fs';
import {
  Compare, DeleteOptions, KeyValue, KvStore, LeaseId, LeaseNotFoundError, ListResult, PutOptions,
  TxnOp, TxnRequest, TxnResult, WatchEvent, WatchHandle, WatchListener,
} from './types';

export interface FileStoreOptions {
  dir: string;
  /** Trim the event log when it has more lines than this (keeping the newer half). Default 1000. */
  maxLogLines?: number;
  /** Watch poll fallback and lease sweep interval, ms. Default 250. */
  pollMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface StoredKv {
  value: string;
  createRevision: number;
  modRevision: number;
  lease?: LeaseId;
}

interface StoredLease {
  ttl: number;
  expiresAt: number;
}

interface FileState {
  version: 1;
  revision: number;
  /** History before this revision is gone from the log. */
  compactRevision: number;
  nextLeaseId: number;
  /** Bytes and lines of the log this state has committed (a longer log is a torn write). */
  logSize: number;
  logLines: number;
  kvs: Record<string, StoredKv>;
  leases: Record<string, StoredLease>;
}

interface LogEvent {
  t: 'put' | 'delete';
  k: string;
  v?: string;
  l?: LeaseId;
}

/** One log line: either the header (compact) or one revision's events. */
interface LogLine {
  compact?: number;
  r?: number;
  e?: LogEvent[];
}

const STATE = 'state.json';
const LOG = 'events.log';
const LOCK = 'lock';

/** Collects the events of one revision while an operation runs under the lock. */
class Tx {
  events: LogEvent[] = [];
  constructor(readonly state: FileState) {}
  get nextRevision(): number {
    return this.state.revision + 1;
  }
  put(key: string, value: string, lease?: LeaseId): void {
    if (lease !== undefined && !this.state.leases[lease]) throw new LeaseNotFoundError(lease);
    const rev = this.nextRevision;
    const old = this.state.kvs[key];
    this.state.kvs[key] = { value, createRevision: old ? old.createRevision : rev, modRevision: rev, ...(lease !== undefined ? { lease } : {}) };
    this.events.push({ t: 'put', k: key, v: value, ...(lease !== undefined ? { l: lease } : {}) });
  }
  delete(key: string, prefix = false): number {
    const keys = prefix ? Object.keys(this.state.kvs).filter((k) => k.startsWith(key)).sort() : this.state.kvs[key] ? [key] : [];
    for (const k of keys) {
      delete this.state.kvs[k];
      this.events.push({ t: 'delete', k });
    }
    return keys.length;
  }
  revokeLease(id: LeaseId): boolean {
    if (!this.state.leases[id]) return false;
    delete this.state.leases[id];
    for (const k of Object.keys(this.state.kvs).sort()) {
      if (this.state.kvs[k].lease === id) this.delete(k);
    }
    return true;
  }
}

export class FileStore implements KvStore {
  private readonly dir: string;
  private readonly maxLogLines: number;
  private readonly pollMs: number;
  private readonly now: () => number;
  private lockFd: number | undefined;
  private readonly watches = new Set<FileWatch>();

  constructor(opts: FileStoreOptions) {
    this.dir = opts.dir;
    this.maxLogLines = Math.max(2, opts.maxLogLines ?? 1000);
    this.pollMs = opts.pollMs ?? 250;
    this.now = opts.now ?? Date.now;
    ensurePrivateDir(this.dir);
    this.lockFd = fs.openSync(path.join(this.dir, LOCK), 'a', 0o600);
  }

  get logPath(): string {
    return path.join(this.dir, LOG);
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return this.locked((tx) => {
      const kv = tx.state.kvs[key];
      return kv ? toKeyValue(key, kv) : undefined;
    });
  }

  async list(prefix: string): Promise<ListResult> {
    return this.locked((tx) => ({
      kvs: Object.keys(tx.state.kvs).filter((k) => k.startsWith(prefix)).sort().map((k) => toKeyValue(k, tx.state.kvs[k])),
      revision: tx.state.revision,
    }));
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<number> {
    return this.locked((tx) => {
      tx.put(key, value, opts.lease);
      return tx.nextRevision;
    });
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<number> {
    return this.locked((tx) => tx.delete(key, opts.prefix));
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    return this.locked((tx) => {
      const succeeded = req.compare.every((c) => compareHolds(tx.state, c));
      for (const op of succeeded ? req.success : req.failure ?? []) applyOp(tx, op);
      return { succeeded, revision: tx.state.revision + (tx.events.length > 0 ? 1 : 0) };
    });
  }

  async grantLease(ttlSeconds: number): Promise<LeaseId> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new Error(`lease TTL must be a whole number of seconds ≥ 1, got ${ttlSeconds}`);
    return this.locked((tx) => {
      const id = String(tx.state.nextLeaseId++);
      tx.state.leases[id] = { ttl: ttlSeconds, expiresAt: this.now() + ttlSeconds * 1000 };
      return id;
    }, true);
  }

  async keepAlive(id: LeaseId): Promise<number> {
    return this.locked((tx) => {
      const lease = tx.state.leases[id];
      if (!lease) throw new LeaseNotFoundError(id);
      lease.expiresAt = this.now() + lease.ttl * 1000;
      return lease.ttl;
    }, true);
  }

  async revokeLease(id: LeaseId): Promise<boolean> {
    return this.locked((tx) => tx.revokeLease(id));
  }

  async compact(revision: number): Promise<void> {
    this.locked((tx) => {
      if (revision > tx.state.revision + 1) throw new Error(`cannot compact at future revision ${revision} (current ${tx.state.revision})`);
      if (revision > tx.state.compactRevision) this.rewriteLog(tx.state, revision);
    }, true);
  }

  watch(prefix: string, fromRevision: number, listener: WatchListener): WatchHandle {
    const w = new FileWatch(this, prefix, Math.max(1, fromRevision), listener, this.pollMs, () => this.watches.delete(w));
    this.watches.add(w);
    w.start();
    return { cancel: () => w.cancel() };
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) w.cancel();
    if (this.lockFd !== undefined) fs.closeSync(this.lockFd);
    this.lockFd = undefined;
  }

  /** The revision of the last committed state (0 before the store exists). */
  committedRevision(): number {
    return this.readStateUnlocked()?.revision ?? 0;
  }

  /** Revoke expired leases if the last committed state has any (cheap check first, lock only if needed). */
  sweepExpired(): void {
    if (this.lockFd === undefined) return;
    const state = this.readStateUnlocked();
    if (!state || !Object.values(state.leases).some((l) => l.expiresAt <= this.now())) return;
    this.locked(() => undefined);
  }

  /**
   * Run fn on the state under the lock. Expired leases are revoked first. If
   * anything produced events (or `dirty`), the events go to the log as one
   * revision and the state is committed.
   */
  private locked<T>(fn: (tx: Tx) => T, dirty = false): T {
    if (this.lockFd === undefined) throw new Error(`file store ${this.dir} is closed`);
    const fd = this.lockFd;
    native().flock(fd, LOCK_EX);
    try {
      const state = this.readStateLocked();
      const sweep = new Tx(state);
      for (const [id, lease] of Object.entries(state.leases)) {
        if (lease.expiresAt <= this.now()) sweep.revokeLease(id);
      }
      if (sweep.events.length > 0) this.commit(state, sweep.events);
      const tx = new Tx(state);
      const out = fn(tx);
      if (tx.events.length > 0 || dirty) this.commit(state, tx.events);
      return out;
    } finally {
      native().flock(fd, LOCK_UN);
    }
  }

  private commit(state: FileState, events: LogEvent[]): void {
    if (events.length > 0) {
      state.revision++;
      const line = Buffer.from(JSON.stringify({ r: state.revision, e: events } satisfies LogLine) + '\n');
      fs.appendFileSync(this.logPath, line);
      state.logSize += line.length;
      state.logLines++;
      if (state.logLines > this.maxLogLines) this.trimLog(state);
    }
    this.writeState(state);
  }

  /** Keep the newer half of the log; watchers that still needed the rest get "compacted". */
  private trimLog(state: FileState): void {
    const lines = this.readLogLines();
    const revisions = lines.filter((l) => l.r !== undefined).map((l) => l.r as number);
    const keepFrom = revisions[Math.max(0, revisions.length - Math.floor(this.maxLogLines / 2))] ?? state.revision + 1;
    this.rewriteLog(state, keepFrom, lines);
  }

  /** Replace the log (new inode) with a header "history from `from` on" and the lines from there. */
  private rewriteLog(state: FileState, from: number, lines = this.readLogLines()): void {
    const kept = lines.filter((l) => l.r !== undefined && l.r >= from);
    const text = [{ compact: from }, ...kept].map((l) => JSON.stringify(l) + '\n').join('');
    writeFileAtomic(this.logPath, text, { sync: true });
    state.compactRevision = from;
    state.logSize = Buffer.byteLength(text);
    state.logLines = kept.length + 1;
  }

  private readLogLines(): LogLine[] {
    return parseLogText(fs.readFileSync(this.logPath, 'utf8'));
  }

  private readStateUnlocked(): FileState | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, STATE), 'utf8')) as FileState;
    } catch {
      return undefined;
    }
  }

  private readStateLocked(): FileState {
    const file = path.join(this.dir, STATE);
    let state: FileState;
    if (fs.existsSync(file)) {
      state = JSON.parse(fs.readFileSync(file, 'utf8')) as FileState;
    } else {
      state = { version: 1, revision: 1, compactRevision: 1, nextLeaseId: 1, logSize: 0, logLines: 0, kvs: {}, leases: {} };
      this.rewriteLog(state, 1, []);
      this.writeState(state);
    }
    // A log longer than the state knows ends with the line of a write that
    // crashed before its state was committed (watchers never delivered it):
    // keep the committed part. A shorter or missing log lost history: start a
    // new one, and watchers from before get "compacted".
    let size = -1;
    try { size = fs.statSync(this.logPath).size; } catch { /* missing */ }
    if (size > state.logSize) {
      const committed = Buffer.alloc(state.logSize);
      const fd = fs.openSync(this.logPath, 'r');
      try { fs.readSync(fd, committed, 0, state.logSize, 0); } finally { fs.closeSync(fd); }
      writeFileAtomic(this.logPath, committed.toString('utf8'), { sync: true });
    } else if (size !== state.logSize) {
      this.rewriteLog(state, state.revision + 1, []);
      this.writeState(state);
    }
    return state;
  }

  private writeState(state: FileState): void {
    writeFileAtomic(path.join(this.dir, STATE), JSON.stringify(state), { sync: true });
  }
}


export function parseLogText(text: string): LogLine[] {
  return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as LogLine);
}

function toKeyValue(key: string, kv: StoredKv): KeyValue {
  return { key, value: kv.value, modRevision: kv.modRevision, createRevision: kv.createRevision, ...(kv.lease !== undefined ? { lease: kv.lease } : {}) };
}

function compareHolds(state: FileState, c: Compare): boolean {
  const kv = state.kvs[c.key];
  switch (c.target) {
    case 'createRevision': return (kv?.createRevision ?? 0) === c.equals;
    case 'modRevision': return (kv?.modRevision ?? 0) === c.equals;
    case 'value': return kv !== undefined && kv.value === c.equals;
  }
}

function applyOp(tx: Tx, op: TxnOp): void {
  if (op.type === 'put') tx.put(op.key, op.value, op.lease);
  else tx.delete(op.key, op.prefix);
}

/** Tails events.log: fs.watch on the directory wakes it, a timer is the fallback (and sweeps leases). */
class FileWatch {
  private ino = -1;
  private offset = 0;
  private pending = Buffer.alloc(0);
  private timer: NodeJS.Timeout | undefined;
  private watcher: fs.FSWatcher | undefined;
  private done = false;

  constructor(
    private readonly store: FileStore,
    private readonly prefix: string,
    private nextRevision: number,
    private readonly listener: WatchListener,
    private readonly pollMs: number,
    private readonly onEnd: () => void,
  ) {}

  start(): void {
    try {
      this.watcher = fs.watch(path.dirname(this.store.logPath), () => this.poll());
      this.watcher.on('error', () => undefined); // the timer keeps going
    } catch { /* inotify exhausted: the timer is enough */ }
    this.timer = setInterval(() => {
      try { this.store.sweepExpired(); } catch (err) { this.fail(err); return; }
      this.poll();
    }, this.pollMs);
    setImmediate(() => this.poll());
  }

  cancel(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearInterval(this.timer);
    this.watcher?.close();
    this.onEnd();
  }

  private fail(err: unknown): void {
    if (this.done) return;
    this.cancel();
    this.listener.onError?.(err instanceof Error ? err : new Error(String(err)));
  }

  private poll(): void {
    if (this.done) return;
    let batch: WatchEvent[] = [];
    try {
      let fd: number;
      try { fd = fs.openSync(this.store.logPath, 'r'); } catch { return; } // not created yet
      try {
        const st = fs.fstatSync(fd);
        if (st.ino !== this.ino || st.size < this.offset) {
          // New log (first poll, trim or compaction): read it from the start.
          this.ino = st.ino;
          this.offset = 0;
          this.pending = Buffer.alloc(0);
        }
        if (st.size === this.offset && this.pending.length === 0) return;
        const buf = Buffer.alloc(st.size - this.offset);
        fs.readSync(fd, buf, 0, buf.length, this.offset);
        this.offset = st.size;
        // Deliver only committed revisions (state.json is renamed after the log
        // append): later lines, and a line still being written, wait for the next poll.
        const committed = this.store.committedRevision();
        let all = Buffer.concat([this.pending, buf]);
        for (let nl = all.indexOf(0x0a); nl >= 0; nl = all.indexOf(0x0a)) {
          const line = JSON.parse(all.subarray(0, nl).toString('utf8')) as LogLine;
          if (line.compact !== undefined) {
            if (this.nextRevision < line.compact) {
              this.flush(batch);
              this.cancel();
              this.listener.onCompacted();
              return;
            }
          } else {
            const rev = line.r as number;
            if (rev > committed) break;
            if (rev >= this.nextRevision) {
              this.nextRevision = rev + 1;
              for (const e of line.e ?? []) {
                if (!e.k.startsWith(this.prefix)) continue;
                batch.push({ type: e.t, key: e.k, value: e.v ?? '', modRevision: rev, ...(e.l !== undefined ? { lease: e.l } : {}) });
              }
            }
          }
          all = all.subarray(nl + 1);
        }
        this.pending = all;
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    this.flush(batch);
    batch = [];
  }

  private flush(batch: WatchEvent[]): void {
    if (batch.length > 0 && !this.done) this.listener.onEvents(batch);
  }
}
