// Container-name DNS ("nameResolution") with the built bridge plugin in a
// throwaway "host" namespace. Real queries with busybox nslookup from the
// containers to the gateway; the "host's resolver" is a dnsmasq the test runs
// in an "outside" namespace, named in /etc/netns/<host>/resolv.conf (which
// `ip netns exec` mounts over /etc/resolv.conf for the plugin and its daemon).
// Every dnsmasq started here (by the test or by the plugin) is killed in cleanup.
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { alive, DNSMASQ, dnsmasqPids, lookup, lookupUntil, sleepSync as sleep } from '../helpers/dns';
import { ensureBuilt } from '../helpers/build';
import { execCni } from '../helpers/cni';

const BIN = path.join(DIST_BIN, 'bridge');

interface Net { name: string; bridge: string; subnet: string; gw: string; nameResolution?: Record<string, unknown> }
interface Ctr { ns: string; ip: string; result: any }

class Env {
  readonly sb = new Sandbox('bd');
  readonly host = this.sb.netns('h');
  readonly outside = this.sb.netns('o');
  readonly state = this.sb.tmpdir('state');
  readonly ipamDir = this.sb.tmpdir('ipam');
  readonly runDir = this.sb.tmpdir('dns');
  readonly resolverDir = this.sb.tmpdir('res');

  constructor() {
    // Kill every daemon whose command line names one of our dirs, also when a test failed half-way.
    this.sb.onCleanup(() => {
      for (const pid of [...dnsmasqPids(this.runDir), ...dnsmasqPids(this.resolverDir)]) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    });
    fs.chmodSync(this.runDir, 0o755); // dnsmasq runs as nobody and reads hosts.d below it
    // host <-> outside: 10.250.0.1/30 - 10.250.0.2/30; outside routes the container subnets back via the host.
    sh('ip', ['-n', this.host, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'dn0', 'netns', this.outside]);
    sh('ip', ['-n', this.host, 'addr', 'add', '10.250.0.1/30', 'dev', 'up0']);
    sh('ip', ['-n', this.outside, 'addr', 'add', '10.250.0.2/30', 'dev', 'dn0']);
    sh('ip', ['-n', this.host, 'link', 'set', 'up0', 'up']);
    sh('ip', ['-n', this.outside, 'link', 'set', 'dn0', 'up']);
    sh('ip', ['-n', this.outside, 'route', 'add', '10.253.0.0/16', 'via', '10.250.0.1']);
    // The host's resolver (port 53) and another one (port 5353) for "upstream", with different answers.
    this.resolver(53, '10.9.8.7');
    this.resolver(5353, '10.9.8.8');
    const etc = `/etc/netns/${this.host}`;
    fs.mkdirSync(etc, { recursive: true });
    this.sb.onCleanup(() => fs.rmSync(etc, { recursive: true, force: true }));
    fs.writeFileSync(path.join(etc, 'resolv.conf'), 'nameserver 10.250.0.2\n');
  }

  private resolver(port: number, answer: string): void {
    const r = this.sb.inNs(this.outside, DNSMASQ, [
      `--pid-file=${path.join(this.resolverDir, `${port}.pid`)}`, '--bind-interfaces', '--listen-address=10.250.0.2', `--port=${port}`,
      '--no-resolv', '--no-hosts', `--address=/example.test/${answer}`,
    ]);
    if (r.status !== 0) throw new Error(`resolver on port ${port}: ${r.stderr}`);
  }

  conf(n: Net): Record<string, unknown> {
    return {
      cniVersion: '1.1.0', name: n.name, type: 'bridge', bridge: n.bridge, isDefaultGateway: true, ipMasq: true, stateDir: this.state,
      nameResolution: { runDir: this.runDir, ...n.nameResolution },
      ipam: { type: 'host-local', dataDir: this.ipamDir, subnet: n.subnet },
    };
  }

  run(cmd: string, conf: Record<string, unknown>, id: string, netns = '', args = ''): { status: number | null; stdout: string; stderr: string } {
    return execCni(this.host, BIN, { command: cmd, containerId: id, netns, path: '/usr/lib/cni', args }, conf);
  }

  add(n: Net, id: string, o: { aliases?: unknown; args?: string } = {}): Ctr {
    const ns = this.sb.netns(id);
    const conf = { ...this.conf(n), ...(o.aliases ? { runtimeConfig: { aliases: o.aliases } } : {}) };
    const r = this.run('ADD', conf, id, this.sb.nsPath(ns), o.args);
    if (r.status !== 0) throw new Error(`ADD ${id} failed: ${r.stdout} ${r.stderr}`);
    const result = JSON.parse(r.stdout);
    return { ns, ip: result.ips[0].address.split('/')[0], result };
  }

  del(n: Net, id: string, c?: Ctr): void {
    const r = this.run('DEL', this.conf(n), id, c ? this.sb.nsPath(c.ns) : '');
    if (r.status !== 0) throw new Error(`DEL ${id} failed: ${r.stdout} ${r.stderr}`);
  }

  lookup(ns: string, name: string, server: string): string[] | null {
    return lookup(this.sb, ns, name, server);
  }

  lookupUntil(ns: string, name: string, server: string, want: (a: string[] | null) => boolean): string[] | null {
    return lookupUntil(this.sb, ns, name, server, want);
  }

  daemons(network: string): number[] {
    return dnsmasqPids(path.join(this.runDir, network, 'dnsmasq.conf')).filter(alive);
  }

  ruleset(): string {
    return shTry('ip', ['netns', 'exec', this.host, 'nft', 'list', 'ruleset']).stdout;
  }
}

jest.setTimeout(180000);
beforeAll(() => ensureBuilt('bridge'), 180000);

describe('bridge container-name DNS (e2e)', () => {
  let env: Env;
  beforeEach(() => { env = new Env(); });
  afterEach(() => env.sb.cleanup());

  const N1: Net = { name: 'dns-n1', bridge: 'bd1', subnet: '10.253.1.0/24', gw: '10.253.1.1' };
  const N2: Net = { name: 'dns-n2', bridge: 'bd2', subnet: '10.253.2.0/24', gw: '10.253.2.1' };

  it('names resolve in their own network only; DEL removes them; the daemon stops with the last DEL', () => {
    const c1 = env.add(N1, 'c1', { aliases: { 'dns-n1': ['alpha', 'web'], 'other-net': ['nope'] } });
    const c2 = env.add(N1, 'c2', { args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=beta' });
    const c3 = env.add(N2, 'c3', { aliases: ['gamma'] });
    expect(c1.result.dns).toEqual({ nameservers: ['10.253.1.1'], search: ['dns-n1.cni.internal'] });
    expect(c3.result.dns).toEqual({ nameservers: ['10.253.2.1'], search: ['dns-n2.cni.internal'] });
    expect(env.daemons('dns-n1')).toHaveLength(1);
    expect(env.daemons('dns-n2')).toHaveLength(1);

    expect(env.lookupUntil(c1.ns, 'beta', N1.gw, (a) => a !== null)).toEqual([c2.ip]);
    expect(env.lookup(c2.ns, 'alpha.dns-n1.cni.internal', N1.gw)).toEqual([c1.ip]);
    expect(env.lookup(c2.ns, 'web', N1.gw)).toEqual([c1.ip]);
    expect(env.lookup(c3.ns, 'gamma', N2.gw)).toEqual([c3.ip]);
    // Another network's names: unknown here, and its server does not answer us.
    expect(env.lookup(c1.ns, 'gamma', N1.gw)).toBeNull();
    expect(env.lookup(c1.ns, 'nope', N1.gw)).toBeNull();
    expect(env.lookup(c3.ns, 'alpha', N2.gw)).toBeNull();
    expect(env.lookup(c3.ns, 'alpha', N1.gw)).toBeNull();

    env.del(N1, 'c2', c2);
    expect(env.lookupUntil(c1.ns, 'beta', N1.gw, (a) => a === null)).toBeNull();
    expect(env.lookup(c1.ns, 'alpha', N1.gw)).toEqual([c1.ip]);
    expect(env.daemons('dns-n1')).toHaveLength(1);

    env.del(N1, 'c1', c1);
    expect(env.daemons('dns-n1')).toEqual([]);
    expect(fs.existsSync(path.join(env.runDir, 'dns-n1'))).toBe(false);
    expect(env.ruleset()).not.toContain('10.253.1.1');
    expect(env.daemons('dns-n2')).toHaveLength(1);
    env.del(N1, 'c1', c1); // DEL again: idempotent

    env.del(N2, 'c3'); // without a netns
    expect(env.daemons('dns-n2')).toEqual([]);
    expect(env.ruleset()).not.toContain('10.253.2.1');
  });

  it('forwards other names: to the host resolv.conf resolver by default, to "upstream" when set', () => {
    const c1 = env.add(N1, 'c1', { aliases: ['alpha'] });
    const N3: Net = { name: 'dns-n3', bridge: 'bd3', subnet: '10.253.3.0/24', gw: '10.253.3.1', nameResolution: { upstream: ['10.250.0.2#5353'], domain: 'corp.test' } };
    const c3 = env.add(N3, 'c3', { aliases: ['delta'] });
    expect(c3.result.dns.search).toEqual(['corp.test']);
    expect(env.lookup(c1.ns, 'www.example.test', N1.gw)).toEqual(['10.9.8.7']);
    expect(env.lookup(c3.ns, 'www.example.test', N3.gw)).toEqual(['10.9.8.8']);
    expect(env.lookup(c3.ns, 'delta.corp.test', N3.gw)).toEqual([c3.ip]);
    // A name in the network's own domain that nobody has is not forwarded.
    expect(env.lookup(c3.ns, 'nobody.corp.test', N3.gw)).toBeNull();
  });

  it('a killed daemon is restarted by the next ADD, with every name; CHECK reports it dead', () => {
    const c1 = env.add(N1, 'c1', { aliases: ['alpha'] });
    const [pid] = env.daemons('dns-n1');
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && alive(pid); i++) sleep(20);
    const check = env.run('CHECK', { ...env.conf(N1), prevResult: c1.result }, 'c1', env.sb.nsPath(c1.ns));
    expect(check.status).not.toBe(0);
    expect(JSON.parse(check.stdout).msg).toContain('DNS service of network "dns-n1" is not running');

    const c2 = env.add(N1, 'c2', { aliases: ['beta'] });
    const now = env.daemons('dns-n1');
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(pid);
    expect(env.lookupUntil(c2.ns, 'alpha', N1.gw, (a) => a !== null)).toEqual([c1.ip]);
    expect(env.lookup(c1.ns, 'beta', N1.gw)).toEqual([c2.ip]);
    expect(env.run('CHECK', { ...env.conf(N1), prevResult: c1.result }, 'c1', env.sb.nsPath(c1.ns)).status).toBe(0);
  });

  it('listens on the gateway address only: no wildcard socket, no answers from outside or on the host\'s other address', () => {
    const c1 = env.add(N1, 'c1', { aliases: ['alpha'] });
    expect(env.lookup(c1.ns, 'alpha', N1.gw)).toEqual([c1.ip]);
    const sockets = sh('ip', ['netns', 'exec', env.host, 'ss', '-H', '-lntup', 'sport', '= :53']);
    const locals = sockets.trim().split('\n').map((l) => l.trim().split(/\s+/)[4]).sort();
    expect(locals).toEqual(['10.253.1.1:53', '10.253.1.1:53']); // udp and tcp
    // From outside: the host's own address, and the gateway routed via the host.
    expect(env.lookup(env.outside, 'alpha', '10.250.0.1')).toBeNull();
    expect(env.lookup(env.outside, 'alpha', N1.gw)).toBeNull();
    // Not even the containers get an answer on the host's other address.
    expect(env.lookup(c1.ns, 'alpha', '10.250.0.1')).toBeNull();
  });

  it('GC drops stale names and stops the daemon when none is left', () => {
    const c1 = env.add(N1, 'c1', { aliases: ['alpha'] });
    env.add(N1, 'c2', { aliases: ['beta'] });
    const gc = env.run('GC', { ...env.conf(N1), 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }, '');
    expect(gc.status).toBe(0);
    expect(env.lookupUntil(c1.ns, 'beta', N1.gw, (a) => a === null)).toBeNull();
    expect(env.lookup(c1.ns, 'alpha', N1.gw)).toEqual([c1.ip]);
    expect(env.run('GC', { ...env.conf(N1), 'cni.dev/valid-attachments': [] }, '').status).toBe(0);
    expect(env.daemons('dns-n1')).toEqual([]);
  });

  it('bad input: invalid alias and nameResolution without a gateway are refused with code 7, nothing left behind', () => {
    const ns = env.sb.netns('x');
    const bad = env.run('ADD', { ...env.conf(N1), runtimeConfig: { aliases: ['no spaces'] } }, 'x', env.sb.nsPath(ns));
    expect(bad.status).not.toBe(0);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('"no spaces"') });
    const noGw = env.run('ADD', { ...env.conf(N1), isDefaultGateway: false }, 'x', env.sb.nsPath(ns));
    expect(JSON.parse(noGw.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('isGateway') });
    expect(env.daemons('dns-n1')).toEqual([]);
    expect(sh('ip', ['-n', ns, '-o', 'link'])).not.toContain('eth0');
  });
});
