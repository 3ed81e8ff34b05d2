// What the l2 tier's tests share: a throwaway "host" namespace where the
// built plugins run (`ip netns exec`), its uplink `eth0` whose other end sits
// in a "wire" namespace (the physical network: a switch port, a router, a
// tcpdump), container namespaces, and the commands to look at all of them.
// These tests run inside user-mode-linux (./runner.ts): no nftables ip/inet
// tables there, so no ipMasq or portmap in their configs.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh } from '../helpers/sandbox';

export interface Run { status: number | null; stdout: string; stderr: string; json?: any }

export class L2Env {
  readonly sb = new Sandbox('l2');
  readonly host: string;
  readonly wire: string;
  readonly state: string;
  readonly ipamDir: string;

  constructor() {
    this.host = this.sb.netns('h');
    this.wire = this.sb.netns('w');
    this.state = this.sb.tmpdir('state');
    this.ipamDir = this.sb.tmpdir('ipam');
    // The host's uplink: eth0 here, wire0 on the other side.
    sh('ip', ['-n', this.host, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'wire0', 'netns', this.wire]);
    this.ip(this.host, 'link', 'set', 'eth0', 'up');
    this.ip(this.wire, 'link', 'set', 'wire0', 'up');
  }

  container(suffix: string): string {
    return this.sb.netns(suffix);
  }

  /** `ip -n <ns> ...`; throws with stderr on failure. */
  ip(ns: string, ...args: string[]): string {
    return sh('ip', ['-n', ns, ...args]);
  }

  /** `bridge -n <ns> ...`. */
  bridgeCmd(ns: string, ...args: string[]): string {
    return sh('bridge', ['-n', ns, ...args]);
  }

  /** Run a dist/bin plugin in the host namespace. */
  run(plugin: string, cmd: string, conf: Record<string, unknown>, o: { id?: string; netns?: string; ifname?: string } = {}): Run {
    const r = spawnSync('ip', ['netns', 'exec', this.host, path.join(DIST_BIN, plugin)], { input: JSON.stringify(conf), env: this.cniEnv(cmd, o), encoding: 'utf8' });
    return parseRun(r);
  }

  /** The same, without waiting: for concurrent ADDs. */
  runAsync(plugin: string, cmd: string, conf: Record<string, unknown>, o: { id?: string; netns?: string; ifname?: string } = {}): Promise<Run> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', this.host, path.join(DIST_BIN, plugin)], { env: this.cniEnv(cmd, o) });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b) => { stdout += b; });
      child.stderr.on('data', (b) => { stderr += b; });
      child.on('close', (status) => resolve(parseRun({ status, stdout, stderr })));
      child.stdin.end(JSON.stringify(conf));
    });
  }

  private cniEnv(cmd: string, o: { id?: string; netns?: string; ifname?: string }): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: o.id ?? '', CNI_NETNS: o.netns ?? '',
      CNI_IFNAME: o.ifname ?? (o.id ? 'eth0' : ''), CNI_PATH: '/usr/lib/cni', CNI_ARGS: '',
    };
  }

  /** ADD that must succeed; returns the result. */
  add(plugin: string, conf: Record<string, unknown>, id: string, ns: string): any {
    const r = this.run(plugin, 'ADD', conf, { id, netns: this.sb.nsPath(ns) });
    if (r.status !== 0) throw new Error(`${plugin} ADD ${id} failed: ${r.stdout} ${r.stderr}`);
    return r.json;
  }

  /** DEL/CHECK/GC that must succeed with empty output. */
  ok(plugin: string, cmd: string, conf: Record<string, unknown>, o: { id?: string; netns?: string } = {}): void {
    const r = this.run(plugin, cmd, conf, o);
    if (r.status !== 0) throw new Error(`${plugin} ${cmd} ${o.id ?? ''} failed: ${r.stdout} ${r.stderr}`);
    expect(r.stdout).toBe('');
  }

  ping(ns: string, ip: string): boolean {
    return this.sb.inNs(ns, 'ping', ['-c', '1', '-W', '2', ip]).status === 0;
  }

  /** Interface names of a namespace, sorted. */
  links(ns: string): string[] {
    return this.ip(ns, '-o', 'link').split('\n').filter(Boolean).map((l) => l.split(': ')[1].split('@')[0]).sort();
  }

  /** The VLANs of one bridge port, as `bridge vlan show` prints them ("10 PVID Egress Untagged"). */
  portVlans(dev: string): string[] {
    const j = JSON.parse(this.bridgeCmd(this.host, '-j', 'vlan', 'show', 'dev', dev)) as Array<{ ifname: string; vlans?: Array<{ vlan: number; vlanEnd?: number; flags?: string[] }> }>;
    return (j[0]?.vlans ?? []).map((v) => [v.vlanEnd ? `${v.vlan}-${v.vlanEnd}` : String(v.vlan), ...(v.flags ?? [])].join(' '));
  }

  /**
   * Capture frames on `dev` in `ns` with link-level headers (tcpdump -e)
   * while `traffic` runs; returns tcpdump's lines.
   */
  async capture(ns: string, dev: string, filter: string, traffic: () => void): Promise<string[]> {
    const child = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-e', '-nn', '-l', '-i', dev, filter]);
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr.on('data', (b) => { err += b; if (err.includes('listening on')) resolve(); });
      child.on('exit', (c) => reject(new Error(`tcpdump exited with ${c}: ${err}`)));
    });
    try {
      traffic();
      await new Promise((r) => setTimeout(r, 300)); // let the last lines through the pipe
    } finally {
      child.kill('SIGINT');
      await new Promise((r) => child.once('close', r));
    }
    return out.split('\n').filter(Boolean);
  }
}

function parseRun(r: { status: number | null; stdout: string; stderr: string }): Run {
  const out: Run = { status: r.status, stdout: r.stdout, stderr: r.stderr };
  try { out.json = r.stdout ? JSON.parse(r.stdout) : undefined; } catch { /* leave undefined */ }
  return out;
}

/** Every file and directory left under `dir` (relative paths), [] when it is gone. */
export function leftovers(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

/** The first address of an ADD result, without its prefix. */
export const addrOf = (r: any): string => r.ips[0].address.split('/')[0];
