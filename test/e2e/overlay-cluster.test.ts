// The overlay's cluster behaviour with each store: three "host" namespaces on
// one underlay switch (overlay-helpers.ts), each running the built agent,
// containers added by the built plugin; real traffic, real kernel, and a real
// etcd on the underlay for the etcd store.
import { spawnSync } from 'child_process';
import { etcdAvailable } from '../helpers/etcd';
import { sh } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { Cluster, sleep, waitFor, type Ctr, type Host, type PeerView } from './overlay-helpers';

const CIDR = '10.244.0.0/16';
const TTL = 2;
/** Bounds from the issue (1 s after SIGTERM, TTL + 1 s after SIGKILL) plus slack for a loaded 2-core machine; bench measures the real numbers. */
const SLACK_MS = 1500;

function expectedFor(c: Cluster, self: Host, subnets: Map<Host, string>, without: Host[] = []): PeerView {
  return Cluster.expected(c.hosts.filter((h) => h !== self && !without.includes(h) && subnets.has(h)).map((h) => ({ ip: h.ip, subnet: subnets.get(h)! })));
}

function scenarios(store: 'file' | 'etcd'): void {
  let c: Cluster;
  const subnets = new Map<Host, string>();
  const ctr = new Map<Host, Ctr>();

  beforeAll(async () => {
    ensureBuilt('vxlan-overlay');
    c = new Cluster({ prefix: store === 'file' ? 'ovf' : 'ove', hosts: 3, store, cidr: CIDR, leaseTtl: TTL });
    if (store === 'etcd') await c.startEtcd();
    // All three agents start at once: they race for subnets.
    for (const h of c.hosts) c.startAgent(h);
    for (const h of c.hosts) subnets.set(h, (await c.waitReady(h)).subnet);
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
    expect((await c.waitReady(h3)).subnet).toBe(subnets.get(h3));
    await peersSettled();
    expect(c.ping(ctr.get(c.hosts[0])!.ns, ctr.get(h3)!.ip)).toBe(true);
  }, 30000);

  it('SIGKILL: peers drop the host when its lease expires; restarted, it gets its subnet back', async () => {
    const h2 = c.hosts[1];
    await c.stopAgent(h2, 'SIGKILL');
    await peersSettled([h2], TTL * 1000 + 1000 + SLACK_MS);
    c.startAgent(h2);
    expect((await c.waitReady(h2)).subnet).toBe(subnets.get(h2));
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

  it('leave refuses while a container is attached, then gives the subnet back and peers drop the host', async () => {
    const h3 = c.hosts[2];
    const refused = c.leave(h3);
    expect(refused.status).not.toBe(0);
    expect(refused.out).toMatch(/1 container\(s\) of network "ovt" are still attached on this host .*CNI DEL/);
    expect(c.state(h3)?.leaseOk).toBe(true); // nothing was stopped
    c.delContainer(h3, ctr.get(h3)!);
    const r = c.leave(h3);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`released ${subnets.get(h3)}`);
    expect(c.state(h3)).toBeUndefined();
    await peersSettled([h3], 1000 + SLACK_MS);
    expect(spawnSync('ip', ['-n', h3.ns, 'link', 'show', 'ovx1']).status).not.toBe(0);
    expect(spawnSync('ip', ['-n', h3.ns, 'link', 'show', 'ovbr1']).status).not.toBe(0);
    expect(c.traces(h3, [subnets.get(h3)!])).toEqual([]);
    // The network's masquerade went with its last container (lib/bridge/lifecycle.ts), so nothing is left to leave.
    expect(spawnSync('ip', ['netns', 'exec', h3.ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' }).stdout).not.toContain('node_cni_masq');
  }, 30000);

  it('CHECK passes on a good attachment and names what is missing on a broken one', () => {
    const h1 = c.hosts[0];
    const a = ctr.get(h1)!;
    const conf = { ...c.conf(h1), prevResult: a.result };
    const id = c.containerId('c1');
    expect(c.plugin(h1, 'CHECK', id, c.sb.nsPath(a.ns), conf).status).toBe(0);
    sh('ip', ['-n', a.ns, 'route', 'del', CIDR]);
    const r = c.plugin(h1, 'CHECK', id, c.sb.nsPath(a.ns), conf);
    sh('ip', ['-n', a.ns, 'route', 'add', CIDR, 'via', a.result.ips[0].gateway, 'metric', '1000000']);
    expect(r.status).not.toBe(0);
    expect(r.json.msg).toContain(`route ${CIDR} via ${a.result.ips[0].gateway} metric 1000000 is missing`);
  });

  it('DEL is idempotent and needs neither the agent nor the netns', () => {
    const h3 = c.hosts[2];
    const id = c.containerId('c3');
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
