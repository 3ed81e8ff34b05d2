import { CniError } from '../../lib/cni/errors';
import type { NetConf } from '../../lib/cni/types';
import { normalizeMac } from '../../lib/netlink';
import { keysAsWritten, repeatedKeys } from '../../lib/util/json-keys';
import { checkAllowlist, parseTuningConfig, sysctlKeyPath, type TuningParseOptions } from '../../plugins/tuning/config';
import { linkMismatches, originalsOf, resultWithMac, sameSysctlValue } from '../../plugins/tuning/plan';

const base = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.1.0', name: 'tn', type: 'tuning', ...extra });
const opts: TuningParseOptions = { ifname: 'eth0' };

function refusal(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    return err as CniError;
  }
  throw new Error('expected an error');
}

describe('sysctlKeyPath', () => {
  it.each([
    ['net.ipv4.ip_forward', 'eth0', 'net/ipv4/ip_forward'],
    ['net/ipv4/ip_forward', 'eth0', 'net/ipv4/ip_forward'],
    ['net.ipv4.conf.IFNAME.arp_filter', 'eth0.100', 'net/ipv4/conf/eth0.100/arp_filter'],
    ['net/ipv6/conf/eth0.5/accept_ra', 'x', 'net/ipv6/conf/eth0.5/accept_ra'],
    ['net.ipv4.conf.IFNAME.IFNAME', 'eth1', 'net/ipv4/conf/eth1/IFNAME'],
  ])('%s (ifname %s) -> %s', (key, ifname, want) => {
    expect(sysctlKeyPath(key, ifname)).toBe(want);
  });

  it.each(['kernel.hostname', 'net', 'net..ipv4', 'net/ipv4/../../kernel/x', 'net/./ipv4', '/net/ipv4/ip_forward', 'net.ipv4.ip forward', 'vm.swappiness'])('refuses %j with code 7', (key) => {
    const err = refusal(() => sysctlKeyPath(key, 'eth0'));
    expect(err.code).toBe(7);
    expect(err.message).toContain(JSON.stringify(key));
  });
});

describe('parseTuningConfig', () => {
  it('defaults: nothing to change, /run/cni/tuning', () => {
    expect(parseTuningConfig(base(), opts)).toMatchObject({ sysctls: [], link: {}, dataDir: '/run/cni/tuning' });
  });

  it('takes every reference field; promisc false and mtu 0 do nothing', () => {
    const c = parseTuningConfig(base({ mac: '02-AB-CD-EF-00-01', mtu: 9000, promisc: true, allmulti: false, txQLen: 0, sysctl: { 'net.core.somaxconn': '500' }, dataDir: '/var/lib/t' }), opts);
    expect(c.link).toEqual({ mac: '02:ab:cd:ef:00:01', mtu: 9000, promisc: true, allmulti: false, txQLen: 0 });
    expect(c.sysctls).toEqual([{ key: 'net.core.somaxconn', path: 'net/core/somaxconn', value: '500' }]);
    expect(c.dataDir).toBe('/var/lib/t');
    expect(parseTuningConfig(base({ promisc: false, mtu: 0 }), opts).link).toEqual({});
  });

  it('args.cni overrides the config and merges sysctls', () => {
    const c = parseTuningConfig(base({
      mtu: 1400, promisc: false, sysctl: { 'net.ipv4.ip_forward': '1', 'net.core.somaxconn': '1' },
      args: { cni: { mtu: 1300, promisc: true, allmulti: true, txQLen: 5, sysctl: { 'net.core.somaxconn': '2' } } },
    }), opts);
    expect(c.link).toEqual({ mtu: 1300, promisc: true, allmulti: true, txQLen: 5 });
    expect(c.sysctls.map((s) => [s.key, s.value])).toEqual([['net.ipv4.ip_forward', '1'], ['net.core.somaxconn', '2']]);
  });

  it.each([
    [{ mac: 'c2:00:00:00:00:01' }, {}, 'c2:00:00:00:00:01'],
    [{ mac: 'c2:00:00:00:00:01' }, { MAC: 'c2:00:00:00:00:02' }, 'c2:00:00:00:00:02'],
    [{ mac: 'c2:00:00:00:00:01', runtimeConfig: { mac: 'c2:00:00:00:00:03' } }, { MAC: 'c2:00:00:00:00:02' }, 'c2:00:00:00:00:03'],
    [{ runtimeConfig: { mac: 'c2:00:00:00:00:03' }, args: { cni: { mac: 'c2:00:00:00:00:04' } } }, { MAC: 'c2:00:00:00:00:02' }, 'c2:00:00:00:00:04'],
  ])('MAC precedence like the reference: %j with CNI_ARGS %j -> %s', (extra, cniArgs, want) => {
    expect(parseTuningConfig(base(extra), { ...opts, cniArgs }).link.mac).toBe(want);
  });

  it.each([
    [{ mac: 'zz' }, /"mac" is not a MAC address/],
    [{ mac: '03:00:00:00:00:01' }, /multicast/],
    [{ runtimeConfig: { mac: 5 } }, /runtimeConfig.mac is not a MAC address/],
    [{ mtu: 67 }, /"mtu" must be an integer from 68 to 65535/],
    [{ mtu: '1500' }, /"mtu" must be an integer/],
    [{ txQLen: -1 }, /"txQLen" must be an integer from 0/],
    [{ promisc: 'yes' }, /"promisc" must be true or false/],
    [{ allmulti: 1 }, /"allmulti" must be true or false/],
    [{ sysctl: ['net.ipv4.ip_forward'] }, /"sysctl" must be an object/],
    [{ sysctl: { 'net.ipv4.ip_forward': true } }, /must be a string/],
    [{ sysctl: { 'net.ipv4.ip_forward': '1\nnet.x=1' } }, /must be one line/],
    [{ sysctl: { 'net.ipv4.ip_forward': '1', 'net/ipv4/ip_forward': '0' } }, /name the same file/],
    [{ dataDir: 'rel' }, /"dataDir" "rel" is not an absolute path/],
    [{ dataDir: '/run/../etc' }, /"dataDir" "\/run\/..\/etc" is not normalized/],
    [{ dataDir: '/etc/cni' }, /is not below one of/],
  ])('refuses %j with code 7', (extra, msg) => {
    const err = refusal(() => parseTuningConfig(base(extra), opts));
    expect(err.code).toBe(7);
    expect(err.message).toMatch(msg);
  });

  it('refuses a sysctl key written twice in the raw config', () => {
    const raw = '{"name":"tn","sysctl":{"net.ipv4.ip_forward":"1","net.core.somaxconn":"9","net.ipv4.ip_forward":"0"}}';
    const err = refusal(() => parseTuningConfig(base(JSON.parse(raw)), { ...opts, rawConfig: raw }));
    expect(err.message).toMatch(/"net.ipv4.ip_forward" is given twice/);
  });
});

describe('allowlist', () => {
  const sysctls = parseTuningConfig(base({ sysctl: { 'net.ipv4.conf.IFNAME.arp_filter': '1', 'net.core.somaxconn': '1' } }), opts).sysctls;
  it('no file: everything under net. is allowed', () => expect(() => checkAllowlist(sysctls, undefined)).not.toThrow());
  it('every key must match a line (unanchored regular expressions, like Go regexp.MatchString)', () => {
    expect(() => checkAllowlist(sysctls, '^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$\n\n  somaxconn\n')).not.toThrow();
    const err = refusal(() => checkAllowlist(sysctls, '^net\\.ipv4\\.'));
    expect(err.code).toBe(7);
    expect(err.message).toMatch(/"net.core.somaxconn" is not allowed by \/etc\/cni\/tuning\/allowlist.conf/);
  });
  it('an invalid pattern is reported', () => expect(refusal(() => checkAllowlist(sysctls, '(')).message).toMatch(/invalid pattern "\("/));
});

describe('plan', () => {
  const link = { index: 2, name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, up: true, operUp: true, flags: 0x1 | 0x100, txqlen: 1000 };
  it('keeps exactly the attributes ADD changes', () => {
    expect(originalsOf(link, { mtu: 1400 })).toEqual({ mtu: 1500 });
    expect(originalsOf(link, { mac: 'c2:00:00:00:00:09', promisc: true, allmulti: true, txQLen: 5 })).toEqual({ mac: '02:00:00:00:00:01', promisc: true, allmulti: false, txQLen: 1000 });
  });
  it('CHECK names each mismatch', () => {
    expect(linkMismatches(link, { mtu: 1500, promisc: true })).toEqual([]);
    expect(linkMismatches(link, { mtu: 1400, allmulti: true, txQLen: 9 })).toEqual([
      'MTU of "eth0" is 1500, configured 1400', 'all-multicast mode of "eth0" is off, configured on', 'transmit queue length of "eth0" is 1000, configured 9',
    ]);
  });
  it('sysctl values compare by words', () => {
    expect(sameSysctlValue('4096 87380 6291456', '4096\t87380\t6291456')).toBe(true);
    expect(sameSysctlValue('1', '0')).toBe(false);
  });
  it('puts the new MAC on the container interface of the result', () => {
    const prev = { cniVersion: '1.1.0', interfaces: [{ name: 'br0' }, { name: 'eth0', sandbox: '/x', mac: 'aa:aa:aa:aa:aa:aa' }] };
    expect(resultWithMac(prev, 'eth0', 'c2:00:00:00:00:01').interfaces).toEqual([{ name: 'br0' }, { name: 'eth0', sandbox: '/x', mac: 'c2:00:00:00:00:01' }]);
    expect(resultWithMac(prev, 'eth0', undefined)).toBe(prev);
  });
});

describe('helpers', () => {
  it.each([['02:AB:cd:EF:00:01', '02:ab:cd:ef:00:01'], ['02-ab-cd-ef-00-01', '02:ab:cd:ef:00:01'], ['02ab.cdef.0001', '02:ab:cd:ef:00:01'], ['02:ab-cd:ef:00:01', undefined], ['02:ab:cd:ef:00', undefined]])('normalizeMac(%s) = %s', (t, want) => {
    expect(normalizeMac(t)).toBe(want);
  });
  it('finds the keys of an object as written, repeats included', () => {
    const text = '{"a":{"x":1},"sysctl":{"k":"1","j":[1,{"k":2}],"k":"\\"}"},"z":null}';
    expect(keysAsWritten(text, ['sysctl'])).toEqual(['k', 'j', 'k']);
    expect(keysAsWritten(text, [])).toEqual(['a', 'sysctl', 'z']);
    expect(keysAsWritten(text, ['z'])).toBeUndefined();
    expect(repeatedKeys(text, ['sysctl'])).toEqual(['k']);
    expect(repeatedKeys(text, ['a'])).toEqual([]);
  });
});
