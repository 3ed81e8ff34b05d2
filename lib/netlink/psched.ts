// The packet scheduler's clock, for converting times to the ticks tc
// parameters are given in (what iproute2 and the reference read too).
import * as fs from 'fs';

let cached: number | undefined;

/**
 * Scheduler ticks per microsecond from /proc/net/psched ("t2us us2t clock_res ..."),
 * 15.625 on every kernel since 2.6.31 (64 ns ticks); that value when the file is unreadable.
 */
export function pschedTicksPerUsec(): number {
  if (cached !== undefined) return cached;
  try {
    const [t2us, us2t, clockRes] = fs.readFileSync('/proc/net/psched', 'utf8').trim().split(/\s+/).map((h) => parseInt(h, 16));
    // A clock_res of 1e9 means the old (pre-2.6.31) table: then t2us is us2t.
    const perUsec = ((clockRes === 1e9 ? us2t : t2us) / us2t) * (clockRes / 1e6);
    cached = Number.isFinite(perUsec) && perUsec > 0 ? perUsec : 15.625;
  } catch {
    cached = 15.625;
  }
  return cached;
}
