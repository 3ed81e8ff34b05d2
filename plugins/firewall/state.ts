// The host's firewall state: one record per attachment (what DEL and GC
// remove, without the namespace or prevResult), kept per network namespace
// of the plugin (its "host": runtimes in namespaces of their own share /run,
// but each has its own nftables and iptables). The shared structure (our nft
// table, the iptables jump) comes with the first record and goes with the
// last: lib/util/network-state.ts, one state for all networks of the host.
// A record is named by its attachment key (lib/util/attachment-key.ts: any
// container ID length fits NAME_MAX) and holds its attachment, checked on
// read. Releases before named it <network tag>.<containerID>.<ifname>.json:
// those are still read and removed, so a DEL after an upgrade finds them.

import * as fs from 'fs';
import * as path from 'path';
import { sha256Hex } from '../../lib/util/hash';
import { hostNetnsInode } from '../../lib/netns';
import { withFileLock } from '../../lib/sys/lock';
import { attachmentKey, sameAttachment } from '../../lib/util/attachment-key';
import { removeIfExists, writeFileAtomic } from '../../lib/util/fs';
import { NetworkState } from '../../lib/util/network-state';
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

/** Records end in .json; temporary files (dotfiles) and locks do not count. */
const isRecordName = (n: string): boolean => !n.startsWith('.') && n.endsWith('.json');
const legacyNetTag = (network: string): string => sha256Hex(network).slice(0, 12);

export class FirewallState {
  readonly dir: string;
  private readonly state: NetworkState;

  constructor(stateDir: string, hostNetns = hostNetnsInode()) {
    this.dir = path.join(stateDir, `netns-${hostNetns}`);
    this.state = new NetworkState(this.dir, isRecordName);
  }

  private file(network: string, containerID: string, ifname: string): string {
    return path.join(this.dir, `${attachmentKey({ network, containerId: containerID, ifname })}.json`);
  }

  private legacyFile(network: string, containerID: string, ifname: string): string {
    return path.join(this.dir, `${legacyNetTag(network)}.${containerID}.${ifname}.json`);
  }

  /** An ADD: no teardown meanwhile (shared lock: ADDs run at once). */
  whileAttaching<T>(fn: () => Promise<T>): Promise<T> {
    return this.state.whileAttaching(fn);
  }

  /** Inside whileAttaching: one repair of the iptables rules at a time. */
  iptablesLocked<T>(fn: () => T): Promise<T> {
    return withFileLock(path.join(this.dir, '.iptables.lock'), fn);
  }

  /** After a DEL or GC: with no record left, `teardown` the shared structure; the directory and locks go with it. */
  teardownIfUnused(teardown: () => Promise<void>): Promise<boolean> {
    return this.state.teardownIfUnused(teardown);
  }

  write(rec: FirewallRecord): void {
    writeFileAtomic(this.file(rec.network, rec.containerID, rec.ifname), JSON.stringify(rec));
  }

  read(network: string, containerID: string, ifname: string): FirewallRecord | undefined {
    const id = { network, containerId: containerID, ifname };
    for (const file of [this.file(network, containerID, ifname), this.legacyFile(network, containerID, ifname)]) {
      const rec = loadRecord(file);
      if (rec && sameAttachment(id, { network: rec.network, containerId: rec.containerID, ifname: rec.ifname })) return rec;
    }
    return undefined;
  }

  remove(network: string, containerID: string, ifname: string): void {
    removeIfExists(this.file(network, containerID, ifname));
    removeIfExists(this.legacyFile(network, containerID, ifname));
  }

  /** This network's records (GC), each attachment once. */
  list(network: string): FirewallRecord[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out = new Map<string, FirewallRecord>();
    for (const n of names.filter(isRecordName)) {
      const rec = loadRecord(path.join(this.dir, n)); // torn: its elements are found by their comments
      if (rec?.network === network) out.set(`${rec.containerID}\0${rec.ifname}`, rec);
    }
    return [...out.values()];
  }
}

function loadRecord(file: string): FirewallRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as FirewallRecord;
  } catch {
    return undefined; // none (ENAMETOOLONG too: a legacy name no release could have written), or torn
  }
}
