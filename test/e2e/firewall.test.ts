// firewall e2e: conflists run by cnictl (like a runtime: chained results,
// DEL in reverse with the cached result) in a throwaway "host" namespace
// whose iptables FORWARD policy is DROP, as Docker leaves it. Real traffic
// to and from an "outside" namespace; the reference plugins run the same
// scenarios where the behaviour is meant to match.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { addOutsideClient, randomSubnets } from '../helpers/clients';
import { runCni } from '../helpers/cni';
import { DIST_BIN, REFERENCE_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { startHttpd } from './portmap-helpers';
import { SUPPORTED_VERSIONS, versionAtLeast } from '../../lib/cni/version';

jest.setTimeout(180000);

interface Net { name: string; bridge: string; prefix: string; firewall?: Record<string, unknown> | false; portmap?: boolean }

class Env {
  readonly sb = new Sandbox('cfw');
  readonly host = this.sb.netns('h');
  readonly conf = this.sb.tmpdir('conf');
  readonly cache = this.sb.tmpdir('cache');
  readonly state = this.sb.tmpdir('state');
  readonly client: string;
  readonly hostAddr: string;
  readonly uplink = randomSubnets().uplink;

  constructor(readonly bin = DIST_BIN) {
    ({ client: this.client, hostAddr: this.hostAddr } = addOutsideClient(this.sb, this.host, this.uplink));
    sh('ip', ['-n', this.client, 'addr', 'add', 'fd93::2/64', 'dev', 'eth0', 'nodad']);
    sh('ip', ['-n', this.host, 'addr', 'add', 'fd93::1/64', 'dev', 'up0', 'nodad']);
    this.iptables('-P', 'FORWARD', 'DROP');
    this.ip6tables('-P', 'FORWARD', 'DROP');
  }

  iptables(...args: string[]): string { return sh('ip', ['netns', 'exec', this.host, 'iptables', ...args]); }
  ip6tables(...args: string[]): string { return sh('ip', ['netns', 'exec', this.host, 'ip6tables', ...args]); }

  write(n: Net, cniVersion = '1.0.0'): void {
    const dir = path.join(this.state, n.name);
    const plugins: Array<Record<string, unknown>> = [{
      type: 'bridge', bridge: n.bridge, isGateway: true, ipMasq: true, hairpinMode: true, stateDir: path.join(dir, 'bridge'),
      ipam: { type: 'host-local', ranges: [[{ subnet: `${n.prefix}.0/24` }], [{ subnet: `fd00:${n.prefix.split('.')[1]}:${n.prefix.split('.')[2]}::/64` }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }], dataDir: path.join(dir, 'ipam') },
    }];
    if (n.portmap !== false) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, dataDir: path.join(dir, 'portmap') });
    if (n.firewall !== false) plugins.push({ type: 'firewall', stateDir: path.join(this.state, 'fw'), ...(n.firewall ?? {}) });
    fs.writeFileSync(path.join(this.conf, `${n.name}.conflist`), JSON.stringify({ cniVersion, name: n.name, plugins }));
  }

  cnictl(verb: string, net: string, ns?: string, capArgs?: unknown): { status: number | null; stdout: string; stderr: string } {
    const env = {
      PATH: process.env.PATH, NETCONFPATH: this.conf, CNI_PATH: this.bin, CNI_CACHE_DIR: this.cache,
      ...(capArgs ? { CAP_ARGS: JSON.stringify(capArgs) } : {}),
    };
    return this.sb.inNs(this.host, path.join(DIST_BIN, 'cnictl'), [verb, net, ...(ns ? [this.sb.nsPath(ns)] : [])], { env, timeout: 60000 });
  }

  /** cnictl without waiting: for ADDs and DELs at the same time. */
  cnictlAsync(verb: string, net: string, ns: string): Promise<number | null> {
    const env = { PATH: process.env.PATH, NETCONFPATH: this.conf, CNI_PATH: this.bin, CNI_CACHE_DIR: this.cache };
    return new Promise((resolve) => {
      const p = spawn('ip', ['netns', 'exec', this.host, path.join(DIST_BIN, 'cnictl'), verb, net, this.sb.nsPath(ns)], { env, stdio: 'ignore' });
      p.on('exit', (code) => resolve(code));
    });
  }

  /** A container on `n`; returns its namespace and addresses. */
  add(n: Net, id: string, ports?: Array<{ hostPort: number; containerPort: number }>): { ns: string; ip4: string; ip6: string } {
    const ns = this.sb.netns(id);
    const r = this.cnictl('add', n.name, ns, ports ? { portMappings: ports.map((p) => ({ ...p, protocol: 'tcp' })) } : undefined);
    if (r.status !== 0) throw new Error(`ADD ${id} on ${n.name} failed: ${r.stdout} ${r.stderr}`);
    const ips = (JSON.parse(r.stdout).ips as Array<{ address: string }>).map((i) => i.address.split('/')[0]);
    return { ns, ip4: ips.find((i) => !i.includes(':'))!, ip6: ips.find((i) => i.includes(':'))! };
  }

  del(n: Net, ns: string): void {
    const r = this.cnictl('del', n.name, ns);
    if (r.status !== 0) throw new Error(`DEL on ${n.name} failed: ${r.stdout} ${r.stderr}`);
  }

  ping(ns: string, ip: string): boolean {
    return this.sb.inNs(ns, 'ping', ['-c', '1', '-W', '1', ip]).status === 0;
  }

  get(ns: string, addr: string, port: number): boolean {
    const host = addr.includes(':') ? `[${addr}]` : addr;
    return this.sb.inNs(ns, 'curl', ['-sf', '-g', '--max-time', '3', `http://${host}:${port}/index.html`], { timeout: 8000 }).status === 0;
  }

  /** What is there of ours in the host namespace: our table, our iptables chain or jump, isolation elements. */
  leftovers(): string[] {
    const out: string[] = [];
    const ruleset = sh('ip', ['netns', 'exec', this.host, 'nft', 'list', 'ruleset']);
    if (ruleset.includes('node_cni_firewall')) out.push('nft table node_cni_firewall');
    for (const bin of ['iptables', 'ip6tables']) {
      const s = sh('ip', ['netns', 'exec', this.host, bin, '-S']);
      for (const l of s.split('\n')) if (/NODE-CNI-FORWARD|CNI-ADMIN/.test(l)) out.push(`${bin}: ${l}`);
    }
    const iso = shTry('ip', ['netns', 'exec', this.host, 'nft', '-j', 'list', 'set', 'inet', 'node_cni_isolation', 'isolated']);
    if (iso.status === 0 && /"elem"/.test(iso.stdout)) out.push('isolation elements');
    // Down to the file: no record, no lock (the per-bridge isolation locks go with the group), no directory.
    const fw = path.join(this.state, 'fw');
    for (const d of fs.existsSync(fw) ? fs.readdirSync(fw) : []) out.push(`firewall state ${d}`);
    return out;
  }
}

beforeAll(() => ensureBuilt('bridge', 'portmap', 'firewall', 'host-local', 'cnictl'), 300000);

describe('firewall (e2e, host FORWARD policy DROP)', () => {
  let env: Env;
  afterEach(() => env?.sb.cleanup());

  it('lets containers out and published ports in from the LAN; without firewall neither works; the reference does not answer the published port', () => {
    env = new Env();
    const tag = env.sb.tag;
    const withFw: Net = { name: `${tag}-fw`, bridge: `${tag}a`, prefix: `10.${100 + Math.floor(Math.random() * 100)}.1` };
    const without: Net = { name: `${tag}-nofw`, bridge: `${tag}b`, prefix: `${withFw.prefix.split('.').slice(0, 2).join('.')}.2`, firewall: false };
    env.write(withFw);
    env.write(without);
    const a = env.add(withFw, 'a', [{ hostPort: 18081, containerPort: 80 }]);
    const b = env.add(without, 'b', [{ hostPort: 18082, containerPort: 80 }]);
    startHttpd(env.sb, a.ns, 'a');
    startHttpd(env.sb, b.ns, 'b');
    expect([env.ping(a.ns, `${env.uplink}.2`), env.ping(a.ns, 'fd93::2')]).toEqual([true, true]);
    expect(env.get(env.client, env.hostAddr, 18081)).toBe(true);
    expect(env.get(env.client, 'fd93::1', 18081)).toBe(true);
    expect([env.ping(b.ns, `${env.uplink}.2`), env.get(env.client, env.hostAddr, 18082)]).toEqual([false, false]);
    // Cost: one jump and a two-rule chain per family, whatever the number of containers.
    env.add(withFw, 'a2');
    env.add(withFw, 'a3');
    expect(env.iptables('-S').split('\n').filter((l) => l.includes('NODE-CNI-FORWARD'))).toHaveLength(4);

    // The reference, same conflist shape (its firewall accepts only the container's outbound and replies).
    const ref = new Env(REFERENCE_BIN);
    try {
      const r: Net = { name: `${ref.sb.tag}-ref`, bridge: `${ref.sb.tag}r`, prefix: `${withFw.prefix.split('.').slice(0, 2).join('.')}.3` };
      ref.write(r);
      const c = ref.add(r, 'r', [{ hostPort: 18083, containerPort: 80 }]);
      startHttpd(ref.sb, c.ns, 'r');
      expect(ref.ping(c.ns, `${ref.uplink}.2`)).toBe(true);
      expect(ref.get(ref.client, ref.hostAddr, 18083)).toBe(false);
      ref.del(r, c.ns);
    } finally {
      ref.sb.cleanup();
    }
  });

  it.each(SUPPORTED_VERSIONS.filter((v) => versionAtLeast(v, '0.4.0')))('cniVersion %s: ADD -> CHECK -> DEL leaves nothing; DEL again; DEL without netns', (v) => {
    env = new Env();
    const n: Net = { name: `${env.sb.tag}-v`, bridge: `${env.sb.tag}v`, prefix: '10.231.7' };
    env.write(n, v);
    const a = env.add(n, 'a');
    expect(env.ping(a.ns, `${env.uplink}.2`)).toBe(true);
    expect(env.cnictl('check', n.name, a.ns).status).toBe(0);
    env.del(n, a.ns);
    expect(env.leftovers()).toEqual([]);
    env.del(n, a.ns); // again
    // Without the namespace: ADD, remove the namespace, DEL.
    const b = env.add(n, 'b');
    sh('ip', ['netns', 'del', b.ns]);
    env.del(n, b.ns);
    expect(env.leftovers()).toEqual([]);
  });

  it('ADDs and DELs at the same time: one jump, an intact chain, every container through; nothing left after', async () => {
    env = new Env();
    const n: Net = { name: `${env.sb.tag}-p`, bridge: `${env.sb.tag}p`, prefix: '10.237.4', portmap: false };
    env.write(n);
    const nss = [1, 2, 3, 4, 5, 6].map((i) => env.sb.netns(`p${i}`));
    expect(await Promise.all(nss.map((ns) => env.cnictlAsync('add', n.name, ns)))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(env.iptables('-S').split('\n').filter((l) => l.includes('-j NODE-CNI-FORWARD'))).toHaveLength(1);
    expect(env.iptables('-S', 'NODE-CNI-FORWARD').trim().split('\n')).toHaveLength(3);
    expect(nss.map((ns) => env.ping(ns, `${env.uplink}.2`))).toEqual(nss.map(() => true));
    expect(await Promise.all(nss.map((ns) => env.cnictlAsync('del', n.name, ns)))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(env.leftovers()).toEqual([]);
  });

  it('refuses cniVersion 0.3.1 like the reference (firewall needs 0.4.0)', () => {
    env = new Env();
    const r = runCni(env.host, 'firewall', { command: 'ADD', containerId: 'x', netns: '/run/netns/none' }, { cniVersion: '0.3.1', name: 'n', type: 'firewall', prevResult: { cniVersion: '0.3.1', ips: [] } });
    expect(r.json).toMatchObject({ code: 1 });
  });

  it('keeps the last container in until its DEL; the admin chain overrides, and an admin chain with rules is left alone', () => {
    env = new Env();
    const n: Net = { name: `${env.sb.tag}-ad`, bridge: `${env.sb.tag}d`, prefix: '10.232.8' };
    env.write(n);
    const a = env.add(n, 'a');
    const b = env.add(n, 'b');
    env.iptables('-A', 'CNI-ADMIN', '-s', `${b.ip4}/32`, '-j', 'DROP');
    expect([env.ping(a.ns, `${env.uplink}.2`), env.ping(b.ns, `${env.uplink}.2`)]).toEqual([true, false]);
    env.del(n, a.ns);
    expect(env.ping(b.ns, `${env.uplink}.2`)).toBe(false); // still ours, still overridden
    env.iptables('-F', 'CNI-ADMIN');
    expect(env.ping(b.ns, `${env.uplink}.2`)).toBe(true);
    env.iptables('-A', 'CNI-ADMIN', '-s', '10.9.9.9/32', '-j', 'DROP');
    env.del(n, b.ns);
    expect(env.leftovers()).toEqual(['iptables: -N CNI-ADMIN', 'iptables: -A CNI-ADMIN -s 10.9.9.9/32 -j DROP']);
  });

  it('ingressPolicy same-bridge: networks apart from each other, open networks reachable; the reference gives the same matrix', () => {
    const matrix = (bin: string): Record<string, boolean> => {
      const e = new Env(bin);
      try {
        const t = e.sb.tag;
        const A: Net = { name: `${t}-a`, bridge: `${t}a`, prefix: '10.233.1', firewall: { ingressPolicy: 'same-bridge' }, portmap: false };
        const B: Net = { name: `${t}-b`, bridge: `${t}b`, prefix: '10.233.2', firewall: { ingressPolicy: 'same-bridge' }, portmap: false };
        const C: Net = { name: `${t}-c`, bridge: `${t}c`, prefix: '10.233.3', firewall: {}, portmap: false };
        for (const n of [A, B, C]) e.write(n);
        const a1 = e.add(A, 'a1');
        const a2 = e.add(A, 'a2');
        const b1 = e.add(B, 'b1');
        const c1 = e.add(C, 'c1');
        const out = {
          'a1->a2': e.ping(a1.ns, a2.ip4), 'a1->b1': e.ping(a1.ns, b1.ip4), 'b1->a1': e.ping(b1.ns, a1.ip4),
          'a1->c1': e.ping(a1.ns, c1.ip4), 'c1->a1': e.ping(c1.ns, a1.ip4), 'b1->outside': e.ping(b1.ns, `${e.uplink}.2`),
        };
        for (const [n, c] of [[A, a1], [A, a2], [B, b1], [C, c1]] as const) e.del(n, c.ns);
        if (bin === DIST_BIN) expect(e.leftovers()).toEqual([]);
        return out;
      } finally {
        e.sb.cleanup();
      }
    };
    const ours = matrix(DIST_BIN);
    expect(ours).toEqual({ 'a1->a2': true, 'a1->b1': false, 'b1->a1': false, 'a1->c1': true, 'c1->a1': true, 'b1->outside': true });
    expect(matrix(REFERENCE_BIN)).toEqual(ours);
  });

  it('ingressPolicy isolated: containers of one bridge cannot reach each other, the gateway and the outside they can; CHECK sees the port flag', () => {
    env = new Env();
    const n: Net = { name: `${env.sb.tag}-i`, bridge: `${env.sb.tag}i`, prefix: '10.234.1', firewall: { ingressPolicy: 'isolated' }, portmap: false };
    env.write(n);
    const a = env.add(n, 'a');
    const b = env.add(n, 'b');
    expect({ ab: env.ping(a.ns, b.ip4), ba: env.ping(b.ns, a.ip4), gw: env.ping(a.ns, `${n.prefix}.1`), out: env.ping(b.ns, `${env.uplink}.2`) })
      .toEqual({ ab: false, ba: false, gw: true, out: true });
    expect(env.cnictl('check', n.name, a.ns).status).toBe(0);
    const port = JSON.parse(sh('ip', ['-n', env.host, '-j', '-d', 'link', 'show', 'master', n.bridge])).find((l: any) => l.linkinfo?.info_slave_data?.isolated);
    sh('ip', ['-n', env.host, 'link', 'set', 'dev', port.ifname, 'type', 'bridge_slave', 'isolated', 'off']);
    const bad = env.cnictl('check', n.name, a.ns);
    const bad2 = env.cnictl('check', n.name, b.ns);
    expect([bad.status, bad2.status].filter((s) => s !== 0)).toHaveLength(1);
    for (const c of [a, b]) env.del(n, c.ns);
    expect(env.leftovers()).toEqual([]);
  });

  it('GC removes what stale attachments left (elements, isolation, the shared structure), keeps the valid ones', () => {
    env = new Env();
    const n: Net = { name: `${env.sb.tag}-g`, bridge: `${env.sb.tag}g`, prefix: '10.235.1', firewall: { ingressPolicy: 'same-bridge' }, portmap: false };
    env.write(n, '1.1.0'); // GC came with 1.1.0
    const a = env.add(n, 'a');
    const b = env.add(n, 'b');
    // Both vanish without DEL, and the runtime forgets them (their cache entries go)...
    const cached = new Set(fs.readdirSync(path.join(env.cache, 'results')));
    const c = env.add(n, 'c');
    for (const x of [a, b]) sh('ip', ['netns', 'del', x.ns]);
    for (const f of cached) fs.rmSync(path.join(env.cache, 'results', f));
    // ...GC (cnictl: the cached attachments are the valid ones) removes theirs and keeps c working.
    expect(env.cnictl('gc', n.name).status).toBe(0);
    const elements = sh('ip', ['netns', 'exec', env.host, 'nft', 'list', 'set', 'inet', 'node_cni_firewall', 'allowed4']);
    expect([elements.includes(a.ip4), elements.includes(b.ip4), elements.includes(c.ip4)]).toEqual([false, false, true]);
    expect(env.ping(c.ns, `${env.uplink}.2`)).toBe(true);
    // With c gone from the cache too, everything goes.
    for (const f of fs.readdirSync(path.join(env.cache, 'results'))) fs.rmSync(path.join(env.cache, 'results', f));
    sh('ip', ['netns', 'del', c.ns]);
    expect(env.cnictl('gc', n.name).status).toBe(0);
    expect(env.leftovers()).toEqual([]);
    expect(env.cnictl('status', n.name).status).toBe(0);
  });

  it('refuses an unknown ingressPolicy and a bad admin chain name with code 7; takes every reference field', () => {
    env = new Env();
    const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'br' }], ips: [{ address: '10.236.0.2/24' }] };
    const base = { cniVersion: '1.0.0', name: 'n', type: 'firewall', prevResult: prev, stateDir: env.state };
    const call = { command: 'ADD' as const, containerId: 'x', netns: '/run/netns/none' };
    expect(runCni(env.host, 'firewall', call, { ...base, ingressPolicy: 'closed' }).json).toMatchObject({ code: 7, msg: expect.stringMatching(/unknown ingressPolicy "closed"/) });
    expect(runCni(env.host, 'firewall', call, { ...base, iptablesAdminChainName: '-j DROP' }).json).toMatchObject({ code: 7, msg: expect.stringMatching(/iptablesAdminChainName must be an iptables chain name/) });
    const ok = runCni(env.host, 'firewall', { ...call, containerId: 'y' }, { ...base, backend: 'firewalld', firewalldZone: 'trusted', iptablesAdminChainName: 'MY-ADMIN' });
    expect(ok.status).toBe(0);
    expect(ok.json).toEqual(prev);
    expect(env.iptables('-S')).toContain('-A NODE-CNI-FORWARD -m comment --comment "node-cni-plugins firewall: admin overrides" -j MY-ADMIN');
    expect(runCni(env.host, 'firewall', { command: 'DEL', containerId: 'y' }, { ...base, iptablesAdminChainName: 'MY-ADMIN' }).status).toBe(0);
    expect(env.leftovers()).toEqual([]);
  });
});
