// `vxlan-overlay agent` and `vxlan-overlay leave`: the executable runs this
// (required lazily by main.ts) when argv names a verb and CNI_COMMAND is unset.

import * as fs from 'fs';
import { isNotFound, openRtnl } from '../../../lib/netlink';
import { createLogger, type Logger } from '../../../lib/util/log';
import { defaultVxlanName } from '../model';
import { pidAlive, readAgentState, removeAgentState, statePath } from '../readiness';
import { OverlayStore } from '../store/overlay';
import { Agent, openKvStore } from './agent';
import { findUnderlay } from './kernel';
import { defaultHostId, parseCli, USAGE, UsageError, type CliOptions } from './options';

async function resolveHostId(o: CliOptions): Promise<string> {
  if (o.hostID) return o.hostID;
  const rtnl = openRtnl();
  try {
    return defaultHostId((await findUnderlay(rtnl, { ip: o.underlayIp, dev: o.underlayDev })).ip);
  } finally {
    rtnl.close();
  }
}

async function runAgent(o: CliOptions, log: Logger): Promise<number> {
  const agent = new Agent({ ...o, hostID: await resolveHostId(o), log });
  let stopping: Promise<void> | undefined;
  const stop = (sig: string): void => {
    if (stopping) return;
    log.info(`${sig}: leaving the live set (the subnet stays assigned)`);
    stopping = agent.stop().then(() => process.exit(0), (err) => { log.error(String(err)); process.exit(1); });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await agent.start();
  log.info(`ready: subnet ${agent.subnet}`);
  return new Promise<number>(() => undefined); // runs until a signal
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

async function runLeave(o: CliOptions, log: Logger): Promise<number> {
  const hostID = await resolveHostId(o);
  const file = statePath(o.runDir, o.network);
  const state = readAgentState(file);
  if (state && pidAlive(state.pid)) {
    process.kill(state.pid, 'SIGTERM');
    if (!(await waitGone(state.pid, 5000))) throw new Error(`the agent (pid ${state.pid}) did not stop within 5 s`);
  }
  const kv = openKvStore(o.store);
  try {
    const released = await new OverlayStore(kv, o.network).releaseSubnet(hostID);
    log.info(released.length ? `host "${hostID}" released ${released.join(', ')}` : `host "${hostID}" held no subnet`);
  } finally {
    await kv.close();
  }
  const vxlan = o.vxlan ?? state?.vxlan ?? (o.vni ? defaultVxlanName(o.vni) : undefined);
  if (vxlan) {
    const rtnl = openRtnl();
    try {
      await rtnl.deleteLink(vxlan);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    } finally {
      rtnl.close();
    }
  }
  removeAgentState(file);
  return 0;
}

export function main(argv: readonly string[]): void {
  let o: CliOptions;
  try {
    o = parseCli(argv, (p) => fs.readFileSync(p, 'utf8'));
  } catch (err) {
    process.stderr.write(`vxlan-overlay: ${(err as Error).message}\n${err instanceof UsageError ? `${USAGE}\n` : ''}`);
    process.exit(2);
  }
  const log = createLogger({ tag: `vxlan-overlay ${o.verb} ${o.network}`, file: o.logFile });
  (o.verb === 'agent' ? runAgent(o, log) : runLeave(o, log)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      log.error(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
