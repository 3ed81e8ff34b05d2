import { CniError } from '../../lib/cni/errors';
import type { NetConf } from '../../lib/cni/types';
import type { Route as KernelRoute } from '../../lib/netlink';
import { DEFAULT_DATA_DIR, parseMacvlanConfig } from '../../plugins/macvlan/config';
import { buildResult, canonicalNetwork, checkProblems, defaultRouteInterface, effectiveMtu, planInterface, type ExpectedMacvlan } from '../../plugins/macvlan/plan';

const base = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.1.0', name: 'net1', type: 'macvlan', ...extra });

function code7(fn: () => unknown, msg: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(CniError);
  expect((thrown as CniError).code).toBe(7);
  expect((thrown as CniError).message).toMatch(msg);
}

describe('parseMacvlanConfig', () => {
  it('applies the reference defaults', () => {
    const c = parseMacvlanConfig(base());
    expect(c).toMatchObject({ master: undefined, mode: 'bridge', mtu: 0, linkInContainer: false, ipamType: '', vlan: 0, dataDir: DEFAULT_DATA_DIR });
    expect(c.mac).toBeUndefined();
    expect(c.bcqueuelen).toBeUndefined();
  });

  it('accepts the reference configuration unchanged', () => {
    const c = parseMacvlanConfig(base({
      master: 'eth0', mode: 'vepa', mtu: 1400, mac: '02:00:00:00:00:01', linkInContainer: true, bcqueuelen: 100,
      ipam: { type: 'host-local', subnet: '10.1.0.0/24' }, dns: { nameservers: ['10.1.0.1'] },
    }));
    expect(c).toMatchObject({ master: 'eth0', mode: 'vepa', mtu: 1400, mac: '02:00:00:00:00:01', linkInContainer: true, bcqueuelen: 100, ipamType: 'host-local', dns: { nameservers: ['10.1.0.1'] } });
  });

  it.each(['bridge', 'private', 'vepa', 'passthru'])('accepts mode %s', (mode) => {
    expect(parseMacvlanConfig(base({ mode })).mode).toBe(mode);
  });

  it('takes the MAC by precedence runtimeConfig > args.cni > CNI_ARGS > config', () => {
    const conf = base({ mac: '02:00:00:00:00:01', args: { cni: { mac: '02:00:00:00:00:03' } }, runtimeConfig: { mac: '02:00:00:00:00:04' } });
    expect(parseMacvlanConfig(conf, { MAC: '02:00:00:00:00:02' }).mac).toBe('02:00:00:00:00:04');
    expect(parseMacvlanConfig({ ...conf, runtimeConfig: undefined }, { MAC: '02:00:00:00:00:02' }).mac).toBe('02:00:00:00:00:03');
    expect(parseMacvlanConfig(base({ mac: '02:00:00:00:00:01' }), { MAC: '02:00:00:00:00:02' }).mac).toBe('02:00:00:00:00:02');
    expect(parseMacvlanConfig(base({ mac: '02:AA:00:00:00:01' })).mac).toBe('02:aa:00:00:00:01');
  });

  it.each([1, 100, 4094])('accepts vlan %d (trunk mode)', (vlan) => {
    expect(parseMacvlanConfig(base({ master: 'eth0', vlan })).vlan).toBe(vlan);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['vlan 0', { vlan: 0 }, /"vlan" must be an 802\.1q id from 1 to 4094, got 0/],
    ['vlan 4095', { vlan: 4095 }, /"vlan" must be an 802\.1q id from 1 to 4094, got 4095/],
    ['vlan as a string', { vlan: '10' }, /"vlan".*got "10"/],
    ['vlan 1.5', { vlan: 1.5 }, /"vlan".*got 1\.5/],
    ['vlan with linkInContainer', { vlan: 10, linkInContainer: true }, /"vlan" cannot be combined with "linkInContainer"/],
    ['unknown mode', { mode: 'source' }, /unknown mode "source"/],
    ['negative mtu', { mtu: -1 }, /"mtu" must be an integer/],
    ['mtu as a string', { mtu: '1500' }, /"mtu" must be an integer/],
    ['bad mac', { mac: 'zz:00:00:00:00:00' }, /invalid MAC address "zz:00:00:00:00:00" in "mac"/],
    ['multicast mac', { mac: '01:00:5e:00:00:01' }, /multicast/],
    ['master too long', { master: 'a-very-long-master0' }, /"master" "a-very-long-master0" is not a valid interface name/],
    ['master with a slash', { master: 'eth/0' }, /not a valid interface name/],
    ['linkInContainer not a bool', { linkInContainer: 'yes' }, /"linkInContainer" must be true or false/],
    ['bcqueuelen negative', { bcqueuelen: -5 }, /"bcqueuelen" must be an integer/],
    ['relative dataDir', { dataDir: 'rel/dir' }, /"dataDir" "rel\/dir" is not an absolute path/],
    ['dns not an object', { dns: ['1.1.1.1'] }, /"dns" must be an object/],
  ])('refuses %s with code 7', (_what, extra, msg) => {
    code7(() => parseMacvlanConfig(base(extra)), msg);
  });

  it('names the source of a bad MAC from CNI_ARGS and runtimeConfig', () => {
    code7(() => parseMacvlanConfig(base(), { MAC: 'nope' }), /in CNI_ARGS MAC/);
    code7(() => parseMacvlanConfig(base({ runtimeConfig: { mac: 7 } })), /in runtimeConfig\.mac/);
  });
});

describe('effectiveMtu', () => {
  const master = { name: 'eth0', mtu: 1500 };
  it('uses the master MTU for 0 and keeps a smaller one', () => {
    expect(effectiveMtu({ mtu: 0 }, master)).toBe(1500);
    expect(effectiveMtu({ mtu: 1400 }, master)).toBe(1400);
    expect(effectiveMtu({ mtu: 1500 }, master)).toBe(1500);
  });
  it('refuses an MTU above the master\'s with code 7', () => {
    code7(() => effectiveMtu({ mtu: 9000 }, master), /mtu 9000 is larger than the MTU 1500 of master "eth0"/);
  });
});

describe('defaultRouteInterface', () => {
  it('picks the first default route of the main table', () => {
    expect(defaultRouteInterface([{ dst: '10.0.0.0/8', oif: 2, table: 254 }, { dst: '0.0.0.0/0', oif: 7, table: 100 }, { dst: '0.0.0.0/0', oif: 3, table: 254 }])).toBe(3);
    expect(defaultRouteInterface([{ dst: '::/0', oif: 4, table: 254 }])).toBe(4);
    expect(defaultRouteInterface([{ dst: '10.0.0.0/8', oif: 2 }])).toBeUndefined();
  });
});

describe('planInterface and buildResult', () => {
  const ipam = {
    cniVersion: '1.1.0',
    ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }, { address: 'fd00::5/64', gateway: 'fd00::1' }],
    routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }, { dst: '192.168.0.0/16', gw: '10.1.0.254' }],
    dns: { nameservers: ['10.1.0.53'] },
  };

  it('defaults route gateways per family and announces the addresses', () => {
    const p = planInterface('eth0', ipam);
    expect(p.addresses).toEqual(['10.1.0.5/24', 'fd00::5/64']);
    expect(p.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0', gw: 'fd00::1' }, { dst: '192.168.0.0/16', gw: '10.1.0.254' }]);
    expect(p.sysctls).toEqual([{ path: 'net/ipv4/conf/eth0/arp_notify', value: '1' }, { path: 'net/ipv6/conf/eth0/ndisc_notify', value: '1' }]);
  });

  it('plans nothing for an L2-only interface', () => {
    expect(planInterface('eth0', undefined)).toEqual({ addresses: [], routes: [], sysctls: [] });
  });

  it('builds a result pointing the IPs at the sandbox interface, with the config DNS replacing IPAM\'s', () => {
    const r = buildResult({ cniVersion: '1.0.0', ifname: 'eth0', mac: '02:00:00:00:00:01', netns: '/run/netns/x', ipam, dns: { nameservers: ['9.9.9.9'] } });
    expect(r).toEqual({
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/run/netns/x' }],
      ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }, { address: 'fd00::5/64', gateway: 'fd00::1', interface: 0 }],
      routes: ipam.routes,
      dns: { nameservers: ['9.9.9.9'] },
    });
    expect(buildResult({ cniVersion: '1.1.0', ifname: 'eth0', mac: 'm', netns: '/n', ipam }).dns).toBeUndefined();
  });
});

describe('checkProblems', () => {
  const expected: ExpectedMacvlan = {
    ifname: 'eth0', mode: 'bridge', mac: '02:00:00:00:00:01', parent: { name: 'eth0', index: 3, mtu: 1500 }, configuredMtu: 0,
    addresses: ['10.1.0.5/24', 'fd00:0::5/64'], routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '10.2.0.0/16' }],
  };
  /** A route as the kernel reports it, out of the macvlan (index 7) unless `oif` says otherwise. */
  const kr = (dst: string, o: { gw?: string; metric?: number; oif?: number } = {}): KernelRoute => ({
    dst, family: dst.includes(':') ? 6 : 4, table: 254, oif: o.oif ?? 7, gw: o.gw, metric: o.metric, scope: 0, flags: 0, protocol: 0, type: 0,
  });
  const good = {
    index: 7, kind: 'macvlan', mode: 'bridge', mac: '02:00:00:00:00:01', mtu: 1500, parentIndex: 3, addresses: ['10.1.0.5/24', 'fd00::5/64'],
    routes: [kr('0.0.0.0/0', { gw: '10.1.0.1', metric: 1000000 }), kr('10.2.0.0/16', { metric: 1000000 }), kr('10.1.0.0/24')],
  };

  it('finds nothing wrong with a matching interface', () => {
    expect(checkProblems(expected, good)).toEqual([]);
  });

  it.each<[string, Partial<typeof good>, RegExp]>([
    ['another kind', { kind: 'veth' }, /is a veth, not a macvlan/],
    ['another mode', { mode: 'private' }, /mode private, expected bridge/],
    ['another MAC', { mac: '02:00:00:00:00:09' }, /has MAC 02:00:00:00:00:09, expected 02:00:00:00:00:01/],
    ['another parent', { parentIndex: 9 }, /not on master "eth0"/],
    ['a missing address', { addresses: ['10.1.0.5/24'] }, /lacks address fd00:0::5\/64/],
    ['a missing route', { routes: [kr('10.2.0.0/16')] }, /route 0\.0\.0\.0\/0 via 10\.1\.0\.1 is missing/],
    ['the route out of another interface', { routes: [kr('0.0.0.0/0', { gw: '10.1.0.1', oif: 8 }), kr('10.2.0.0/16')] }, /route 0\.0\.0\.0\/0 via 10\.1\.0\.1 is missing/],
  ])('reports %s', (_what, change, msg) => {
    const problems = checkProblems(expected, { ...good, ...change });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(msg);
  });

  it('checks the metric a 1.1.0 result reported', () => {
    const withMetric = { ...expected, routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', priority: 1000000 }] };
    expect(checkProblems(withMetric, good)).toEqual([]);
    expect(checkProblems({ ...withMetric, routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', priority: 1000001 }] }, good))
      .toEqual(['route 0.0.0.0/0 via 10.1.0.1 metric 1000001 is missing on interface "eth0"']);
  });

  it('canonicalises networks for comparison', () => {
    expect(canonicalNetwork('default')).toBe('0.0.0.0/0');
    expect(canonicalNetwork('10.1.2.3/16')).toBe('10.1.0.0/16');
    expect(canonicalNetwork('fd00:0:0::1/64')).toBe('fd00::/64');
  });
});

describe('issue #12 item 10: fields of the wrong type are code 7 naming the field', () => {
  const base = { cniVersion: '1.1.0', name: 'n', type: 'macvlan', master: 'eth0' };
  it.each([
    [{ dns: { nameservers: '10.0.0.1' } }, /"dns.nameservers" must be a list of strings/],
    [{ dns: { domain: 5 } }, /"dns.domain" must be a string/],
    [{ dns: [] }, /"dns" must be an object/],
  ])('%j', (extra, msg) => {
    let err: any;
    try { parseMacvlanConfig({ ...base, ...extra } as any); } catch (e) { err = e; }
    expect(err?.code).toBe(7);
    expect(err.message).toMatch(msg);
  });
  it('a checked dns passes, unknown keys dropped', () => {
    expect(parseMacvlanConfig({ ...base, dns: { nameservers: ['10.0.0.1'], x: 1 } } as any).dns).toEqual({ nameservers: ['10.0.0.1'] });
  });
});
