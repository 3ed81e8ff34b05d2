// The one place that runs the nft CLI. Every change is one `nft -f -`
// transaction (atomic: all of it or none). Listings use JSON output.

import { spawnSync } from 'child_process';
import type { Netns } from '../netns';

export class NftError extends Error {
  constructor(readonly stderr: string, readonly script: string) {
    super(`nft failed: ${stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
    this.name = 'NftError';
  }
}

function runNft(args: string[], input: string | undefined, netns?: Netns): { status: number | null; stdout: string; stderr: string } {
  const exec = () => spawnSync('nft', args, { input, encoding: 'utf8' });
  const r = netns ? netns.run(exec) : exec();
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Apply a ruleset script as one atomic transaction. */
export function applyNft(script: string, netns?: Netns): void {
  const r = runNft(['-f', '-'], script, netns);
  if (r.status !== 0) throw new NftError(r.stderr, script);
}

/** `nft -j <args>` parsed; returns undefined when the object does not exist. */
export function nftJson(args: string[], netns?: Netns): { nftables: Array<Record<string, any>> } | undefined {
  const r = runNft(['-j', ...args], undefined, netns);
  if (r.status !== 0) {
    if (/No such file or directory|does not exist/.test(r.stderr)) return undefined;
    throw new NftError(r.stderr, args.join(' '));
  }
  return JSON.parse(r.stdout || '{"nftables":[]}');
}
