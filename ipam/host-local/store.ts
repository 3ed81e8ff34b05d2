// The disk store: the reference host-local's layout exactly, so both plugins
// can share a dataDir (reference-plugins.md §11.2):
//   <dataDir>/<network>/lock                 flock(LOCK_EX) serializes everyone
//   <dataDir>/<network>/<ip>                 0600, "<containerID>\r\n<ifname>"
//   <dataDir>/<network>/last_reserved_ip.<n> last address reserved in set n
//
// Taken = "a file with that name exists". The reference creates it with
// O_CREAT|O_EXCL and then writes, under the lock. We write the content to
// `.reserve.tmp` first and link(2) it to the address name: link fails with
// EEXIST exactly like O_EXCL, and the file appears complete or not at all, so
// a SIGKILL never leaves a half-written reservation. The temp name is fixed:
// only the lock holder writes it, and it is unlinked before reuse, so a stale
// one (a kill between link and unlink shares the inode) is never truncated.
//
// The attachment index (why our ADD/DEL stay flat as the directory grows).
// The reference reads every file on each ADD (duplicate check) and walks the
// directory once per range set on DEL. We keep `.attachments/<key>`, one small
// JSON file per attachment listing its addresses, so ADD/DEL/CHECK read one
// file plus the reservation files it points to (each entry is validated
// against the reservation's content before it is trusted). The reference
// ignores it harmlessly: it only counts files named like an address, and the
// JSON never equals "<id>\r\n<ifname>" so its DEL never deletes it.
//
// The index is only complete if nobody else changed the directory. A foreign
// writer (the reference, a process of ours killed mid-way, an admin's rm)
// cannot update it, but any create/unlink in a directory sets the directory's
// mtime to "now" (and ctime to the same value). So after every change we make,
// still under the lock, we set the directory's mtime to a stamp S: a whole
// second in the past, remembered as the mtime of the lock file (which nobody
// ever writes). At the next lock: dir mtime == S means only we touched it and
// the index is trusted; anything else means "walk the directory once and
// rebuild the index" (the fallback interop needs), then stamp again.

import * as fs from 'fs';
import * as path from 'path';
import { ensureSafeDir, requireSafeDir } from '../../lib/util/fs';
import { sha256Hex } from '../../lib/util/hash';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { LOCK_EX, native } from '../../lib/sys/native';
import { Addr, formatAddr, parseAddr } from './addr';
import type { LockedStore, NetworkStore, Owner, Reservation } from './store-types';

const LAST_RESERVED = 'last_reserved_ip.';
const RESERVE_TMP = '.reserve.tmp';
const INDEX_DIR = '.attachments';
const INDEX_TMP = '.tmp';
const NS_PER_S = 1_000_000_000n;

function io(what: string, err: unknown): CniError {
  if (err instanceof CniError) return err;
  const e = err as NodeJS.ErrnoException;
  return new CniError(ErrorCode.IoFailure, `host-local: ${what}: ${e.code ?? ''} ${e.message ?? String(err)}`.replace(/ +/g, ' '));
}

const isCode = (err: unknown, code: string) => (err as NodeJS.ErrnoException)?.code === code;

/** unlink, where "already gone" is fine; true when something was removed. */
function unlinkIfExists(file: string): boolean {
  try {
    fs.unlinkSync(file);
    return true;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return false;
    throw err;
  }
}

/**
 * Overwrite a small file without truncating it to zero first: ext4's
 * auto_da_alloc flushes a file on close after a truncate-to-zero (O_TRUNC),
 * which costs milliseconds per ADD (measured 5 ms vs 0.05 ms). Only for files
 * whose torn state is harmless or repaired by the index rebuild.
 */
function overwrite(file: string, content: string): void {
  const buf = Buffer.from(content);
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, buf, 0, buf.length, 0);
    fs.ftruncateSync(fd, buf.length);
  } finally {
    fs.closeSync(fd);
  }
}

/** "<id>\r\n<ifname>" (the reference trims the id; ours never has spaces). */
export function ownerContent(o: Owner): string {
  return o.ifname === undefined ? o.containerID : `${o.containerID}\r\n${o.ifname}`;
}

/** File content → owner, like the reference's TrimSpace comparisons. */
export function parseOwner(content: string): Owner | undefined {
  const t = content.trim();
  if (t === '') return undefined;
  const parts = t.split('\r\n');
  if (parts.length === 1) return { containerID: t };
  if (parts.length === 2 && parts[0] !== '' && parts[1] !== '') return { containerID: parts[0], ifname: parts[1] };
  return undefined;
}

const sameOwner = (a: Owner | undefined, b: Owner) => !!a && a.containerID === b.containerID && a.ifname === b.ifname;

/** Index file name: readable when short ("~" is in neither a container ID nor hex); hashed otherwise. */
export function indexKey(o: Owner): string {
  const key = `${o.containerID}~${o.ifname === undefined ? '' : Buffer.from(o.ifname).toString('hex')}`;
  return key.length <= 200 ? key : `#${sha256Hex(ownerContent(o))}`;
}

interface IndexEntry {
  owner: Owner;
  ips: Set<string>;
  changed: boolean;
}

class DiskTx implements LockedStore {
  private entries = new Map<string, IndexEntry>();
  private tmpContent: string | undefined;
  dirty = false; // we changed directory entries: stamp at the end

  constructor(private readonly dir: string) {}

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  private readEntryFile(key: string): { owner: Owner; ips: string[] } | undefined {
    try {
      const parsed = JSON.parse(fs.readFileSync(path.join(this.dir, INDEX_DIR, key), 'utf8'));
      return { owner: { containerID: parsed.containerID, ifname: parsed.ifname ?? undefined }, ips: parsed.ips };
    } catch (err) {
      if (isCode(err, 'ENOENT')) return undefined;
      return undefined; // a torn or foreign file: treated as absent, rewritten on the next change
    }
  }

  private entry(owner: Owner): IndexEntry {
    const key = indexKey(owner);
    let e = this.entries.get(key);
    if (!e) {
      const onDisk = this.readEntryFile(key);
      const ips = onDisk && sameOwner(onDisk.owner, owner) && Array.isArray(onDisk.ips) ? onDisk.ips.filter((s) => typeof s === 'string') : [];
      e = { owner, ips: new Set(ips), changed: false };
      this.entries.set(key, e);
    }
    return e;
  }

  holderOf(a: Addr): Owner | undefined {
    return this.ownerOf(formatAddr(a));
  }

  /** The owner recorded in a reservation file; undefined when missing or unreadable. */
  ownerOf(ip: string): Owner | undefined {
    try {
      return parseOwner(fs.readFileSync(this.file(ip), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Index entries, validated: an address counts only if its file still names this owner. */
  private validated(owner: Owner): Addr[] {
    const e = this.entry(owner);
    const out: Addr[] = [];
    for (const ip of [...e.ips]) {
      const a = parseAddr(ip);
      if (a && sameOwner(this.ownerOf(ip), owner)) out.push(a);
      else {
        e.ips.delete(ip);
        e.changed = true;
      }
    }
    return out;
  }

  heldBy(containerID: string, ifname: string): { exact: Addr[]; legacy: Addr[] } {
    return { exact: this.validated({ containerID, ifname }), legacy: this.validated({ containerID }) };
  }

  lastReserved(setIndex: number): Addr | undefined {
    try {
      return parseAddr(fs.readFileSync(this.file(LAST_RESERVED + setIndex), 'utf8').trim());
    } catch {
      return undefined; // missing or garbage: start at the set's first address, like the reference
    }
  }

  setLastReserved(setIndex: number, a: Addr): void {
    // Rewritten in place (no new directory entry after the first time); a torn
    // write only costs round-robin order, never correctness.
    try {
      overwrite(this.file(LAST_RESERVED + setIndex), formatAddr(a));
    } catch (err) {
      throw io(`cannot write ${LAST_RESERVED}${setIndex} in ${this.dir}`, err);
    }
  }

  private writeTmp(content: string): void {
    if (this.tmpContent === content) return;
    const tmp = this.file(RESERVE_TMP);
    this.dirty = true;
    try {
      unlinkIfExists(tmp);
      const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      try {
        fs.writeSync(fd, content);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      throw io(`cannot write ${tmp}`, err);
    }
    this.tmpContent = content;
  }

  tryReserve(a: Addr, owner: Owner): boolean {
    const ip = formatAddr(a);
    this.writeTmp(ownerContent(owner));
    try {
      fs.linkSync(this.file(RESERVE_TMP), this.file(ip));
    } catch (err) {
      if (isCode(err, 'EEXIST')) return false;
      throw io(`cannot reserve ${ip} in ${this.dir}`, err);
    }
    // One inode per reservation: drop the temp now, the next reservation writes its own.
    unlinkIfExists(this.file(RESERVE_TMP));
    this.tmpContent = undefined;
    const e = this.entry(owner);
    e.ips.add(ip);
    e.changed = true;
    return true;
  }

  release(a: Addr, owner?: Owner): void {
    const ip = formatAddr(a);
    try {
      if (unlinkIfExists(this.file(ip))) this.dirty = true;
    } catch (err) {
      throw io(`cannot release ${ip} in ${this.dir}`, err);
    }
    if (owner) {
      const e = this.entry(owner);
      e.changed = e.ips.delete(ip) || e.changed;
    }
  }

  all(): Reservation[] {
    const out: Reservation[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const a = parseAddr(name);
      // Only canonical address names are reservations (lock, last_reserved_ip.*, temps are not).
      if (!a || formatAddr(a) !== name) continue;
      out.push({ addr: a, owner: this.ownerOf(name) });
    }
    return out;
  }

  /** Rebuild the whole index from the reservation files (the fallback walk). */
  rebuild(): void {
    this.dirty = true;
    fs.rmSync(this.file(RESERVE_TMP), { force: true }); // a crashed writer's leftover; we hold the lock
    const want = new Map<string, { owner: Owner; ips: string[] }>();
    for (const r of this.all()) {
      if (!r.owner) continue;
      const key = indexKey(r.owner);
      const w = want.get(key) ?? { owner: r.owner, ips: [] };
      w.ips.push(formatAddr(r.addr));
      want.set(key, w);
    }
    const indexDir = path.join(this.dir, INDEX_DIR);
    fs.mkdirSync(indexDir, { recursive: true, mode: 0o755 });
    for (const key of fs.readdirSync(indexDir)) {
      if (!want.has(key)) fs.rmSync(path.join(indexDir, key), { force: true, recursive: true });
    }
    this.entries.clear();
    for (const [key, w] of want) {
      const onDisk = this.readEntryFile(key);
      const same = onDisk && sameOwner(onDisk.owner, w.owner) && Array.isArray(onDisk.ips) && [...onDisk.ips].sort().join() === [...w.ips].sort().join();
      if (!same) this.writeEntry(key, w.owner, w.ips);
    }
  }

  private writeEntry(key: string, owner: Owner, ips: string[]): void {
    const indexDir = path.join(this.dir, INDEX_DIR);
    const target = path.join(indexDir, key);
    if (ips.length === 0) {
      unlinkIfExists(target);
      return;
    }
    const body = JSON.stringify({ containerID: owner.containerID, ...(owner.ifname === undefined ? {} : { ifname: owner.ifname }), ips });
    // While the network directory is unstamped (dirty), a torn index file is
    // repaired by the rebuild a kill would trigger: overwrite in place, fast.
    // Otherwise (CHECK dropping a stale entry) write a temp and rename it.
    const write = () => {
      if (this.dirty) return overwrite(target, body);
      const tmp = path.join(indexDir, INDEX_TMP);
      fs.writeFileSync(tmp, body, { mode: 0o600 });
      fs.renameSync(tmp, target);
    };
    try {
      write();
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw err;
      fs.mkdirSync(indexDir, { recursive: true, mode: 0o755 });
      write();
    }
  }

  /** Write back what changed; removes our temp. */
  flush(): void {
    if (this.tmpContent !== undefined) {
      unlinkIfExists(this.file(RESERVE_TMP));
      this.tmpContent = undefined;
    }
    for (const [key, e] of this.entries) {
      if (e.changed) this.writeEntry(key, e.owner, [...e.ips]);
      e.changed = false;
    }
  }
}

export class DiskStore implements NetworkStore {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    // The network name was validated by the skel (and again by plugin.ts):
    // no "/", no "..", no NUL. Check once more that the join stays inside.
    const root = path.resolve(dataDir);
    this.dir = path.join(root, network);
    if (path.dirname(this.dir) !== root || network.includes('\0')) {
      throw new CniError(ErrorCode.InvalidConfig, `host-local: network name ${JSON.stringify(network)} would escape dataDir ${root}`);
    }
  }

  exists(): boolean {
    return fs.existsSync(this.dir);
  }

  private ensureDir(): void {
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(this.dir);
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw io(`cannot stat ${this.dir}`, err);
      try {
        ensureSafeDir(this.dir, { mode: 0o755 });
      } catch (e) {
        if (e instanceof CniError) throw e;
        if (!isCode(e, 'EEXIST')) throw io(`cannot create ${this.dir}`, e);
      }
      st = fs.lstatSync(this.dir);
    }
    // A symlink here could point anywhere: refuse it rather than follow it.
    if (!st.isDirectory()) throw new CniError(ErrorCode.IoFailure, `host-local: ${this.dir} is not a directory (a symlink or a file); refusing to use it`);
    if ((st.mode & 0o022) !== 0) fs.chmodSync(this.dir, st.mode & 0o755);
    requireSafeDir(this.dir);
  }

  withLock<T>(fn: (tx: LockedStore) => T): T {
    this.ensureDir();
    const lockPath = path.join(this.dir, 'lock');
    let fd: number;
    try {
      fd = fs.openSync(lockPath, fs.constants.O_RDONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw io(`cannot open ${lockPath}`, err);
    }
    try {
      // Blocking on the main thread is fine: this process has nothing else to do.
      // The kernel drops the lock when the process dies, even by SIGKILL.
      native().flock(fd, LOCK_EX);
      const tx = new DiskTx(this.dir);
      const stamp = this.ensureIndex(tx, fd);
      let result: T;
      try {
        result = fn(tx);
      } catch (err) {
        // A CniError (exhaustion, duplicate...) comes after the handler rolled
        // back through tx, so the index is accurate: stamp it. Anything else
        // leaves the directory unstamped and the next lock holder rebuilds.
        if (err instanceof CniError) this.commit(tx, stamp);
        throw err;
      }
      this.commit(tx, stamp);
      return result;
    } catch (err) {
      throw io(`${this.dir}`, err);
    } finally {
      fs.closeSync(fd); // releases the flock
    }
  }

  /** Trust the index if the directory still carries our stamp, else rebuild it. Returns the stamp (ns). */
  private ensureIndex(tx: DiskTx, lockFd: number): bigint {
    const lockMtime = fs.fstatSync(lockFd, { bigint: true }).mtimeNs;
    const dirMtime = fs.statSync(this.dir, { bigint: true }).mtimeNs;
    if (lockMtime % NS_PER_S === 0n && dirMtime === lockMtime) return lockMtime;
    tx.rebuild();
    let stamp = lockMtime;
    if (stamp % NS_PER_S !== 0n) {
      stamp = (BigInt(Date.now()) / 1000n - 1n) * NS_PER_S;
      const s = Number(stamp / NS_PER_S);
      fs.futimesSync(lockFd, s, s);
    }
    this.commit(tx, stamp);
    return stamp;
  }

  /** Flush the index, then stamp the directory: the last step, so a kill before it means "rebuild". */
  private commit(tx: DiskTx, stamp: bigint): void {
    tx.flush();
    if (!tx.dirty) return;
    const s = Number(stamp / NS_PER_S);
    fs.utimesSync(this.dir, s, s);
    tx.dirty = false;
  }

  reservedAddrs(): Addr[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (err) {
      if (isCode(err, 'ENOENT')) return [];
      throw io(`cannot list ${this.dir}`, err);
    }
    const out: Addr[] = [];
    for (const name of names) {
      const a = parseAddr(name);
      if (a && formatAddr(a) === name) out.push(a);
    }
    return out;
  }
}

export const openDiskStore = (dataDir: string, network: string): NetworkStore => new DiskStore(dataDir, network);
