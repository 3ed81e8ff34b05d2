// `internal` and ICC off ("portIsolation") on vxlan-overlay, two hosts with
// the file store: the network is its bridges and VXLAN devices on every
// host, so an internal overlay still connects its containers across hosts
// but nothing leaves or enters it, and with ICC off its containers cannot
// reach each other, on one host or across hosts, while the gateway and the
// outside still work.
import { ensureBuilt } from '../helpers/build';
import { sh } from '../helpers/sandbox';
import { Cluster, type Ctr } from './overlay-helpers';

jest.setTimeout(180000);
beforeAll(() => ensureBuilt('vxlan-overlay'), 300000);

describe('vxlan-overlay: internal and ICC off', () => {
  let c: Cluster;
  afterEach(() => c.cleanup());

  async function cluster(net: string, extra: Record<string, unknown>): Promise<void> {
    c = new Cluster({ prefix: 'mnop', hosts: 2, store: 'file', network: net });
    const conf = c.conf.bind(c);
    c.conf = (h) => ({ ...conf(h), ...extra });
    for (const h of c.hosts) c.startAgent(h);
    for (const h of c.hosts) await c.waitReady(h);
  }
  const nftTables = (i: number): string => sh('ip', ['netns', 'exec', c.hosts[i].ns, 'nft', 'list', 'tables']);
  const check = (i: number, x: Ctr) => c.plugin(c.hosts[i], 'CHECK', x.id, c.sb.nsPath(x.ns), { ...c.conf(c.hosts[i]), prevResult: x.result });

  it('internal: containers reach each other across hosts and their gateway, nothing else in or out', async () => {
    await cluster('mnovi', { internal: true });
    const [h1, h2] = c.hosts;
    const a = c.addContainer(h1, 'a');
    const b = c.addContainer(h2, 'b');
    expect(sh('ip', ['-n', a.ns, 'route', 'show', 'default']).trim()).toBe('');
    expect(a.result.routes.map((r: any) => r.dst)).toEqual(['10.244.0.0/16']);
    expect(await c.pingSoon(a.ns, b.ip)).toBe(true);
    expect(c.ping(a.ns, a.result.ips[0].gateway)).toBe(true);
    // Neither out nor in, even with routes by hand both ways (no masquerade: the outside routes the cluster to h1).
    sh('ip', ['-n', a.ns, 'route', 'add', 'default', 'via', a.result.ips[0].gateway]);
    sh('ip', ['-n', c.sw, 'route', 'add', a.ip, 'via', h1.ip]);
    expect(c.ping(a.ns, c.switchIp.v4)).toBe(false);
    expect(c.ping(c.sw, a.ip)).toBe(false);
    // The same paths open once the network's rules are gone (the test proves the rules, not the routes).
    sh('ip', ['netns', 'exec', h1.ns, 'nft', 'flush', 'chain', 'inet', 'node_cni_netpolicy', 'forward']);
    expect(c.ping(c.sw, a.ip)).toBe(true);
    expect(check(0, a).json.msg).toMatch(/the forwarding rules of network "mnovi" .* are missing/);
    // The next ADD puts them back.
    const e = c.addContainer(h1, 'e');
    expect(c.ping(c.sw, a.ip)).toBe(false);
    c.delContainer(h1, e);
    expect([check(0, a).status, check(1, b).status]).toEqual([0, 0]);
    expect(sh('ip', ['netns', 'exec', h1.ns, 'nft', 'list', 'table', 'inet', 'node_cni_netpolicy'])).toMatch(/members ovbr1,ovx1 network mnovi/);
    c.delContainer(h1, a);
    c.delContainer(h2, b);
    expect([nftTables(0), nftTables(1)].join('')).not.toMatch(/node_cni_netpolicy/);
  });

  it('ICC off: no container reaches another, on one host or across hosts; the gateway and the outside work', async () => {
    await cluster('mnovk', { portIsolation: true });
    const [h1, h2] = c.hosts;
    const a = c.addContainer(h1, 'a');
    const b = c.addContainer(h2, 'b');
    const d = c.addContainer(h1, 'd');
    expect(c.ping(a.ns, b.ip)).toBe(false);
    expect(c.ping(b.ns, a.ip)).toBe(false);
    expect(c.ping(a.ns, d.ip)).toBe(false);
    for (const x of [a, b, d]) {
      expect(c.ping(x.ns, x.result.ips[0].gateway)).toBe(true);
      expect(c.ping(x.ns, c.switchIp.v4)).toBe(true); // the outside, masqueraded
    }
    expect([check(0, a).status, check(1, b).status]).toEqual([0, 0]);
    for (const x of [a, d]) c.delContainer(h1, x);
    c.delContainer(h2, b);
    expect([nftTables(0), nftTables(1)].join('')).not.toMatch(/node_cni_netpolicy/);
  });
});
