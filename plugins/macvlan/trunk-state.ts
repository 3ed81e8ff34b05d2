// Trunk-mode records on disk, under <dataDir>/trunk/<sub-interface>/:
//   created          JSON CreatedMarker: we made this sub-interface (ifindex, master, vlan)
//   users/<record>   one empty file per attachment whose macvlan sits on it
// Every read-decide-change runs under an exclusive flock on <dataDir>/trunk.lock,
// so a DEL never deletes a sub-interface that a concurrent ADD just took. When
// no sub-interface is left, the trunk directory and the lock go too.
// dataDir defaults to /run (tmpfs): the records die with the links at reboot.

import * as fs from 'fs';
import * as path from 'path';
import { withFileLock } from '../../lib/sys/lock';
import type { CreatedMarker } from './trunk';
import { ensurePrivateDir } from '../../lib/util/fs';

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
    const file = path.join(this.dir(subif), 'created');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(m));
    fs.renameSync(`${file}.tmp`, file);
  }

  users(subif: string): string[] {
    try {
      return fs.readdirSync(path.join(this.dir(subif), 'users')).sort();
    } catch {
      return [];
    }
  }

  addUser(subif: string, record: string): void {
    const dir = path.join(this.dir(subif), 'users');
    ensurePrivateDir(dir);
    fs.writeFileSync(path.join(dir, record), '');
  }

  /** True when the record existed. */
  removeUser(subif: string, record: string): boolean {
    try {
      fs.unlinkSync(path.join(this.dir(subif), 'users', record));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Drop every record of a sub-interface (it is gone, or we just deleted it). */
  forget(subif: string): void {
    fs.rmSync(this.dir(subif), { recursive: true, force: true });
  }
}
