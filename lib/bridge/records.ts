// Per-attachment records: what DEL and GC need when the container's
// namespace is gone or CNI_NETNS is empty (the reference leaks its
// masquerade rules there, containernetworking/plugins#810). One small JSON
// file per attachment in one directory per network, on a tmpfs by default:
// like nftables state, they do not survive a reboot. Each plugin picks the
// directory and adds its own fields.
//
// File name: <attachment key>.json (lib/util/attachment-key.ts), a hash of
// (network, container ID, ifname); the triple inside is checked on every
// read. Releases before it wrote <containerID>.<ifname>.json, which two
// attachments could share ("a"+"e.x", "a.e"+"x"): such a file is still read
// (a DEL after an upgrade finds what the older ADD wrote) and removed, but
// only when the triple inside is the one asked for.

import * as fs from 'fs';
import * as path from 'path';
import type { MasqEntry } from '../firewall/masquerade';
import { attachmentKey, sameAttachment, type AttachmentId } from '../util/attachment-key';
import { ensurePrivateDir, readBoundedFile, writeFileAtomic } from '../util/fs';

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

/** A record is a few hundred bytes; anything much larger is not one of ours. */
const MAX_RECORD_BYTES = 1024 * 1024;

function isRecord(v: unknown): v is AttachmentRecord {
  const r = v as AttachmentRecord;
  return typeof v === 'object' && v !== null && typeof r.network === 'string' && typeof r.containerId === 'string' && typeof r.ifname === 'string'
    && Array.isArray(r.addresses) && Array.isArray(r.masq);
}

export class RecordDir<T extends AttachmentRecord = AttachmentRecord> {
  constructor(readonly dir: string, readonly network: string) {}

  private id(containerId: string, ifname: string): AttachmentId {
    return { network: this.network, containerId, ifname };
  }

  fileOf(containerId: string, ifname: string): string {
    return path.join(this.dir, `${attachmentKey(this.id(containerId, ifname))}.json`);
  }

  /** Where a release before the hashed names kept this record. */
  legacyFileOf(containerId: string, ifname: string): string {
    return path.join(this.dir, `${containerId}.${ifname}.json`);
  }

  private load(file: string): T | undefined {
    try {
      const rec: unknown = JSON.parse(readBoundedFile(file, { limit: MAX_RECORD_BYTES, what: 'attachment record' }));
      return isRecord(rec) ? (rec as T) : undefined;
    } catch {
      return undefined; // missing, torn, too long a name (ENAMETOOLONG), not ours
    }
  }

  /** The record at `file` when it is this attachment's. */
  private loadOwn(file: string, containerId: string, ifname: string): T | undefined {
    const rec = this.load(file);
    return rec && sameAttachment(this.id(containerId, ifname), rec) ? rec : undefined;
  }

  /** Atomic: write a temporary file, then rename it over the record. */
  write(rec: T): void {
    const file = this.fileOf(rec.containerId, rec.ifname);
    ensurePrivateDir(this.dir);
    writeFileAtomic(file, JSON.stringify({ ...rec, network: this.network }));
  }

  read(containerId: string, ifname: string): T | undefined {
    return this.loadOwn(this.fileOf(containerId, ifname), containerId, ifname) ?? this.loadOwn(this.legacyFileOf(containerId, ifname), containerId, ifname);
  }

  remove(containerId: string, ifname: string): void {
    fs.rmSync(this.fileOf(containerId, ifname), { force: true });
    const legacy = this.legacyFileOf(containerId, ifname);
    if (this.loadOwn(legacy, containerId, ifname)) fs.rmSync(legacy, { force: true });
  }

  /** Every record of the network (GC), each attachment once. A torn or foreign file is skipped: GC of masquerade goes by element comments anyway. */
  list(): T[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out = new Map<string, T>();
    for (const n of names.sort()) {
      if (!n.endsWith('.json')) continue;
      const rec = this.load(path.join(this.dir, n));
      if (!rec || rec.network !== this.network) continue;
      const key = attachmentKey(rec);
      // The current name wins over a legacy copy of the same attachment.
      if (!out.has(key) || n === `${key}.json`) out.set(key, rec);
    }
    return [...out.values()];
  }
}
