// The agent's readiness, as the CNI plugin sees it: one small JSON file per
// (network, host network namespace) under runDir/<network>/. Keyed by the
// namespace's inode so several "hosts" that are namespaces of one machine
// (tests, demos) each find their own agent; on a real host there is one.

import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../../lib/util/fs';

export const DEFAULT_RUN_DIR = '/run/node-cni/overlay';

export interface AgentState {
  network: string;
  hostID: string;
  pid: number;
  /** This host's subnet, e.g. "10.244.3.0/24". */
  subnet: string;
  /** The cluster CIDR, e.g. "10.244.0.0/16". */
  cidr: string;
  gateway: string;
  /** Dual-stack: this host's IPv6 subnet, the IPv6 cluster CIDR and the IPv6 gateway (absent on an IPv4 network). */
  subnet6?: string;
  cidr6?: string;
  gateway6?: string;
  bridge: string;
  vxlan: string;
  mtu: number;
  /** False while the agent has no live record in the store (lease lost, store unreachable too long). */
  leaseOk: boolean;
  /** ms since the epoch of the last heartbeat, and the interval the agent promised. */
  heartbeat: number;
  heartbeatMs: number;
}

/** The inode of the calling process's network namespace (which "host" we are on). */
export function currentNetnsId(): string {
  return String(fs.statSync('/proc/thread-self/ns/net').ino);
}

export function statePath(runDir: string, network: string, netnsId = currentNetnsId()): string {
  return path.join(runDir, network, `agent-${netnsId}.json`);
}

/** The plugin's attachment records of this host (`leave` refuses while there are any). */
export function attachmentsDir(runDir: string, network: string, netnsId = currentNetnsId()): string {
  return path.join(runDir, network, `attachments-${netnsId}`);
}

export function writeAgentState(file: string, state: AgentState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  writeFileAtomic(file, JSON.stringify(state), { mode: 0o644 });
}

export function readAgentState(file: string): AgentState | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as AgentState;
  } catch {
    return undefined;
  }
}

export function removeAgentState(file: string): void {
  fs.rmSync(file, { force: true });
}

/** Is the process running? A zombie (exited, not yet reaped by its parent) is not. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // "pid (comm) S ...": the state follows the last ")".
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

export type Readiness = { ready: true; state: AgentState } | { ready: false; reason: string; state?: AgentState };

/** A heartbeat older than this many intervals (and at least 3 s) means the agent is hung or gone. */
const STALE_INTERVALS = 3;

/** Pure: is the agent that wrote `state` serving now? */
export function judgeReadiness(network: string, file: string, state: AgentState | undefined, now: number, alive: (pid: number) => boolean): Readiness {
  const who = `the vxlan-overlay agent of network "${network}"`;
  const start = `start it with: vxlan-overlay agent --network ${network} ...`;
  if (!state) return { ready: false, reason: `${who} is not running on this host (no ${file}); ${start}` };
  if (!alive(state.pid)) return { ready: false, reason: `${who} (pid ${state.pid}) is not running; ${start}`, state };
  const age = now - state.heartbeat;
  const limit = Math.max(STALE_INTERVALS * state.heartbeatMs, 3000);
  if (age > limit) return { ready: false, reason: `${who} (pid ${state.pid}) has not sent a heartbeat for ${Math.round(age / 1000)} s`, state };
  if (!state.leaseOk) return { ready: false, reason: `${who} (pid ${state.pid}) has lost its lease in the overlay store (store unreachable?)`, state };
  return { ready: true, state };
}

export function agentReadiness(runDir: string, network: string): Readiness {
  const file = statePath(runDir, network);
  return judgeReadiness(network, file, readAgentState(file), Date.now(), pidAlive);
}
