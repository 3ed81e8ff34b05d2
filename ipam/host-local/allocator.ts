// The allocation strategy, pure: which address to try next. Round-robin like
// the reference: start just after the set's last reserved address (when it is
// still inside the set), walk to the range's end, continue with the next range
// of the set, wrap to the first, and stop when back at the start, so the last
// reserved address is tried last and a crash-looping container does not get
// its old address back at once. The network address, the IPv4 broadcast and
// each range's gateway are never offered.

import type { Addr } from './addr';
import { isAllocatable, RangeSet } from './config';

interface Position {
  range: number;
  value: bigint;
}

function successor(set: RangeSet, p: Position): Position {
  if (p.value >= set[p.range].end) {
    const range = (p.range + 1) % set.length;
    return { range, value: set[range].start };
  }
  return { range: p.range, value: p.value + 1n };
}

/** Every allocatable address of the set exactly once, in round-robin order after `lastReserved`. */
export function* candidates(set: RangeSet, lastReserved?: Addr): Generator<Addr> {
  const family = set[0].family;
  const lastRange = lastReserved ? set.findIndex((r) => r.family === lastReserved.family && lastReserved.value >= r.start && lastReserved.value <= r.end) : -1;
  const first: Position = lastRange >= 0 ? successor(set, { range: lastRange, value: (lastReserved as Addr).value }) : { range: 0, value: set[0].start };
  let p = first;
  do {
    const a: Addr = { family, value: p.value };
    if (isAllocatable(set[p.range], a)) yield a;
    p = successor(set, p);
  } while (p.range !== first.range || p.value !== first.value);
}

/**
 * The first candidate that `tryTake` accepts (it reserves atomically and
 * returns false when the address is taken), or undefined when the set is full.
 */
export function allocate(set: RangeSet, lastReserved: Addr | undefined, tryTake: (a: Addr) => boolean): Addr | undefined {
  for (const a of candidates(set, lastReserved)) if (tryTake(a)) return a;
  return undefined;
}

/** How many addresses the set can ever hand out (bigint: an IPv6 /64 is large). */
export function capacity(set: RangeSet): bigint {
  let n = 0n;
  for (const r of set) {
    n += r.end - r.start + 1n;
    const excluded = new Set([r.network, r.gateway, ...(r.family === 4 ? [r.last] : [])]);
    for (const v of excluded) if (v >= r.start && v <= r.end) n -= 1n;
  }
  return n;
}

/** Whether an address belongs to one of the set's ranges and may be handed out. */
export function inSet(set: RangeSet, a: Addr): boolean {
  return set.some((r) => isAllocatable(r, a));
}
