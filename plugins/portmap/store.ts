// Per-attachment records: <dataDir>/<network>/<containerID>:<ifname>.json,
// written before ADD touches nftables, removed after DEL took everything out.
// They are how DEL, CHECK and GC find exactly one container's elements
// without listing the (possibly huge) maps, and without runtimeConfig.
// ":" appears in neither a container ID nor an interface name, so the file
// name is unambiguous.

import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { PortmapAttachment } from '../../lib/firewall/portmap';
import { ensurePrivateDir } from '../../lib/util/fs';
import { NetworkState } from '../../lib/util/network-state';

export interface AttachmentRecord extends PortmapAttachment {
  version: 1;
}

const RECORD_NAME = /^([^:]+):(.+)\.json$/;

/** The network's record directory as its lifecycle state: the records are its members, the lock lives in it. */
export function networkState(dataDir: string, network: string): NetworkState {
  return new NetworkState(path.join(dataDir, network), (n) => RECORD_NAME.test(n));
}

export function recordPath(dataDir: string, network: string, containerID: string, ifname: string): string {
  return path.join(dataDir, network, `${containerID}:${ifname}.json`);
}

export function writeRecord(dataDir: string, att: PortmapAttachment): void {
  const file = recordPath(dataDir, att.network, att.containerID, att.ifname);
  ensurePrivateDir(path.dirname(file));
  const rec: AttachmentRecord = { version: 1, network: att.network, containerID: att.containerID, ifname: att.ifname, entries: att.entries };
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(rec, null, 1) + '\n');
    fs.fsyncSync(fd); // the record must outlive a crash right after the nft transaction
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** The record, or undefined when this attachment published nothing. */
export function readRecord(dataDir: string, network: string, containerID: string, ifname: string): AttachmentRecord | undefined {
  const file = recordPath(dataDir, network, containerID, ifname);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
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

export function removeRecord(dataDir: string, network: string, containerID: string, ifname: string): void {
  fs.rmSync(recordPath(dataDir, network, containerID, ifname), { force: true });
}

/** Every attachment of a network that has a record (for GC). */
export function listRecordedAttachments(dataDir: string, network: string): Array<{ containerID: string; ifname: string }> {
  let names: string[];
  try {
    names = fs.readdirSync(path.join(dataDir, network));
  } catch {
    return [];
  }
  const out: Array<{ containerID: string; ifname: string }> = [];
  for (const n of names) {
    const m = RECORD_NAME.exec(n);
    if (m) out.push({ containerID: m[1], ifname: m[2] });
  }
  return out;
}
