// Pure parts of the overlay store: subnet math, key encoding, config checks.
import {
  decodeHostId, decodeSubnetKey, encodeHostId, encodeSubnetKey, enumerateSubnets, formatCidr, parseIpv4Cidr, subnetCount, cidrContains,
} from '../../plugins/vxlan-overlay/store/subnets';
import { networkPrefix, normalizeNetworkConfig, OverlayStoreError, pairedIpv6Subnet, parseHostRecord, pickFreeSubnet } from '../../plugins/vxlan-overlay/store/overlay';
import { nthIpv6Subnet, parseIpv6Cidr, subnetIndex } from '../../plugins/vxlan-overlay/store/subnets';
import { prefixRangeEnd } from '../../plugins/vxlan-overlay/store/types';
import { parseLogText } from '../../plugins/vxlan-overlay/store/file-store';

describe('parseIpv4Cidr', () => {
  it.each([
    ['10.244.0.0/16', '10.244.0.0/16'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['192.168.1.128/25', '192.168.1.128/25'],
    ['255.255.255.255/32', '255.255.255.255/32'],
  ])('accepts %s', (text, out) => {
    expect(formatCidr(parseIpv4Cidr(text))).toBe(out);
  });

  it.each([
    ['10.244.0.0', /not an IPv4 CIDR/],
    ['10.244.0.0/33', /not an IPv4 CIDR/],
    ['10.256.0.0/16', /not an IPv4 CIDR/],
    ['fd00::/64', /not an IPv4 CIDR/],
    ['10.244.1.0/16', /host bits set: the network is 10\.244\.0\.0\/16/],
  ])('rejects %s', (text, msg) => {
    expect(() => parseIpv4Cidr(text)).toThrow(msg);
  });
});

describe('subnet enumeration', () => {
  it('lists every /24 of a /22 in address order', () => {
    expect([...enumerateSubnets(parseIpv4Cidr('10.244.0.0/22'), 24)].map(formatCidr))
      .toEqual(['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
  });

  it('handles the top of the address space without sign trouble', () => {
    expect([...enumerateSubnets(parseIpv4Cidr('255.255.255.0/24'), 25)].map(formatCidr)).toEqual(['255.255.255.0/25', '255.255.255.128/25']);
  });

  it.each([
    ['10.0.0.0/8', 24, 65536],
    ['10.244.0.0/16', 24, 256],
    ['10.244.0.0/24', 24, 1],
  ])('%s holds %i-bit subnets: %i', (cidr, len, count) => {
    expect(subnetCount(parseIpv4Cidr(cidr), len)).toBe(count);
  });

  it('refuses a subnet length shorter than the CIDR', () => {
    expect(() => subnetCount(parseIpv4Cidr('10.244.0.0/16'), 12)).toThrow(/\/12 does not fit in 10\.244\.0\.0\/16/);
  });

  it('tells containment', () => {
    const c = parseIpv4Cidr('10.244.0.0/16');
    expect(cidrContains(c, parseIpv4Cidr('10.244.7.0/24'))).toBe(true);
    expect(cidrContains(c, parseIpv4Cidr('10.245.0.0/24'))).toBe(false);
    expect(cidrContains(c, parseIpv4Cidr('10.0.0.0/8'))).toBe(false);
  });
});

describe('pickFreeSubnet', () => {
  const cfg = { cidr: '10.1.0.0/22', subnetLength: 24 };
  it.each([
    [[], '10.1.0.0/24'],
    [['10.1.0.0/24', '10.1.1.0/24'], '10.1.2.0/24'],
    [['10.1.0.0/24', '10.1.2.0/24'], '10.1.1.0/24'],
    [['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24', '10.1.3.0/24'], undefined],
  ])('with %j taken picks %s', (taken, want) => {
    expect(pickFreeSubnet(cfg, new Set(taken))).toBe(want);
  });
});

describe('key encoding', () => {
  it.each(['10.244.3.0/24', '0.0.0.0/0'])('subnet %s round-trips without a slash', (s) => {
    expect(encodeSubnetKey(s)).not.toContain('/');
    expect(decodeSubnetKey(encodeSubnetKey(s))).toBe(s);
  });

  it.each(['node-1', 'a/b', 'ünï cödé', 'x%2F'])('host ID %j round-trips without a slash', (h) => {
    expect(encodeHostId(h)).not.toContain('/');
    expect(decodeHostId(encodeHostId(h))).toBe(h);
  });

  it('puts every network under its own prefix and refuses names that could escape it', () => {
    expect(networkPrefix('prod')).toBe('/node-cni/overlay/prod/');
    expect(() => networkPrefix('a/b')).toThrow(OverlayStoreError);
    expect(() => networkPrefix('..')).toThrow(/overlay network name "\.\."/);
    expect(() => networkPrefix('')).toThrow(OverlayStoreError);
  });

  it.each([
    ['/a/', '/a0'],
    ['a', 'b'],
  ])('range end of prefix %j is %j', (prefix, end) => {
    expect(prefixRangeEnd(prefix).toString()).toBe(end);
  });

  it('range end carries past 0xff bytes (UTF-8 "ÿ" is c3 bf)', () => {
    expect(prefixRangeEnd('aÿ')).toEqual(Buffer.from([0x61, 0xc3, 0xc0]));
  });
});

describe('normalizeNetworkConfig', () => {
  it('fills defaults', () => {
    expect(normalizeNetworkConfig('n', { cidr: '10.244.0.0/16' })).toEqual({ cidr: '10.244.0.0/16', subnetLength: 24, vni: 1, port: 4789 });
  });

  it.each([
    [{ cidr: '10.244.0.0/33' }, /overlay network "n": cidr: "10\.244\.0\.0\/33" is not an IPv4 CIDR/],
    [{ cidr: '10.244.0.0/16', subnetLength: 8 }, /subnetLength \/8 must be between \/16/],
    [{ cidr: '10.244.0.0/16', subnetLength: 31 }, /subnetLength \/31/],
    [{ cidr: '10.244.0.0/16', vni: 0 }, /vni 0 must be 1\.\.16777215/],
    [{ cidr: '10.244.0.0/16', vni: 2 ** 24 }, /vni 16777216/],
    [{ cidr: '10.244.0.0/16', port: 70000 }, /port 70000 must be 1\.\.65535/],
  ])('rejects %j with code 7', (cfg, msg) => {
    let err: unknown;
    try { normalizeNetworkConfig('n', cfg); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(OverlayStoreError);
    expect(err).toMatchObject({ code: 7, reason: 'invalid' });
    expect((err as Error).message).toMatch(msg);
  });
});

describe('dual-stack subnets', () => {
  const dual = normalizeNetworkConfig('n', { cidr: '10.244.0.0/16', ipv6Cidr: 'fd00:10:244:0::/56' });

  it('defaults the IPv6 subnet length to 64 and keeps the CIDR canonical', () => {
    expect(dual).toEqual({ cidr: '10.244.0.0/16', subnetLength: 24, vni: 1, port: 4789, ipv6Cidr: 'fd00:10:244::/56', ipv6SubnetLength: 64 });
  });

  it.each([
    ['10.244.0.0/24', 'fd00:10:244::/64'],
    ['10.244.1.0/24', 'fd00:10:244:1::/64'],
    ['10.244.255.0/24', 'fd00:10:244:ff::/64'],
  ])('pairs %s with %s (same position)', (v4, v6) => {
    expect(pairedIpv6Subnet(dual, v4)).toBe(v6);
  });

  it('has no IPv6 subnet on an IPv4 network', () => {
    expect(pairedIpv6Subnet(normalizeNetworkConfig('n', { cidr: '10.244.0.0/16' }), '10.244.1.0/24')).toBeUndefined();
  });

  it('does the math at the top of the space and with long prefixes', () => {
    expect(nthIpv6Subnet('fd00::/8', 64, 2 ** 40 - 1)).toBe('fd00:ff:ffff:ffff::/64');
    expect(nthIpv6Subnet('fd00:1::/120', 124, 15)).toBe('fd00:1::f0/124');
    expect(() => nthIpv6Subnet('fd00:1::/120', 124, 16)).toThrow(/no IPv6 subnet #16/);
    expect(subnetIndex(parseIpv4Cidr('10.240.0.0/12'), 24, parseIpv4Cidr('10.241.2.0/24'))).toBe(258);
    expect(() => subnetIndex(parseIpv4Cidr('10.240.0.0/12'), 24, parseIpv4Cidr('10.0.2.0/24'))).toThrow(/is not a \/24 of/);
  });

  it.each([
    ['10.0.0.0/24', /is not an IPv6 CIDR/],
    ['fd00::1/64', /host bits set: the network is fd00::\/64/],
  ])('parseIpv6Cidr refuses %s', (text, msg) => expect(() => parseIpv6Cidr(text)).toThrow(msg));

  it.each([
    [{ cidr: '10.244.0.0/16', ipv6Cidr: 'fd00::/120' }, /ipv6SubnetLength \/64 must be between \/120/],
    [{ cidr: '10.244.0.0/16', ipv6Cidr: 'fd00::/60' }, /holds 16 \/64 subnets, fewer than the 256 \/24 of 10\.244\.0\.0\/16/],
    [{ cidr: '10.244.0.0/16', ipv6Cidr: '10.0.0.0/8' }, /ipv6Cidr: "10\.0\.0\.0\/8" is not an IPv6 CIDR/],
    [{ cidr: '10.244.0.0/16', ipv6SubnetLength: 64 }, /ipv6SubnetLength needs ipv6Cidr/],
  ])('rejects %j with code 7', (cfg, msg) => {
    expect(() => normalizeNetworkConfig('n', cfg)).toThrow(msg);
  });
});

describe('parseHostRecord', () => {
  const rec = { hostID: 'h', underlayIP: '192.0.2.1', vtepMAC: '02:00:00:00:00:01', vni: 1, port: 4789, mtu: 1450, subnet: '10.244.0.0/24' };
  it('keeps a well-formed record (of an older agent, or dual-stack) and skips garbage', () => {
    expect(parseHostRecord(JSON.stringify(rec))).toEqual(rec);
    expect(parseHostRecord(JSON.stringify({ ...rec, subnet6: 'fd00::/64', underlayIP: 'fd00:77::1' }))).toEqual({ ...rec, subnet6: 'fd00::/64', underlayIP: 'fd00:77::1' });
    expect(parseHostRecord('{not json')).toBeUndefined();
    expect(parseHostRecord('{"hostID":"h"}')).toBeUndefined();
    expect(parseHostRecord('null')).toBeUndefined();
  });
  it.each([
    ['underlayIP', 'nowhere'],
    ['subnet', '10.244.0.1/24'],
    ['subnet', 42],
    ['vtepMAC', 'zz'],
  ])('skips a record whose %s is %j (it would break every sync)', (field, value) => {
    expect(parseHostRecord(JSON.stringify({ ...rec, [field]: value }))).toBeUndefined();
  });
  it('a bad IPv6 subnet costs the host its IPv6 only', () => {
    expect(parseHostRecord(JSON.stringify({ ...rec, subnet6: 'fd00::1/64' }))).toEqual(rec);
  });
});

describe('parseLogText', () => {
  it('reads the header and one line per revision', () => {
    expect(parseLogText('{"compact":3}\n{"r":3,"e":[{"t":"put","k":"a","v":"1"}]}\n')).toEqual([
      { compact: 3 },
      { r: 3, e: [{ t: 'put', k: 'a', v: '1' }] },
    ]);
  });
});
