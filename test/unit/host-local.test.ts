// host-local, pure parts and the handlers over the in-memory store.
import { CniError } from '../../lib/cni/errors';
import type { GcInvocation } from '../../lib/cni/plugin';
import type { Invocation, NetConf, Verb } from '../../lib/cni/types';
import { formatAddr, parseAddr, parseAddrMaybeCidr } from '../../ipam/host-local/addr';
import { allocate, candidates, capacity } from '../../ipam/host-local/allocator';
import { assignRequested, parseHostLocalConfig, parseResolvConf } from '../../ipam/host-local/config';
import { memoryStores } from '../../ipam/host-local/memory-store';
import { makeHostLocal } from '../../ipam/host-local/plugin';
import { indexKey, parseOwner } from '../../ipam/host-local/store';

const a = (s: string) => {
  const x = parseAddr(s);
  if (!x) throw new Error(`bad test address ${s}`);
  return x;
};

function setOf(ranges: unknown[], cniVersion = '1.0.0') {
  return parseHostLocalConfig({ cniVersion, name: 'n', type: 't', ipam: { type: 'host-local', ranges: [ranges] } } as NetConf).sets[0];
}

function order(ranges: unknown[], last?: string, limit = 50): string[] {
  const out: string[] = [];
  for (const c of candidates(setOf(ranges), last ? a(last) : undefined)) {
    out.push(formatAddr(c));
    if (out.length >= limit) break;
  }
  return out;
}

describe('addresses', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['fd00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:1:2:3:4:0:5', '2001:db8:1:2:3:4:0:5'], // one zero group is not compressed
    ['::', '::'],
    ['FD00::ABCD', 'fd00::abcd'],
    ['::ffff:10.0.0.1', '10.0.0.1'], // IPv4-mapped counts as IPv4, like Go
    ['::1.2.3.4', '::102:304'],
  ])('%s is written %s (Go net.IP.String)', (input, want) => {
    expect(formatAddr(a(input))).toBe(want);
  });

  it.each(['10.1.2', '10.1.2.256', 'fe80::1%eth0', 'x', '', '1.2.3.4/40'])('%s is not an address', (s) => {
    expect(parseAddrMaybeCidr(s)).toBeUndefined();
  });
});

describe('round-robin iteration', () => {
  it.each([
    ['starts at rangeStart, skipping the default gateway .1', [{ subnet: '10.0.0.0/29' }], undefined, ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']],
    ['continues after the last reserved address and wraps', [{ subnet: '10.0.0.0/29' }], '10.0.0.4', ['10.0.0.5', '10.0.0.6', '10.0.0.2', '10.0.0.3', '10.0.0.4']],
    ['a last reserved address outside the set restarts at the first', [{ subnet: '10.0.0.0/29' }], '10.9.9.9', ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']],
    ['an explicit gateway frees .1 and is skipped', [{ subnet: '10.0.0.0/29', gateway: '10.0.0.3' }], undefined, ['10.0.0.1', '10.0.0.2', '10.0.0.4', '10.0.0.5', '10.0.0.6']],
    ['never the network or broadcast address, even inside an explicit range', [{ subnet: '10.0.0.0/30', rangeStart: '10.0.0.0', rangeEnd: '10.0.0.3', gateway: '10.0.0.9' }], undefined, ['10.0.0.1', '10.0.0.2']],
    ['walks the ranges of a set in order, then wraps to the first', [{ subnet: '10.0.0.0/29', rangeStart: '10.0.0.5' }, { subnet: '10.0.1.0/29', rangeEnd: '10.0.1.3' }], '10.0.0.6', ['10.0.1.2', '10.0.1.3', '10.0.0.5', '10.0.0.6']],
    ['IPv6: the last address of the prefix is allocatable', [{ subnet: 'fd00::/126' }], undefined, ['fd00::2', 'fd00::3']],
    ['IPv6 wraps after the last reserved address', [{ subnet: 'fd00:1::/125', rangeStart: 'fd00:1::4' }], 'fd00:1::5', ['fd00:1::6', 'fd00:1::7', 'fd00:1::4', 'fd00:1::5']],
  ])('%s', (_name, ranges, last, want) => {
    expect(order(ranges, last)).toEqual(want);
  });

  it('allocate returns the first free candidate and undefined when all are taken', () => {
    const set = setOf([{ subnet: '10.0.0.0/29' }]);
    const taken = new Set(['10.0.0.5', '10.0.0.6']);
    const take = (x: ReturnType<typeof a>) => (taken.has(formatAddr(x)) ? false : (taken.add(formatAddr(x)), true));
    expect(formatAddr(allocate(set, a('10.0.0.4'), take)!)).toBe('10.0.0.2');
    for (let i = 0; i < 2; i++) allocate(set, undefined, take);
    expect(allocate(set, undefined, take)).toBeUndefined();
    expect(capacity(set)).toBe(5n);
  });

  it.each([
    [[{ subnet: '10.0.0.0/24' }], 253n],
    [[{ subnet: '10.0.0.0/30', rangeStart: '10.0.0.0', rangeEnd: '10.0.0.3' }], 1n], // .0 network, .1 gateway, .3 broadcast
    [[{ subnet: 'fd00::/64' }], (1n << 64n) - 2n],
  ])('capacity of %j is %s', (ranges, want) => {
    expect(capacity(setOf(ranges))).toBe(want);
  });
});

describe('config', () => {
  const conf = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.0.0', name: 'net1', type: 'bridge', ipam: { type: 'host-local', ...ipam }, ...extra });

  it('prepends runtimeConfig.ipRanges, then the legacy subnet, before ranges', () => {
    const c = parseHostLocalConfig(conf({ subnet: '10.2.0.0/24', ranges: [[{ subnet: '10.3.0.0/24' }]] }, { runtimeConfig: { ipRanges: [[{ subnet: '10.1.0.0/24' }]] } }));
    expect(c.sets.map((s) => formatAddr({ family: 4, value: s[0].network }))).toEqual(['10.1.0.0', '10.2.0.0', '10.3.0.0']);
    expect(c.dataDir).toBe('/var/lib/cni/networks');
  });

  it('reads ranges with Go-style keys (go-cni sends runtimeConfig.ipRanges from untagged structs)', () => {
    const c = parseHostLocalConfig(conf({ ranges: [[{ subnet: '10.3.0.0/24' }]] }, { runtimeConfig: { ipRanges: [[{ Subnet: '10.1.0.0/24', RangeStart: '10.1.0.10', RangeEnd: '10.1.0.20', Gateway: '10.1.0.1' }]] } }));
    const r = c.sets[0][0];
    expect([r.start, r.end, r.gateway].map((value) => formatAddr({ family: 4, value }))).toEqual(['10.1.0.10', '10.1.0.20', '10.1.0.1']);
  });

  it('collects requested IPs from CNI_ARGS, args.cni.ips and runtimeConfig.ips, without duplicates', () => {
    const c = parseHostLocalConfig(conf({ ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] }, { args: { cni: { ips: ['fd00::9/64'] } }, runtimeConfig: { ips: ['10.1.0.7'] } }), { IP: '10.1.0.7' });
    expect(c.requested.map(formatAddr)).toEqual(['10.1.0.7', 'fd00::9']);
    expect(assignRequested(c).map((x) => x && formatAddr(x))).toEqual(['10.1.0.7', 'fd00::9']);
  });

  it.each([
    ['no ipam', undefined, {}, /IPAM config missing "ipam"/],
    ['no ranges', {}, {}, /no IP ranges specified/],
    ['not a CIDR', { subnet: '10.0.0.0' }, {}, /invalid range set 0: subnet "10.0.0.0" is not a CIDR/],
    ['subnet too small (v4 /31)', { subnet: '10.0.0.0/31' }, {}, /network 10.0.0.0\/31 is too small/],
    ['subnet too small (v6 /127)', { ranges: [[{ subnet: 'fd00::/127' }]] }, {}, /too small/],
    ['host bits set', { subnet: '10.0.0.5/24' }, {}, /has host bits set.*10\.0\.0\.0/],
    ['rangeStart outside', { subnet: '10.0.0.0/24', rangeStart: '10.0.1.1' }, {}, /rangeStart 10.0.1.1 is not in network/],
    ['rangeEnd before rangeStart', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.3' }, {}, /after rangeEnd/],
    ['gateway of the other family', { subnet: '10.0.0.0/24', gateway: 'fd00::1' }, {}, /gateway fd00::1 is not an IPv4 address/],
    ['mixed families in a set', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }, {}, /invalid range set 0: mixed address families/],
    ['overlapping ranges in a set', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/25' }]] }, {}, /subnets 10.0.0.1-10.0.0.254 and 10.0.0.1-10.0.0.126 overlap/],
    ['overlapping sets', { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.0.128/25' }]] }, {}, /range set 0 overlaps with 1/],
    ['legacy subnet overlapping ranges', { subnet: '10.0.0.0/24', ranges: [[{ subnet: '10.0.0.0/24' }]] }, {}, /range set 0 overlaps with 1/],
    ['empty set', { ranges: [[]] }, {}, /empty range set/],
    ['two v4 sets with cniVersion 0.2.0', { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/24' }]] }, { cniVersion: '0.2.0' }, /does not support more than 1 address per family/],
    ['bad requested IP', { subnet: '10.0.0.0/24' }, { runtimeConfig: { ips: ['10.0.0'] } }, /cannot understand requested IP "10.0.0" from runtimeConfig.ips/],
    ['bad route', { subnet: '10.0.0.0/24', routes: [{ dst: 'default' }] }, {}, /routes\[0\]: dst must be a CIDR/],
    ['a route mtu of the wrong type', { subnet: '10.0.0.0/24', routes: [{ dst: '0.0.0.0/0', mtu: '1500' }] }, {}, /routes\[0\]\.mtu must be a whole number, got "1500"/],
  ])('%s → code 7', (_name, ipam, extra, msg) => {
    const c = { ...conf(ipam ?? {}), ...extra } as NetConf;
    if (!ipam) delete c.ipam;
    let err: unknown;
    try {
      parseHostLocalConfig(c);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(7);
    expect((err as CniError).message).toMatch(msg);
  });

  it.each([
    ['outside every set', ['10.9.0.1'], /10.9.0.1 is not in any range set/],
    ['the gateway', ['10.0.0.1'], /10.0.0.1 is the gateway of range set 0/],
    ['the broadcast address', ['10.0.0.255'], undefined], // outside the default range end: not in any set
    ['two in one set', ['10.0.0.5', '10.0.0.6'], /both in range set 0/],
  ])('a requested IP %s is refused with code 7', (_name, ips, msg) => {
    const c = parseHostLocalConfig(conf({ subnet: '10.0.0.0/24' }, { runtimeConfig: { ips } }));
    expect(() => assignRequested(c)).toThrow(CniError);
    if (msg) expect(() => assignRequested(c)).toThrow(msg);
  });

  it('refuses a requested network address inside an explicit range', () => {
    const c = parseHostLocalConfig(conf({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.0', gateway: '10.0.0.254' }, { runtimeConfig: { ips: ['10.0.0.0'] } }));
    expect(() => assignRequested(c)).toThrow(/network or broadcast address/);
  });

  it('parses resolv.conf like the reference', () => {
    expect(parseResolvConf('# c\nnameserver 1.1.1.1\nnameserver 8.8.8.8\ndomain ex.com\nsearch a.com b.com\noptions ndots:2 edns0\n;x\nbogus\n')).toEqual({
      nameservers: ['1.1.1.1', '8.8.8.8'], domain: 'ex.com', search: ['a.com', 'b.com'], options: ['ndots:2', 'edns0'],
    });
  });

  it('reads reservation contents and names index files safely', () => {
    expect(parseOwner('abc\r\neth0')).toEqual({ containerID: 'abc', ifname: 'eth0' });
    expect(parseOwner('  abc \n')).toEqual({ containerID: 'abc' });
    expect(parseOwner('')).toBeUndefined();
    expect(indexKey({ containerID: 'abc', ifname: 'eth0' })).toBe('abc~65746830');
    expect(indexKey({ containerID: 'x'.repeat(300), ifname: 'eth0' })).toMatch(/^#[0-9a-f]{64}$/);
  });
});

describe('handlers over the in-memory store', () => {
  const stores = memoryStores();
  const plugin = makeHostLocal(stores.open);
  let net = 0;
  let name = '';
  beforeEach(() => {
    name = `net${++net}`;
  });

  function inv(command: Verb, id: string, ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, ifname = 'eth0'): Invocation {
    const conf = { cniVersion: '1.1.0', name, type: 'bridge', ipam: { type: 'host-local', dataDir: '/run/mem', ...ipam }, ...extra } as NetConf;
    return { env: { command, containerId: id, ifname, path: [] }, conf, raw: Buffer.from(JSON.stringify(conf)) };
  }
  const codeOf = async (p: Promise<unknown>) => p.then(() => 0, (e: CniError) => e.code);
  const v4 = { ranges: [[{ subnet: '10.5.0.0/29' }]] };
  const dual = { ranges: [[{ subnet: '10.5.0.0/29' }], [{ subnet: 'fd05::/125' }]], routes: [{ dst: '0.0.0.0/0' }] };

  it('ADD returns one address per set with its gateway and no interface index; DEL frees them', async () => {
    const r = await plugin.add(inv('ADD', 'c1', dual));
    expect(r.ips).toEqual([{ address: '10.5.0.2/29', gateway: '10.5.0.1' }, { address: 'fd05::2/125', gateway: 'fd05::1' }]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0' }]);
    await plugin.check!(inv('CHECK', 'c1', dual));
    await plugin.del(inv('DEL', 'c1', dual));
    expect(stores.get('/run/mem', name).reservations.size).toBe(0);
    expect(await codeOf(plugin.check!(inv('CHECK', 'c1', dual)))).toBe(3);
    await plugin.del(inv('DEL', 'c1', dual)); // idempotent
  });

  it('a second ADD of the same attachment is refused, another ifname gets its own address', async () => {
    await plugin.add(inv('ADD', 'c1', v4));
    await expect(plugin.add(inv('ADD', 'c1', v4))).rejects.toThrow(/duplicate allocation is not allowed/);
    const r = await plugin.add(inv('ADD', 'c1', v4, {}, 'eth1'));
    expect(r.ips![0].address).toBe('10.5.0.3/29');
  });

  it('round-robin: a released address is not handed out again until the range wraps', async () => {
    await plugin.add(inv('ADD', 'c1', v4));
    await plugin.del(inv('DEL', 'c1', v4));
    const r = await plugin.add(inv('ADD', 'c2', v4));
    expect(r.ips![0].address).toBe('10.5.0.3/29');
  });

  it('exhaustion names the range set; on a dual-stack ADD the first set is rolled back', async () => {
    const small = { ranges: [[{ subnet: '10.5.0.0/24' }], [{ subnet: 'fd05::/126' }]] }; // v6: ::2, ::3
    await plugin.add(inv('ADD', 'a', small));
    await plugin.add(inv('ADD', 'b', small));
    const err = await plugin.add(inv('ADD', 'c', small)).catch((e: CniError) => e);
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(11);
    expect((err as CniError).message).toBe('no IP addresses available in range set 1: fd05::1-fd05::3');
    expect(stores.get('/run/mem', name).heldBy('c', 'eth0').exact).toEqual([]);
    expect(await codeOf(plugin.status!(inv('STATUS', '', small)))).toBe(50);
    await plugin.del(inv('DEL', 'a', small));
    expect(await codeOf(plugin.status!(inv('STATUS', '', small)))).toBe(0);
  });

  it.each([
    ['inside the range', { runtimeConfig: { ips: ['10.5.0.5/29'] } }, {}, '10.5.0.5/29'],
    ['via args.cni.ips', { args: { cni: { ips: ['10.5.0.6'] } } }, {}, '10.5.0.6/29'],
    ['via CNI_ARGS IP', {}, { IP: '10.5.0.4' }, '10.5.0.4/29'],
  ])('a requested address %s is reserved', async (_n, extra, cniArgs, want) => {
    const i = { ...inv('ADD', 'c1', v4, extra), cniArgs };
    expect((await plugin.add(i)).ips![0].address).toBe(want);
  });

  it('in-process, CNI_ARGS IP is read even when the caller\'s skel dropped it', async () => {
    const i = { ...inv('ADD', 'c1', v4), cniArgs: { IgnoreUnknown: '1' } };
    i.env = { ...i.env, args: 'IgnoreUnknown=1;MAC=02:00:00:00:00:01;IP=10.5.0.6' };
    expect((await plugin.add(i)).ips![0].address).toBe('10.5.0.6/29');
  });

  it('a requested address outside the ranges is code 7; one in use is code 11', async () => {
    expect(await codeOf(plugin.add(inv('ADD', 'c1', v4, { runtimeConfig: { ips: ['10.6.0.1'] } })))).toBe(7);
    await plugin.add(inv('ADD', 'c1', v4, { runtimeConfig: { ips: ['10.5.0.3'] } }));
    const err = await plugin.add(inv('ADD', 'c2', v4, { runtimeConfig: { ips: ['10.5.0.3'] } })).catch((e: CniError) => e);
    expect((err as CniError).code).toBe(11);
    expect((err as CniError).message).toMatch(/requested IP address 10.5.0.3 is not available in range set 0 \(10\.5\.0\.1-10\.5\.0\.6\) \(in use by container "c1" interface "eth0"\)$/);
  });

  it('CHECK fails when prevResult lists an address that is not ours', async () => {
    await plugin.add(inv('ADD', 'c1', v4));
    const prev = { prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.5.0.6/29' }] } };
    expect(await codeOf(plugin.check!(inv('CHECK', 'c1', v4, prev)))).toBe(3);
  });

  it('GC keeps valid attachments (and legacy files of valid containers) and releases the rest', async () => {
    await plugin.add(inv('ADD', 'keep', v4));
    await plugin.add(inv('ADD', 'drop', v4));
    const s = stores.get('/run/mem', name);
    s.reservations.set('10.5.0.6', { containerID: 'keep' }); // legacy, valid container
    s.reservations.set('10.5.0.5', { containerID: 'old' }); // legacy, gone
    s.reservations.set('10.5.0.4', undefined); // unreadable
    const gc: GcInvocation = { ...inv('GC', '', v4), validAttachments: [{ containerID: 'keep', ifname: 'eth0' }] };
    await plugin.gc!(gc);
    expect([...s.reservations.keys()].sort()).toEqual(['10.5.0.2', '10.5.0.6']);
  });

  it('DEL releases legacy container-only reservations when no exact one exists', async () => {
    await plugin.add(inv('ADD', 'x', v4));
    const s = stores.get('/run/mem', name);
    s.reservations.set('10.5.0.6', { containerID: 'old' });
    await plugin.del(inv('DEL', 'old', v4));
    expect([...s.reservations.keys()]).toEqual(['10.5.0.2']);
  });

  it.each([
    ['a container ID with a slash', 'a/b', 'eth0', 4],
    ['a container ID of ..', '..', 'eth0', 4],
    ['an ifname with a newline', 'c1', 'eth\n0', 4],
  ])('refuses %s', async (_n, id, ifname, code) => {
    expect(await codeOf(plugin.add(inv('ADD', id, v4, {}, ifname)))).toBe(code);
  });

  it.each(['../x', 'a/b', '.hidden', 'a\0b'])('refuses the network name %j with code 7', async (bad) => {
    const i = inv('ADD', 'c1', v4);
    i.conf.name = bad;
    expect(await codeOf(plugin.add(i))).toBe(7);
  });
});
