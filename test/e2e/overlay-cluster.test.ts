// A small cluster on one machine: a "switch" namespace whose bridge is the
// underlay, three "host" namespaces on it (10.77.0.N/24) each running the
// built `vxlan-overlay agent`, and containers in their own namespaces added
// by the built plugin run inside their host. Real traffic, real kernel, and a
// real etcd listening on the underlay inside the switch namespace.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { EtcdServer, etcdAvailable, startEtcd } from '../helpers/etcd';
import { DIST_BIN, Sandbox, sh } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';

const BUILT = path.join(DIST_BIN, 'vxlan-overlay');
const NET = 'ovt';
const CIDR = '10.244.0.0/16';
const TTL = 2;
/** Bounds from the issue (1 s after SIGTERM, TTL + 1 s after SIGKILL) plus slack for a loaded 2-core machine; bench measures the real numbers. */
const SLACK_MS = 1500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, ms: number, fn: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

interface Host {
  name: string;
  ns: string;
  ip: string;
  agent?: ChildProcess;
  log: string;
}

interface PeerView {
  neigh: string[];
  fdb: string[];
  routes: string[];
}

class Cluster {
  readonly sb: Sandbox;
  readonly sw: string;
  readonly hosts: Host[] = [];
  readonly runDir: string;
  readonly storeDir: string;
  readonly bin: string;
  etcd?: EtcdServer;
  private readonly containers: Array<{ host: Host; id: string; ns: string }> = [];

  constructor(prefix: string, n: number, readonly store: 'file' | 'etcd') {
    this.sb = new Sandbox(prefix);
    this.runDir = this.sb.tmpdir('run');
    this.storeDir = path.join(this.sb.tmpdir('store'), 'store');
    this.bin = BUILT;
    if (store === 'etcd') {
      // The executable alone in an empty directory: etcd3's .proto files travel inside it (scripts/build.js).
      const dir = this.sb.tmpdir('bin');
      this.bin = path.join(dir, 'vxlan-overlay');
      fs.copyFileSync(BUILT, this.bin);
      fs.chmodSync(this.bin, 0o755);
    }
    this.sw = this.sb.netns('sw');
    sh('ip', ['-n', this.sw, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', this.sw, 'addr', 'add', '10.77.0.254/24', 'dev', 'br0']);
    sh('ip', ['-n', this.sw, 'link', 'set', 'br0', 'up']);
    for (let i = 1; i <= n; i++) this.addHost(i);
  }

  addHost(i: number): Host {
    const ns = this.sb.netns(`h${i}`);
    sh('ip', ['-n', this.sw, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'u0', 'netns', ns]);
    sh('ip', ['-n', this.sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `10.77.0.${i}/24`, 'dev', 'u0']);
    sh('ip', ['-n', ns, 'link', 'set', 'u0', 'up']);
    const h: Host = { name: `host${i}`, ns, ip: `10.77.0.${i}`, log: '' };
    this.hosts.push(h);
    return h;
  }

  storeArgs(): string[] {
    return this.store === 'etcd' ? ['--etcd', this.etcd!.endpoint] : ['--store-dir', this.storeDir];
  }

  async startEtcd(): Promise<void> {
    this.etcd = await startEtcd({ netns: this.sw, listenIp: '10.77.0.254' });
  }

  stateFile(h: Host): string {
    const ino = fs.statSync(this.sb.nsPath(h.ns)).ino;
    return path.join(this.runDir, NET, `agent-${ino}.json`);
  }

  state(h: Host): { subnet: string; pid: number; leaseOk: boolean; mtu: number } | undefined {
    try { return JSON.parse(fs.readFileSync(this.stateFile(h), 'utf8')); } catch { return undefined; }
  }

  startAgent(h: Host): void {
    const args = [
      'netns', 'exec', h.ns, this.bin, 'agent', '--network', NET, '--cidr', CIDR, ...this.storeArgs(),
      '--underlay-ip', h.ip, '--host-id', h.name, '--lease-ttl', String(TTL), '--run-dir', this.runDir,
      '--reconcile-ms', '2000', '--heartbeat-ms', '250',
    ];
    const p = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (c: Buffer) => { h.log += c.toString(); });
    h.agent = p;
  }

  async waitReady(h: Host): Promise<string> {
    const pid = h.agent!.pid;
    const s = await waitFor(`the agent of ${h.name} to be ready (log: ${h.log})`, 20000, () => {
      const st = this.state(h);
      return st && st.pid === pid && st.leaseOk ? st : undefined;
    });
    return s.subnet;
  }

  async stopAgent(h: Host, sig: NodeJS.Signals): Promise<void> {
    const p = h.agent;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(sig);
    await exited;
  }

  conf(h: Host): Record<string, unknown> {
    return { cniVersion: '1.1.0', name: NET, type: 'vxlan-overlay', runDir: this.runDir, ipam: { dataDir: path.join(this.runDir, `ipam-${h.name}`) } };
  }

  plugin(h: Host, cmd: string, id: string, netns: string, conf = this.conf(h)): { status: number | null; json?: any; out: string } {
    const env = { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' };
    const r = spawnSync('ip', ['netns', 'exec', h.ns, this.bin], { input: JSON.stringify(conf), env, encoding: 'utf8' });
    let json;
    try { json = r.stdout ? JSON.parse(r.stdout) : undefined; } catch { /* not JSON */ }
    return { status: r.status, json, out: `${r.stdout}${r.stderr}` };
  }

  addContainer(h: Host, suffix: string): { ns: string; ip: string; result: any } {
    const ns = this.sb.netns(suffix);
    const id = `${this.sb.tag}-${suffix}`;
    const r = this.plugin(h, 'ADD', id, this.sb.nsPath(ns));
    if (r.status !== 0) throw new Error(`ADD on ${h.name} failed: ${r.out}`);
    this.containers.push({ host: h, id, ns });
    return { ns, ip: r.json.ips[0].address.split('/')[0], result: r.json };
  }

  ping(fromNs: string, ip: string, extra: string[] = []): boolean {
    return spawnSync('ip', ['netns', 'exec', fromNs, 'ping', '-c', '1', '-W', '1', ...extra, ip], { encoding: 'utf8' }).status === 0;
  }

  /** The peer entries on a host's VXLAN device, as text ("ip mac", "mac dst", "dst via gw"). */
  peers(h: Host): PeerView {
    const j = (args: string[]): any[] => {
      const out = spawnSync('ip', ['netns', 'exec', h.ns, ...args], { encoding: 'utf8' }).stdout.trim();
      return out ? JSON.parse(out) : [];
    };
    return {
      neigh: j(['ip', '-j', '-4', 'neigh', 'show', 'dev', 'ovx1', 'nud', 'permanent']).map((n) => `${n.dst} ${n.lladdr}`).sort(),
      fdb: j(['bridge', '-j', 'fdb', 'show', 'dev', 'ovx1']).filter((f) => f.dst).map((f) => `${f.mac} ${f.dst}`).sort(),
      routes: j(['ip', '-j', '-4', 'route', 'show', 'dev', 'ovx1']).filter((r) => r.gateway).map((r) => `${r.dst} via ${r.gateway}`).sort(),
    };
  }

  /** What a host must hold for the given peers (subnets by host). */
  static expected(peers: Array<{ ip: string; subnet: string }>): PeerView {
    const mac = (subnet: string): string => `0a:76:${subnet.split('/')[0].split('.').map((b) => Number(b).toString(16).padStart(2, '0')).join(':')}`;
    const vtep = (subnet: string): string => subnet.split('/')[0];
    return {
      neigh: peers.map((p) => `${vtep(p.subnet)} ${mac(p.subnet)}`).sort(),
      fdb: peers.map((p) => `${mac(p.subnet)} ${p.ip}`).sort(),
      routes: peers.map((p) => `${p.subnet} via ${vtep(p.subnet)}`).sort(),
    };
  }

  async cleanup(): Promise<void> {
    for (const h of this.hosts) await this.stopAgent(h, 'SIGKILL').catch(() => undefined);
    await this.etcd?.stop().catch(() => undefined);
    this.sb.cleanup();
  }
}

function expectedFor(c: Cluster, self: Host, subnets: Map<Host, string>, without: Host[] = []): PeerView {
  return Cluster.expected(c.hosts.filter((h) => h !== self && !without.includes(h) && subnets.has(h)).map((h) => ({ ip: h.ip, subnet: subnets.get(h)! })));
}

function scenarios(store: 'file' | 'etcd'): void {
  let c: Cluster;
  const subnets = new Map<Host, string>();
  const ctr = new Map<Host, { ns: string; ip: string; result: any }>();

  beforeAll(async () => {
    ensureBuilt('vxlan-overlay');
    c = new Cluster(store === 'file' ? 'ovf' : 'ove', 3, store);
    if (store === 'etcd') await c.startEtcd();
    // All three agents start at once: they race for subnets.
    for (const h of c.hosts) c.startAgent(h);
    for (const h of c.hosts) subnets.set(h, await c.waitReady(h));
    c.hosts.forEach((h, i) => ctr.set(h, c.addContainer(h, `c${i + 1}`)));
  }, 90000);

  afterAll(async () => {
    await c?.cleanup();
  });

  const peersSettled = async (without: Host[] = [], ms = 5000): Promise<void> => {
    for (const h of c.hosts.filter((x) => !without.includes(x))) {
      const want = expectedFor(c, h, subnets, without);
      await waitFor(`${h.name} to hold exactly ${JSON.stringify(want)} (has ${JSON.stringify(c.peers(h))})`, ms, () => JSON.stringify(c.peers(h)) === JSON.stringify(want));
    }
  };

  it('gives hosts that raced for subnets three different ones, inside the cluster CIDR', () => {
    const all = [...subnets.values()];
    expect(new Set(all).size).toBe(3);
    for (const s of all) expect(s).toMatch(/^10\.244\.\d+\.0\/24$/);
  });

  it('lets containers on three hosts ping each other and their own gateway', async () => {
    await peersSettled();
    for (const [h, a] of ctr) {
      const gw = a.result.ips[0].gateway;
      expect(c.ping(a.ns, gw)).toBe(true);
      for (const [h2, b] of ctr) if (h2 !== h) expect([h.name, h2.name, c.ping(a.ns, b.ip)]).toEqual([h.name, h2.name, true]);
    }
  });

  it('programs exactly one neighbour, one FDB entry and one route per peer', async () => {
    await peersSettled();
    for (const h of c.hosts) expect(c.peers(h)).toEqual(expectedFor(c, h, subnets));
  });

  it('uses the underlay MTU minus 50 everywhere, and a full-size DF ping passes', () => {
    const [h1, h2] = c.hosts;
    const a = ctr.get(h1)!;
    const mtu = 1500 - 50;
    expect(a.result.interfaces.map((i: { mtu: number }) => i.mtu)).toEqual([mtu, mtu, mtu]);
    expect(c.state(h1)!.mtu).toBe(mtu);
    const linkMtu = (ns: string, dev: string): number => JSON.parse(sh('ip', ['-n', ns, '-j', 'link', 'show', dev]))[0].mtu;
    expect(linkMtu(h1.ns, 'ovx1')).toBe(mtu);
    expect(linkMtu(h1.ns, 'ovbr1')).toBe(mtu);
    expect(linkMtu(a.ns, 'eth0')).toBe(mtu);
    expect(c.ping(a.ns, ctr.get(h2)!.ip, ['-M', 'do', '-s', String(mtu - 28)])).toBe(true);
    expect(c.ping(a.ns, ctr.get(h2)!.ip, ['-M', 'do', '-s', String(mtu - 27)])).toBe(false);
  });

  it('SIGTERM: every peer drops the host at once; a restarted agent gets its subnet back', async () => {
    const h3 = c.hosts[2];
    await peersSettled();
    await c.stopAgent(h3, 'SIGTERM');
    expect(c.state(h3)).toBeUndefined();
    await peersSettled([h3], 1000 + SLACK_MS);
    // The CNI plugin refuses ADD while the agent is down, naming it.
    const r = c.plugin(h3, 'ADD', 'refused', c.sb.nsPath(ctr.get(h3)!.ns));
    expect(r.status).not.toBe(0);
    expect(r.json).toMatchObject({ code: 11 });
    expect(r.json.msg).toMatch(/vxlan-overlay agent/);
    expect(c.plugin(h3, 'STATUS', '', '').json).toMatchObject({ code: 50 });
    c.startAgent(h3);
    expect(await c.waitReady(h3)).toBe(subnets.get(h3));
    await peersSettled();
    expect(c.ping(ctr.get(c.hosts[0])!.ns, ctr.get(h3)!.ip)).toBe(true);
  }, 30000);

  it('SIGKILL: peers drop the host when its lease expires; restarted, it gets its subnet back', async () => {
    const h2 = c.hosts[1];
    await c.stopAgent(h2, 'SIGKILL');
    await peersSettled([h2], TTL * 1000 + 1000 + SLACK_MS);
    c.startAgent(h2);
    expect(await c.waitReady(h2)).toBe(subnets.get(h2));
    await peersSettled();
    expect(c.ping(ctr.get(h2)!.ns, ctr.get(c.hosts[2])!.ip)).toBe(true);
  }, 30000);

  it('repairs a VXLAN device deleted by hand', async () => {
    const h1 = c.hosts[0];
    sh('ip', ['-n', h1.ns, 'link', 'del', 'ovx1']);
    await peersSettled([], 5000);
    expect(c.ping(ctr.get(h1)!.ns, ctr.get(c.hosts[1])!.ip)).toBe(true);
  }, 30000);

  if (store === 'etcd') {
    it('keeps traffic flowing while etcd is down, and recovers when it returns', async () => {
      const [h1, h2] = c.hosts;
      await peersSettled();
      process.kill(c.etcd!.pid, 'SIGSTOP');
      try {
        // Longer than the lease TTL: the agents cannot renew, but nothing is torn down.
        for (let i = 0; i < 4; i++) {
          expect(c.ping(ctr.get(h1)!.ns, ctr.get(h2)!.ip)).toBe(true);
          await sleep(800);
        }
        expect(c.peers(h1)).toEqual(expectedFor(c, h1, subnets));
      } finally {
        process.kill(c.etcd!.pid, 'SIGCONT');
      }
      for (const h of c.hosts) await waitFor(`${h.name} to renew its lease`, 20000, () => c.state(h)?.leaseOk);
      await peersSettled([], 15000);
      expect(c.ping(ctr.get(h2)!.ns, ctr.get(c.hosts[2])!.ip)).toBe(true);
    }, 60000);
  }

  it('leave gives the subnet back at once and peers drop the host', async () => {
    const h3 = c.hosts[2];
    const r = spawnSync('ip', ['netns', 'exec', h3.ns, c.bin, 'leave', '--network', NET, ...c.storeArgs(), '--underlay-ip', h3.ip, '--host-id', h3.name, '--run-dir', c.runDir], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`released ${subnets.get(h3)}`);
    expect(c.state(h3)).toBeUndefined();
    await peersSettled([h3], 1000 + SLACK_MS);
    expect(spawnSync('ip', ['-n', h3.ns, 'link', 'show', 'ovx1']).status).not.toBe(0);
  }, 30000);

  it('CHECK passes on a good attachment and names what is missing on a broken one', () => {
    const h1 = c.hosts[0];
    const a = ctr.get(h1)!;
    const conf = { ...c.conf(h1), prevResult: a.result };
    const id = `${c.sb.tag}-c1`;
    expect(c.plugin(h1, 'CHECK', id, c.sb.nsPath(a.ns), conf).status).toBe(0);
    sh('ip', ['-n', a.ns, 'route', 'del', CIDR]);
    const r = c.plugin(h1, 'CHECK', id, c.sb.nsPath(a.ns), conf);
    sh('ip', ['-n', a.ns, 'route', 'add', CIDR, 'via', a.result.ips[0].gateway]);
    expect(r.status).not.toBe(0);
    expect(r.json.msg).toContain(`route ${CIDR} via ${a.result.ips[0].gateway} is missing`);
  });

  it('DEL is idempotent and needs neither the agent nor the netns', () => {
    const h3 = c.hosts[2];
    const id = `${c.sb.tag}-c3`;
    expect(c.plugin(h3, 'DEL', id, c.sb.nsPath(ctr.get(h3)!.ns)).status).toBe(0);
    expect(c.plugin(h3, 'DEL', id, '').status).toBe(0);
    expect(spawnSync('ip', ['-n', ctr.get(h3)!.ns, 'link', 'show', 'eth0']).status).not.toBe(0);
  });
}

describe('vxlan-overlay cluster, file store', () => {
  scenarios('file');
});

(etcdAvailable() ? describe : describe.skip)('vxlan-overlay cluster, etcd store', () => {
  scenarios('etcd');
});
