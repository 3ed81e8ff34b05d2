// Per-attachment records, so DEL and GC find the host veth, the masquerade
// elements and the subnet without the netns, the agent or the store. One
// JSON file per attachment under runDir/<network>/attachments-<netns id>/
// (a tmpfs: like nftables state, it does not outlive a reboot).

import * as fs from 'fs';
import * as path from 'path';
import type { MasqEntry } from '../../lib/firewall/masquerade';
import { currentNetnsId } from './readiness';

export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifname: string;
  hostVeth?: string;
  subnet: string;
  /** Container addresses (CIDR). */
  addresses: string[];
  masq: MasqEntry[];
}

function dirOf(runDir: string, network: string): string {
  return path.join(runDir, network, `attachments-${currentNetnsId()}`);
}

function fileOf(runDir: string, network: string, containerId: string, ifname: string): string {
  return path.join(dirOf(runDir, network), `${containerId}.${ifname}.json`);
}

export function writeRecord(runDir: string, rec: AttachmentRecord): void {
  const file = fileOf(runDir, rec.network, rec.containerId, rec.ifname);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function readRecord(runDir: string, network: string, containerId: string, ifname: string): AttachmentRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(fileOf(runDir, network, containerId, ifname), 'utf8')) as AttachmentRecord;
  } catch {
    return undefined;
  }
}

export function removeRecord(runDir: string, network: string, containerId: string, ifname: string): void {
  fs.rmSync(fileOf(runDir, network, containerId, ifname), { force: true });
}

export function listRecords(runDir: string, network: string): AttachmentRecord[] {
  const dir = dirOf(runDir, network);
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  const out: AttachmentRecord[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try { out.push(JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as AttachmentRecord); } catch { /* torn: skipped */ }
  }
  return out;
}
