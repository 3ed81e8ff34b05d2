// Pure parts of the vxlan-overlay agent and plugin: MTU, names, VTEP MAC and
// addresses, the peer sync plan, readiness judgement, config and CLI parsing.
import * as fs from 'fs';
import { parseOverlayConfig, overlayEntryOf } from '../../plugins/vxlan-overlay/config';
import {
  describeOps, gatewayOf, overlayMtu, peerEntries, PeerTable, planSync, reconcileInterval, relistDelay, vtepCidr, vtepCidr6, vtepMac, type PeerRecord, type SelfView,
} from '../../plugins/vxlan-overlay/model';
import { judgeReadiness, type AgentState } from '../../plugins/vxlan-overlay/readiness';
import { isAgentVerb, parseCli } from '../../plugins/vxlan-overlay/agent/options';

const peer = (n: number, underlay = `10.77.0.${n}`): PeerRecord => ({ hostID: `h${n}`, underlayIP: underlay, vtepMAC: vtepMac(`10.244.${n}.0/24`), subnet: `10.244.${n}.0/24` });
const peer6 = (n: number, underlay?: string): PeerRecord => ({ ...peer(n, underlay), subnet6: `fd00:10:244:${n}::/64` });
const self4: SelfView = { hostID: 'h1', subnet: '10.244.1.0/24', underlayFamily: 4 };
const self6: SelfView = { ...self4, subnet6: 'fd00:10:244:1::/64' };
const none = { neighbours: [], fdb: [], routes: [] };

describe('overlay model', () => {
  it.each([
    [{ underlayMtu: 1500, underlayFamily: 4 as const }, 1450],
    [{ underlayMtu: 1500, underlayFamily: 6 as const }, 1430],
    [{ underlayMtu: 9000, underlayFamily: 4 as const }, 8950],
    [{ configured: 1400, underlayMtu: 1500, underlayFamily: 4 as const }, 1400],
    [{ configured: 0, underlayMtu: 1500, underlayFamily: 4 as const }, 1450],
  ])('MTU %j -> %d', (o, mtu) => expect(overlayMtu(o)).toBe(mtu));

  it('derives a stable, locally administered unicast VTEP MAC from the subnet', () => {
    expect(vtepMac('10.244.3.0/24')).toBe('0a:76:0a:f4:03:00');
    expect(vtepMac('10.244.3.0/24')).toBe(vtepMac('10.244.3.0/24'));
    expect(vtepMac('10.244.4.0/24')).not.toBe(vtepMac('10.244.3.0/24'));
    const first = parseInt(vtepMac('10.244.3.0/24').slice(0, 2), 16);
    expect(first & 0x02).toBe(2); // locally administered
    expect(first & 0x01).toBe(0); // unicast
  });

  it('puts the VTEP on the subnet address (IPv4 with the cluster prefix, IPv6 as a /128) and the gateway on the first address', () => {
    expect(vtepCidr('10.244.3.0/24', '10.244.0.0/16')).toBe('10.244.3.0/16');
    expect(vtepCidr6('fd00:10:244:3::/64')).toBe('fd00:10:244:3::/128');
    expect(gatewayOf('10.244.3.0/24')).toEqual({ ip: '10.244.3.1', cidr: '10.244.3.1/24' });
    expect(gatewayOf('fd00:10:244:3::/64')).toEqual({ ip: 'fd00:10:244:3::1', cidr: 'fd00:10:244:3::1/64' });
  });

  it('plans neighbour, FDB, route for a new peer, in that order', () => {
    expect(planSync([peerEntries(peer(2), self4)!], none)).toEqual([
      { op: 'add-neighbour', ip: '10.244.2.0', mac: '0a:76:0a:f4:02:00' },
      { op: 'add-fdb', mac: '0a:76:0a:f4:02:00', dst: '10.77.0.2' },
      { op: 'add-route', dst: '10.244.2.0/24', gw: '10.244.2.0' },
    ]);
  });

  it('dual-stack: one FDB entry, a neighbour and a route per family (the IPv6 route onlink)', () => {
    expect(planSync([peerEntries(peer6(2), self6)!], none)).toEqual([
      { op: 'add-neighbour', ip: '10.244.2.0', mac: '0a:76:0a:f4:02:00' },
      { op: 'add-neighbour', ip: 'fd00:10:244:2::', mac: '0a:76:0a:f4:02:00' },
      { op: 'add-fdb', mac: '0a:76:0a:f4:02:00', dst: '10.77.0.2' },
      { op: 'add-route', dst: '10.244.2.0/24', gw: '10.244.2.0' },
      { op: 'add-route', dst: 'fd00:10:244:2::/64', gw: 'fd00:10:244:2::', onlink: true },
    ]);
  });

  it.each([
    ['an older agent\'s record (no subnet6) on a dual-stack host: IPv4 only', peer(2), self6, 3],
    ['a dual-stack record on an IPv4-only host: IPv4 only', peer6(2), self4, 3],
    ['an IPv6-underlay peer of an IPv4-underlay host: unreachable', peer6(2, 'fd00:77::2'), self6, 0],
    ['our own subnet under another host ID (a store bug): never routed away', { ...peer(1), hostID: 'other' }, self4, 0],
  ])('%s', (_n, record, self, ops) => {
    const e = peerEntries(record, self);
    expect(e ? planSync([e], none).length : 0).toBe(ops);
  });

  it('IPv6 underlay: FDB entries point at IPv6 addresses', () => {
    const self = { ...self6, underlayFamily: 6 as const };
    expect(peerEntries(peer6(2, 'fd00:77::2'), self)!.fdb).toEqual({ mac: '0a:76:0a:f4:02:00', dst: 'fd00:77::2' });
  });

  it('removes a departed peer route first, neighbour last, and plans nothing when in sync', () => {
    const e = peerEntries(peer6(2), self6)!;
    const actual = { neighbours: e.neighbours, fdb: [e.fdb], routes: e.routes.map((r) => ({ dst: r.dst, gw: r.gw })) };
    expect(planSync([], actual)).toEqual([
      { op: 'del-route', dst: '10.244.2.0/24', gw: '10.244.2.0' },
      { op: 'del-route', dst: 'fd00:10:244:2::/64', gw: 'fd00:10:244:2::' },
      { op: 'del-fdb', ...e.fdb },
      { op: 'del-neighbour', ip: '10.244.2.0' },
      { op: 'del-neighbour', ip: 'fd00:10:244:2::' },
    ]);
    expect(planSync([e], actual)).toEqual([]);
  });

  it('moves a peer whose underlay address changed: old FDB out, new in', () => {
    const old = peerEntries(peer(2), self4)!;
    const moved = peerEntries(peer(2, '10.77.0.99'), self4)!;
    expect(planSync([moved], { neighbours: old.neighbours, fdb: [old.fdb], routes: old.routes })).toEqual([
      { op: 'del-fdb', ...old.fdb },
      { op: 'add-fdb', ...moved.fdb },
    ]);
  });

  it.each([
    [5000, 0, 5000],
    [5000, 100, 5000],
    [5000, 1000, 50000],
    [2000, 250, 5000],
  ])('reconcile every %d ms with %d peers: every %d ms (its average cost stays that of 100 peers)', (base, peers, want) => {
    expect(reconcileInterval(base, peers)).toBe(want);
  });

  it.each([
    [0, 1000, 5000, 0],
    [1000, 1500, 5000, 4500],
    [1000, 6000, 5000, 0],
    [1000, 9000, 5000, 0],
  ])('a re-list after the list at %d, at %d, every %d ms: waits %d ms (the store is read at most once per interval)', (last, now, every, wait) => {
    expect(relistDelay(last, now, every)).toBe(wait);
  });

  it('summarizes a large plan by counts', () => {
    const ops = planSync(Array.from({ length: 20 }, (_v, i) => peerEntries(peer(i + 2), self4)!), none);
    expect(describeOps(ops)).toBe('20× add-neighbour, 20× add-fdb, 20× add-route');
    expect(describeOps(ops.slice(0, 1))).toBe('add-neighbour 10.244.2.0 0a:76:0a:f4:02:00');
  });
});

describe('PeerTable: one store event, the ops of one host', () => {
  const full = (t: PeerTable): number => planSync(t.desired(), none).length;

  it('a new host, the same record again, its removal', () => {
    const t = new PeerTable(self6);
    expect(t.put(peer6(2))).toHaveLength(5);
    expect(t.put(peer6(2))).toEqual([]); // a lease renewal writes the same record
    expect(t.size).toBe(1);
    expect(t.remove('h2').map((o) => o.op)).toEqual(['del-route', 'del-route', 'del-fdb', 'del-neighbour', 'del-neighbour']);
    expect(t.remove('h2')).toEqual([]);
    expect(t.size).toBe(0);
  });

  it('ignores our own record', () => {
    const t = new PeerTable(self4);
    expect(t.put(peer(1))).toEqual([]);
    expect(t.size).toBe(0);
  });

  it('an event costs the same ops with 1 peer or 1000', () => {
    const t = new PeerTable(self6);
    for (let i = 0; i < 1000; i++) t.put({ ...peer6(2), hostID: `x${i}`, subnet: `10.${245 + (i >> 8)}.${i & 255}.0/24`, subnet6: `fd00:10:${245 + (i >> 8)}:${i & 255}::/64` });
    expect(t.size).toBe(1000);
    expect(t.put(peer6(2))).toHaveLength(5);
    expect(t.remove('h2')).toHaveLength(5);
  });

  it('a host that moves to another underlay address changes only its FDB entry', () => {
    const t = new PeerTable(self4);
    t.put(peer(2));
    expect(t.put(peer(2, '10.77.0.99'))).toEqual([
      { op: 'del-fdb', mac: '0a:76:0a:f4:02:00', dst: '10.77.0.2' },
      { op: 'add-fdb', mac: '0a:76:0a:f4:02:00', dst: '10.77.0.99' },
    ]);
  });

  it('a subnet claimed twice: the lower host ID wins, the other takes over when it goes', () => {
    const t = new PeerTable(self4);
    t.put({ ...peer(2), hostID: 'b' });
    const ops = t.put({ ...peer(2, '10.77.0.50'), hostID: 'a' });
    expect(ops).toEqual([
      { op: 'del-fdb', mac: '0a:76:0a:f4:02:00', dst: '10.77.0.2' },
      { op: 'add-fdb', mac: '0a:76:0a:f4:02:00', dst: '10.77.0.50' },
    ]);
    expect(t.remove('a')).toEqual([
      { op: 'del-fdb', mac: '0a:76:0a:f4:02:00', dst: '10.77.0.50' },
      { op: 'add-fdb', mac: '0a:76:0a:f4:02:00', dst: '10.77.0.2' },
    ]);
    expect(t.size).toBe(1);
  });

  it('a subnet left by one host and leased by another: the new owner replaces the old entries', () => {
    const t = new PeerTable(self6);
    t.put(peer6(3));
    expect(t.remove('h3')).toHaveLength(5);
    expect(t.put({ ...peer6(3, '10.77.0.4'), hostID: 'h4' }).map((o) => o.op)).toEqual(['add-neighbour', 'add-neighbour', 'add-fdb', 'add-route', 'add-route']);
  });

  it('replaceAll (a re-list) holds exactly the listed hosts', () => {
    const t = new PeerTable(self4);
    t.put(peer(2));
    t.replaceAll([peer(1), peer(3), peer(4)]);
    expect([...t.desired()].map((p) => p.hostID).sort()).toEqual(['h3', 'h4']);
    expect(full(t)).toBe(6);
  });
});

describe('agent readiness as the plugin judges it', () => {
  const state: AgentState = {
    network: 'n', hostID: 'h', pid: 42, subnet: '10.244.1.0/24', cidr: '10.244.0.0/16', gateway: '10.244.1.1',
    bridge: 'ovbr1', vxlan: 'ovx1', mtu: 1450, leaseOk: true, heartbeat: 1000, heartbeatMs: 1000,
  };
  it.each([
    ['no file', undefined, 2000, true, /not running on this host/],
    ['dead pid', state, 2000, false, /pid 42\) is not running/],
    ['stale heartbeat', state, 1000 + 3001, true, /has not sent a heartbeat/],
    ['lease lost', { ...state, leaseOk: false }, 2000, true, /lost its lease/],
  ])('%s: not ready', (_n, s, now, alive, re) => {
    const r = judgeReadiness('n', '/run/x.json', s, now, () => alive);
    expect(r.ready).toBe(false);
    expect(!r.ready && r.reason).toMatch(re);
    expect(!r.ready && r.reason).toMatch(/vxlan-overlay agent/);
  });
  it('fresh heartbeat, live pid, lease held: ready', () => {
    expect(judgeReadiness('n', '/f', state, 2500, () => true).ready).toBe(true);
  });
});

describe('overlay config', () => {
  it('defaults: file store, masquerade, default route, auto MTU', () => {
    const c = parseOverlayConfig({ cniVersion: '1.0.0', name: 'ov', type: 'vxlan-overlay' });
    expect(c).toMatchObject({ store: { type: 'file' }, ipMasq: true, isDefaultGateway: true, mtu: 0, runDir: '/run/node-cni/overlay' });
  });
  it.each([
    [{ cidr: '10.244.0.1/16' }, /"cidr": .*host bits/],
    [{ mtu: -1 }, /"mtu"/],
    [{ vni: 0 }, /"vni"/],
    [{ store: { type: 'consul' } }, /"store.type"/],
    [{ store: { type: 'etcd', endpoints: [] } }, /"store.endpoints"/],
    [{ ipam: { type: 'dhcp' } }, /"ipam.type" "dhcp" is not supported/],
    [{ bridge: 'a-name-that-is-too-long' }, /"bridge"/],
    [{ ipMasq: 'yes' }, /"ipMasq"/],
    [{ isolation: 'yes' }, /^vxlan-overlay: "isolation" must be true or false/],
    [{ nameResolution: 'on' }, /^vxlan-overlay: "nameResolution" must be true, false or an object/],
    [{ nameResolution: { upstream: ['dns.example'] } }, /^vxlan-overlay: "nameResolution.upstream" entry "dns.example"/],
    [{ nameResolution: { runDir: 'relative' } }, /^vxlan-overlay: "nameResolution.runDir" "relative" is not an absolute path/],
    [{ dns: { nameservers: '10.0.0.1' } }, /^vxlan-overlay: "dns.nameservers" must be a list of strings/],
    [{ runDir: '/etc/ov' }, /^vxlan-overlay: "runDir" "\/etc\/ov" is not below one of/],
    [{ store: { type: 'file', dir: '/run/x\nconf' } }, /"store.dir" .* control character/],
    [{ ipv6Cidr: 'fd00::1/56' }, /"ipv6Cidr": .*host bits/],
    [{ ipv6Cidr: '10.0.0.0/8' }, /"ipv6Cidr": .*not an IPv6 CIDR/],
    [{ ipv6SubnetLength: 64 }, /"ipv6SubnetLength" needs "ipv6Cidr"/],
  ])('rejects %j with code 7', (extra, re) => {
    try {
      parseOverlayConfig({ cniVersion: '1.0.0', name: 'ov', type: 'vxlan-overlay', ...extra });
      throw new Error('accepted');
    } catch (err) {
      expect((err as { code?: number }).code).toBe(7);
      expect((err as Error).message).toMatch(re);
    }
  });
  it('isolation and nameResolution: off by default, parsed as the bridge plugin parses them', () => {
    const off = parseOverlayConfig({ cniVersion: '1.0.0', name: 'ov', type: 'vxlan-overlay' });
    expect(off.isolation).toBe(false);
    expect(off.nameResolution).toBeUndefined();
    expect(parseOverlayConfig({ name: 'ov', nameResolution: false }).nameResolution).toBeUndefined();
    const on = parseOverlayConfig({ cniVersion: '1.0.0', name: 'Pod_Net', type: 'vxlan-overlay', isolation: true, nameResolution: true });
    expect(on.isolation).toBe(true);
    expect(on.nameResolution).toEqual({
      domain: 'pod-net.cni.internal', upstream: [], resolvConf: '/etc/resolv.conf', runDir: '/run/node-cni/dnsname',
    });
    const custom = parseOverlayConfig({ name: 'ov', nameResolution: { domain: 'cluster.test.', upstream: ['10.0.0.2#5353'], runDir: '/tmp/x' } });
    expect(custom.nameResolution).toMatchObject({ domain: 'cluster.test', upstream: ['10.0.0.2#5353'], runDir: '/tmp/x' });
  });
  it('finds the overlay entry of a conflist', () => {
    const e = overlayEntryOf({ cniVersion: '1.0.0', name: 'ov', plugins: [{ type: 'vxlan-overlay', cidr: '10.1.0.0/16' }, { type: 'portmap' }] });
    expect(e).toMatchObject({ name: 'ov', type: 'vxlan-overlay', cidr: '10.1.0.0/16' });
  });
});

describe('agent command line', () => {
  const noFile = (): string => { throw new Error('no file'); };
  it('knows its verbs', () => {
    expect(isAgentVerb('agent')).toBe(true);
    expect(isAgentVerb('leave')).toBe(true);
    expect(isAgentVerb('ADD')).toBe(false);
    expect(isAgentVerb(undefined)).toBe(false);
  });
  it('parses flags with defaults', () => {
    const o = parseCli(['agent', '--network', 'ov', '--cidr', '10.244.0.0/16', '--etcd', 'http://10.0.0.1:2379,http://10.0.0.2:2379', '--lease-ttl', '3'], noFile);
    expect(o).toMatchObject({ verb: 'agent', network: 'ov', cidr: '10.244.0.0/16', leaseTtl: 3, reconcileMs: 5000, store: { type: 'etcd', endpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'] } });
  });
  it('dual-stack and leave flags', () => {
    const o = parseCli(['agent', '--network', 'ov', '--cidr', '10.244.0.0/16', '--ipv6-cidr', 'fd00:10:244:0::/56', '--ipv6-subnet-length', '80', '--ipam-data-dir', '/var/lib/d'], noFile);
    expect(o).toMatchObject({ ipv6Cidr: 'fd00:10:244::/56', ipv6SubnetLength: 80, ipamDataDir: '/var/lib/d' });
    expect(parseCli(['leave', '--network', 'ov'], noFile).ipamDataDir).toBe('/var/lib/cni/networks');
  });
  it('reads a conflist and lets flags override it', () => {
    const file = JSON.stringify({ cniVersion: '1.0.0', name: 'ov', plugins: [{ type: 'vxlan-overlay', cidr: '10.9.0.0/16', vni: 7, store: { type: 'file', dir: '/var/lib/s' } }] });
    const o = parseCli(['agent', '--conf', '/x.conflist', '--vni', '8'], () => file);
    expect(o).toMatchObject({ network: 'ov', cidr: '10.9.0.0/16', vni: 8, store: { type: 'file', dir: '/var/lib/s' } });
  });
  it.each([
    [['agent'], /--network/],
    [['agent', '--network', 'ov', '--bogus'], /bogus/],
    [['agent', '--network', 'ov', '--store-dir', '/a', '--etcd', 'http://x:1'], /exclude/],
    [['agent', '--network', 'ov', '--lease-ttl', '0'], /--lease-ttl/],
    [['agent', '--network', 'ov', '--cidr', 'nope'], /cidr/],
  ])('rejects %j', (argv, re) => expect(() => parseCli(argv, noFile)).toThrow(re));
});

describe('overlay conf-examples', () => {
  it.each(['50-overlay-file.conflist', '51-overlay-etcd.conflist', '52-overlay-dual-stack.conflist', '61-k8s-overlay-etcd.conflist'])('%s parses for the plugin and the agent', (f) => {
    const text = fs.readFileSync(`${__dirname}/../../conf-examples/${f}`, 'utf8');
    const entry = overlayEntryOf(JSON.parse(text));
    expect(parseOverlayConfig(entry).cidr).toMatch(/^10\.24[456]\.0\.0\/16$/);
    expect(parseCli(['agent', '--conf', f], () => text).network).toBe(entry.name);
  });
});
