// `vxlan-overlay agent` and `vxlan-overlay leave`: the executable runs this
// (required lazily by main.ts) when argv names a verb and CNI_COMMAND is unset.

import * as fs from 'fs';
import { openRtnl } from '../../../lib/netlink';
import { createLogger, type Logger } from '../../../lib/util/log';
import { Agent } from './agent';
import { findUnderlay } from './kernel';
import { runLeave } from './leave';
import { readAgentState, statePath } from '../readiness';
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
  // An operator's (or a benchmark's) "check everything now": a full reconcile of the devices and every peer.
  process.on('SIGHUP', () => void agent.reconcile(true, true));
  await agent.start();
  log.info(`ready: subnet ${agent.subnet}`);
  return new Promise<number>(() => undefined); // runs until a signal
}

/** The host ID the running (or last) agent wrote down, else the one it would have chosen. */
async function leave(o: CliOptions, log: Logger): Promise<number> {
  const hostID = o.hostID ?? readAgentState(statePath(o.runDir, o.network))?.hostID ?? (await resolveHostId(o));
  return runLeave({ ...o, hostID }, log);
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
  (o.verb === 'agent' ? runAgent(o, log) : leave(o, log)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      log.error(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
