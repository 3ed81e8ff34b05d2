// Per-attachment records: what DEL and GC need when the container's
// namespace is gone or CNI_NETNS is empty (the reference leaks its
// masquerade rules there, containernetworking/plugins#810). One small JSON
// file per (containerID, ifname) in one directory per network, on a tmpfs by
// default: like nftables state, they do not survive a reboot. Each plugin
// picks the directory and adds its own fields.

import * as fs from 'fs';
import * as path from 'path';
import type { MasqEntry } from '../firewall/masquerade';
import { ensurePrivateDir } from '../util/fs';

export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifname: string;
  hostVeth?: string;
  /** Container addresses (CIDR). */
  addresses: string[];
  /** Masquerade elements this attachment owns. */
  masq: MasqEntry[];
}

export class RecordDir<T extends AttachmentRecord = AttachmentRecord> {
  constructor(readonly dir: string) {}

  fileOf(containerId: string, ifname: string): string {
    return path.join(this.dir, `${containerId}.${ifname}.json`);
  }

  /** Atomic: write a temporary file, then rename it over the record. */
  write(rec: T): void {
    const file = this.fileOf(rec.containerId, rec.ifname);
    ensurePrivateDir(this.dir);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  read(containerId: string, ifname: string): T | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.fileOf(containerId, ifname), 'utf8')) as T;
    } catch {
      return undefined;
    }
  }

  remove(containerId: string, ifname: string): void {
    fs.rmSync(this.fileOf(containerId, ifname), { force: true });
  }

  /** Every record of the network (GC). A torn file is skipped: GC of masquerade goes by element comments anyway. */
  list(): T[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: T[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(fs.readFileSync(path.join(this.dir, n), 'utf8')) as T);
      } catch {
        /* torn: skipped */
      }
    }
    return out;
  }
}
