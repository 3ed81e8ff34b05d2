// One throwaway overlay "host": a namespace with an underlay veth, the built
// `vxlan-overlay agent` (file store) running inside it, and a way to wait for
// its readiness. The agent is killed in the sandbox's cleanup, also on failure.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh } from './sandbox';
import { sleepSync } from './dns';

export const OVERLAY_BIN = path.join(DIST_BIN, 'vxlan-overlay');

export class OverlayHost {
  readonly host: string;
  readonly runDir: string;
  readonly storeDir: string;
  agent?: ChildProcess;
  log = '';

  constructor(readonly sb: Sandbox, readonly o: { network: string; cidr: string; underlay: string }) {
    this.host = sb.netns('h');
    this.runDir = sb.tmpdir('run');
    this.storeDir = path.join(sb.tmpdir('store'), 'store');
    sb.onCleanup(() => {
      if (this.agent?.pid && this.agent.exitCode === null && this.agent.signalCode === null) {
        try { process.kill(this.agent.pid, 'SIGKILL'); } catch { /* gone */ }
      }
    });
    sh('ip', ['-n', this.host, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1']);
    sh('ip', ['-n', this.host, 'addr', 'add', `${o.underlay}/24`, 'dev', 'u0']);
    sh('ip', ['-n', this.host, 'link', 'set', 'u0', 'up']);
    sh('ip', ['-n', this.host, 'link', 'set', 'u1', 'up']);
  }

  /** Start the agent and wait until its readiness file says it holds a lease; returns the host's subnet. */
  start(): string {
    const p = spawn('ip', [
      'netns', 'exec', this.host, OVERLAY_BIN, 'agent', '--network', this.o.network, '--cidr', this.o.cidr, '--store-dir', this.storeDir,
      '--underlay-ip', this.o.underlay, '--host-id', 'h1', '--lease-ttl', '5', '--run-dir', this.runDir,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (c: Buffer) => { this.log += c.toString(); });
    this.agent = p;
    const file = path.join(this.runDir, this.o.network, `agent-${fs.statSync(this.sb.nsPath(this.host)).ino}.json`);
    for (let i = 0; i < 400; i++) {
      try {
        const st = JSON.parse(fs.readFileSync(file, 'utf8'));
        if (st.pid === p.pid && st.leaseOk) return st.subnet;
      } catch { /* not yet */ }
      sleepSync(50);
    }
    throw new Error(`the agent did not become ready in 20 s (log: ${this.log})`);
  }
}
