// The jest runner of the l2 project (jest.config.js): instead of running the
// tier's test files here, on a kernel without 802.1q and bridge VLAN
// filtering, it boots user-mode-linux (./uml-guest.js; one guest per CPU,
// each with a share of the files), runs jest there (./uml-jest.js) as root
// with this node and the checkout's dist/bin, and reports each file's result
// back as the guest's reporter (./uml-reporter.js) writes it. Inside the guest the project uses jest's own runner
// (NODE_CNI_L2_INSIDE=1).
//
// Only when user-mode-linux itself cannot start are the files reported as
// skipped, with the reason; with NODE_CNI_L2_STATUS set, that reason (or
// "ran") is also written there for scripts/test.sh's summary.
import * as fs from 'fs';
import * as os from 'os';
import { createEmptyTestResult, type SerializableError, type Test, type TestResult } from '@jest/test-result';
import type { Config } from '@jest/types';
import { ensureBuilt } from '../helpers/build';
import { ROOT } from '../helpers/sandbox';
import { findUml, runInGuest, type GuestRun } from './uml-guest';

/** What the tier's tests execute. */
const EXECUTABLES = ['bridge', 'macvlan'];
const GUEST_MEM_MB = 1536;
/** A bound, not a budget: a normal run takes a few minutes. */
const DEFAULT_TIMEOUT_S = 600;

type OnStart = (test: Test) => Promise<void>;
type OnResult = (test: Test, result: TestResult) => Promise<void>;
type OnFailure = (test: Test, error: SerializableError) => Promise<void>;

function writeStatus(text: string): void {
  if (process.env.NODE_CNI_L2_STATUS) fs.writeFileSync(process.env.NODE_CNI_L2_STATUS, `${text}\n`);
}

function skippedResult(test: Test, reason: string): TestResult {
  const now = Date.now();
  const title = `skipped: user-mode-linux cannot start (${reason}), so the l2 tier did not run`;
  return {
    ...createEmptyTestResult(),
    testFilePath: test.path,
    displayName: test.context.config.displayName,
    skipped: true,
    numPendingTests: 1,
    perfStats: { start: now, end: now, runtime: 0, slow: false, loadTestEnvironmentStart: now, loadTestEnvironmentEnd: now, setupFilesStart: now, setupFilesEnd: now, setupAfterEnvStart: now, setupAfterEnvEnd: now },
    testResults: [{ ancestorTitles: [], duration: 0, failureDetails: [], failureMessages: [], fullName: title, numPassingAsserts: 0, status: 'pending', title }],
  };
}

function describeRun(run: GuestRun): string {
  const why = run.timedOut || run.exitCode === 124 ? 'timed out' : run.exitCode === undefined ? 'stopped before jest finished' : `jest exited with ${run.exitCode}`;
  return [
    `l2 tier: the user-mode-linux guest ${why} after ${Math.round(run.wallMs / 1000)} s.`,
    run.logTail && `jest in the guest:\n${run.logTail}`,
    run.consoleTail && `guest console:\n${run.consoleTail}`,
  ].filter(Boolean).join('\n');
}

/** Split the files over `n` guests, longest first (jest knows each file's last duration). */
export function partition(tests: readonly Test[], n: number): Test[][] {
  const groups = Array.from({ length: Math.max(1, Math.min(n, tests.length)) }, () => ({ tests: [] as Test[], total: 0 }));
  for (const t of [...tests].sort((a, b) => (b.duration ?? 0) - (a.duration ?? 0))) {
    const g = groups.reduce((min, x) => (x.total < min.total ? x : min));
    g.tests.push(t);
    g.total += t.duration ?? 1;
  }
  return groups.map((g) => g.tests).filter((g) => g.length);
}

export default class UmlRunner {
  readonly isSerial = true;

  constructor(private readonly globalConfig: Config.GlobalConfig) {}

  async runTests(tests: Test[], _watcher: unknown, onStart: OnStart, onResult: OnResult, onFailure: OnFailure): Promise<void> {
    const kernel = findUml();
    if (!kernel) {
      const where = process.env.NODE_CNI_UML ?? '/usr/bin/linux.uml or /usr/bin/linux';
      return this.skipAll(tests, onStart, onResult, `no executable user-mode-linux kernel at ${where}; scripts/setup.sh installs the "user-mode-linux" package`);
    }
    ensureBuilt(...EXECUTABLES); // the guest sees the checkout read-only: it cannot build

    // A guest has one CPU: with more cores, several guests share the files.
    const guests = Number(process.env.NODE_CNI_L2_GUESTS ?? os.cpus().length);
    const started = Date.now();
    const reported = new Set<string>();
    let anyFailed = false;
    let chain = Promise.resolve(); // jest's callbacks, one at a time
    const runs = await Promise.all(partition(tests, guests).map((group) => {
      const byPath = new Map(group.map((t) => [t.path, t]));
      return runInGuest({
        kernel, root: ROOT, main: `${ROOT}/test/l2/uml-jest.js`, args: this.jestArgs(group), memMb: GUEST_MEM_MB,
        timeoutMs: Number(process.env.NODE_CNI_L2_TIMEOUT_S ?? DEFAULT_TIMEOUT_S) * 1000,
        watch: /^\d+-[01]-(start|result)\.json$/,
        onFile: (name, text) => {
          const file = JSON.parse(text) as { path: string; result?: TestResult };
          const test = byPath.get(file.path);
          if (!test) return;
          if (name.endsWith('-start.json')) {
            chain = chain.then(() => onStart(test));
            return;
          }
          const result = file.result!;
          reported.add(test.path);
          anyFailed ||= result.numFailingTests > 0 || result.testExecError !== undefined;
          chain = chain.then(() => onResult(test, { ...result, displayName: test.context.config.displayName }));
        },
      }).then((run) => ({ run, group }));
    }));
    await chain;
    const unbooted = runs.find((r) => !r.run.booted);
    if (unbooted) {
      const said = unbooted.run.consoleTail.split('\n').slice(-3).join(' / ') || 'no output';
      const reason = `${kernel} stopped before the guest's init ran: ${said}`;
      return this.skipAll(tests.filter((t) => !reported.has(t.path)), onStart, onResult, reason);
    }
    writeStatus(`ran in ${runs.length} user-mode-linux guest(s), ${Math.round((Date.now() - started) / 1000)} s wall, boot included`);
    const errors: string[] = [];
    for (const { run, group } of runs) {
      const missing = group.filter((t) => !reported.has(t.path));
      for (const t of missing) await onFailure(t, { message: `${t.path} did not report a result.\n${describeRun(run)}`, stack: '' });
      // Every file reported and none failed, yet jest in the guest failed: say why.
      if (missing.length === 0 && !anyFailed && run.exitCode !== 0) errors.push(describeRun(run));
    }
    if (errors.length) throw new Error(errors.join('\n\n'));
  }

  private jestArgs(group: readonly Test[]): string[] {
    const args = ['--selectProjects', 'l2', '--runInBand', '--ci', '--cacheDirectory', '/tmp/jest', '--reporters', `${ROOT}/test/l2/uml-reporter.js`];
    if (this.globalConfig.testNamePattern) args.push('--testNamePattern', this.globalConfig.testNamePattern);
    return [...args, '--runTestsByPath', ...group.map((t) => t.path)];
  }

  private async skipAll(tests: Test[], onStart: OnStart, onResult: OnResult, reason: string): Promise<void> {
    console.warn(`l2 tier SKIPPED: user-mode-linux cannot start: ${reason}`);
    writeStatus(`SKIPPED: user-mode-linux cannot start: ${reason}`);
    for (const t of tests) {
      await onStart(t);
      await onResult(t, skippedResult(t, reason));
    }
  }
}
