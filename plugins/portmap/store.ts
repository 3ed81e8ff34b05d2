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
import type { PortmapAttachment, PortmapNetwork } from '../../lib/firewall/portmap';
import { withFileLock, type HeldLock } from '../../lib/sys/lock';
import { attachmentKey, sameAttachment } from '../../lib/util/attachment-key';
import { ensurePrivateDir, removeIfExists, writeFileAtomic } from '../../lib/util/fs';
import { sha256Hex } from '../../lib/util/hash';
import { NetworkState } from '../../lib/util/network-state';

export interface AttachmentRecord extends PortmapAttachment {
  /** 1: the claims carry the attachment's mark. 2: the container's, shared by its networks (./publications.ts). */
  version: 1 | 2;
  /** Version 2: the attachment's place among the container's publications. */
  order?: number;
  metrics?: Partial<Record<4 | 6, number>>;
  /** Version 2: how the network renders, to publish into it when it takes over a host port. */
  net?: PortmapNetwork;
}

type Attachment = Pick<PortmapAttachment, 'containerID' | 'ifname'>;

const LEGACY_RECORD_NAME = /^([^:]+):(.+)\.json$/;

/** Records end in .json; temporary files (dotfiles ending .tmp) and the lock (.lock) do not count. */
function isRecordName(name: string): boolean {
  return !name.startsWith('.') && name.endsWith('.json');
}

/** What version 2 adds to a record. */
export type PublicationFields = Required<Pick<AttachmentRecord, 'order' | 'metrics' | 'net'>>;

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

export function writeRecord(dataDir: string, att: PortmapAttachment, pub?: PublicationFields): void {
  const file = recordPath(dataDir, att.network, att.containerID, att.ifname);
  ensurePrivateDir(path.dirname(file));
  const base = { network: att.network, containerID: att.containerID, ifname: att.ifname, entries: att.entries };
  const rec: AttachmentRecord = pub ? { version: 2, ...base, ...pub } : { version: 1, ...base };
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
    if ((rec.version !== 1 && rec.version !== 2) || !Array.isArray(rec.entries)) throw new Error('unknown record format');
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

// ---- a container's publications across its networks ------------------------
// <dataDir>/.container-<12 characters of the ID>-<hash of the ID>/ (any ID
// length fits NAME_MAX; network names never start with ".") holds one file
// per attachment of the container that publishes ports, named by its
// attachment key and holding its network and ifname, and the container's
// lock: publishing, unpublishing and handing a host port over between its
// networks happen under it. The directory goes with the container's last
// publication.

const LOCK = '.lock';

export function containerDir(dataDir: string, containerID: string): string {
  return path.join(dataDir, `.container-${containerID.slice(0, 12)}-${sha256Hex(`container\0${containerID}`).slice(0, 32)}`);
}

function publicationFile(dir: string, network: string, containerID: string, ifname: string): string {
  return path.join(dir, attachmentKey({ network, containerId: containerID, ifname }));
}

export interface ContainerPublications {
  /** The version-2 records of the container's other publications (entries whose record is gone are skipped). */
  others(network: string, ifname: string): AttachmentRecord[];
  add(network: string, ifname: string): void;
  /** Forget one; with the last one, the directory and the lock go. */
  remove(network: string, ifname: string): void;
}

/** The publication files in the container's directory (not the lock, not a temporary file). */
function publicationNames(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
}

/** The (network, ifname) of each publication listed in the container's directory. */
function publications(dir: string): Array<{ network: string; ifname: string }> {
  const out: Array<{ network: string; ifname: string }> = [];
  for (const n of publicationNames(dir)) {
    try {
      const p = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as { network?: unknown; ifname?: unknown };
      if (typeof p.network === 'string' && typeof p.ifname === 'string') out.push({ network: p.network, ifname: p.ifname });
    } catch {
      // gone since the listing, or torn: its record (checked on read) is what counts
    }
  }
  return out;
}

/** The version-2 records of the container's publications other than (network, ifname); no lock (CHECK). */
export function otherPublications(dataDir: string, containerID: string, network: string, ifname: string): AttachmentRecord[] {
  return publications(containerDir(dataDir, containerID))
    .filter((p) => p.network !== network || p.ifname !== ifname)
    .map((p) => readRecord(dataDir, p.network, containerID, p.ifname))
    .filter((r): r is AttachmentRecord => r?.version === 2);
}

/** Run fn holding the container's lock. */
export function withContainer<T>(dataDir: string, containerID: string, fn: (c: ContainerPublications) => Promise<T>): Promise<T> {
  const dir = containerDir(dataDir, containerID);
  return withFileLock(path.join(dir, LOCK), (lock: HeldLock) => fn({
    others: (network, ifname) => otherPublications(dataDir, containerID, network, ifname),
    add: (network, ifname) => writeFileAtomic(publicationFile(dir, network, containerID, ifname), JSON.stringify({ network, ifname }) + '\n'),
    remove: (network, ifname) => {
      fs.rmSync(publicationFile(dir, network, containerID, ifname), { force: true });
      if (publicationNames(dir).length === 0) lock.removeOnRelease({ dir: true });
    },
  }), { dirMode: 0o700 });
}
