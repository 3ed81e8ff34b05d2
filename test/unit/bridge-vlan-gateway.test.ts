// The bridge's VLAN gateway interface without a kernel: when ADD plans one,
// its name and port VLANs, and when DEL may delete it. The kernel side runs
// in test/l2/bridge-vlan.test.ts.
import { CniError } from '../../lib/cni/errors';
import type { NetConf } from '../../lib/cni/types';
import { vlanUsers } from '../../lib/bridge/vlan-gateway';
import { buildSetLinkRequest } from '../../lib/netlink';
import { attrMap, IFINFOMSG_LEN, IFLA } from '../../lib/netlink/wire';
import { parseBridgeConfig } from '../../plugins/bridge/config';
import { planAdd, planVlanGateway, planVlanGatewayPort } from '../../plugins/bridge/plan';

const conf = (extra: Record<string, unknown> = {}) =>
  parseBridgeConfig({ cniVersion: '1.1.0', name: 'net1', type: 'bridge', bridge: 'br0', ipam: { type: 'host-local' }, ...extra } as NetConf);
const ipam = { cniVersion: '1.1.0', ips: [{ address: '10.9.0.5/24' }] };

describe('planVlanGateway', () => {
  it.each([
    ['vlan and isGateway', { vlan: 10, isGateway: true }, { name: 'br0.10', vlan: 10 }],
    ['isDefaultGateway implies isGateway', { vlan: 4094, isDefaultGateway: true }, { name: 'br0.4094', vlan: 4094 }],
    ['no vlan', { isGateway: true }, undefined],
    ['vlan without isGateway', { vlan: 10 }, undefined],
    ['only a trunk', { vlanTrunk: [{ id: 10 }], isGateway: true }, undefined],
  ])('%s', (_what, extra, want) => {
    expect(planVlanGateway(conf(extra))).toEqual(want);
  });

  it('refuses a bridge name that leaves no room for ".<vlan>" (code 7, before anything is made)', () => {
    const c = conf({ bridge: 'bridge-name-13', vlan: 100, isGateway: true });
    const err = (() => { try { planVlanGateway(c); } catch (e) { return e; } })() as CniError;
    expect(err).toBeInstanceOf(CniError);
    expect(err.code).toBe(7);
    expect(err.message).toBe('bridge: the VLAN gateway interface "bridge-name-13.100" would be longer than 15 bytes');
    expect(err.details).toBe('use a "bridge" name of at most 11 bytes with "vlan" 100');
    expect(planVlanGateway(conf({ bridge: 'bridge-name', vlan: 100, isGateway: true }))).toEqual({ name: 'bridge-name.100', vlan: 100 });
  });

  it('planAdd: the gateway addresses go on the VLAN gateway only when there are addresses', () => {
    const p = planAdd(conf({ vlan: 10, isGateway: true }), ipam);
    expect(p.vlanGateway).toEqual({ name: 'br0.10', vlan: 10 });
    expect(p.bridgeAddresses).toEqual([{ family: 4, cidr: '10.9.0.1/24' }]);
    expect(planAdd(conf({ vlan: 10, isGateway: true, ipam: {} }), undefined).vlanGateway).toBeUndefined();
    expect(planAdd(conf({ isGateway: true }), ipam).vlanGateway).toBeUndefined();
  });

  it('its port is an access port of the VLAN, without the trunk, defaults removed unless preserved', () => {
    expect(planVlanGatewayPort(conf({ vlan: 10, vlanTrunk: [{ minID: 20, maxID: 21 }], isGateway: true }))).toEqual([
      { op: 'del', vid: 1, pvid: false, untagged: false },
      { op: 'add', vid: 10, pvid: true, untagged: true },
    ]);
    expect(planVlanGatewayPort(conf({ vlan: 10, preserveDefaultVlan: true, isGateway: true }))).toEqual([
      { op: 'add', vid: 10, pvid: true, untagged: true },
    ]);
  });
});

describe('vlanUsers: who keeps the gateway of a VLAN', () => {
  const port = (index: number, name: string, ...vids: Array<[number, boolean]>) => ({ index, name, vlans: vids.map(([vid, pvid]) => ({ vid, pvid, untagged: pvid })) });
  const ports = [port(5, 'vethgw', [10, true]), port(6, 'vetha', [10, true]), port(7, 'vethb', [1, true], [10, false]), port(8, 'vethc', [20, true])];

  it.each([
    ['access and trunk ports of the VLAN count, not its own port', { vlan: 10, gatewayPort: 5 }, 2],
    ['a port being rolled back does not count', { vlan: 10, gatewayPort: 5, ignore: ['vetha'] }, 1],
    ['another VLAN\'s ports do not count', { vlan: 20, gatewayPort: 9 }, 1],
    ['nothing left', { vlan: 30, gatewayPort: 5 }, 0],
  ])('%s', (_what, o, want) => {
    expect(vlanUsers(ports, o)).toBe(want);
  });
});

describe('link alias (marks the interfaces we create)', () => {
  it('sends IFLA_IFALIAS without a trailing NUL, and refuses more than 255 bytes', () => {
    const req = buildSetLinkRequest(4, { alias: 'node-cni-plugins x' });
    const a = attrMap(req.data.subarray(IFINFOMSG_LEN));
    expect(a.get(IFLA.IFALIAS)!.toString()).toBe('node-cni-plugins x');
    expect(() => buildSetLinkRequest(4, { alias: 'x'.repeat(256) })).toThrow(/longer than 255 bytes/);
  });
});
