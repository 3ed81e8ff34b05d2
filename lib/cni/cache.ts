// The runtime's result cache (what libcni keeps in /var/lib/cni/results):
// the final ADD result of each attachment, keyed by network, container and
// ifname, so DEL and CHECK get it as prevResult and GC knows what exists.
// Same file name and JSON shape as libcni ("cniCacheV1"), so cnictl and
// cnitool/containerd caches can be read by each other.

import * as fs from 'fs';
import * as path from 'path';
import type { Attachment, Result } from './types';
import { convertResult, parseResult } from './version';
import { ensurePrivateDir, writeFileAtomic } from '../util/fs';

export const DEFAULT_CACHE_DIR = '/var/lib/cni';

export interface CachedAttachment extends Attachment {
  network: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  /** The list's bytes, as the runtime loaded them. */
  config?: Buffer;
  /** The final ADD result (1.x shape), absent if unreadable. */
  result?: Result;
}

interface CacheFileV1 {
  kind: 'cniCacheV1';
  containerId: string;
  config?: string; // base64, like Go []byte
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

export class ResultCache {
  readonly dir: string;

  /** `cacheDir` is libcni's CacheDir; results live in `<cacheDir>/results`. */
  constructor(cacheDir: string = DEFAULT_CACHE_DIR) {
    this.dir = path.join(cacheDir, 'results');
  }

  fileOf(network: string, containerId: string, ifname: string): string {
    return path.join(this.dir, `${network}-${containerId}-${ifname}`);
  }

  /** Store the final ADD result, written atomically (tmp + rename). */
  save(entry: CachedAttachment & { result: Result; cniVersion: string }): void {
    const file: CacheFileV1 = {
      kind: 'cniCacheV1',
      containerId: entry.containerID,
      config: entry.config?.toString('base64'),
      ifName: entry.ifname,
      networkName: entry.network,
      netns: entry.netns || undefined,
      cniArgs: entry.cniArgs?.length ? entry.cniArgs : undefined,
      capabilityArgs: entry.capabilityArgs && Object.keys(entry.capabilityArgs).length ? entry.capabilityArgs : undefined,
      result: convertResult(entry.result, entry.cniVersion),
    };
    ensurePrivateDir(this.dir);
    const target = this.fileOf(entry.network, entry.containerID, entry.ifname);
    writeFileAtomic(target, JSON.stringify(file));
  }

  /** The cached attachment, or undefined when there is none (a corrupt file counts as none). */
  load(network: string, containerId: string, ifname: string): CachedAttachment | undefined {
    return this.read(this.fileOf(network, containerId, ifname), network);
  }

  remove(network: string, containerId: string, ifname: string): void {
    fs.rmSync(this.fileOf(network, containerId, ifname), { force: true });
  }

  /** Every cached attachment of one network (libcni GetCachedAttachments + filter). */
  list(network: string): CachedAttachment[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: CachedAttachment[] = [];
    for (const name of names.sort()) {
      // The name prefix is a quick filter; networkName in the file decides (names may contain "-").
      if (!name.startsWith(`${network}-`) || name.includes('.tmp')) continue;
      const entry = this.read(path.join(this.dir, name), network);
      if (entry) out.push(entry);
    }
    return out;
  }

  private read(file: string, network: string): CachedAttachment | undefined {
    let raw: CacheFileV1;
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8')) as CacheFileV1;
    } catch {
      return undefined;
    }
    if (raw?.kind !== 'cniCacheV1' || raw.networkName !== network || typeof raw.containerId !== 'string' || typeof raw.ifName !== 'string') return undefined;
    let result: Result | undefined;
    try {
      result = raw.result ? parseResult(raw.result, '1.1.0') : undefined;
    } catch {
      result = undefined;
    }
    return {
      network,
      containerID: raw.containerId,
      ifname: raw.ifName,
      netns: raw.netns,
      cniArgs: raw.cniArgs,
      capabilityArgs: raw.capabilityArgs,
      config: raw.config ? Buffer.from(raw.config, 'base64') : undefined,
      result,
    };
  }
}
