// The lifecycle of one network's per-network state (DESIGN.md "Lifecycle of
// per-network state"): it comes with the first attachment and goes with the
// last. Membership is the attachment records in one directory; the lock is
// a file in it.
//
//   ADD:  shared lock for the whole ADD: write the record, ensure and verify
//         the structure, add the elements. Many ADDs run at once.
//   DEL:  remove this attachment's things and its record (no lock), then
//         teardownIfUnused: under the exclusive lock, if no record is left,
//         remove the structure, the directory and the lock file.
//
// Why this is enough: a DEL removes its record before it looks for others,
// so of two last DELs at least the later one sees none. An ADD writes its
// record under the shared lock, so a teardown (exclusive, re-checking under
// the lock) either runs before that ADD takes the lock (and the ADD builds
// the structure again) or after it released it (and sees its record).

import * as fs from 'fs';
import * as path from 'path';
import { withFileLock } from '../sys/lock';

const LOCK_NAME = '.lock';

export class NetworkState {
  /**
   * @param dir the network's record directory
   * @param isRecord which names in it are attachment records (temporary files and the lock are not)
   */
  constructor(readonly dir: string, private readonly isRecord: (name: string) => boolean) {}

  get lockFile(): string {
    return path.join(this.dir, LOCK_NAME);
  }

  /** Whether any attachment record is left. */
  hasMembers(): boolean {
    try {
      return fs.readdirSync(this.dir).some((n) => this.isRecord(n));
    } catch {
      return false;
    }
  }

  /** Run an ADD (or anything that adds a member) so that no teardown can happen meanwhile. */
  whileAttaching<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(this.lockFile, fn, { shared: true, dirMode: 0o700 });
  }

  /**
   * When no attachment record is left: run `teardown` (the network's
   * structure) under the exclusive lock, then remove the directory with
   * whatever else is in it and the lock. Returns whether it tore down.
   * A teardown that throws leaves the directory, so the next DEL or GC
   * tries again.
   */
  async teardownIfUnused(teardown: () => Promise<void> | void): Promise<boolean> {
    if (this.hasMembers()) return false;
    return withFileLock(this.lockFile, async (lock) => {
      if (this.hasMembers()) return false;
      await teardown();
      for (const n of safeReaddir(this.dir)) {
        if (n !== LOCK_NAME) fs.rmSync(path.join(this.dir, n), { recursive: true, force: true });
      }
      lock.removeOnRelease({ dir: true });
      return true;
    });
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
