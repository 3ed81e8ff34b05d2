// Per-attachment records: <dataDir>/<network>/<attachment key>.json
// (lib/util/attachment-key.ts: any container ID length fits NAME_MAX),
// written before ADD touches nftables, removed after DEL took everything out.
// They are how DEL, CHECK and GC find exactly one container's elements
// without listing the (possibly huge) maps, and without runtimeConfig. The
// attachment is inside the file and checked on read. Releases before named
// them <containerID>:<ifname>.json (":" is in neither): those are still read
// and removed, so a DEL after an upgrade finds what the older ADD wrote.

import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { PortmapAttachment } from '../../lib/firewall/portmap';
import { attachmentKey, sameAttachment } from '../../lib/util/attachment-key';
import { ensurePrivateDir, removeIfExists, writeFileAtomic } from '../../lib/util/fs';
import { NetworkState } from '../../lib/util/network-state';

export interface AttachmentRecord extends PortmapAttachment {
  version: 1;
}

type Attachment = Pick<PortmapAttachment, 'containerID' | 'ifname'>;

const LEGACY_RECORD_NAME = /^([^:]+):(.+)\.json$/;

/** Records end in .json; temporary files (dotfiles ending .tmp) and the lock (.lock) do not count. */
function isRecordName(name: string): boolean {
  return !name.startsWith('.') && name.endsWith('.json');
}

/** The network's record directory as its lifecycle state: the records are its members, the lock lives in it. */
export function networkState(dataDir: string, network: string): NetworkState {
  return new NetworkState(path.join(dataDir, network), isRecordName);
}

export function recordPath(dataDir: string, network: string, containerID: string, ifname: string): string {
  return path.join(dataDir, network, `${attachmentKey({ network, containerId: containerID, ifname })}.json`);
}

function legacyRecordPath(dataDir: string, network: string, containerID: string, ifname: string): string {
  return path.join(dataDir, network, `${containerID}:${ifname}.json`);
}

export function writeRecord(dataDir: string, att: PortmapAttachment): void {
  const file = recordPath(dataDir, att.network, att.containerID, att.ifname);
  ensurePrivateDir(path.dirname(file));
  const rec: AttachmentRecord = { version: 1, network: att.network, containerID: att.containerID, ifname: att.ifname, entries: att.entries };
  // fsync: the record must outlive a crash right after the nft transaction.
  writeFileAtomic(file, JSON.stringify(rec, null, 1) + '\n', { sync: true });
}

function loadRecord(file: string): AttachmentRecord | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    // ENAMETOOLONG: a legacy name for a long container ID, which no release could have written.
    if (['ENOENT', 'ENAMETOOLONG'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw new CniError(ErrorCode.IoFailure, `portmap: cannot read record "${file}": ${(err as Error).message}`);
  }
  try {
    const rec = JSON.parse(text) as AttachmentRecord;
    if (rec.version !== 1 || !Array.isArray(rec.entries)) throw new Error('unknown record format');
    return rec;
  } catch (err) {
    throw new CniError(ErrorCode.IoFailure, `portmap: record "${file}" is corrupt: ${(err as Error).message}`);
  }
}

/** The record, or undefined when this attachment published nothing. */
export function readRecord(dataDir: string, network: string, containerID: string, ifname: string): AttachmentRecord | undefined {
  const id = { network, containerId: containerID, ifname };
  for (const file of [recordPath(dataDir, network, containerID, ifname), legacyRecordPath(dataDir, network, containerID, ifname)]) {
    const rec = loadRecord(file);
    if (rec && sameAttachment(id, { network: rec.network, containerId: rec.containerID, ifname: rec.ifname })) return rec;
  }
  return undefined;
}

export function removeRecord(dataDir: string, network: string, containerID: string, ifname: string): void {
  fs.rmSync(recordPath(dataDir, network, containerID, ifname), { force: true });
  removeIfExists(legacyRecordPath(dataDir, network, containerID, ifname));
}

/** Every attachment of a network that has a record (for GC), each once. */
export function listRecordedAttachments(dataDir: string, network: string): Attachment[] {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(dataDir, network));
  } catch {
    return [];
  }
  const out = new Map<string, Attachment>();
  for (const n of names.filter(isRecordName)) {
    const legacy = LEGACY_RECORD_NAME.exec(n);
    let att: Attachment | undefined = legacy ? { containerID: legacy[1], ifname: legacy[2] } : undefined;
    if (!att) {
      try {
        const rec = loadRecord(path.join(dataDir, network, n));
        if (rec?.network === network) att = { containerID: rec.containerID, ifname: rec.ifname };
      } catch {
        // a torn record: nothing says whose it is
      }
    }
    if (att) out.set(`${att.containerID}\0${att.ifname}`, att);
  }
  return [...out.values()];
}
