// The interface's original attributes, kept from ADD until DEL restores
// them: <dataDir>/<containerID>_<ifname>.json, the reference's file name and
// fields ({mac, promisc, mtu, allmulti, txQLen}), so either plugin can
// restore what the other saved. We add "network" (the reference ignores
// unknown fields) and the attachment, so GC removes only this network's files.
// A container ID too long for that name (the reference fails there with
// ENAMETOOLONG; runtimes may send any length) gets a name hashed from the
// attachment instead, its first 12 characters in front.

import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { ensurePrivateDir, writeFileAtomic } from '../../lib/util/fs';
import { isObject } from '../../lib/util/is-object';
import { sha256Hex } from '../../lib/util/hash';

export interface OriginalAttributes {
  mac?: string;
  promisc?: boolean;
  mtu?: number;
  allmulti?: boolean;
  txQLen?: number;
}

export interface BackupRecord extends OriginalAttributes {
  network?: string;
  containerID?: string;
  ifname?: string;
}

/** A record is a few dozen bytes; anything bigger is not ours. */
const MAX_RECORD_BYTES = 4096;

/** NAME_MAX, less what the atomic writer's temporary name adds (".", ".<pid>.tmp"). */
const NAME_ROOM = 255 - 16;

const referenceName = (containerID: string, ifname: string): string => `${containerID}_${ifname}.json`;
const hashedName = (containerID: string, ifname: string): string => `${containerID.slice(0, 12)}-${sha256Hex(`${containerID}\0${ifname}`).slice(0, 32)}.json`;

/** The names a record of this attachment may have: the reference's (where a file can have it), the hashed one. */
function backupNames(containerID: string, ifname: string): string[] {
  const reference = referenceName(containerID, ifname);
  return Buffer.byteLength(reference) <= 255 ? [reference, hashedName(containerID, ifname)] : [hashedName(containerID, ifname)];
}

/** Where ADD writes the record: the reference's name when it and its temporary file fit. */
export function backupFile(dataDir: string, containerID: string, ifname: string): string {
  const reference = referenceName(containerID, ifname);
  return path.join(dataDir, Buffer.byteLength(reference) <= NAME_ROOM ? reference : hashedName(containerID, ifname));
}

export function writeBackup(dataDir: string, containerID: string, ifname: string, rec: BackupRecord): void {
  ensurePrivateDir(dataDir);
  const file = backupFile(dataDir, containerID, ifname);
  writeFileAtomic(file, JSON.stringify(rec, null, 1));
}

/** The record file there is for this attachment, if any (either name). */
function existingBackup(dataDir: string, containerID: string, ifname: string): string {
  const files = backupNames(containerID, ifname).map((n) => path.join(dataDir, n));
  return files.find((f) => fs.existsSync(f)) ?? files[0];
}

/** The record, or undefined when there is none (ADD changed no attribute, or DEL already ran). */
export function readBackup(dataDir: string, containerID: string, ifname: string): BackupRecord | undefined {
  const file = existingBackup(dataDir, containerID, ifname);
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > MAX_RECORD_BYTES) throw new CniError(ErrorCode.IoFailure, `tuning: "${file}" is not a backup record`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const rec = JSON.parse(text) as unknown;
    if (!isObject(rec)) throw new Error('not an object');
    return rec as BackupRecord;
  } catch (err) {
    // A torn record restores nothing; DEL still removes it.
    return {};
  }
}

export function removeBackup(dataDir: string, containerID: string, ifname: string): void {
  for (const n of backupNames(containerID, ifname)) fs.rmSync(path.join(dataDir, n), { force: true });
}

/** The (containerID, ifname) of every record of `network` (GC); records without a network (the reference's) are not ours to judge. */
export function listBackups(dataDir: string, network: string): Array<{ containerID: string; ifname: string }> {
  let names: string[];
  try {
    names = fs.readdirSync(dataDir);
  } catch {
    return [];
  }
  const out: Array<{ containerID: string; ifname: string }> = [];
  for (const n of names.filter((f) => f.endsWith('.json'))) {
    let rec: BackupRecord | undefined;
    try {
      const st = fs.statSync(path.join(dataDir, n));
      if (st.isFile() && st.size <= MAX_RECORD_BYTES) rec = JSON.parse(fs.readFileSync(path.join(dataDir, n), 'utf8')) as BackupRecord;
    } catch { /* unreadable or torn: not ours to judge */ }
    if (rec?.network !== network || typeof rec.containerID !== 'string' || typeof rec.ifname !== 'string') continue;
    // Only a record whose name matches its content: GC never removes a file it did not read.
    if (backupNames(rec.containerID, rec.ifname).includes(n)) out.push({ containerID: rec.containerID, ifname: rec.ifname });
  }
  return out;
}
