// Container-name DNS ("nameResolution") and isolation on vxlan-overlay: one
// throwaway "host" namespace running the built `vxlan-overlay agent` with the
// file store, containers added by the built plugin run inside it, real
// queries with busybox nslookup to the bridge gateway. Names are per host (the
// dnsmasq of this host's overlay bridge). Every agent and dnsmasq started here
// (by the test or by the plugin) is killed in cleanup, also on failure.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { dnsmasqPids, lookup, lookupUntil, sleepSync as sleep } from '../helpers/dns';
import { ensureBuilt } from '../helpers/build';
import { execCni } from '../helpers/cni';

const BIN = path.join(DIST_BIN, 'vxlan-overlay');
const BRIDGE_BIN = path.join(DIST_BIN, 'bridge');
const NET = 'ovdns';
const CIDR = '10.246.0.0/16';

interface Ctr { id: string; ns: string; ip: string; result: any }

class Env {
  readonly sb = new Sandbox('ovd');
  readonly host = this.sb.netns('h');
  readonly runDir = this.sb.tmpdir('run');
  readonly dnsDir = this.sb.tmpdir('dns');
  readonly storeDir = path.join(this.sb.tmpdir('store'), 'store');
  agent?: ChildProcess;
  log = '';

  constructor() {
    this.sb.onCleanup(() => {
      if (this.agent?.pid && this.agent.exitCode === null && this.agent.signalCode === null) {
        try { process.kill(this.agent.pid, 'SIGKILL'); } catch { /* gone */ }
      }
      for (const pid of dnsmasqPids(this.dnsDir)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    });
    fs.chmodSync(this.dnsDir, 0o755); // dnsmasq runs as nobody and reads hosts.d below it
    // The underlay: a veth pair inside the host namespace carries the agent's underlay address.
    sh('ip', ['-n', this.host, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1']);
    sh('ip', ['-n', this.host, 'addr', 'add', '10.78.0.1/24', 'dev', 'u0']);
    sh('ip', ['-n', this.host, 'link', 'set', 'u0', 'up']);
    sh('ip', ['-n', this.host, 'link', 'set', 'u1', 'up']);
  }

  startAgent(): void {
    const p = spawn('ip', [
      'netns', 'exec', this.host, BIN, 'agent', '--network', NET, '--cidr', CIDR, '--store-dir', this.storeDir,
      '--underlay-ip', '10.78.0.1', '--host-id', 'h1', '--lease-ttl', '5', '--run-dir', this.runDir,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (c: Buffer) => { this.log += c.toString(); });
    this.agent = p;
  }

  /** The agent's subnet once its readiness file says so. */
  waitReady(): string {
    const file = path.join(this.runDir, NET, `agent-${fs.statSync(this.sb.nsPath(this.host)).ino}.json`);
    for (let i = 0; i < 400; i++) {
      try {
        const st = JSON.parse(fs.readFileSync(file, 'utf8'));
        if (st.pid === this.agent!.pid && st.leaseOk) return st.subnet;
      } catch { /* not yet */ }
      sleep(50);
    }
    throw new Error(`the agent did not become ready in 20 s (log: ${this.log})`);
  }

  conf(): Record<string, unknown> {
    return {
      cniVersion: '1.1.0', name: NET, type: 'vxlan-overlay', runDir: this.runDir, isolation: true,
      // A dead upstream: nothing here may depend on the real host's resolver.
      nameResolution: { runDir: this.dnsDir, upstream: ['10.78.0.99'] },
      ipam: { dataDir: path.join(this.runDir, 'ipam') },
    };
  }

  run(cmd: string, id: string, netns: string, extra: Record<string, unknown> = {}, args = ''): { status: number | null; json?: any; out: string } {
    return execCni(this.host, BIN, { command: cmd, containerId: id, netns, path: '/nonexistent', args }, { ...this.conf(), ...extra });
  }

  add(suffix: string, aliases: unknown, args = ''): Ctr {
    const ns = this.sb.netns(suffix);
    const id = `${this.sb.tag}-${suffix}`;
    const r = this.run('ADD', id, this.sb.nsPath(ns), { runtimeConfig: { aliases } }, args);
    if (r.status !== 0) throw new Error(`ADD ${suffix} failed: ${r.out}`);
    return { id, ns, ip: r.json.ips[0].address.split('/')[0], result: r.json };
  }

  del(c: Ctr): void {
    const r = this.run('DEL', c.id, this.sb.nsPath(c.ns));
    if (r.status !== 0) throw new Error(`DEL ${c.id} failed: ${r.out}`);
  }

  lookup(ns: string, name: string, server: string): string[] | null {
    return lookup(this.sb, ns, name, server);
  }

  lookupUntil(ns: string, name: string, server: string, want: (a: string[] | null) => boolean): string[] | null {
    return lookupUntil(this.sb, ns, name, server, want);
  }

  /** A container on a bridge-plugin network in the same host namespace. */
  bridgeAdd(suffix: string, n: { name: string; bridge: string; subnet: string; isolation: boolean }): { ns: string; ip: string } {
    const ns = this.sb.netns(suffix);
    const conf = {
      cniVersion: '1.1.0', name: n.name, type: 'bridge', bridge: n.bridge, isDefaultGateway: true, ipMasq: true, isolation: n.isolation,
      stateDir: path.join(this.runDir, 'bridge-state'), ipam: { type: 'host-local', dataDir: path.join(this.runDir, 'bridge-ipam'), subnet: n.subnet },
    };
    const r = execCni(this.host, BRIDGE_BIN, { command: 'ADD', containerId: `${this.sb.tag}-${suffix}`, netns: this.sb.nsPath(ns), path: '/usr/lib/cni' }, conf);
    if (r.status !== 0) throw new Error(`bridge ADD ${suffix} failed: ${r.out}`);
    return { ns, ip: r.json.ips[0].address.split('/')[0] };
  }

  ping(fromNs: string, ip: string): boolean {
    return this.sb.inNs(fromNs, 'ping', ['-c', '1', '-W', '1', ip]).status === 0;
  }

  daemons(): number[] {
    return dnsmasqPids(path.join(this.dnsDir, NET, 'dnsmasq.conf'));
  }

  isolatedBridges(): string {
    return shTry('ip', ['netns', 'exec', this.host, 'nft', 'list', 'set', 'inet', 'node_cni_isolation', 'isolated']).stdout ?? '';
  }
}

jest.setTimeout(60000);

describe('vxlan-overlay container-name DNS and isolation on one host (e2e)', () => {
  let env: Env | undefined;
  beforeAll(() => ensureBuilt('vxlan-overlay'), 180000);
  afterEach(() => env?.sb.cleanup());

  it('containers resolve each other at the gateway; DEL removes the name; the last DEL stops dnsmasq and leaves the isolation group', () => {
    env = new Env();
    const e = env;
    e.startAgent();
    const subnet = e.waitReady();
    const gw = subnet.replace(/\.0\/\d+$/, '.1');

    const c1 = e.add('c1', { [NET]: ['alpha', 'web'], 'other-net': ['nope'] });
    const c2 = e.add('c2', ['beta'], 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=beta-pod');
    expect(c1.result.dns).toEqual({ nameservers: [gw], search: [`${NET}.cni.internal`] });
    expect(e.daemons()).toHaveLength(1);
    expect(e.isolatedBridges()).toContain('"ovbr1"');

    expect(e.lookupUntil(c1.ns, 'beta', gw, (a) => a !== null)).toEqual([c2.ip]);
    expect(e.lookup(c1.ns, 'beta-pod', gw)).toEqual([c2.ip]);
    expect(e.lookup(c2.ns, `alpha.${NET}.cni.internal`, gw)).toEqual([c1.ip]);
    expect(e.lookup(c2.ns, 'web', gw)).toEqual([c1.ip]);
    expect(e.lookup(c2.ns, 'nope', gw)).toBeNull(); // another network's alias
    expect(e.run('CHECK', c1.id, e.sb.nsPath(c1.ns), { prevResult: c1.result }).status).toBe(0);

    e.del(c2);
    expect(e.lookupUntil(c1.ns, 'beta', gw, (a) => a === null)).toBeNull();
    expect(e.lookup(c1.ns, 'alpha', gw)).toEqual([c1.ip]);
    expect(e.daemons()).toHaveLength(1);
    expect(e.isolatedBridges()).toContain('"ovbr1"');

    e.del(c1);
    expect(e.daemons()).toEqual([]);
    expect(fs.existsSync(path.join(e.dnsDir, NET))).toBe(false);
    expect(e.isolatedBridges()).not.toContain('"ovbr1"');
    e.del(c1); // DEL again: idempotent
  });

  it('isolation: no forwarding between the overlay bridge and an isolated bridge network on the same host; a non-isolated one stays reachable', () => {
    ensureBuilt('bridge');
    env = new Env();
    const e = env;
    e.startAgent();
    e.waitReady();
    const c1 = e.add('c1', ['alpha']);
    const iso = e.bridgeAdd('b1', { name: 'iso-web', bridge: 'bisoweb', subnet: '10.247.1.0/24', isolation: true });
    const open = e.bridgeAdd('b2', { name: 'open-web', bridge: 'bopenweb', subnet: '10.247.2.0/24', isolation: false });
    expect(e.ping(c1.ns, open.ip)).toBe(true);
    expect(e.ping(open.ns, c1.ip)).toBe(true);
    expect(e.ping(c1.ns, iso.ip)).toBe(false);
    expect(e.ping(iso.ns, c1.ip)).toBe(false);
  });

  it('refuses a name DNS cannot carry with code 7, naming the plugin and the name, nothing created', () => {
    env = new Env();
    const e = env;
    e.startAgent();
    e.waitReady();
    const ns = e.sb.netns('x');
    const r = e.run('ADD', `${e.sb.tag}-x`, e.sb.nsPath(ns), { runtimeConfig: { aliases: ['no spaces'] } });
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(/^vxlan-overlay: .*"no spaces"/) });
    expect(e.daemons()).toEqual([]);
    expect(sh('ip', ['-n', ns, '-o', 'link'])).not.toContain('eth0');
  });
});
