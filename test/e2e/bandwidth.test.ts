// bandwidth e2e: the built dist/bin/bandwidth chained after a hand-wired
// veth, in a throwaway "host" namespace. iperf3 shows each limit holds
// (±15 %), tc shows what was made, and DEL / GC leave no IFB and no qdisc.
import { ensureBuilt } from '../helpers/build';
import { runCni, type CniCall } from '../helpers/cni';
import { Sandbox, sh, shTry } from '../helpers/sandbox';
import { eventually, startDaemon } from './portmap-helpers';
import { SUPPORTED_VERSIONS, versionAtLeast } from '../../lib/cni/version';

jest.setTimeout(180000);

const VERSIONS = SUPPORTED_VERSIONS.filter((v) => versionAtLeast(v, '0.3.0'));

interface Container { ns: string; hostVeth: string; ip: string; prevResult: Record<string, unknown> }

describe('bandwidth (chained after a hand-wired veth)', () => {
  let sb: Sandbox;
  let host: string;
  let n = 0;

  beforeAll(() => ensureBuilt('bandwidth'), 180000);
  beforeEach(() => {
    sb = new Sandbox('cfb');
    host = sb.netns('h');
  });
  afterEach(() => sb.cleanup());

  function container(cniVersion = '1.1.0'): Container {
    const i = ++n;
    const ns = sb.netns(`c${i}`);
    const hostVeth = `cfbv${i}`;
    sh('ip', ['-n', host, 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['-n', host, 'addr', 'add', `10.78.${i}.1/24`, 'dev', hostVeth]);
    sh('ip', ['-n', host, 'link', 'set', hostVeth, 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `10.78.${i}.2/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    const prevResult = {
      cniVersion,
      interfaces: [{ name: hostVeth }, { name: 'eth0', sandbox: sb.nsPath(ns) }],
      ips: [{ ...(cniVersion.startsWith('0.') ? { version: '4' } : {}), address: `10.78.${i}.2/24`, interface: 1 }],
    };
    return { ns, hostVeth, ip: `10.78.${i}.2`, prevResult };
  }

  const conf = (cniVersion: string, prevResult: unknown, extra: Record<string, unknown> = {}) => ({
    cniVersion, name: 'cfbnet', type: 'bandwidth', ...extra, ...(prevResult ? { prevResult } : {}),
  });
  const call = (command: CniCall['command'], c?: Container, o: { id?: string; netns?: string } = {}): CniCall => ({
    command, containerId: o.id ?? 'cfb-ctr', netns: o.netns ?? (c ? sb.nsPath(c.ns) : ''), ifname: 'eth0',
  });
  const bandwidth = (c: CniCall, cf: unknown) => runCni(host, 'bandwidth', c, cf);

  const qdiscs = (dev: string): Array<{ kind: string; handle: string; options?: Record<string, unknown> }> =>
    JSON.parse(sh('tc', ['-n', host, '-j', 'qdisc', 'show', 'dev', dev]) || '[]');
  const ifbs = (): string[] => JSON.parse(sh('ip', ['-n', host, '-j', 'link', 'show', 'type', 'ifb']) || '[]').map((l: { ifname: string }) => l.ifname).sort();

  const LIMITS = { ingressRate: 20_000_000, ingressBurst: 400_000, egressRate: 30_000_000, egressBurst: 400_000 };

  it.each(VERSIONS)('cniVersion %s: ADD shapes both directions, CHECK, DEL leaves no IFB and no qdisc, DEL again and without netns', (v) => {
    const c = container(v);
    const add = bandwidth(call('ADD', c), conf(v, c.prevResult, LIMITS));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    const ifb = add.json.interfaces[2];
    expect(ifb.name).toMatch(/^bwp[0-9a-f]{12}$/);
    expect(add.json.interfaces.slice(0, 2)).toEqual(c.prevResult.interfaces);
    expect(ifbs()).toEqual([ifb.name]);
    expect(qdiscs(c.hostVeth).map((q) => q.kind).sort()).toEqual(['ingress', 'tbf']);
    expect(qdiscs(ifb.name).map((q) => q.kind)).toEqual(['tbf']);
    expect(sh('tc', ['-n', host, 'filter', 'show', 'dev', c.hostVeth, 'ingress'])).toContain(`Egress Redirect to device ${ifb.name}`);

    const check = bandwidth(call('CHECK', c), conf(v, add.json, LIMITS));
    if (v.startsWith('0.3')) expect(check.json?.code).toBe(1);
    else expect([check.status, check.stdout + check.stderr]).toEqual([0, '']);

    const del = bandwidth(call('DEL', c), conf(v, add.json, LIMITS));
    expect([del.status, del.stdout + del.stderr]).toEqual([0, '']);
    expect(ifbs()).toEqual([]);
    expect(qdiscs(c.hostVeth).map((q) => q.kind)).toEqual(['noqueue']);
    expect(bandwidth(call('DEL', c), conf(v, add.json, LIMITS)).status).toBe(0);
    expect(bandwidth(call('DEL', undefined), conf(v, undefined)).status).toBe(0);
  });

  /** iperf3 from the host to the container (or -R: from the container), Mbit/s received. */
  function throughput(c: Container, reverse: boolean): number {
    const r = shTry('ip', ['netns', 'exec', host, 'iperf3', '-c', c.ip, '-t', '4', '-O', '1', '-J', ...(reverse ? ['-R'] : [])], { timeout: 30000 });
    if (r.status !== 0) throw new Error(`iperf3 failed: ${r.stdout} ${r.stderr}`);
    return JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e6;
  }

  it('iperf3: each limit holds within ±15 %, in both directions; without the plugin traffic is far faster', async () => {
    const c = container();
    startDaemon(sb, c.ns, 'iperf3', ['-s', '-p', '5201']);
    await eventually(() => (shTry('ip', ['netns', 'exec', c.ns, 'ss', '-ltn', 'sport = :5201']).stdout.includes('5201') ? true : undefined));
    const freeIn = throughput(c, false);
    expect(bandwidth(call('ADD', c), conf('1.1.0', c.prevResult, LIMITS)).status).toBe(0);
    const shapedIn = throughput(c, false);
    const shapedOut = throughput(c, true);
    expect(Math.abs(shapedIn - 20) / 20).toBeLessThanOrEqual(0.15);
    expect(Math.abs(shapedOut - 30) / 30).toBeLessThanOrEqual(0.15);
    expect(freeIn).toBeGreaterThan(3 * 20);
    expect(bandwidth(call('DEL', c), conf('1.1.0', undefined)).status).toBe(0);
    expect(throughput(c, true)).toBeGreaterThan(3 * 30);
  });

  it('the bandwidth capability (kubelet\'s annotations as runtimeConfig) is used when the config has no limits; top-level limits win', () => {
    const c = container();
    const rc = { runtimeConfig: { bandwidth: { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 0, egressBurst: 0 } }, capabilities: { bandwidth: true } };
    const add = bandwidth(call('ADD', c), conf('1.1.0', c.prevResult, rc));
    expect(add.status).toBe(0);
    expect(add.json.interfaces).toHaveLength(2); // no egress limit: no IFB
    expect(qdiscs(c.hostVeth).find((q) => q.kind === 'tbf')?.options?.rate).toBe(1_000_000); // bytes/s
    expect(bandwidth(call('DEL', c), conf('1.1.0', add.json, rc)).status).toBe(0);
    const both = bandwidth(call('ADD', c), conf('1.1.0', c.prevResult, { ...rc, ingressRate: 16_000_000, ingressBurst: 80_000 }));
    expect(qdiscs(c.hostVeth).find((q) => q.kind === 'tbf')?.options?.rate).toBe(2_000_000);
    expect(bandwidth(call('DEL', c), conf('1.1.0', both.json)).status).toBe(0);
    expect(qdiscs(c.hostVeth).map((q) => q.kind)).toEqual(['noqueue']);
  });

  it('with no limits ADD passes prevResult through and creates nothing', () => {
    const c = container();
    const add = bandwidth(call('ADD', c), conf('1.1.0', c.prevResult));
    expect(add.json).toEqual(c.prevResult);
    expect(ifbs()).toEqual([]);
  });

  it('DEL after the namespace is gone removes the IFB', () => {
    const c = container();
    expect(bandwidth(call('ADD', c), conf('1.1.0', c.prevResult, LIMITS)).status).toBe(0);
    sh('ip', ['netns', 'del', c.ns]);
    expect(bandwidth(call('DEL', c), conf('1.1.0', c.prevResult)).status).toBe(0);
    expect(ifbs()).toEqual([]);
  });

  it('GC removes the IFBs of this network\'s stale attachments only', () => {
    const [a, b, o] = [container(), container(), container()];
    expect(bandwidth(call('ADD', a, { id: 'cfb-a' }), conf('1.1.0', a.prevResult, LIMITS)).status).toBe(0);
    const bAdd = bandwidth(call('ADD', b, { id: 'cfb-b' }), conf('1.1.0', b.prevResult, LIMITS));
    expect(bandwidth(call('ADD', o, { id: 'cfb-o' }), { ...conf('1.1.0', o.prevResult, LIMITS), name: 'cfbother' }).status).toBe(0);
    expect(ifbs()).toHaveLength(3);
    const gc = bandwidth({ command: 'GC' }, { ...conf('1.1.0', undefined), 'cni.dev/valid-attachments': [{ containerID: 'cfb-a', ifname: 'eth0' }] });
    expect([gc.status, gc.stdout]).toEqual([0, '']);
    expect(ifbs()).toHaveLength(2);
    expect(ifbs()).not.toContain(bAdd.json.interfaces[2].name);
    expect(bandwidth({ command: 'STATUS' }, conf('1.1.0', undefined)).status).toBe(0);
  });

  it('CHECK finds a limit that was removed', () => {
    const c = container();
    const add = bandwidth(call('ADD', c), conf('1.1.0', c.prevResult, LIMITS));
    sh('tc', ['-n', host, 'qdisc', 'del', 'dev', add.json.interfaces[2].name, 'root']);
    const check = bandwidth(call('CHECK', c), conf('1.1.0', add.json, LIMITS));
    expect(check.status).not.toBe(0);
    expect(check.json.msg).toMatch(/has no tbf/);
  });

  it('a failed ADD (the IFB name taken by something else) rolls back the tbf it already made', () => {
    const c = container();
    const probe = container();
    const add = bandwidth(call('ADD', probe, { id: 'cfb-probe' }), conf('1.1.0', probe.prevResult, LIMITS));
    const name = add.json.interfaces[2].name as string;
    expect(bandwidth(call('DEL', probe, { id: 'cfb-probe' }), conf('1.1.0', undefined)).status).toBe(0);
    sh('ip', ['-n', host, 'link', 'add', name, 'type', 'veth', 'peer', 'name', 'cfbx']);
    const r = bandwidth(call('ADD', c, { id: 'cfb-probe' }), conf('1.1.0', c.prevResult, LIMITS));
    expect(r.status).not.toBe(0);
    expect(r.json.msg).toMatch(new RegExp(`"${name}" exists and is not this attachment's IFB`));
    expect(qdiscs(c.hostVeth).map((q) => q.kind)).toEqual(['noqueue']);
  });

  it('refuses bad limits with code 7, and a container interface that is not a veth with a host peer', () => {
    const c = container();
    for (const [extra, msg] of [
      [{ ingressRate: 1000 }, /ingressRate is set, so ingressBurst must be set too/],
      [{ egressBurst: 1000 }, /egressBurst is set, so egressRate must be set too/],
      [{ egressRate: 1e6, egressBurst: 8 * 2 ** 32 }, /cannot be more than 4GB/],
      [{ ingressRate: -5, ingressBurst: 5 }, /non-negative integer/],
      [{ runtimeConfig: { bandwidth: { ingressRate: '1M' } } }, /runtimeConfig.bandwidth.ingressRate must be a non-negative integer/],
    ] as Array<[Record<string, unknown>, RegExp]>) {
      const r = bandwidth(call('ADD', c), conf('1.1.0', c.prevResult, extra));
      expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(msg) });
    }
    // A veth pair that lives entirely in the container: no host end to shape.
    sh('ip', ['-n', c.ns, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth2']);
    const r = bandwidth({ ...call('ADD', c), ifname: 'eth1' }, conf('1.1.0', c.prevResult, LIMITS));
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(/without a veth peer in this namespace/) });
    expect(ifbs()).toEqual([]);
  });

  it('after an upgrade from the reference: our DEL removes the IFB the reference made', () => {
    const c = container('1.0.0');
    const ref = runCni(host, 'bandwidth', call('ADD', c), conf('1.0.0', c.prevResult, LIMITS), { bin: '/usr/lib/cni/bandwidth' });
    expect(ref.status).toBe(0);
    expect(ifbs()).toHaveLength(1);
    expect(bandwidth(call('DEL', c), conf('1.0.0', ref.json)).status).toBe(0);
    expect(ifbs()).toEqual([]);
    expect(qdiscs(c.hostVeth).map((q) => q.kind)).toEqual(['noqueue']);
  });
});
