// Pure helpers for rendering nftables text (no I/O): quoting, and chains
// whose rules can be verified later (lib/firewall/nft.ts verifyChains).
//
// Verification without markers: every rule we render carries a comment
// "nc:<tag>", the tag a hash of the chain, the rule's position and its text.
// A chain is intact when its rules' comments are exactly the expected tags;
// a rule someone removed, changed or added shows as a mismatch.

import { sha256Hex } from '../util/hash';

export type NftFamily = 'inet' | 'bridge';

/** A string as an nft quoted string. Names and ids are validated upstream; quotes and backslashes are kept out regardless. */
export function nftQuote(s: string): string {
  return `"${s.replace(/["\\]/g, '_')}"`;
}

const TAG_PREFIX = 'nc:';

/** The comment of the rule at `index` of `chain` with this text. */
export function ruleTag(chain: string, index: number, text: string): string {
  return TAG_PREFIX + sha256Hex(`${chain}\0${index}\0${text}`).slice(0, 12);
}

/** A chain we own: declared (idempotent), flushed and refilled; `tags` is what verifyChains expects to find. */
export interface RenderedChain {
  name: string;
  lines: string[];
  tags: string[];
}

/** `spec`: the chain's `{ ... }` body (hook, comment) or '' for a regular chain without comment. */
export function renderChain(family: NftFamily, table: string, name: string, spec: string, rules: readonly string[]): RenderedChain {
  const t = `${family} ${table}`;
  const tags = rules.map((r, i) => ruleTag(name, i, r));
  return {
    name,
    tags,
    lines: [
      spec ? `add chain ${t} ${name} { ${spec} }` : `add chain ${t} ${name}`,
      `flush chain ${t} ${name}`,
      ...rules.map((r, i) => `add rule ${t} ${name} ${r} comment "${tags[i]}"`),
    ],
  };
}

export interface SharedTable {
  family: NftFamily;
  table: string;
  /** Chains every user shares (base chains): deleted with their rules. */
  chains: readonly string[];
  /** Sets and maps every user shares: deleted only if empty. */
  sets: readonly string[];
  /** Empty marker sets an older release declared ("declared" markers): removed along, never a reason to keep the table. */
  legacySets?: RegExp;
}

