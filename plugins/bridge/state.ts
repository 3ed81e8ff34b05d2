// Per-attachment records: what DEL and GC need when the container's
// namespace is gone or CNI_NETNS is empty (the reference leaks its
// masquerade rules there, containernetworking/plugins#810). One small JSON
// file per (network, containerID, ifname) under stateDir (a tmpfs by
// default: like nftables state, it does not survive a reboot).

import * as fs from 'fs';
import * as path from 'path';
import type { MasqEntry } from '../../lib/firewall/masquerade';

export interface AttachmentRecord {
  network: string;
  containerId: string;
  ifname: string;
  bridge: string;
  hostVeth?: string;
  /** Container addresses (CIDR). */
  addresses: string[];
  /** Masquerade elements this attachment owns. */
  masq: MasqEntry[];
}

function networkDir(stateDir: string, network: string): string {
  return path.join(stateDir, network);
}

export function recordPath(stateDir: string, network: string, containerId: string, ifname: string): string {
  return path.join(networkDir(stateDir, network), `${containerId}.${ifname}.json`);
}

export function writeRecord(stateDir: string, rec: AttachmentRecord): void {
  const file = recordPath(stateDir, rec.network, rec.containerId, rec.ifname);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function readRecord(stateDir: string, network: string, containerId: string, ifname: string): AttachmentRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordPath(stateDir, network, containerId, ifname), 'utf8')) as AttachmentRecord;
  } catch {
    return undefined;
  }
}

export function removeRecord(stateDir: string, network: string, containerId: string, ifname: string): void {
  fs.rmSync(recordPath(stateDir, network, containerId, ifname), { force: true });
}

/** Every record of a network (GC only). */
export function listRecords(stateDir: string, network: string): AttachmentRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(networkDir(stateDir, network));
  } catch {
    return [];
  }
  const out: AttachmentRecord[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(networkDir(stateDir, network), n), 'utf8')) as AttachmentRecord);
    } catch {
      /* a torn file is skipped; GC of masquerade goes by element comments anyway */
    }
  }
  return out;
}
