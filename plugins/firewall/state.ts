// The host's firewall state: one record per attachment (what DEL and GC
// remove, without the namespace or prevResult) and one lock. The shared
// structure (our nft table, the iptables jump) comes with the first record
// and goes with the last, under the lock. Records are kept per network
// namespace of the plugin (its "host"): runtimes in namespaces of their own
// share /run, but each has its own nftables and iptables.

import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { hostNetnsInode } from '../../lib/netns';
import { withFileLock } from '../../lib/sys/lock';
import { ensurePrivateDir } from '../../lib/util/fs';
import type { IngressPolicy } from './config';

export interface FirewallRecord {
  network: string;
  containerID: string;
  ifname: string;
  /** Addresses let through (set elements). */
  addresses: string[];
  policy: IngressPolicy;
  /** With same-bridge/isolated: the bridge in the isolation group, and the container's port on it. */
  bridge?: string;
  hostVeth?: string;
}

const netTag = (network: string): string => createHash('sha256').update(network).digest('hex').slice(0, 12);

export class FirewallState {
  private readonly records: string;

  constructor(readonly dir: string, hostNetns = hostNetnsInode()) {
    this.records = path.join(dir, `netns-${hostNetns}`);
  }

  private file(network: string, containerID: string, ifname: string): string {
    return path.join(this.records, `${netTag(network)}.${containerID}.${ifname}.json`);
  }

  /** Everything that adds to or removes the shared structure runs under this lock. */
  locked<T>(fn: () => Promise<T>): Promise<T> {
    ensurePrivateDir(this.dir);
    return withFileLock(path.join(this.dir, 'lock'), fn);
  }

  write(rec: FirewallRecord): void {
    ensurePrivateDir(this.records);
    const file = this.file(rec.network, rec.containerID, rec.ifname);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(rec), { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
  }

  read(network: string, containerID: string, ifname: string): FirewallRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.file(network, containerID, ifname), 'utf8')) as FirewallRecord;
    } catch {
      return undefined;
    }
  }

  remove(network: string, containerID: string, ifname: string): void {
    fs.rmSync(this.file(network, containerID, ifname), { force: true });
  }

  /** This network's records (GC). */
  list(network: string): FirewallRecord[] {
    const prefix = `${netTag(network)}.`;
    const out: FirewallRecord[] = [];
    for (const n of safeReaddir(this.records)) {
      if (!n.startsWith(prefix) || !n.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(fs.readFileSync(path.join(this.records, n), 'utf8')) as FirewallRecord);
      } catch { /* torn: its elements are found by their comments */ }
    }
    return out;
  }

  /** After the last attachment: the (empty) records directory goes too. Call under the lock. */
  removeEmptyRecordDir(): void {
    try { fs.rmdirSync(this.records); } catch { /* not empty, or gone */ }
  }

  /** Whether any attachment of any network is left: one directory entry is enough to know. */
  hasAny(): boolean {
    let d: fs.Dir;
    try {
      d = fs.opendirSync(this.records);
    } catch {
      return false;
    }
    try {
      for (let e = d.readSync(); e; e = d.readSync()) if (e.name.endsWith('.json')) return true;
      return false;
    } finally {
      d.closeSync();
    }
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
