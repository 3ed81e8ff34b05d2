// A small overlay cluster on one machine: a "switch" namespace whose bridge is
// the underlay (IPv4 10.77.0.0/24, or IPv6 fd00:77::/64 with a default route),
// "host" namespaces on it each running the built `vxlan-overlay agent`, and
// containers in their own namespaces added by the built plugin run inside
// their host. Real traffic, real kernel, and (optionally) a real etcd
// listening on the underlay inside the switch namespace.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { EtcdServer, startEtcd } from '../helpers/etcd';
import { DIST_BIN, Sandbox, sh } from '../helpers/sandbox';
import { containsText } from '../../lib/ip';
import { execCni } from '../helpers/cni';

export const BUILT = path.join(DIST_BIN, 'vxlan-overlay');
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string | (() => string), ms: number, fn: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(50);
  }
}

export interface Host {
  name: string;
  ns: string;
  /** The underlay address. */
  ip: string;
  agent?: ChildProcess;
  log: string;
}

export interface Ctr {
  ns: string;
  id: string;
  /** IPv4 address, and the IPv6 one on a dual-stack network. */
  ip: string;
  ip6?: string;
  result: any;
}

export interface PeerView {
  neigh: string[];
  fdb: string[];
  routes: string[];
}

export interface AgentState {
  subnet: string;
  subnet6?: string;
  pid: number;
  leaseOk: boolean;
  mtu: number;
}

export interface ClusterOptions {
  prefix: string;
  hosts: number;
  store: 'file' | 'etcd';
  network?: string;
  cidr?: string;
  /** Dual-stack: the IPv6 cluster CIDR. */
  ipv6Cidr?: string;
  underlay?: 4 | 6;
  /** Hosts get an address of the other family on the underlay too (an "outside" for masquerade tests). */
  dualUnderlay?: boolean;
  /** Leave --underlay-ip out: the agent finds it from the default route. */
  autoUnderlay?: boolean;
  leaseTtl?: number;
}

export class Cluster {
  readonly sb: Sandbox;
  readonly sw: string;
  readonly hosts: Host[] = [];
  readonly runDir: string;
  readonly storeDir: string;
  readonly bin: string;
  readonly net: string;
  readonly cidr: string;
  readonly underlay: 4 | 6;
  etcd?: EtcdServer;
  /** The switch's own underlay addresses (an address outside the cluster, for masquerade). */
  readonly switchIp: { v4: string; v6: string } = { v4: '10.77.0.254', v6: 'fd00:77::fe' };

  constructor(readonly o: ClusterOptions) {
    this.sb = new Sandbox(o.prefix);
    this.net = o.network ?? 'ovt';
    this.cidr = o.cidr ?? '10.244.0.0/16';
    this.underlay = o.underlay ?? 4;
    this.runDir = this.sb.tmpdir('run');
    this.storeDir = path.join(this.sb.tmpdir('store'), 'store');
    this.bin = BUILT;
    this.sw = this.sb.netns('sw');
    // A fixed MAC: a bridge's own MAC otherwise follows its lowest port MAC, so a host plugged in later
    // would change it under the other hosts' neighbour caches (their etcd connections then stall).
    sh('ip', ['-n', this.sw, 'link', 'add', 'br0', 'address', '02:00:0a:4d:00:fe', 'type', 'bridge']);
    if (this.underlay === 4 || o.dualUnderlay) sh('ip', ['-n', this.sw, 'addr', 'add', `${this.switchIp.v4}/24`, 'dev', 'br0']);
    if (this.underlay === 6 || o.dualUnderlay) sh('ip', ['-n', this.sw, 'addr', 'add', `${this.switchIp.v6}/64`, 'dev', 'br0', 'nodad']);
    sh('ip', ['-n', this.sw, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= o.hosts; i++) this.addHost(i);
  }

  addHost(i: number): Host {
    const ns = this.sb.netns(`h${i}`);
    sh('ip', ['-n', this.sw, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'u0', 'netns', ns]);
    sh('ip', ['-n', this.sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
    const v4 = this.underlay === 4 || this.o.dualUnderlay;
    const v6 = this.underlay === 6 || this.o.dualUnderlay;
    if (v4) sh('ip', ['-n', ns, 'addr', 'add', `10.77.0.${i}/24`, 'dev', 'u0']);
    if (v6) sh('ip', ['-n', ns, 'addr', 'add', `fd00:77::${i}/64`, 'dev', 'u0', 'nodad']);
    sh('ip', ['-n', ns, 'link', 'set', 'u0', 'up']);
    if (this.underlay === 6) sh('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', this.switchIp.v6, 'dev', 'u0']);
    else sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', this.switchIp.v4, 'dev', 'u0']);
    const h: Host = { name: `host${i}`, ns, ip: this.underlay === 6 ? `fd00:77::${i}` : `10.77.0.${i}`, log: '' };
    this.hosts.push(h);
    return h;
  }

  storeArgs(): string[] {
    return this.o.store === 'etcd' ? ['--etcd', this.etcd!.endpoint] : ['--store-dir', this.storeDir];
  }

  async startEtcd(): Promise<void> {
    this.etcd = await startEtcd({ netns: this.sw, listenIp: this.underlay === 6 ? this.switchIp.v6 : this.switchIp.v4 });
  }

  stateFile(h: Host): string {
    const ino = fs.statSync(this.sb.nsPath(h.ns)).ino;
    return path.join(this.runDir, this.net, `agent-${ino}.json`);
  }

  state(h: Host): AgentState | undefined {
    try { return JSON.parse(fs.readFileSync(this.stateFile(h), 'utf8')); } catch { return undefined; }
  }

  agentArgs(h: Host): string[] {
    return [
      'agent', '--network', this.net, '--cidr', this.cidr, ...(this.o.ipv6Cidr ? ['--ipv6-cidr', this.o.ipv6Cidr] : []), ...this.storeArgs(),
      ...(this.o.autoUnderlay ? [] : ['--underlay-ip', h.ip]), '--host-id', h.name, '--lease-ttl', String(this.o.leaseTtl ?? 2),
      '--run-dir', this.runDir, '--reconcile-ms', '2000', '--heartbeat-ms', '250',
    ];
  }

  startAgent(h: Host): void {
    const p = spawn('ip', ['netns', 'exec', h.ns, this.bin, ...this.agentArgs(h)], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (c: Buffer) => { h.log += c.toString(); });
    h.agent = p;
  }

  async waitReady(h: Host): Promise<AgentState> {
    const pid = h.agent!.pid;
    return waitFor(() => `the agent of ${h.name} to be ready (log: ${h.log})`, 20000, () => {
      const st = this.state(h);
      return st && st.pid === pid && st.leaseOk ? st : undefined;
    });
  }

  async stopAgent(h: Host, sig: NodeJS.Signals): Promise<void> {
    const p = h.agent;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(sig);
    await exited;
  }

  /** `vxlan-overlay leave` on a host. */
  leave(h: Host): { status: number | null; out: string } {
    const r = spawnSync('ip', ['netns', 'exec', h.ns, this.bin, 'leave', '--network', this.net, ...this.storeArgs(), '--host-id', h.name,
      '--run-dir', this.runDir, '--ipam-data-dir', this.ipamDir(h)], { encoding: 'utf8' });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  }

  ipamDir(h: Host): string {
    return path.join(this.runDir, `ipam-${h.name}`);
  }

  conf(h: Host): Record<string, unknown> {
    return { cniVersion: '1.1.0', name: this.net, type: 'vxlan-overlay', runDir: this.runDir, ipam: { dataDir: this.ipamDir(h) } };
  }

  plugin(h: Host, cmd: string, id: string, netns: string, conf = this.conf(h), args?: string): { status: number | null; json?: any; out: string } {
    return execCni(h.ns, this.bin, { command: cmd, containerId: id, netns, path: '/nonexistent', args }, conf);
  }

  containerId(suffix: string): string {
    return `${this.sb.tag}-${suffix}`;
  }

  addContainer(h: Host, suffix: string): Ctr {
    const ns = this.sb.netns(suffix);
    const id = this.containerId(suffix);
    const r = this.plugin(h, 'ADD', id, this.sb.nsPath(ns));
    if (r.status !== 0) throw new Error(`ADD on ${h.name} failed: ${r.out}`);
    const addr = (family: 4 | 6): string | undefined => r.json.ips.map((i: { address: string }) => i.address.split('/')[0]).find((a: string) => a.includes(':') === (family === 6));
    return { ns, id, ip: addr(4)!, ip6: addr(6), result: r.json };
  }

  delContainer(h: Host, c: Ctr): void {
    const r = this.plugin(h, 'DEL', c.id, this.sb.nsPath(c.ns));
    if (r.status !== 0) throw new Error(`DEL on ${h.name} failed: ${r.out}`);
  }

  ping(fromNs: string, ip: string, extra: string[] = []): boolean {
    return spawnSync('ip', ['netns', 'exec', fromNs, 'ping', '-c', '1', '-W', '1', ...extra, ip], { encoding: 'utf8' }).status === 0;
  }

  /** Ping until it answers (the first packets of a new path may meet a neighbour entry being written), bounded. */
  async pingSoon(fromNs: string, ip: string, ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (this.ping(fromNs, ip)) return true;
      await sleep(100);
    }
    return false;
  }

  /**
   * A TCP round trip: a one-shot server in `serverNs` on [addr]:port answers
   * with what it read, reversed; the client in `clientNs` sends a token.
   * Returns what the client got back.
   */
  async tcpEcho(clientNs: string, serverNs: string, addr: string, port: number): Promise<string> {
    const server = `const s=require('net').createServer(c=>c.on('data',d=>{c.end(d.toString().split('').reverse().join(''));s.close();}));s.listen(${port},'${addr}',()=>console.log('up'));setTimeout(()=>process.exit(2),15000);`;
    const srv = spawn('ip', ['netns', 'exec', serverNs, process.execPath, '-e', server], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
    try {
      await new Promise<void>((resolve, reject) => {
        srv.stdout!.once('data', () => resolve());
        srv.once('exit', (code) => reject(new Error(`TCP server on [${addr}]:${port} exited (${code})`)));
      });
      const client = `const c=require('net').connect(${port},'${addr}',()=>c.write('overlay-tcp'));let b='';c.on('data',d=>b+=d);c.on('end',()=>{console.log(b);process.exit(0)});c.on('error',e=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(3),10000);`;
      const r = spawnSync('ip', ['netns', 'exec', clientNs, process.execPath, '-e', client], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 15000 });
      return r.stdout.trim() || `(no answer: ${r.stderr.trim()})`;
    } finally {
      srv.kill('SIGKILL');
    }
  }

  /** The peer entries on a host's VXLAN device, both families, as text ("ip mac", "mac dst", "dst via gw"). */
  peers(h: Host, dev = 'ovx1'): PeerView {
    const j = (args: string[]): any[] => {
      const out = spawnSync('ip', ['netns', 'exec', h.ns, ...args], { encoding: 'utf8' }).stdout.trim();
      return out ? JSON.parse(out) : [];
    };
    const neigh = [...j(['ip', '-j', '-4', 'neigh', 'show', 'dev', dev, 'nud', 'permanent']), ...j(['ip', '-j', '-6', 'neigh', 'show', 'dev', dev, 'nud', 'permanent'])];
    const routes = [...j(['ip', '-j', '-4', 'route', 'show', 'dev', dev]), ...j(['ip', '-j', '-6', 'route', 'show', 'dev', dev])];
    return {
      neigh: neigh.map((n) => `${n.dst} ${n.lladdr}`).sort(),
      fdb: j(['bridge', '-j', 'fdb', 'show', 'dev', dev]).filter((f) => f.dst).map((f) => `${f.mac} ${f.dst}`).sort(),
      routes: routes.filter((r) => r.gateway).map((r) => `${r.dst} via ${r.gateway}`).sort(),
    };
  }

  /** What a host must hold for the given peers (their underlay address and subnets). */
  static expected(peers: Array<{ ip: string; subnet: string; subnet6?: string }>): PeerView {
    const mac = (subnet: string): string => `0a:76:${subnet.split('/')[0].split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join(':')}`;
    const vtep = (subnet: string): string => subnet.split('/')[0];
    return {
      neigh: peers.flatMap((p) => [`${vtep(p.subnet)} ${mac(p.subnet)}`, ...(p.subnet6 ? [`${vtep(p.subnet6)} ${mac(p.subnet)}`] : [])]).sort(),
      fdb: peers.map((p) => `${mac(p.subnet)} ${p.ip}`).sort(),
      routes: peers.flatMap((p) => [`${p.subnet} via ${vtep(p.subnet)}`, ...(p.subnet6 ? [`${p.subnet6} via ${vtep(p.subnet6)}`] : [])]).sort(),
    };
  }

  /** The lines of a host's addresses, routes (every table) and neighbours that name an address of one of the subnets. */
  traces(h: Host, subnets: string[]): string[] {
    const lines = [
      ['-4', 'addr', 'show'], ['-6', 'addr', 'show'], ['-4', 'route', 'show', 'table', 'all'], ['-6', 'route', 'show', 'table', 'all'], ['neigh', 'show'],
    ].flatMap((args) => sh('ip', ['-n', h.ns, ...args]).split('\n'));
    // An address or a prefix inside a subnet counts; a wider prefix around it (the cluster CIDR's route) does not.
    const inSubnet = (token: string): boolean => subnets.some((s) => {
      const [ip, len] = token.split('/');
      return containsText(s, ip) && (len === undefined || Number(len) >= Number(s.split('/')[1]));
    });
    return lines.filter((l) => l.split(/\s+/).some(inSubnet));
  }

  async cleanup(): Promise<void> {
    for (const h of this.hosts) await this.stopAgent(h, 'SIGKILL').catch(() => undefined);
    await this.etcd?.stop().catch(() => undefined);
    this.sb.cleanup();
  }
}
