// A blocking flock around a short critical section. Every holder is one
// short plugin run, so waiting is bounded by the slowest of them.
//
// Lock files can be removed: an exclusive holder may unlink the file (and
// its directory) when what it guards is gone, so nothing is left behind.
// A waiter that opened the old file then holds a lock on an unlinked inode;
// it notices (the path no longer names the inode it locked), lets go and
// starts over with the path as it is now.

import * as fs from 'fs';
import * as path from 'path';
import { LOCK_EX, LOCK_SH, LOCK_UN, native } from './native';
import { ensureSafeDir } from '../util/fs';

export interface LockOptions {
  /** Mode of directories created for the lock file (default 0700). */
  dirMode?: number;
  /** Shared (readers) instead of exclusive. */
  shared?: boolean;
}

export interface HeldLock {
  /**
   * Exclusive holders only: unlink the lock file when releasing it, and
   * with `dir`, its directory too if it is empty by then.
   */
  removeOnRelease(o?: { dir?: boolean }): void;
}

function sameFile(fd: number, file: string): boolean {
  const held = fs.fstatSync(fd);
  try {
    const now = fs.statSync(file);
    return now.ino === held.ino && now.dev === held.dev;
  } catch {
    return false;
  }
}

function acquire(lockFile: string, op: number, dirMode: number): number {
  for (;;) {
    // Parents 0755, the lock's own directory dirMode. Lock files live in state directories a
    // config names: created as safely as any (lib/util/fs.ts ensureSafeDir), never through a symlink.
    let fd: number;
    try {
      ensureSafeDir(path.dirname(lockFile), { mode: dirMode });
      fd = fs.openSync(lockFile, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      // The directory went away between mkdir and open (its last user removed it): again.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    native().flock(fd, op);
    if (sameFile(fd, lockFile)) return fd;
    native().flock(fd, LOCK_UN);
    fs.closeSync(fd);
  }
}

export async function withFileLock<T>(lockFile: string, fn: (lock: HeldLock) => Promise<T> | T, opts: number | LockOptions = {}): Promise<T> {
  const o: LockOptions = typeof opts === 'number' ? { dirMode: opts } : opts;
  const fd = acquire(lockFile, o.shared ? LOCK_SH : LOCK_EX, o.dirMode ?? 0o700);
  let remove: { dir?: boolean } | undefined;
  const held: HeldLock = {
    removeOnRelease: (r = {}) => {
      if (o.shared) throw new Error(`lock ${lockFile}: only an exclusive holder may remove it`);
      remove = r;
    },
  };
  try {
    return await fn(held);
  } finally {
    try {
      if (remove) {
        fs.rmSync(lockFile, { force: true });
        if (remove.dir) {
          try { fs.rmdirSync(path.dirname(lockFile)); } catch { /* not empty, or gone: fine */ }
        }
      }
    } finally {
      native().flock(fd, LOCK_UN);
      fs.closeSync(fd);
    }
  }
}
