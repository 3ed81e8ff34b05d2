// Trunk-mode records on disk, under <dataDir>/trunk/<sub-interface>/:
//   created          JSON CreatedMarker: we made this sub-interface (ifindex, master, vlan)
//   users/<key>      one file per attachment whose macvlan sits on it: named by
//                    its attachment key (lib/util/attachment-key.ts: any container
//                    ID length fits NAME_MAX), holding its record name
//                    (trunk.ts userRecordName); releases before named the empty
//                    file by the record name itself, and those still count
// Every read-decide-change runs under an exclusive flock on <dataDir>/trunk.lock,
// so a DEL never deletes a sub-interface that a concurrent ADD just took. When
// no sub-interface is left, the trunk directory and the lock go too.
// dataDir defaults to /run (tmpfs): the records die with the links at reboot.

import * as fs from 'fs';
import * as path from 'path';
import { withFileLock } from '../../lib/sys/lock';
import { parseUserRecordName, type CreatedMarker } from './trunk';
import { attachmentKey } from '../../lib/util/attachment-key';
import { ensurePrivateDir, readBoundedFile, removeIfExists, writeFileAtomic } from '../../lib/util/fs';

/** A user file's name for a record name (trunk.ts userRecordName). */
function userFileName(record: string): string {
  const k = parseUserRecordName(record);
  if (!k) throw new Error(`not a trunk user record: "${record}"`);
  return attachmentKey(k);
}

export class TrunkState {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'trunk');
  }

  /** Run fn holding the trunk lock (blocking flock: every holder is one short plugin run). */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(path.join(path.dirname(this.root), 'trunk.lock'), async (lock) => {
      try {
        return await fn();
      } finally {
        if (this.subInterfaces().length === 0) {
          fs.rmSync(this.root, { recursive: true, force: true });
          lock.removeOnRelease({ dir: true });
        }
      }
    });
  }

  private dir(subif: string): string {
    return path.join(this.root, subif);
  }

  /** Sub-interfaces we hold records for. */
  subInterfaces(): string[] {
    try {
      return fs.readdirSync(this.root).sort();
    } catch {
      return [];
    }
  }

  readMarker(subif: string): CreatedMarker | undefined {
    try {
      const m = JSON.parse(fs.readFileSync(path.join(this.dir(subif), 'created'), 'utf8')) as CreatedMarker;
      return typeof m?.ifindex === 'number' ? m : undefined;
    } catch {
      return undefined;
    }
  }

  writeMarker(subif: string, m: CreatedMarker): void {
    ensurePrivateDir(this.dir(subif));
    writeFileAtomic(path.join(this.dir(subif), 'created'), JSON.stringify(m));
  }

  /** The record names of the attachments using a sub-interface. */
  users(subif: string): string[] {
    const dir = path.join(this.dir(subif), 'users');
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return [];
    }
    const records = new Set<string>();
    for (const n of names) {
      if (n.startsWith('.')) continue; // a temporary file
      if (parseUserRecordName(n)) {
        records.add(n); // a legacy file, named by the record
        continue;
      }
      try {
        const record = readBoundedFile(path.join(dir, n), { what: 'trunk user record' }).trim();
        if (parseUserRecordName(record) && userFileName(record) === n) records.add(record);
      } catch {
        // gone meanwhile, or not ours
      }
    }
    return [...records].sort();
  }

  addUser(subif: string, record: string): void {
    const dir = path.join(this.dir(subif), 'users');
    ensurePrivateDir(dir);
    writeFileAtomic(path.join(dir, userFileName(record)), record);
  }

  /** True when the record existed. */
  removeUser(subif: string, record: string): boolean {
    const dir = path.join(this.dir(subif), 'users');
    const removed = removeIfExists(path.join(dir, userFileName(record)));
    return removeIfExists(path.join(dir, record)) || removed;
  }

  /** Drop every record of a sub-interface (it is gone, or we just deleted it). */
  forget(subif: string): void {
    fs.rmSync(this.dir(subif), { recursive: true, force: true });
  }
}
