// Result conversion between every pair of supported versions (CONFORMANCE §3.4/§3.5).
import { convertResult, parsePrevResult, parseResult, SUPPORTED_VERSIONS, compareVersions, resultFamily } from '../../../lib/cni/version';
import type { Result } from '../../../lib/cni/types';

const RICH: Result = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'cni0', mac: '02:00:00:00:00:01' },
    { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1450, sandbox: '/run/netns/c1', socketPath: '/run/vhost.sock', pciID: '0000:04:00.5' },
  ],
  ips: [
    { address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 1 },
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 1 },
    { address: '10.1.1.5/24', interface: 1 },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '10.1.0.1', mtu: 1400, advmss: 1360, priority: 10, table: 100, scope: 0 },
    { dst: '::/0', gw: 'fd00::1' },
  ],
  dns: { nameservers: ['10.1.0.1'], domain: 'example', search: ['example'], options: ['ndots:2'] },
};

/** Golden output of RICH for each version. */
const GOLDEN: Record<string, object> = {
  '1.1.0': { ...RICH },
  '1.0.0': {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'cni0', mac: '02:00:00:00:00:01' }, { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/c1' }],
    ips: RICH.ips,
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0', gw: 'fd00::1' }],
    dns: RICH.dns,
  },
  '0.4.0': {
    cniVersion: '0.4.0',
    interfaces: [{ name: 'cni0', mac: '02:00:00:00:00:01' }, { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/c1' }],
    ips: [
      { version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 1 },
      { version: '6', address: 'fd00::5/64', gateway: 'fd00::1', interface: 1 },
      { version: '4', address: '10.1.1.5/24', interface: 1 },
    ],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0', gw: 'fd00::1' }],
    dns: RICH.dns,
  },
  '0.2.0': {
    cniVersion: '0.2.0',
    ip4: { ip: '10.1.0.5/24', gateway: '10.1.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }] },
    ip6: { ip: 'fd00::5/64', gateway: 'fd00::1', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
    dns: RICH.dns,
  },
};
GOLDEN['0.3.0'] = { ...GOLDEN['0.4.0'], cniVersion: '0.3.0' };
GOLDEN['0.3.1'] = { ...GOLDEN['0.4.0'], cniVersion: '0.3.1' };
GOLDEN['0.1.0'] = { ...GOLDEN['0.2.0'], cniVersion: '0.1.0' };

/** Keys each version's schema defines. */
const ALLOWED: Record<string, { top: string[]; iface: string[]; ip: string[]; route: string[] }> = {
  '1': { top: ['cniVersion', 'interfaces', 'ips', 'routes', 'dns'], iface: ['name', 'mac', 'sandbox'], ip: ['address', 'gateway', 'interface'], route: ['dst', 'gw'] },
  '1.1': { top: ['cniVersion', 'interfaces', 'ips', 'routes', 'dns'], iface: ['name', 'mac', 'mtu', 'sandbox', 'socketPath', 'pciID'], ip: ['address', 'gateway', 'interface'], route: ['dst', 'gw', 'mtu', 'advmss', 'priority', 'table', 'scope'] },
  '0.4': { top: ['cniVersion', 'interfaces', 'ips', 'routes', 'dns'], iface: ['name', 'mac', 'sandbox'], ip: ['version', 'address', 'gateway', 'interface'], route: ['dst', 'gw'] },
  '0.2': { top: ['cniVersion', 'ip4', 'ip6', 'dns'], iface: [], ip: ['ip', 'gateway', 'routes'], route: ['dst', 'gw'] },
};
function schemaOf(v: string) {
  return v === '1.1.0' ? ALLOWED['1.1'] : ALLOWED[resultFamily(v)!];
}
function expectOnlyDefinedKeys(out: any, v: string) {
  const s = schemaOf(v);
  const sub = (o: object, allowed: string[]) => expect(Object.keys(o).filter((k) => !allowed.includes(k))).toEqual([]);
  sub(out, s.top);
  for (const i of out.interfaces ?? []) sub(i, s.iface);
  for (const i of out.ips ?? []) sub(i, s.ip);
  for (const r of out.routes ?? []) sub(r, s.route);
  for (const k of ['ip4', 'ip6']) if (out[k]) { sub(out[k], s.ip); for (const r of out[k].routes ?? []) sub(r, s.route); }
}

describe('convertResult (1.x in memory → each version)', () => {
  it.each(SUPPORTED_VERSIONS)('%s matches the golden output', (v) => {
    expect(convertResult(RICH, v)).toEqual(GOLDEN[v]);
  });
  it('0.x with no IPs cannot be expressed', () => {
    expect(() => convertResult({ cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }] }, '0.2.0')).toThrow('cannot convert: no valid IP addresses');
  });
  it('an unknown target version is code 1', () => {
    expect(() => convertResult(RICH, '2.0.0')).toThrow(expect.objectContaining({ code: 1 }));
  });
});

const PAIRS = SUPPORTED_VERSIONS.flatMap((from) => SUPPORTED_VERSIONS.map((to) => [from, to] as const));
describe('every pair: a result printed in version A, read back, printed in version B', () => {
  it.each(PAIRS)('%s → %s', (from, to) => {
    const wire = JSON.parse(JSON.stringify(convertResult(RICH, from)));
    const internal = parseResult(wire, 'ignored');
    expect(internal.cniVersion).toBe(from);
    const out: any = convertResult(internal, to);
    expect(out.cniVersion).toBe(to);
    expectOnlyDefinedKeys(out, to);
    // The first address of each family survives every path.
    const addrs = resultFamily(to) === '0.2' ? [out.ip4.ip, out.ip6.ip] : out.ips.map((i: any) => i.address);
    expect(addrs).toEqual(expect.arrayContaining(['10.1.0.5/24', 'fd00::5/64']));
    expect(out.dns).toEqual(RICH.dns);
    // What both versions can say is kept exactly.
    const lossy = resultFamily(from) === '0.2' || resultFamily(to) === '0.2' ? null : from === '1.1.0' ? RICH : parseResult(GOLDEN[from], from);
    if (lossy) expect(out).toEqual(convertResult(lossy, to));
    if (resultFamily(from) !== '0.2' && resultFamily(to) !== '0.2') {
      expect(out.ips.map((i: any) => i.interface)).toEqual([1, 1, 1]);
    }
    if (from === '1.1.0' && to === '1.1.0') expect(out).toEqual(RICH);
  });
});

describe('parseResult', () => {
  it('0.2.0 ip4/ip6 become ips without interface, routes flattened', () => {
    expect(parseResult(GOLDEN['0.2.0'], 'x')).toEqual({
      cniVersion: '0.2.0',
      ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }, { address: 'fd00::5/64', gateway: 'fd00::1' }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0', gw: 'fd00::1' }],
      dns: RICH.dns,
    });
  });
  it('no cniVersion → the fallback; null → empty result', () => {
    expect(parseResult({ ips: [{ address: '10.0.0.2/8' }] }, '1.0.0')).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/8' }] });
    expect(parseResult(null, '1.0.0')).toEqual({ cniVersion: '1.0.0' });
  });
  it('drops keys no version defines', () => {
    expect(parseResult({ cniVersion: '1.1.0', foo: 1, ips: [{ address: '10.0.0.2/8', bar: 2 }] }, 'x')).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/8' }] });
  });
  it.each([
    [{ ips: [{ address: '10.0.0.2' }] }, 'CIDR'],
    [{ ips: [{ address: '10.0.0.2/33' }] }, 'CIDR'],
    [{ ips: [{ address: '10.0.0.2/8', gateway: 'x' }] }, 'IP address'],
    [{ interfaces: [{ name: 'eth0', mtu: -1 }] }, 'non-negative'],
    [{ routes: {} }, 'list'],
    [{ cniVersion: 1 }, 'string'],
    ['str', 'object'],
  ])('%j → code 6 (%s)', (raw, why) => {
    expect(() => parseResult(raw, '1.1.0')).toThrow(expect.objectContaining({ code: 6, details: expect.stringContaining(why) }));
  });
  it('an unknown result version is code 1', () => {
    expect(() => parseResult({ cniVersion: '3.0.0' }, '1.1.0')).toThrow(expect.objectContaining({ code: 1 }));
  });
});

describe('parsePrevResult', () => {
  it.each([
    ['1.1.0', '1.0.0', true], ['1.0.0', '1.1.0', true], ['0.4.0', '0.3.1', true], ['0.3.0', '0.4.0', true],
    ['1.0.0', '0.4.0', false], ['0.4.0', '1.0.0', false], ['1.1.0', '0.2.0', false],
  ])('config %s with prevResult %s: ok=%s', (conf, prev, ok) => {
    const raw = { cniVersion: prev, ips: [{ version: '4', address: '10.0.0.2/8' }] };
    if (ok) expect(parsePrevResult(raw, conf).ips).toEqual([{ address: '10.0.0.2/8' }]);
    else expect(() => parsePrevResult(raw, conf)).toThrow(/result type supports \[.*\] but unmarshalled CNIVersion is/);
  });
});

it('compareVersions orders numerically', () => {
  expect([...SUPPORTED_VERSIONS].reverse().sort(compareVersions)).toEqual([...SUPPORTED_VERSIONS]);
  expect(compareVersions('0.10.0', '0.9.0')).toBeGreaterThan(0);
});
