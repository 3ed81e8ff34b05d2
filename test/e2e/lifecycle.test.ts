// Per-network state comes with a network's first attachment and goes with
// its last (issue #15): for bridge (ipMasq, isolation, nameResolution,
// macspoofchk) + portmap, macvlan and vxlan-overlay, after ADD×3 + DEL×3 and
// after ADD×3 + GC with no valid attachment, the host namespace's
// `nft list ruleset` is exactly what it was before the network was used,
// no file or directory of the network is left and no process. And a
// per-network rule removed by hand between two ADDs is back after the second.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { dnsmasqPids, sleepSync } from '../helpers/dns';
import { execCni } from '../helpers/cni';

jest.setTimeout(180000);
beforeAll(() => ensureBuilt('bridge', 'portmap', 'macvlan', 'vxlan-overlay'), 600000);

interface Run { status: number | null; out: string; json?: any }

/** Every file and directory below `dir`, relative, sorted. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(dir, p) + (e.isDirectory() ? '/' : ''));
      if (e.isDirectory()) walk(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

/** host-local keeps its lock and last_reserved_ip (like the reference, which may share the directory); reservations must be gone. */
function reservations(ipamDir: string): string[] {
  return tree(ipamDir).filter((f) => /(^|\/)\d+\.\d+\.\d+\.\d+$|(^|\/)[0-9a-f:]+:[0-9a-f:]*$/.test(f) || /\.attachments\/./.test(f));
}

class Env {
  readonly sb = new Sandbox('lf');
  readonly host = this.sb.netns('h');
  readonly outside = this.sb.netns('o');
  readonly state = this.sb.tmpdir('state');
  readonly ipam = this.sb.tmpdir('ipam');
  readonly dns = this.sb.tmpdir('dns');
  readonly portmapData = this.sb.tmpdir('pm');
  readonly run_ = this.sb.tmpdir('run');
  readonly net = `${this.sb.tag}n`;
  agent?: ChildProcess;

  constructor() {
    fs.chmodSync(this.dns, 0o755); // dnsmasq runs as nobody and reads hosts.d below it
    this.sb.onCleanup(() => {
      if (this.agent?.pid && this.agent.exitCode === null) { try { process.kill(this.agent.pid, 'SIGKILL'); } catch { /* gone */ } }
      for (const pid of dnsmasqPids(this.dns)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    });
    sh('ip', ['-n', this.host, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'dn0', 'netns', this.outside]);
    sh('ip', ['-n', this.host, 'addr', 'add', '10.250.0.1/30', 'dev', 'up0']);
    sh('ip', ['-n', this.outside, 'addr', 'add', '10.250.0.2/30', 'dev', 'dn0']);
    sh('ip', ['-n', this.host, 'link', 'set', 'up0', 'up']);
    sh('ip', ['-n', this.outside, 'link', 'set', 'dn0', 'up']);
  }

  exec(bin: string, cmd: string, conf: unknown, o: { id?: string; netns?: string } = {}): Run {
    return execCni(this.host, path.join(DIST_BIN, bin), { command: cmd, containerId: o.id, netns: o.netns, ifname: o.id ? 'eth0' : '' }, conf, { timeout: 60000 });
  }

  ok(bin: string, cmd: string, conf: unknown, o: { id?: string; netns?: string } = {}): any {
    const r = this.exec(bin, cmd, conf, o);
    if (r.status !== 0) throw new Error(`${bin} ${cmd} ${o.id ?? ''} failed: ${r.out}`);
    return r.json;
  }

  ruleset(): string {
    return shTry('ip', ['netns', 'exec', this.host, 'nft', 'list', 'ruleset']).stdout;
  }

  /** What must look the same before the network is used and after its last attachment is gone. */
  snapshot(): { ruleset: string; files: Record<string, string[]>; dnsmasq: number[] } {
    return {
      ruleset: this.ruleset(),
      files: { state: tree(this.state), dns: tree(this.dns), portmap: tree(this.portmapData), ipamReservations: reservations(this.ipam) },
      dnsmasq: dnsmasqPids(this.dns),
    };
  }

  ping(ns: string, ip: string): boolean {
    return this.sb.inNs(ns, 'ping', ['-c', '1', '-W', '2', ip]).status === 0;
  }

  // ---- bridge with every per-network feature, and portmap after it --------

  bridgeConf(): Record<string, unknown> {
    return {
      cniVersion: '1.1.0', name: this.net, type: 'bridge', bridge: 'lfbr0', isGateway: true, isDefaultGateway: true, ipMasq: true,
      isolation: true, macspoofchk: true, hairpinMode: true, stateDir: this.state,
      nameResolution: { runDir: this.dns, upstream: ['10.250.0.99'] },
      ipam: { type: 'host-local', dataDir: this.ipam, subnet: '10.251.7.0/24' },
    };
  }

  portmapConf(prevResult: unknown, hostPort: number): Record<string, unknown> {
    return {
      cniVersion: '1.1.0', name: this.net, type: 'portmap', dataDir: this.portmapData, prevResult,
      runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }, { hostPort, containerPort: 5353, protocol: 'udp' }] },
    };
  }

  addBridgeAndPortmap(i: number): { id: string; ns: string; result: any } {
    const ns = this.sb.netns(`c${i}`);
    const id = `${this.sb.tag}-c${i}`;
    const result = this.ok('bridge', 'ADD', { ...this.bridgeConf(), runtimeConfig: { aliases: { [this.net]: [`name${i}`] } } }, { id, netns: this.sb.nsPath(ns) });
    this.ok('portmap', 'ADD', this.portmapConf(result, 8080 + i), { id, netns: this.sb.nsPath(ns) });
    return { id, ns, result };
  }

  delBridgeAndPortmap(c: { id: string; ns: string }): void {
    this.ok('portmap', 'DEL', { cniVersion: '1.1.0', name: this.net, type: 'portmap', dataDir: this.portmapData }, { id: c.id, netns: this.sb.nsPath(c.ns) });
    this.ok('bridge', 'DEL', this.bridgeConf(), { id: c.id, netns: this.sb.nsPath(c.ns) });
  }

  gcBridgeAndPortmap(): void {
    const none = { 'cni.dev/valid-attachments': [] };
    this.ok('portmap', 'GC', { cniVersion: '1.1.0', name: this.net, type: 'portmap', dataDir: this.portmapData, ...none });
    this.ok('bridge', 'GC', { ...this.bridgeConf(), ...none });
  }
}

describe('per-network state lifecycle (e2e)', () => {
  let env: Env;
  beforeEach(() => { env = new Env(); });
  afterEach(() => env.sb.cleanup());

  it('bridge (ipMasq, isolation, nameResolution, macspoofchk) + portmap: ADD×3 then DEL×3 leave the ruleset, files and processes as they were', () => {
    const before = env.snapshot();
    expect(before.ruleset).toBe('');
    const ctrs = [1, 2, 3].map((i) => env.addBridgeAndPortmap(i));
    expect(env.ping(ctrs[0].ns, '10.250.0.2')).toBe(true); // masqueraded out
    const during = env.snapshot();
    for (const t of ['node_cni_masq', 'node_cni_isolation', 'node_cni_dns', 'node_cni_macspoof', 'cni_portmap']) expect(during.ruleset).toContain(` ${t} {`);
    expect(during.dnsmasq).toHaveLength(1);
    // Any order: the last one out takes the network's state along.
    for (const c of [ctrs[1], ctrs[0], ctrs[2]]) env.delBridgeAndPortmap(c);
    expect(env.snapshot()).toEqual(before);
    expect(sh('ip', ['-n', env.host, '-o', 'link', 'show', 'lfbr0'])).toContain('lfbr0'); // only the bridge stays, as in the reference
    // DEL again: idempotent, and nothing comes back.
    env.delBridgeAndPortmap(ctrs[0]);
    expect(env.snapshot()).toEqual(before);
  });

  it('bridge + portmap: ADD×3 then GC with no valid attachment leave the ruleset, files and processes as they were', () => {
    const before = env.snapshot();
    [1, 2, 3].map((i) => env.addBridgeAndPortmap(i));
    env.gcBridgeAndPortmap();
    expect(env.snapshot()).toEqual(before);
    // The network can be used again afterwards.
    const c = env.addBridgeAndPortmap(4);
    expect(env.ping(c.ns, '10.250.0.2')).toBe(true);
    env.delBridgeAndPortmap(c);
    expect(env.snapshot()).toEqual(before);
  });

  it('another network in the same tables keeps them: only the leaving network\'s part goes', () => {
    const other = { ...env.bridgeConf(), name: `${env.net}x`, bridge: 'lfbr1', ipam: { type: 'host-local', dataDir: env.ipam, subnet: '10.251.8.0/24' } };
    const nsX = env.sb.netns('x');
    const rx = env.ok('bridge', 'ADD', other, { id: 'lf-x', netns: env.sb.nsPath(nsX) });
    env.ok('portmap', 'ADD', { ...env.portmapConf(rx, 9090), name: other.name }, { id: 'lf-x', netns: env.sb.nsPath(nsX) });
    const before = env.snapshot();
    const ctrs = [1, 2].map((i) => env.addBridgeAndPortmap(i));
    for (const c of ctrs) env.delBridgeAndPortmap(c);
    expect(env.snapshot()).toEqual(before);
    expect(env.ping(nsX, '10.250.0.2')).toBe(true);
  });

  it('macvlan: ADD×3 then DEL×3, and ADD×3 then GC, leave no rule and no file', () => {
    sh('ip', ['-n', env.host, 'link', 'add', 'm0', 'type', 'veth', 'peer', 'name', 'm0p']);
    sh('ip', ['-n', env.host, 'link', 'set', 'm0', 'up']);
    sh('ip', ['-n', env.host, 'link', 'set', 'm0p', 'up']);
    const conf = { cniVersion: '1.1.0', name: env.net, type: 'macvlan', master: 'm0', dataDir: env.state, ipam: { type: 'host-local', subnet: '10.252.7.0/24', dataDir: env.ipam } };
    const before = env.snapshot();
    for (const round of ['del', 'gc']) {
      const ctrs = [1, 2, 3].map((i) => ({ id: `${env.sb.tag}-${round}${i}`, ns: env.sb.netns(`${round}${i}`) }));
      for (const c of ctrs) env.ok('macvlan', 'ADD', conf, { id: c.id, netns: env.sb.nsPath(c.ns) });
      expect(reservations(env.ipam)).not.toEqual([]);
      if (round === 'del') for (const c of ctrs) env.ok('macvlan', 'DEL', conf, { id: c.id, netns: env.sb.nsPath(c.ns) });
      else env.ok('macvlan', 'GC', { ...conf, 'cni.dev/valid-attachments': [] });
      expect(env.snapshot()).toEqual(before);
    }
  });

  it('vxlan-overlay (ipMasq, isolation, nameResolution): ADD×3 then DEL×3, and ADD×3 then GC, leave the ruleset, files and processes as they were', () => {
    sh('ip', ['-n', env.host, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1']);
    sh('ip', ['-n', env.host, 'addr', 'add', '10.79.0.1/24', 'dev', 'u0']);
    sh('ip', ['-n', env.host, 'link', 'set', 'u0', 'up']);
    sh('ip', ['-n', env.host, 'link', 'set', 'u1', 'up']);
    const runDir = env.run_;
    const store = path.join(env.sb.tmpdir('store'), 'store');
    env.agent = spawn('ip', ['netns', 'exec', env.host, path.join(DIST_BIN, 'vxlan-overlay'), 'agent', '--network', env.net, '--cidr', '10.243.0.0/16',
      '--store-dir', store, '--underlay-ip', '10.79.0.1', '--host-id', 'h1', '--lease-ttl', '5', '--run-dir', runDir], { stdio: 'ignore' });
    const ready = path.join(runDir, env.net, `agent-${fs.statSync(env.sb.nsPath(env.host)).ino}.json`);
    for (let i = 0; i < 400 && !(fs.existsSync(ready) && JSON.parse(fs.readFileSync(ready, 'utf8')).leaseOk); i++) sleepSync(50);
    const conf = {
      cniVersion: '1.1.0', name: env.net, type: 'vxlan-overlay', runDir, isolation: true,
      nameResolution: { runDir: env.dns, upstream: ['10.79.0.99'] }, ipam: { dataDir: path.join(runDir, 'ipam') },
    };
    const overlayState = () => tree(path.join(runDir, env.net)).filter((f) => !f.startsWith('agent-') && !f.startsWith('ipam'));
    const before = { ...env.snapshot(), overlay: overlayState() };
    for (const round of ['del', 'gc']) {
      const ctrs = [1, 2, 3].map((i) => ({ id: `${env.sb.tag}-${round}${i}`, ns: env.sb.netns(`${round}${i}`) }));
      for (const c of ctrs) env.ok('vxlan-overlay', 'ADD', conf, { id: c.id, netns: env.sb.nsPath(c.ns) });
      expect(env.ruleset()).toContain('node_cni_masq');
      expect(dnsmasqPids(env.dns)).toHaveLength(1);
      if (round === 'del') for (const c of ctrs) env.ok('vxlan-overlay', 'DEL', conf, { id: c.id, netns: env.sb.nsPath(c.ns) });
      else env.ok('vxlan-overlay', 'GC', { ...conf, 'cni.dev/valid-attachments': [] });
      expect({ ...env.snapshot(), overlay: overlayState() }).toEqual(before);
    }
  });

  describe('cnictl', () => {
    const setup = () => {
      const confDir = env.sb.tmpdir('conf');
      const { cniVersion: _v, name: _n, ...bridge } = env.bridgeConf();
      fs.writeFileSync(path.join(confDir, '10-lf.conflist'), JSON.stringify({
        cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'], name: env.net,
        plugins: [bridge, { type: 'portmap', dataDir: env.portmapData, capabilities: { portMappings: true } }],
      }));
      return (args: string[], cache: string, capArgs?: unknown) => shTry('ip', ['netns', 'exec', env.host, path.join(DIST_BIN, 'cnictl'), ...args], {
        env: { PATH: process.env.PATH, NETCONFPATH: confDir, CNI_PATH: DIST_BIN, CNI_CACHE_DIR: cache, ...(capArgs ? { CAP_ARGS: JSON.stringify(capArgs) } : {}) }, timeout: 60000,
      });
    };

    it('gc with no valid attachment leaves nothing of the network but its bridge', () => {
      const cnictl = setup();
      const cache = env.sb.tmpdir('cache');
      const before = env.snapshot();
      for (const i of [1, 2]) {
        const ns = env.sb.netns(`g${i}`);
        const r = cnictl(['add', env.net, env.sb.nsPath(ns)], cache, { portMappings: [{ hostPort: 8180 + i, containerPort: 80, protocol: 'tcp' }] });
        expect([r.status, r.stderr]).toEqual([0, '']);
      }
      // Another runtime's view (an empty cache): no attachment of the network is valid.
      const gc = cnictl(['gc', env.net], env.sb.tmpdir('emptycache'));
      expect(gc.status).toBe(0);
      expect(gc.stderr).toMatch(/^(portmap GC: removing port mappings of stale attachment cnitool-[0-9a-f]{20}\/eth0\n){2}$/);
      expect(env.snapshot()).toEqual(before);
      expect(sh('ip', ['-n', env.host, '-o', 'link', 'show', 'master', 'lfbr0'])).toBe(''); // no port left on it
      expect(sh('ip', ['-n', env.host, '-o', 'link', 'show', 'lfbr0'])).toContain('lfbr0');
    });

    it('rm removes the network entirely, bridge included, and refuses while a container uses it', () => {
      const cnictl = setup();
      const cache = env.sb.tmpdir('cache');
      const before = env.snapshot();
      const ns = env.sb.netns('r1');
      expect(cnictl(['add', env.net, env.sb.nsPath(ns)], cache, { portMappings: [{ hostPort: 8190, containerPort: 80 }] }).status).toBe(0);
      const inCache = cnictl(['rm', env.net], cache);
      expect(inCache.status).toBe(1);
      expect(inCache.stderr).toMatch(new RegExp(`network "${env.net}" is still used by 1 attachment\\(s\\) \\(cnitool-[0-9a-f]{20}/eth0\\): cnictl del them first`));
      expect(cnictl(['del', env.net, env.sb.nsPath(ns)], cache).status).toBe(0);
      // A container attached by another runtime (not in this cache) still uses the bridge.
      const other = env.addBridgeAndPortmap(9);
      const onBridge = cnictl(['rm', env.net], cache);
      expect(onBridge.status).toBe(1);
      expect(onBridge.stderr).toMatch(/bridge "lfbr0" has 1 port\(s\) \(veth[0-9a-f]{8}\)/);
      expect(env.ping(other.ns, '10.250.0.2')).toBe(true); // untouched
      env.delBridgeAndPortmap(other);
      const rm = cnictl(['rm', env.net], cache);
      expect([rm.status, rm.stdout, rm.stderr]).toEqual([0, `network "${env.net}" removed (bridge "lfbr0" deleted)\n`, '']);
      expect(shTry('ip', ['-n', env.host, 'link', 'show', 'lfbr0']).status).not.toBe(0);
      expect(env.snapshot()).toEqual(before);
      // Again: nothing to remove, still fine.
      expect(cnictl(['rm', env.net], cache).status).toBe(0);
    });
  });

  describe('a per-network rule removed by hand between two ADDs is back after the second', () => {
    /** The rules of one chain (text, no handles, no elements). */
    const chain = (family: string, table: string, name: string) => shTry('ip', ['netns', 'exec', env.host, 'nft', 'list', 'chain', family, table, name]).stdout;
    /** Delete the last rule of a chain by its handle. */
    const dropLastRule = (family: string, table: string, name: string) => {
      const handles = [...shTry('ip', ['netns', 'exec', env.host, 'nft', '-a', 'list', 'chain', family, table, name]).stdout.matchAll(/# handle (\d+)/g)].map((m) => m[1]);
      sh('ip', ['netns', 'exec', env.host, 'nft', 'delete', 'rule', family, table, name, 'handle', handles[handles.length - 1]]);
    };
    const chainsOf = (family: string, table: string) => [...env.ruleset().matchAll(new RegExp(`table ${family} ${table} \\{[\\s\\S]*?\\n\\}`, 'g'))][0]?.[0].match(/chain (\S+) \{/g)?.map((c) => c.split(' ')[1]) ?? [];

    it.each([
      ['inet', 'node_cni_masq', /^masq-/],
      ['inet', 'node_cni_isolation', /^iso-/],
      ['inet', 'node_cni_dns', /^input$/],
      ['bridge', 'node_cni_macspoof', /^prerouting$/],
      ['inet', 'cni_portmap', /_dnat$/],
      ['inet', 'cni_portmap', /_postrouting$/],
    ])('%s %s %s', (family, table, which) => {
      const c1 = env.addBridgeAndPortmap(1);
      const name = chainsOf(family, table).find((c) => which.test(c))!;
      expect(name).toBeDefined();
      const intact = chain(family, table, name);
      dropLastRule(family, table, name);
      expect(chain(family, table, name)).not.toBe(intact);
      const c2 = env.addBridgeAndPortmap(2);
      expect(chain(family, table, name)).toBe(intact);
      expect(env.ping(c1.ns, '10.250.0.2')).toBe(true);
      for (const c of [c1, c2]) env.delBridgeAndPortmap(c);
      expect(env.ruleset()).toBe('');
    });
  });
});
