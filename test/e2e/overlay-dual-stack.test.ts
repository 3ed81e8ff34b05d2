// vxlan-overlay dual-stack, with a real etcd: IPv4 and IPv6 container
// networks over an IPv4 underlay (three hosts), and over an IPv6 underlay
// found from the default route (three hosts). Real traffic both ways (ping,
// ping6, TCP), the peers' kernel entries in both families, IPv6 masquerade,
// a host with an IPv4-only record of an older agent next to dual-stack ones,
// and `leave` followed by another host leasing the same subnets.
import { spawnSync } from 'child_process';
import { etcdAvailable } from '../helpers/etcd';
import { sh } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { Cluster, waitFor, type AgentState, type Ctr, type Host, type PeerView } from './overlay-helpers';

const CIDR = '10.244.0.0/16';
const CIDR6 = 'fd00:10:244::/56';
const SLACK_MS = 2500;

/** The IPv6 subnet at the IPv4 subnet's position: 10.244.N.0/24 <-> fd00:10:244:N::/64 (N < 256). */
function pairOf(subnet: string): string {
  const n = Number(subnet.split('.')[2]);
  return n === 0 ? 'fd00:10:244::/64' : `fd00:10:244:${n.toString(16)}::/64`;
}

function expectedFor(c: Cluster, self: Host, states: Map<Host, AgentState>, without: Host[] = []): PeerView {
  return Cluster.expected(c.hosts.filter((h) => h !== self && !without.includes(h) && states.has(h))
    .map((h) => ({ ip: h.ip, subnet: states.get(h)!.subnet, subnet6: states.get(h)!.subnet6 })));
}

function dualStack(underlay: 4 | 6): void {
  let c: Cluster;
  const states = new Map<Host, AgentState>();
  const ctr = new Map<Host, Ctr>();
  const mtu = 1500 - (underlay === 6 ? 70 : 50);

  beforeAll(async () => {
    ensureBuilt('vxlan-overlay');
    c = new Cluster({
      prefix: underlay === 6 ? 'ov6' : 'ovd', hosts: 3, store: 'etcd', cidr: CIDR, ipv6Cidr: CIDR6, underlay,
      dualUnderlay: underlay === 4, autoUnderlay: underlay === 6, leaseTtl: 2,
    });
    await c.startEtcd();
    for (const h of c.hosts) c.startAgent(h);
    for (const h of c.hosts) states.set(h, await c.waitReady(h));
    c.hosts.forEach((h, i) => ctr.set(h, c.addContainer(h, `c${i + 1}`)));
  }, 90000);

  afterAll(async () => {
    await c?.cleanup();
  });

  const settled = async (without: Host[] = [], ms = 5000): Promise<void> => {
    for (const h of c.hosts.filter((x) => !without.includes(x) && states.has(x))) {
      const want = expectedFor(c, h, states, without);
      await waitFor(() => `${h.name} to hold exactly ${JSON.stringify(want)} (has ${JSON.stringify(c.peers(h))}; log: ${h.log.slice(-2000)})`, ms,
        () => JSON.stringify(c.peers(h)) === JSON.stringify(want));
    }
  };

  it('leases each host an IPv6 subnet paired with its IPv4 one, and gives containers both families', () => {
    for (const [h, s] of states) {
      expect(s.subnet).toMatch(/^10\.244\.\d+\.0\/24$/);
      expect(s.subnet6).toBe(pairOf(s.subnet));
      const r = ctr.get(h)!.result;
      const gw4 = s.subnet.replace(/\.0\/24$/, '.1');
      const gw6 = s.subnet6!.replace(/::\/64$/, '::1');
      expect(r.ips.map((i: { address: string; gateway: string }) => [i.address.split('/')[1], i.gateway])).toEqual([['24', gw4], ['64', gw6]]);
      // Each with the metric it was installed with (lib/routes: gwPriority 0, the container's first network).
      const metric = 1000000;
      expect(r.routes).toEqual([{ dst: CIDR, gw: gw4, priority: metric }, { dst: CIDR6, gw: gw6, priority: metric }, { dst: '0.0.0.0/0', gw: gw4, priority: metric }, { dst: '::/0', gw: gw6, priority: metric }]);
    }
  });

  if (underlay === 6) {
    it('found the IPv6 underlay from the default route: VXLAN over IPv6, MTU 1500 - 70', () => {
      for (const h of c.hosts) {
        const link = JSON.parse(sh('ip', ['-n', h.ns, '-d', '-j', 'link', 'show', 'ovx1']))[0];
        expect(link.linkinfo.info_data.local6).toBe(h.ip);
        expect(link.mtu).toBe(mtu);
        expect(c.state(h)!.mtu).toBe(mtu);
      }
    });
  }

  it('programs one FDB entry and a neighbour and a route per family for every peer', async () => {
    await settled();
    for (const h of c.hosts) expect(c.peers(h)).toEqual(expectedFor(c, h, states));
  });

  it('ping and ping6 between containers on every pair of hosts, and to their own gateways', async () => {
    await settled();
    for (const [h, a] of ctr) {
      expect(c.ping(a.ns, a.result.ips[0].gateway)).toBe(true);
      expect(c.ping(a.ns, a.result.ips[1].gateway)).toBe(true);
      for (const [h2, b] of ctr) {
        if (h2 === h) continue;
        expect([h.name, h2.name, b.ip, await c.pingSoon(a.ns, b.ip)]).toEqual([h.name, h2.name, b.ip, true]);
        expect([h.name, h2.name, b.ip6, await c.pingSoon(a.ns, b.ip6!)]).toEqual([h.name, h2.name, b.ip6, true]);
      }
    }
  }, 60000);

  it('TCP both ways over IPv4 and IPv6', async () => {
    const [a, b] = [ctr.get(c.hosts[0])!, ctr.get(c.hosts[1])!];
    expect(await c.tcpEcho(a.ns, b.ns, b.ip, 7101)).toBe('pct-yalrevo');
    expect(await c.tcpEcho(b.ns, a.ns, a.ip, 7102)).toBe('pct-yalrevo');
    expect(await c.tcpEcho(a.ns, b.ns, b.ip6!, 7103)).toBe('pct-yalrevo');
    expect(await c.tcpEcho(b.ns, a.ns, a.ip6!, 7104)).toBe('pct-yalrevo');
  }, 60000);

  it('full-size packets with DF set pass in both families, one byte more does not', () => {
    const [a, b] = [ctr.get(c.hosts[0])!, ctr.get(c.hosts[1])!];
    expect(c.ping(a.ns, b.ip, ['-M', 'do', '-s', String(mtu - 28)])).toBe(true);
    expect(c.ping(a.ns, b.ip, ['-M', 'do', '-s', String(mtu - 27)])).toBe(false);
    expect(c.ping(a.ns, b.ip6!, ['-M', 'do', '-s', String(mtu - 48)])).toBe(true);
    expect(c.ping(a.ns, b.ip6!, ['-M', 'do', '-s', String(mtu - 47)])).toBe(false);
  });

  it('masquerades traffic that leaves the cluster in both families (the switch has no route back)', () => {
    const a = ctr.get(c.hosts[0])!;
    expect(spawnSync('ip', ['-n', c.sw, 'route', 'get', a.ip]).status).not.toBe(0);
    expect(c.ping(a.ns, c.switchIp.v6)).toBe(true);
    if (underlay === 4) expect(c.ping(a.ns, c.switchIp.v4)).toBe(true);
    const nft = sh('ip', ['netns', 'exec', c.hosts[0].ns, 'nft', 'list', 'map', 'inet', 'node_cni_masq', 'masq6']);
    expect(nft).toContain(a.ip6);
  });

  it('CHECK passes on a dual-stack attachment and names a missing IPv6 route or masquerade element', () => {
    const h1 = c.hosts[0];
    const a = ctr.get(h1)!;
    const conf = { ...c.conf(h1), prevResult: a.result };
    expect(c.plugin(h1, 'CHECK', a.id, c.sb.nsPath(a.ns), conf).status).toBe(0);
    const gw6 = a.result.ips[1].gateway;
    sh('ip', ['-n', a.ns, '-6', 'route', 'del', CIDR6]);
    const noRoute = c.plugin(h1, 'CHECK', a.id, c.sb.nsPath(a.ns), conf);
    sh('ip', ['-n', a.ns, '-6', 'route', 'add', CIDR6, 'via', gw6, 'metric', '1000000']);
    expect(noRoute.status).not.toBe(0);
    expect(noRoute.json.msg).toContain(`route ${CIDR6} via ${gw6} metric 1000000 is missing`);
    sh('ip', ['netns', 'exec', h1.ns, 'nft', 'delete', 'element', 'inet', 'node_cni_masq', 'masq6', `{ ${a.ip6} }`]);
    const noMasq = c.plugin(h1, 'CHECK', a.id, c.sb.nsPath(a.ns), conf);
    expect(noMasq.status).not.toBe(0);
    expect(noMasq.json.msg).toContain(`masquerade for ${a.ip6} is missing`);
    // A DEL and an ADD of the same container put everything back (the e2e tests after this one use it).
    c.delContainer(h1, a);
    const again = c.plugin(h1, 'ADD', a.id, c.sb.nsPath(a.ns));
    expect(again.status).toBe(0);
    a.result = again.json;
    [a.ip, a.ip6] = again.json.ips.map((i: { address: string }) => i.address.split('/')[0]);
    expect(c.plugin(h1, 'CHECK', a.id, c.sb.nsPath(a.ns), { ...c.conf(h1), prevResult: again.json }).status).toBe(0);
  });

  it('a host that stops is removed from the other hosts in both families; restarted, it gets both subnets back', async () => {
    const h3 = c.hosts[2];
    await settled();
    await c.stopAgent(h3, 'SIGKILL');
    await settled([h3], 2000 + 1000 + SLACK_MS);
    for (const h of c.hosts.slice(0, 2)) {
      expect(c.traces(h, [states.get(h3)!.subnet, states.get(h3)!.subnet6!])).toEqual([]);
    }
    c.startAgent(h3);
    expect(await c.waitReady(h3)).toMatchObject({ subnet: states.get(h3)!.subnet, subnet6: states.get(h3)!.subnet6 });
    await settled();
    expect(await c.pingSoon(ctr.get(c.hosts[0])!.ns, ctr.get(h3)!.ip6!)).toBe(true);
  }, 30000);

  if (underlay === 4) {
    it('an older agent\'s IPv4-only record (and a garbled one) next to dual-stack hosts: IPv4 to it, both families among the others', async () => {
      const put = (key: string, value: string): void => {
        sh('ip', ['netns', 'exec', c.sw, 'etcdctl', '--endpoints', c.etcd!.endpoint, 'put', key, value]);
      };
      const prefix = `/node-cni/overlay/${c.net}/`;
      const old = { hostID: 'old-host', underlayIP: '10.77.0.77', vtepMAC: '0a:76:0a:f4:c8:00', vni: 1, port: 4789, mtu: 1450, subnet: '10.244.200.0/24' };
      put(`${prefix}subnets/10.244.200.0_24`, 'old-host');
      put(`${prefix}hosts/old-host`, JSON.stringify(old));
      put(`${prefix}hosts/garbled`, '{"hostID": "garbled", "subnet": 42');
      try {
        for (const h of c.hosts) {
          const want = expectedFor(c, h, states);
          const withOld = Cluster.expected([{ ip: old.underlayIP, subnet: old.subnet }]);
          const all = { neigh: [...want.neigh, ...withOld.neigh].sort(), fdb: [...want.fdb, ...withOld.fdb].sort(), routes: [...want.routes, ...withOld.routes].sort() };
          await waitFor(() => `${h.name} to program the old host's IPv4 (has ${JSON.stringify(c.peers(h))})`, 5000, () => JSON.stringify(c.peers(h)) === JSON.stringify(all));
        }
        const [a, b] = [ctr.get(c.hosts[0])!, ctr.get(c.hosts[1])!];
        expect(c.ping(a.ns, b.ip6!)).toBe(true);
      } finally {
        sh('ip', ['netns', 'exec', c.sw, 'etcdctl', '--endpoints', c.etcd!.endpoint, 'del', `${prefix}hosts/old-host`]);
        sh('ip', ['netns', 'exec', c.sw, 'etcdctl', '--endpoints', c.etcd!.endpoint, 'del', `${prefix}hosts/garbled`]);
        sh('ip', ['netns', 'exec', c.sw, 'etcdctl', '--endpoints', c.etcd!.endpoint, 'del', `${prefix}subnets/10.244.200.0_24`]);
      }
      await settled();
    }, 30000);
  }

  it('leave: nothing of the subnets stays on the host; a new host leases them and is reachable, and the host that left can come back', async () => {
    const [h1, , h3] = c.hosts;
    const left = states.get(h3)!;
    c.delContainer(h3, ctr.get(h3)!);
    const r = c.leave(h3);
    expect(r.status).toBe(0);
    expect(r.out).toContain(`released ${left.subnet}`);
    states.delete(h3);
    await settled([h3], 1000 + SLACK_MS);
    // On the host that left: no device, address, route or neighbour of either subnet, no masquerade, no IPAM state.
    expect(c.traces(h3, [left.subnet, left.subnet6!])).toEqual([]);
    expect(spawnSync('ip', ['-n', h3.ns, 'link', 'show', 'ovbr1']).status).not.toBe(0);
    expect(spawnSync('ip', ['-n', h3.ns, 'link', 'show', 'ovx1']).status).not.toBe(0);
    // The network's masquerade chains (one per family) went with its last container, and the table with them.
    const masq = spawnSync('ip', ['netns', 'exec', h3.ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' }).stdout;
    expect(masq).not.toContain(`network ${c.net}`);
    expect(masq).not.toContain('node_cni_masq');
    expect(spawnSync('ls', [`${c.ipamDir(h3)}/${c.net}`]).status).not.toBe(0);
    // On the others: nothing of it either.
    expect(c.traces(h1, [left.subnet, left.subnet6!])).toEqual([]);

    // A fourth host leases the first free subnets: the ones h3 gave back.
    const h4 = c.addHost(4);
    c.startAgent(h4);
    const s4 = await c.waitReady(h4);
    expect(s4).toMatchObject({ subnet: left.subnet, subnet6: left.subnet6 });
    states.set(h4, s4);
    const c4 = c.addContainer(h4, 'c4');
    await settled([h3]);
    const a = ctr.get(h1)!;
    expect(await c.pingSoon(a.ns, c4.ip)).toBe(true);
    expect(await c.pingSoon(a.ns, c4.ip6!)).toBe(true);
    expect(await c.pingSoon(c4.ns, a.ip6!)).toBe(true);

    // The host that left joins again with other subnets, and reaches the new owner of its old ones.
    c.startAgent(h3);
    const again = await c.waitReady(h3);
    expect(again.subnet).not.toBe(left.subnet);
    states.set(h3, again);
    const c3 = c.addContainer(h3, 'c3b');
    await settled();
    expect(await c.pingSoon(c3.ns, c4.ip)).toBe(true);
    expect(await c.pingSoon(c3.ns, c4.ip6!)).toBe(true);
  }, 60000);
}

(etcdAvailable() ? describe : describe.skip)('vxlan-overlay dual-stack over an IPv4 underlay (etcd)', () => {
  dualStack(4);
});

(etcdAvailable() ? describe : describe.skip)('vxlan-overlay dual-stack over an IPv6 underlay found from the default route (etcd)', () => {
  dualStack(6);
});
