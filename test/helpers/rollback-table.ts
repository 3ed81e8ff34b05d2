// The rollback table of one ADD (DESIGN.md "Test seam below the facade"): run
// it once against a fresh fake kernel to learn its steps, then once per step k
// with step k failing. Each failed ADD must report the injected error and
// leave the fake kernel, the files (IPAM reservations, records) and the
// firewall exactly as they were before it.
import * as fs from 'fs';
import * as path from 'path';
import { useIptablesRunner } from '../../lib/firewall/iptables';
import { useNftBackend } from '../../lib/firewall/nft';
import type { FakeIptables } from './fake-iptables';
import type { FakeNft } from './fake-nft';
import type { FakeKernel, Step } from './fake-rtnl';

/** One world of the table: the fakes ADD runs on (nft and iptables are installed as the runners for the run). */
export interface RollbackWorld {
  kernel: FakeKernel;
  nft?: FakeNft;
  iptables?: FakeIptables;
  add: () => Promise<unknown>;
}

export interface RollbackCase {
  /** A fresh world: the fake kernel with the test's own links, and whatever else ADD needs. */
  setup(): RollbackWorld | Promise<RollbackWorld>;
  /** What must not change besides the kernel (files, firewall elements); compared with toEqual. */
  state?(): unknown;
  /**
   * Shared things ADD ensures and never rolls back (DESIGN.md "Rollback"): host
   * links by name (a bridge), left out of the comparison with their addresses
   * and routes. Everything else must be as before.
   */
  sharedLinks?: readonly string[];
  /** Steps whose failure ADD absorbs by design (best-effort work), by a pattern of their op. */
  tolerated?: readonly RegExp[];
  errno?: string;
}

export interface RollbackRow {
  step: Step;
  /** What went wrong with this row; undefined when it holds. */
  problem?: string;
}

/** Every row of the table; the test expects all of them to hold. */
export async function rollbackTable(c: RollbackCase): Promise<{ steps: Step[]; rows: RollbackRow[] }> {
  const errno = c.errno ?? 'ENOBUFS';
  const baseline = await c.setup();
  await runIn(baseline, baseline.add);
  const steps = [...baseline.kernel.steps];
  const rows: RollbackRow[] = [];
  for (const step of steps) {
    const world = await c.setup();
    const { kernel } = world;
    const before = worldSnapshot(world, c.sharedLinks);
    const stateBefore = c.state?.();
    kernel.failAt(step.n, errno);
    let error: unknown;
    try {
      await runIn(world, world.add);
    } catch (err) {
      error = err;
    }
    const problems: string[] = [];
    const tolerated = c.tolerated?.some((re) => re.test(step.op));
    if (error === undefined) {
      if (!tolerated) problems.push('ADD succeeded although the step failed');
    } else {
      const msg = `${(error as Error).message} ${(error as { details?: string }).details ?? ''}`;
      if (!msg.includes(errno)) problems.push(`reported "${(error as Error).message}" instead of the injected ${errno}`);
      const after = worldSnapshot(world, c.sharedLinks);
      if (JSON.stringify(after) !== JSON.stringify(before)) problems.push(`kernel differs: ${diff(before, after)}`);
      const stateAfter = c.state?.();
      if (JSON.stringify(stateAfter) !== JSON.stringify(stateBefore)) problems.push(`state differs: ${JSON.stringify(stateBefore)} -> ${JSON.stringify(stateAfter)}`);
    }
    rows.push({ step, problem: problems.length ? problems.join('; ') : undefined });
  }
  return { steps, rows };
}

async function runIn(w: RollbackWorld, fn: () => Promise<unknown>): Promise<unknown> {
  const restore = [w.nft && useNftBackend(w.nft), w.iptables && useIptablesRunner(w.iptables)];
  try {
    return await fn();
  } finally {
    for (const r of restore) r?.();
  }
}

function worldSnapshot(w: RollbackWorld, shared: readonly string[] = []): unknown {
  const kernel = w.kernel.snapshot();
  for (const ns of Object.values(kernel)) {
    const skip = new Set(ns.links.filter((l) => shared.includes(l.name)).map((l) => l.index));
    ns.links = ns.links.filter((l) => !skip.has(l.index));
    ns.addresses = ns.addresses.filter((a) => !skip.has(a.index));
    ns.routes = ns.routes.filter((r) => r.oif === undefined || !skip.has(r.oif));
  }
  return { kernel, nft: w.nft?.snapshot(), iptables: w.iptables?.snapshot() };
}

/** A world whose attachment can also be taken down. */
export interface TeardownWorld extends RollbackWorld {
  del: () => Promise<unknown>;
}

export interface TeardownCase extends Omit<RollbackCase, 'setup' | 'tolerated'> {
  setup(): TeardownWorld | Promise<TeardownWorld>;
}

/**
 * DEL's table (DESIGN.md: best-effort, idempotent): ADD, then DEL with its
 * k-th step failing, then DEL again. The second DEL must succeed and leave the
 * world as it was before ADD; so must a DEL that met no failure.
 */
export async function teardownTable(c: TeardownCase): Promise<{ steps: Step[]; rows: RollbackRow[] }> {
  const errno = c.errno ?? 'ENOBUFS';
  const baseline = await c.setup();
  const pristine = { world: worldSnapshot(baseline, c.sharedLinks), state: c.state?.() };
  await runIn(baseline, baseline.add);
  const addSteps = baseline.kernel.steps.length;
  await runIn(baseline, baseline.del);
  const steps = baseline.kernel.steps.slice(addSteps);
  const rows: RollbackRow[] = [];
  const compare = (w: TeardownWorld, before: typeof pristine, problems: string[]) => {
    const after = worldSnapshot(w, c.sharedLinks);
    if (JSON.stringify(after) !== JSON.stringify(before.world)) problems.push(`kernel differs: ${diff(before.world, after)}`);
    const state = c.state?.();
    if (JSON.stringify(state) !== JSON.stringify(before.state)) problems.push(`state differs: ${JSON.stringify(before.state)} -> ${JSON.stringify(state)}`);
  };
  const clean: string[] = [];
  compare(baseline, pristine, clean);
  if (clean.length) rows.push({ step: { n: 0, ns: '', op: 'DEL without a failure' }, problem: clean.join('; ') });
  for (const [i, step] of steps.entries()) {
    const w = await c.setup();
    const before = { world: worldSnapshot(w, c.sharedLinks), state: c.state?.() };
    await runIn(w, w.add);
    w.kernel.failAt(w.kernel.steps.length + i + 1, errno);
    await runIn(w, w.del).catch(() => undefined);
    const problems: string[] = [];
    try {
      await runIn(w, w.del);
    } catch (err) {
      problems.push(`the second DEL failed: ${(err as Error).message}`);
    }
    compare(w, before, problems);
    rows.push({ step, problem: problems.length ? problems.join('; ') : undefined });
  }
  return { steps, rows };
}

/** The rows that do not hold, as lines a person can read in a failed expect. */
export function brokenRows(rows: readonly RollbackRow[]): string[] {
  return rows.filter((r) => r.problem).map((r) => `step ${r.step.n} (${r.step.ns}: ${r.step.op}): ${r.problem}`);
}

function diff(a: unknown, b: unknown): string {
  const sa = JSON.stringify(a, null, 1).split('\n');
  const sb = JSON.stringify(b, null, 1).split('\n');
  const gone = sa.filter((l) => !sb.includes(l)).slice(0, 6).map((l) => `-${l.trim()}`);
  const extra = sb.filter((l) => !sa.includes(l)).slice(0, 6).map((l) => `+${l.trim()}`);
  return [...gone, ...extra].join(' ');
}

/** Files under `dir` (relative paths, sorted), except those `skip` matches: locks and other bookkeeping. */
export function filesUnder(dir: string, skip: RegExp = /(^|\/)(lock|\.lock|last_reserved_ip\.\d+)$/): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.filter((f) => !skip.test(f)).sort();
}
