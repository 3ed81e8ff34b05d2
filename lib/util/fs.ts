// Filesystem helpers shared by the plugins' state stores, and the disk side
// of the path rules of lib/util/paths.ts: a directory we write in must really
// be where its text says (no symlink out of the allowed places) and nobody but
// root may be able to change what is in it.
import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode } from '../cni/errors';
import { STATE_ROOTS, isWithin } from './paths';

function unsafe(dir: string, why: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, `refusing to use directory "${dir}": ${why}`, 'a state or log directory must be owned by root and writable by nobody else, all the way up (docs/security.md)');
}

function realRoots(roots: readonly string[]): string[] {
  return roots.map((r) => {
    try { return fs.realpathSync(r); } catch { return r; }
  });
}

/**
 * `dir` (which exists) resolves to a place below one of `roots`, and every
 * directory from / down to it is owned by root (or by us) and writable by
 * nobody else; a sticky world-writable ancestor (/tmp) is fine, because what
 * we own in it cannot be renamed or replaced by others. The leaf itself must
 * not be group- or world-writable.
 */
export function requireSafeDir(dir: string, roots: readonly string[] = STATE_ROOTS): void {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch (err) {
    throw unsafe(dir, (err as Error).message);
  }
  if (!realRoots(roots).some((r) => real !== r && isWithin(real, r))) throw unsafe(dir, `it resolves to "${real}", which is not below one of ${roots.join(', ')}`);
  requireTrustedChain(real, dir, true);
}

/** Every directory from / down to `real` is root's (or ours) and writable by nobody else; a sticky one only above the leaf. */
function requireTrustedChain(real: string, dir: string, realIsLeaf: boolean): void {
  const me = process.geteuid?.() ?? 0;
  for (let d = real, leaf = realIsLeaf; ; d = path.dirname(d), leaf = false) {
    const st = fs.lstatSync(d);
    if (st.uid !== 0 && st.uid !== me) throw unsafe(dir, `"${d}" is owned by uid ${st.uid}`);
    const writableByOthers = (st.mode & 0o022) !== 0;
    if (writableByOthers && (leaf || (st.mode & 0o1000) === 0)) throw unsafe(dir, `"${d}" is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`);
    if (d === path.dirname(d)) return;
  }
}

/**
 * Create `dir` (mode `mode`, missing parents 0755) so that no one else can
 * redirect the creation: the deepest existing ancestor is checked first (its
 * real path, owned by root all the way up), then each missing component is
 * made with a plain mkdir and checked with lstat to be our own directory, not
 * a symlink or something another user planted in a sticky /tmp meanwhile.
 * An existing `dir` must pass requireSafeDir. Throws code 7 naming the path.
 */
export function ensureSafeDir(dir: string, o: { mode: number; roots?: readonly string[] }): void {
  const roots = o.roots ?? STATE_ROOTS;
  const missing: string[] = [];
  let existing = dir;
  while (!fs.existsSync(existing)) {
    if (existing === path.dirname(existing)) throw unsafe(dir, 'no part of it exists');
    missing.unshift(path.basename(existing));
    existing = path.dirname(existing);
  }
  if (missing.length === 0) return requireSafeDir(dir, roots);
  let cur: string;
  try {
    cur = fs.realpathSync(existing);
  } catch (err) {
    throw unsafe(dir, (err as Error).message);
  }
  const target = path.join(cur, ...missing);
  if (!realRoots(roots).some((r) => target !== r && isWithin(target, r))) throw unsafe(dir, `it resolves to "${target}", which is not below one of ${roots.join(', ')}`);
  requireTrustedChain(cur, dir, false);
  const me = process.geteuid?.() ?? 0;
  missing.forEach((name, i) => {
    cur = path.join(cur, name);
    const mode = i === missing.length - 1 ? o.mode : 0o755;
    try {
      fs.mkdirSync(cur, { mode });
      fs.chmodSync(cur, mode); // the umask may have narrowed it (others must search shared parents)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = fs.lstatSync(cur);
    if (!st.isDirectory()) throw unsafe(dir, `"${cur}" is not a directory (a symlink?)`);
    if (st.uid !== 0 && st.uid !== me) throw unsafe(dir, `"${cur}" is owned by uid ${st.uid}`);
    if ((st.mode & 0o022) !== 0) throw unsafe(dir, `"${cur}" is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`);
  });
}

/**
 * Create a private directory (0700) and any missing parents (0755), safely
 * (ensureSafeDir). A bare recursive mkdir with 0700 would also make shared
 * parents such as /run/cni unsearchable for other users (the DNS service's
 * dnsmasq runs as nobody).
 */
export function ensurePrivateDir(dir: string, roots: readonly string[] = STATE_ROOTS): void {
  ensureSafeDir(dir, { mode: 0o700, roots });
}

/** Files a config names are small: resolver files, records. */
export const MAX_CONFIG_FILE_BYTES = 64 * 1024;

/**
 * Read a regular file of at most `limit` bytes. Opened non-blocking (a FIFO
 * cannot hang us) and checked with fstat before reading (a device such as
 * /dev/zero is refused, not read). Throws CniError code 5 naming the file.
 */
export function readBoundedFile(file: string, o: { limit?: number; what: string }): string {
  const limit = o.limit ?? MAX_CONFIG_FILE_BYTES;
  const fail = (why: string) => new CniError(ErrorCode.IoFailure, `cannot read ${o.what} "${file}": ${why}`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    throw fail((err as Error).message);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw fail('not a regular file');
    const buf = Buffer.alloc(limit + 1);
    let n = 0;
    for (;;) {
      let got: number;
      try {
        got = fs.readSync(fd, buf, n, buf.length - n, null);
      } catch (err) {
        throw fail((err as Error).message);
      }
      if (got === 0) break;
      n += got;
      if (n > limit) throw fail(`larger than ${limit} bytes`);
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

export interface AtomicWriteOptions {
  /** The file's mode, whatever the umask (default 0600: state is root's). */
  mode?: number;
  /** fsync before the rename: the file must outlive a crash right after (records of kernel state). */
  sync?: boolean;
}

/**
 * Write `text` to `file` so that readers see the old or the new file, never
 * half of one: a temporary dotfile beside it (`.<name>.<pid>.tmp`: listings
 * of records skip dotfiles, dnsmasq's hostsdir ignores them), then rename.
 */
export function writeFileAtomic(file: string, text: string, o: AtomicWriteOptions = {}): void {
  const mode = o.mode ?? 0o600;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeSync(fd, text);
    if (o.sync) fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Remove a file, where "already gone" (or a name no file could have: ENAMETOOLONG) is fine; true when something was removed. */
export function removeIfExists(file: string): boolean {
  try {
    fs.unlinkSync(file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENAMETOOLONG') return false;
    throw err;
  }
}
