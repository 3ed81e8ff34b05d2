// The host's firewall state: one record per attachment (what DEL and GC
// remove, without the namespace or prevResult), kept per network namespace
// of the plugin (its "host": runtimes in namespaces of their own share /run,
// but each has its own nftables and iptables). The shared structure (our nft
// table, the iptables jump) comes with the first record and goes with the
// last: lib/util/network-state.ts, one state for all networks of the host.

import * as fs from 'fs';
import * as path from 'path';
import { sha256Hex } from '../../lib/util/hash';
import { hostNetnsInode } from '../../lib/netns';
import { withFileLock } from '../../lib/sys/lock';
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

const RECORD = /\.json$/;
const netTag = (network: string): string => sha256Hex(network).slice(0, 12);

export class FirewallState {
  readonly dir: string;
  private readonly state: NetworkState;

  constructor(stateDir: string, hostNetns = hostNetnsInode()) {
    this.dir = path.join(stateDir, `netns-${hostNetns}`);
    this.state = new NetworkState(this.dir, (n) => RECORD.test(n));
  }

  private file(network: string, containerID: string, ifname: string): string {
    return path.join(this.dir, `${netTag(network)}.${containerID}.${ifname}.json`);
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
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: FirewallRecord[] = [];
    for (const n of names) {
      if (!n.startsWith(prefix) || !RECORD.test(n)) continue;
      try {
        out.push(JSON.parse(fs.readFileSync(path.join(this.dir, n), 'utf8')) as FirewallRecord);
      } catch { /* torn: its elements are found by their comments */ }
    }
    return out;
  }
}
