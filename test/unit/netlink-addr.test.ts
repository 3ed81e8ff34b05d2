// Address helpers, error mapping and sysctl key sanitising: pure.
import { bytesToIp, bytesToMac, ipToBytes, macToBytes, parseCidr, NetlinkError, isExists, isNotFound } from '../../lib/netlink';
import { kernelError, toNetlinkError } from '../../lib/netlink/errors';
import { sysctlPath } from '../../lib/sys/sysctl';
import { addrFromBytes, formatIP } from '../../lib/ip';

describe('IP text <-> bytes', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['::1', '::1'],
    ['::', '::'],
    ['fd00:0:0:0:0:0:0:5', 'fd00::5'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '2001:db8:0:1:1:1:1:1'],
    ['fe80::1:2', 'fe80::1:2'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
  ])('%s round-trips as %s', (text, canonical) => {
    expect(bytesToIp(ipToBytes(text))).toBe(canonical);
  });

  it('writes what lib/ip writes, for any bytes (zero runs of every length and place)', () => {
    let seed = 42;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let n = 0; n < 2000; n++) {
      const b = Buffer.alloc(n % 5 === 0 ? 4 : 16);
      for (let i = 0; i < b.length; i++) b[i] = rnd() < 0.5 ? 0 : Math.floor(rnd() * 256);
      expect(bytesToIp(b)).toBe(formatIP(addrFromBytes(b)!));
    }
    expect(() => bytesToIp(Buffer.alloc(5))).toThrow(/address of 5 bytes/);
  });

  it('rejects garbage', () => {
    expect(() => ipToBytes('10.0.0')).toThrow(NetlinkError);
    expect(() => parseCidr('10.0.0.1/33')).toThrow(/invalid CIDR/);
    expect(() => parseCidr('10.0.0.1/x')).toThrow(/invalid CIDR/);
  });

  it('parses CIDRs and bare addresses', () => {
    expect(parseCidr('fd00::1/64')).toEqual({ ip: 'fd00::1', prefix: 64, family: 6 });
    expect(parseCidr('10.0.0.1')).toEqual({ ip: '10.0.0.1', prefix: 32, family: 4 });
  });

  it('MACs', () => {
    expect(bytesToMac(macToBytes('02:AB:cd:00:00:0F'))).toBe('02:ab:cd:00:00:0f');
    expect(() => macToBytes('02:ab:cd:00:00')).toThrow(/invalid MAC/);
  });
});

describe('errno mapping', () => {
  it('names the errno and the object', () => {
    const e = kernelError(-17, 'creating bridge "cni0"');
    expect(e.code).toBe('EEXIST');
    expect(e.message).toBe('creating bridge "cni0": EEXIST (already exists)');
    expect(isExists(e)).toBe(true);
    expect(isNotFound(kernelError(-19, 'x'))).toBe(true);
    expect(isNotFound(kernelError(-2, 'x'))).toBe(true);
    expect(isNotFound(kernelError(-16, 'x'))).toBe(false);
  });

  it('names EXFULL, which Node does not know: a bridge with all its ports taken', () => {
    expect(kernelError(-54, 'attaching "veth1" to bridge "cni0"').message).toBe('attaching "veth1" to bridge "cni0": EXFULL (full: a bridge takes at most 1023 ports)');
  });

  it('translates node-netlink string errors once', () => {
    expect(toNetlinkError(new Error('Request rejected: EBUSY'), 'attaching')).toMatchObject({ code: 'EBUSY', message: 'attaching: EBUSY (busy)' });
    expect(toNetlinkError(new Error('Timeout has been reached'), 'listing').message).toContain('Timeout');
    expect(isExists(new Error('EEXIST'))).toBe(false);
  });
});

describe('sysctlPath', () => {
  it.each([
    ['net/ipv4/ip_forward', '/proc/sys/net/ipv4/ip_forward'],
    ['net.ipv4.ip_forward', '/proc/sys/net/ipv4/ip_forward'],
    ['/proc/sys/net/ipv6/conf/all/forwarding', '/proc/sys/net/ipv6/conf/all/forwarding'],
    ['net/ipv4/conf/eth0.100/rp_filter', '/proc/sys/net/ipv4/conf/eth0.100/rp_filter'],
  ])('%s -> %s', (key, path) => {
    expect(sysctlPath(key)).toBe(path);
  });

  it.each(['kernel/hostname', 'net/../kernel/hostname', 'net/ipv4/../../kernel/x', 'net', 'net//x', '/etc/passwd', 'net/./ipv4'])('refuses %p', (key) => {
    expect(() => sysctlPath(key)).toThrow(/invalid sysctl key/);
  });
});
