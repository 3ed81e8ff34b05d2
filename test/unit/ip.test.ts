// lib/ip: parsing, Go-compatible formatting, CIDR math. Pure, table-driven.
import * as net from 'net';
import {
  addrFromBytes, addrToBytes, addressText, canonicalCidr, canonicalIP, cidrsOverlap, containsText, familyOf, firstHostText,
  formatCidr, formatIP, isIP, isIPv4, isIPv6, lastOf, networkOf, networkText, overlapsText, parseCidr, parseIP, requireCidr, requireIP, sameIP, unmapIPv4,
} from '../../lib/ip';

describe('parseIP / formatIP', () => {
  it.each([
    ['10.1.2.3', 4, 0x0a010203n, '10.1.2.3'],
    ['0.0.0.0', 4, 0n, '0.0.0.0'],
    ['255.255.255.255', 4, 0xffffffffn, '255.255.255.255'],
    ['::', 6, 0n, '::'],
    ['::1', 6, 1n, '::1'],
    ['fd00:0:0:0:0:0:0:5', 6, (0xfd00n << 112n) | 5n, 'fd00::5'],
    ['2001:DB8::1', 6, (0x20010db8n << 96n) | 1n, '2001:db8::1'],
    // the longest zero run is compressed, the leftmost on a tie, never a single group
    ['2001:db8:0:0:1:0:0:1', 6, undefined, '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', 6, undefined, '2001:db8:0:1:1:1:1:1'],
    ['1:0:0:2:0:0:0:3', 6, undefined, '1:0:0:2::3'],
    ['fe80::1:2', 6, undefined, 'fe80::1:2'],
    // IPv4-mapped stays IPv6 as written; its own-family text is hex
    ['::ffff:10.0.0.1', 6, (0xffffn << 32n) | 0x0a000001n, '::ffff:a00:1'],
    ['64:ff9b::192.0.2.33', 6, undefined, '64:ff9b::c000:221'],
  ])('%s → IPv%d %s → %s', (text, family, value, formatted) => {
    const a = parseIP(text)!;
    expect(a.family).toBe(family);
    if (value !== undefined) expect(a.value).toBe(value);
    expect(formatIP(a)).toBe(formatted);
  });

  it.each(['', '10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4/24', 'fe80::1%eth0', '::g', '1::2::3', ' 10.0.0.1', 'localhost', 42, undefined])(
    'refuses %p', (text) => {
      expect(parseIP(text)).toBeUndefined();
    },
  );

  it('requireIP names the text', () => {
    expect(() => requireIP('10.0.0')).toThrow('"10.0.0" is not an IP address');
  });
});

describe('canonical text like Go net.IP.String()', () => {
  it.each([
    ['fd00:0::5', 'fd00::5'],
    ['FD00::A', 'fd00::a'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::ffff:a00:1', '10.0.0.1'],
    ['10.0.0.1', '10.0.0.1'],
    ['::10.0.0.1', '::a00:1'],
  ])('%s → %s', (text, want) => {
    expect(canonicalIP(text)).toBe(want);
  });

  it.each([
    ['10.0.0.1', '::ffff:10.0.0.1', true],
    ['fd00::1', 'fd00:0:0::1', true],
    ['fd00::1', 'fd00::2', false],
    ['10.0.0.1', 'garbage', false],
  ])('sameIP(%s, %s) = %s', (a, b, want) => {
    expect(sameIP(a, b)).toBe(want);
  });

  it('unmapIPv4 only touches ::ffff:0:0/96', () => {
    expect(unmapIPv4(parseIP('::ffff:1.2.3.4')!)).toEqual({ family: 4, value: 0x01020304n });
    expect(unmapIPv4(parseIP('::1.2.3.4')!).family).toBe(6);
  });
});

describe('bytes', () => {
  it.each(['10.1.2.3', '::', '::1', 'fd00::5', '::ffff:10.0.0.1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'])('%s round-trips', (text) => {
    const a = parseIP(text)!;
    const b = addrToBytes(a);
    expect(b.length).toBe(a.family === 4 ? 4 : 16);
    expect(addrFromBytes(b)).toEqual(a);
  });

  it('is network byte order', () => {
    expect([...addrToBytes(parseIP('10.1.2.3')!)]).toEqual([10, 1, 2, 3]);
    expect(addrToBytes(parseIP('fd00::5')!).toString('hex')).toBe('fd000000000000000000000000000005');
    expect(addrFromBytes(Buffer.alloc(5))).toBeUndefined();
  });
});

describe('CIDR', () => {
  it.each([
    ['10.1.0.5/24', '10.1.0.5/24', 4, 24],
    ['fd00:0::5/64', 'fd00::5/64', 6, 64],
    ['0.0.0.0/0', '0.0.0.0/0', 4, 0],
    ['::/0', '::/0', 6, 0],
    ['::ffff:1.2.3.0/120', '::ffff:102:300/120', 6, 120], // the written family, like Go's ParseCIDR
  ])('%s parses (host bits kept) as %s', (text, formatted, family, prefix) => {
    const c = parseCidr(text)!;
    expect(formatCidr(c)).toBe(formatted);
    expect(c.addr.family).toBe(family);
    expect(c.prefix).toBe(prefix);
  });

  it.each(['10.0.0.1', '10.0.0.1/33', '::/129', '10.0.0.1/x', '10.0.0.1/', '10.0.0.1/24/1', '10.0.0.1/-1', '10.0.0.1/0024', 'x/24'])('refuses %p', (text) => {
    expect(parseCidr(text)).toBeUndefined();
  });

  it('takes a bare address as a host prefix only when asked', () => {
    expect(parseCidr('10.0.0.1', { allowBare: true })?.prefix).toBe(32);
    expect(parseCidr('fd00::1', { allowBare: true })?.prefix).toBe(128);
    expect(() => requireCidr('10.0.0.1')).toThrow('"10.0.0.1" is not a CIDR');
  });

  it.each([
    ['10.1.2.3/24', '10.1.2.0', '10.1.2.255', '10.1.2.1'],
    ['10.1.2.3/31', '10.1.2.2', '10.1.2.3', '10.1.2.3'],
    ['10.1.2.3/32', '10.1.2.3', '10.1.2.3', '10.1.2.4'],
    ['10.1.2.3/0', '0.0.0.0', '255.255.255.255', '0.0.0.1'],
    ['fd00::abcd/112', 'fd00::', 'fd00::ffff', 'fd00::1'],
    ['2001:db8:1:2:3:4:5:6/64', '2001:db8:1:2::', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::1'],
  ])('%s: network %s, last %s, first host %s', (text, network, last, first) => {
    const c = parseCidr(text)!;
    const f = c.addr.family;
    expect(formatIP({ family: f, value: networkOf(c) })).toBe(network);
    expect(formatIP({ family: f, value: lastOf(c) })).toBe(last);
    expect(firstHostText(text)).toBe(first);
  });

  it.each([
    ['10.0.0.0/8', '10.255.0.1', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['10.1.0.0/16', 'fd00::1', false],
    ['fd00::/64', 'fd00::ffff', true],
    ['fd00::/64', 'fd00:0:0:1::1', false],
    ['0.0.0.0/0', '1.2.3.4', true],
    ['10.0.0.0/8', 'junk', false],
  ])('%s contains %s: %s', (cidr, ip, want) => {
    expect(containsText(cidr, ip)).toBe(want);
  });

  it.each([
    ['10.0.0.0/8', '10.1.0.0/16', true],
    ['10.1.0.0/16', '10.0.0.0/8', true],
    ['10.1.0.0/16', '10.2.0.0/16', false],
    ['10.1.0.5/24', '10.1.0.200/24', true],
    ['fd00::/64', 'fd00::/48', true],
    ['fd00::/64', '10.0.0.0/8', false],
  ])('%s overlaps %s: %s', (a, b, want) => {
    expect(overlapsText(a, b)).toBe(want);
    expect(cidrsOverlap(parseCidr(a)!, parseCidr(b)!)).toBe(want);
  });
});

describe('text helpers', () => {
  it.each([
    ['10.1.0.5/24', '10.1.0.0/24', '10.1.0.5', '10.1.0.5/24'],
    ['fd00:0:0::5/64', 'fd00::/64', 'fd00::5', 'fd00::5/64'],
    ['::ffff:10.0.0.1/120', '::ffff:a00:0/120', '10.0.0.1', '10.0.0.1/120'],
  ])('%s: network %s, address %s, canonical %s', (text, network, address, canonical) => {
    expect(networkText(text)).toBe(network);
    expect(addressText(text)).toBe(address);
    expect(canonicalCidr(text)).toBe(canonical);
  });

  it('family of an address or a CIDR', () => {
    expect(familyOf('10.0.0.1')).toBe(4);
    expect(familyOf('fd00::/64')).toBe(6);
    expect(() => familyOf('default')).toThrow('"default" is not an IP address or CIDR');
  });

  it('names the bad input', () => {
    expect(() => networkText('10.0.0.1/33')).toThrow('"10.0.0.1/33" is not a CIDR or an IP address');
    expect(() => overlapsText('10.0.0.0/8', 'nope')).toThrow('"nope"');
  });
});

describe('isIPv4 / isIPv6 / isIP follow net.isIPv4 / isIPv6 / isIP (without loading net in the plugins)', () => {
  it.each([
    '1.2.3.4', '0.0.0.0', '255.255.255.255', '256.1.1.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4 ',
    '::', '::1', '1::', ':1', '1:', ':::', '1::2::3', '1:2:3:4:5:6:7:8', '1::2:3:4:5:6:7:8', '1:2:3:4:5:6:7::',
    '::1:2:3:4:5:6:7', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '::ffff:1.2.3.4', '::1.2.3.4', '1.2.3.4::',
    '::ffff:01.2.3.4', 'fe80::1%eth0', 'fe80::1%', 'fe80::1%a%b', '%eth0', '1.2.3.4%eth0', 'FFFF::', '12345::', 'g::', '',
  ])('%j', (text) => {
    expect([isIPv4(text), isIPv6(text), isIP(text)]).toEqual([net.isIPv4(text), net.isIPv6(text), net.isIP(text)]);
  });

  it('agrees with net on 100000 random strings of address pieces', () => {
    const pieces = ['0', '1', 'f', 'ffff', '12345', ':', '::', '.', '1.2.3.4', '255', '256', '01', '%', 'eth0', 'g', 'F'];
    let seed = 7; // mulberry32: the same strings on every run
    const next = (k: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
      return ((t ^ (t >>> 14)) >>> 0) % k;
    };
    const differ: string[] = [];
    for (let i = 0; i < 100000; i++) {
      let s = '';
      for (let n = 1 + next(12); n > 0; n--) s += pieces[next(pieces.length)];
      if (isIPv4(s) !== net.isIPv4(s) || isIPv6(s) !== net.isIPv6(s)) differ.push(s);
    }
    expect(differ).toEqual([]);
  });
});
