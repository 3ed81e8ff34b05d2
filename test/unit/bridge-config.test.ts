import { CniError } from '../../lib/cni/errors';
import type { NetConf } from '../../lib/cni/types';
import { parseBridgeConfig } from '../../plugins/bridge/config';
import { buildBridgeVlanRequest } from '../../lib/netlink';
import { planAdd, planVlans } from '../../plugins/bridge/plan';

const base = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.1.0', name: 'net1', type: 'bridge', ...extra });

function code7(fn: () => unknown, msg: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    expect((e as CniError).code).toBe(7);
    expect((e as CniError).message).toMatch(msg);
    return;
  }
  throw new Error('expected a code 7 error');
}

describe('parseBridgeConfig', () => {
  it('applies the reference defaults', () => {
    const c = parseBridgeConfig(base());
    expect(c).toMatchObject({ bridge: 'cni0', isGateway: false, ipMasq: false, ipMasqBackend: 'nftables', mtu: 0, vlan: 0, vlanTrunk: [], ipamType: '' });
    expect(c.mac).toBeUndefined();
  });

  it('accepts every reference field unchanged', () => {
    const c = parseBridgeConfig(base({
      bridge: 'br-x', isGateway: false, isDefaultGateway: true, forceAddress: true, ipMasq: true, ipMasqBackend: 'iptables',
      mtu: 1400, hairpinMode: true, promiscMode: false, vlan: 100, vlanTrunk: [{ id: 5 }, { minID: 10, maxID: 12 }],
      preserveDefaultVlan: true, macspoofchk: true, enabledad: true, disableContainerInterface: false, portIsolation: true,
      ipam: { type: 'host-local', subnet: '10.1.0.0/24' }, dns: { nameservers: ['10.1.0.1'], search: ['x'] },
    }));
    expect(c).toMatchObject({
      bridge: 'br-x', isGateway: true, isDefaultGateway: true, forceAddress: true, ipMasq: true, ipMasqBackend: 'iptables', mtu: 1400,
      hairpinMode: true, vlan: 100, vlanTrunk: [5, 10, 11, 12], preserveDefaultVlan: true, macspoofchk: true, enabledad: true,
      portIsolation: true, ipamType: 'host-local', dns: { nameservers: ['10.1.0.1'], search: ['x'] },
    });
  });

  it.each([
    [{ hairpinMode: true, promiscMode: true }, /hairpinMode.*promiscMode/],
    [{ vlan: 4095 }, /"vlan" must be an integer from 0 to 4094, got 4095/],
    [{ vlan: -1 }, /"vlan"/],
    [{ vlan: 1.5 }, /"vlan"/],
    [{ vlanTrunk: [{ id: 0 }] }, /vlanTrunk \[0\]\.id must be a VLAN id from 1 to 4094, got 0/],
    [{ vlanTrunk: [{ minID: 10, maxID: 5000 }] }, /maxID/],
    [{ vlanTrunk: [{ minID: 20, maxID: 10 }] }, /minID 20 greater than maxID 10/],
    [{ vlanTrunk: [{ minID: 20 }] }, /needs "id" or both/],
    [{ vlanTrunk: 5 }, /must be a list/],
    [{ mtu: -1 }, /"mtu"/],
    [{ ipMasq: 'yes' }, /"ipMasq" must be true or false, got "yes"/],
    [{ ipMasqBackend: 'ebpf' }, /"ipMasqBackend" must be "nftables" or "iptables", got "ebpf"/],
    [{ bridge: 'a-very-long-bridge-name' }, /invalid bridge name/],
    [{ bridge: 'br/0' }, /invalid bridge name/],
    [{ disableContainerInterface: true, ipam: { type: 'host-local' } }, /disableContainerInterface.*host-local/],
    [{ ipam: { type: '/usr/bin/x' } }, /not a path/],
    [{ runtimeConfig: { mac: 'zz:00:00:00:00:00' } }, /invalid MAC address "zz:00:00:00:00:00" in runtimeConfig.mac/],
    [{ args: { cni: { mac: '01:00:00:00:00:01' } } }, /multicast/],
    [{ stateDir: 'relative' }, /stateDir/],
    [{ isolation: true, vlan: 10, isGateway: true }, /"isolation" cannot be combined with "vlan" and "isGateway": the gateway of VLAN 10 is on "cni0\.10"/],
  ])('rejects %j with code 7', (extra, msg) => {
    code7(() => parseBridgeConfig(base(extra)), msg);
  });

  it('picks the MAC: runtimeConfig > args.cni > CNI_ARGS', () => {
    const all = base({ runtimeConfig: { mac: '02:00:00:00:00:01' }, args: { cni: { mac: '02:00:00:00:00:02' } } });
    expect(parseBridgeConfig(all, 'MAC=02:00:00:00:00:03').mac).toBe('02:00:00:00:00:01');
    expect(parseBridgeConfig(base({ args: { cni: { mac: '02:00:00:00:00:02' } } }), 'MAC=02:00:00:00:00:03').mac).toBe('02:00:00:00:00:02');
    expect(parseBridgeConfig(base(), 'IgnoreUnknown=1;MAC=02:00:00:00:00:0A').mac).toBe('02:00:00:00:00:0a');
  });

  it('ignores a dns object with no field set', () => {
    expect(parseBridgeConfig(base({ dns: {} })).dns).toBeUndefined();
  });
});

describe('planAdd', () => {
  const ipam = { cniVersion: '1.1.0', ips: [{ address: '10.1.0.5/24' }, { address: 'fd00:1::5/64' }], routes: [{ dst: '10.9.0.0/16' }] };

  it('computes gateways, bridge addresses, default routes, forwarding and masquerade', () => {
    const plan = planAdd(parseBridgeConfig(base({ isDefaultGateway: true, ipMasq: true, ipam: { type: 'x' } })), ipam);
    expect(plan.ips).toEqual([{ address: '10.1.0.5/24', gateway: '10.1.0.1' }, { address: 'fd00:1::5/64', gateway: 'fd00:1::1' }]);
    expect(plan.bridgeAddresses).toEqual([{ family: 4, cidr: '10.1.0.1/24' }, { family: 6, cidr: 'fd00:1::1/64' }]);
    expect(plan.routes).toEqual([{ dst: '10.9.0.0/16', gw: '10.1.0.1' }, { dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0', gw: 'fd00:1::1' }]);
    expect(plan.forwardV4).toBe(true);
    expect(plan.forwardV6).toBe(true);
    expect(plan.masq).toEqual([{ address: '10.1.0.5', subnet: '10.1.0.0/24' }, { address: 'fd00:1::5', subnet: 'fd00:1::/64' }]);
  });

  it('keeps an IPAM gateway and an IPAM default route, and adds nothing without isGateway', () => {
    const p = planAdd(parseBridgeConfig(base({ isDefaultGateway: true })), { cniVersion: '1.1.0', ips: [{ address: '10.2.0.9/16', gateway: '10.2.0.254' }], routes: [{ dst: '0.0.0.0/0', gw: '10.2.0.254' }] });
    expect(p.bridgeAddresses).toEqual([{ family: 4, cidr: '10.2.0.254/16' }]);
    expect(p.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.2.0.254' }]);
    const plain = planAdd(parseBridgeConfig(base()), { cniVersion: '1.1.0', ips: [{ address: '10.2.0.9/16' }] });
    expect(plain.bridgeAddresses).toEqual([]);
    expect(plain.ips).toEqual([{ address: '10.2.0.9/16' }]);
    expect(plain.forwardV6).toBe(false);
    expect(plain.masq).toEqual([]);
  });
});

describe('VLAN requests', () => {
  it('plans access and trunk VLANs, removing the default PVID unless preserved', () => {
    expect(planVlans(parseBridgeConfig(base()))).toEqual([]);
    expect(planVlans(parseBridgeConfig(base({ vlan: 100, vlanTrunk: [{ id: 200 }] })))).toEqual([
      { op: 'del', vid: 1, pvid: false, untagged: false },
      { op: 'add', vid: 100, pvid: true, untagged: true },
      { op: 'add', vid: 200, pvid: false, untagged: false },
    ]);
    expect(planVlans(parseBridgeConfig(base({ vlanTrunk: [{ id: 7 }], preserveDefaultVlan: true })))).toEqual([
      { op: 'add', vid: 1, pvid: true, untagged: true },
      { op: 'add', vid: 7, pvid: false, untagged: false },
    ]);
  });

  it('encodes what `bridge vlan add dev X vid 100 pvid untagged master` sends', () => {
    // The ops go to the facade as they are (lib/bridge/attach); the bytes are checked in netlink-requests.test.ts too.
    const [op] = planVlans(parseBridgeConfig(base({ vlan: 100, preserveDefaultVlan: true })));
    expect(op).toEqual({ op: 'add', vid: 100, pvid: true, untagged: true });
    const req = buildBridgeVlanRequest(op.op, 42, op);
    expect(req.type).toBe(19); // RTM_SETLINK
    expect(req.data.toString('hex')).toBe(
      '07000000' + '2a000000' + '00000000' + '00000000' + // ifinfomsg: AF_BRIDGE, index 42
      '1400' + '1a00' + // IFLA_AF_SPEC, 20 bytes
      '0600' + '0000' + '0100' + '0000' + // IFLA_BRIDGE_FLAGS = BRIDGE_FLAGS_MASTER (padded)
      '0800' + '0200' + '0600' + '6400', // IFLA_BRIDGE_VLAN_INFO {flags PVID|UNTAGGED, vid 100}
    );
    const del = buildBridgeVlanRequest('del', 42, { vid: 1, pvid: false, untagged: false });
    expect(del.type).toBe(17); // RTM_DELLINK
    expect(del.data.subarray(-4).toString('hex')).toBe('00000100');
  });
});
