// planAttach as a pure function: a config, an IPAM result and what the kernel
// holds in, the whole attachment out (links, sysctls, addresses, route
// metrics, VLAN ops, VLAN gateway, firewall elements, names, record), for the
// bridge plugin and the vxlan-overlay plugin, which share lib/bridge/plan.ts.
import { CniError } from '../../lib/cni/errors';
import type { NetConf, Result } from '../../lib/cni/types';
import type { AttachObserved, AttachPlan } from '../../lib/bridge/plan';
import type { Address, Link, Route as KernelRoute } from '../../lib/netlink';
import { portVlanOps } from '../../lib/bridge/port';
import { parseBridgeConfig } from '../../plugins/bridge/config';
import { planAttach } from '../../plugins/bridge/plan';
import { parseOverlayConfig } from '../../plugins/vxlan-overlay/config';
import { planAttach as planOverlayAttach } from '../../plugins/vxlan-overlay/plan';
import type { AgentState } from '../../plugins/vxlan-overlay/readiness';

const who = { containerId: 'c1', ifname: 'eth0' };
const conf = (extra: Record<string, unknown> = {}): ReturnType<typeof parseBridgeConfig> =>
  parseBridgeConfig({ cniVersion: '1.1.0', name: 'pl-net', type: 'bridge', bridge: 'plbr0', ipam: { type: 'host-local' }, ...extra } as NetConf);
const v4: Result = { cniVersion: '1.1.0', ips: [{ address: '10.1.0.5/24' }], routes: [{ dst: '0.0.0.0/0' }] };
const dual: Result = { cniVersion: '1.1.0', ips: [{ address: '10.1.0.5/24' }, { address: 'fd00:1::5/64' }] };
const empty: AttachObserved = { containerHasIfname: false, gatewayDeviceAddresses: [], containerRoutes: [] };
const bridgeLink = (kind = 'bridge'): Link => ({ index: 7, name: 'plbr0', kind, mac: '02:00:00:00:00:01', mtu: 1500, up: true, operUp: true, flags: 0 });
const address = (cidr: string, scope = 0): Address => {
  const [ip, prefix] = cidr.split('/');
  return { cidr, ip, prefix: Number(prefix), family: ip.includes(':') ? 6 : 4, index: 7, scope, flags: 0 };
};
const route = (dst: string, metric: number): KernelRoute => ({ dst, family: 4, table: 254, metric, scope: 0, flags: 0, protocol: 3, type: 1 });

function error(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error('expected a CniError');
}

describe('bridge planAttach', () => {
  it('a gateway network with masquerade: every part of the attachment', () => {
    const plan = planAttach(conf({ isGateway: true, ipMasq: true, isDefaultGateway: true }), v4, empty, who);
    expect(plan).toEqual<AttachPlan>({
      plugin: 'bridge',
      bridge: { name: 'plbr0', mtu: undefined, promisc: false, vlanFiltering: false },
      veth: { ifname: 'eth0', mtu: undefined, mac: undefined },
      port: { hairpin: false, isolated: false, vlans: undefined },
      sysctls: {
        hostVeth: [{ family: 'ipv6', key: 'accept_ra', value: '0' }],
        container: [{ path: 'net/ipv6/conf/eth0/accept_dad', value: '0' }, { path: 'net/ipv4/conf/eth0/arp_notify', value: '1' }],
      },
      container: {
        addresses: [{ cidr: '10.1.0.5/24', nodad: false }], up: true, dadTimeoutMs: undefined, gwPriority: 0,
        routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', priority: 1000000, pinned: false }],
      },
      gateway: { vlanGateway: undefined, addresses: [{ family: 4, cidr: '10.1.0.1/24' }], remove: [] },
      forwarding: { v4: true, v6: false },
      firewall: {
        masq: { owner: { network: 'pl-net', containerId: 'c1', ifname: 'eth0' }, entries: [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }] },
        macspoof: false, isolation: undefined, policy: undefined,
      },
      names: undefined,
      record: {
        network: 'pl-net', containerId: 'c1', ifname: 'eth0', bridge: 'plbr0', vlanGateway: undefined,
        addresses: ['10.1.0.5/24'], masq: [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }],
      },
      portUpTimeoutMs: 2550,
    });
  });

  it.each<[string, Record<string, unknown>, Result | undefined, AttachObserved, (p: AttachPlan) => void]>([
    ['dual stack with DAD: IPv6 on, DAD sysctls, a DAD wait, v6 forwarding', { enabledad: true }, dual, empty, (p) => {
      expect(p.container.addresses).toEqual([{ cidr: '10.1.0.5/24', nodad: false }, { cidr: 'fd00:1::5/64', nodad: false }]);
      expect(p.container.dadTimeoutMs).toBe(5000);
      expect(p.sysctls.container.map((s) => `${s.path}=${s.value}`)).toEqual([
        'net/ipv6/conf/eth0/accept_dad=1', 'net/ipv6/conf/eth0/enhanced_dad=1', 'net/ipv4/conf/eth0/arp_notify=1',
        'net/ipv6/conf/lo/disable_ipv6=0', 'net/ipv6/conf/eth0/disable_ipv6=0', 'net/ipv6/conf/eth0/keep_addr_on_down=1',
      ]);
      expect(p.forwarding).toEqual({ v4: true, v6: true });
    }],
    ['IPv6 without DAD: the address skips it', {}, dual, empty, (p) => {
      expect(p.container.addresses[1]).toEqual({ cidr: 'fd00:1::5/64', nodad: true });
      expect(p.container.dadTimeoutMs).toBeUndefined();
    }],
    ['a second network of the container: its default route takes the next metric of the band', { isGateway: true, isDefaultGateway: true }, v4,
      { ...empty, containerRoutes: [route('0.0.0.0/0', 1000000)] }, (p) => {
        expect(p.container.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.1.0.1', priority: 1000001, pinned: false }]);
      }],
    ['gwPriority 10: a band of its own, before the default priority', { isGateway: true, isDefaultGateway: true, gwPriority: 10 }, v4,
      { ...empty, containerRoutes: [route('0.0.0.0/0', 1000000)] }, (p) => {
        expect(p.container.routes[0].priority).toBe(999000);
      }],
    ['a route with its own priority keeps it, pinned', {}, { ...v4, routes: [{ dst: '10.9.0.0/16', priority: 77 }] }, empty, (p) => {
      expect(p.container.routes).toEqual([{ dst: '10.9.0.0/16', priority: 77, pinned: true }]);
    }],
    ['the gateway address already on the bridge: nothing to add, nothing to remove', { isGateway: true }, v4,
      { ...empty, bridge: bridgeLink(), gatewayDeviceAddresses: [address('10.1.0.1/24')] }, (p) => {
        expect(p.gateway).toEqual({ vlanGateway: undefined, addresses: [], remove: [] });
      }],
    ['forceAddress: the bridge\'s other IPv4 address goes first', { isGateway: true, forceAddress: true }, v4,
      { ...empty, bridge: bridgeLink(), gatewayDeviceAddresses: [address('10.7.0.1/16')] }, (p) => {
        expect(p.gateway).toEqual({ vlanGateway: undefined, addresses: [{ family: 4, cidr: '10.1.0.1/24' }], remove: ['10.7.0.1/16'] });
      }],
    ['promiscuous bridge', { promiscMode: true }, v4, empty, (p) => {
      expect(p.bridge.promisc).toBe(true);
    }],
    ['hairpin, port isolation (ICC off), MTU, MAC', { hairpinMode: true, portIsolation: true, mtu: 1400, runtimeConfig: { mac: '02:11:22:33:44:55' } }, v4, empty, (p) => {
      expect(p.port).toEqual({ hairpin: true, isolated: true, vlans: undefined });
      expect(p.bridge).toEqual({ name: 'plbr0', mtu: 1400, promisc: false, vlanFiltering: false });
      expect(p.veth).toEqual({ ifname: 'eth0', mtu: 1400, mac: '02:11:22:33:44:55' });
      expect(p.firewall.policy).toEqual({ network: 'pl-net', members: ['plbr0'], internal: false, iccOff: true });
    }],
    ['L2 only: no IPAM, the interface stays down, no wait for the port', { ipam: undefined, disableContainerInterface: true }, undefined, empty, (p) => {
      expect(p.container).toEqual({ addresses: [], up: false, dadTimeoutMs: undefined, routes: [], gwPriority: 0 });
      expect(p.gateway).toBeUndefined();
      expect(p.portUpTimeoutMs).toBe(0);
    }],
    ['internal: no default route, no masquerade, the policy of the network', { isGateway: true, isDefaultGateway: true, ipMasq: true, internal: true }, v4, empty, (p) => {
      expect(p.container.routes).toEqual([]);
      expect(p.firewall.masq).toBeUndefined();
      expect(p.firewall.policy).toEqual({ network: 'pl-net', members: ['plbr0'], internal: true, iccOff: false });
    }],
    ['MAC spoof check and isolation', { macspoofchk: true, isolation: true }, v4, empty, (p) => {
      expect(p.firewall.macspoof).toBe(true);
      expect(p.firewall.isolation).toEqual({ network: 'pl-net', lockDir: expect.any(String), bridge: 'plbr0' });
    }],
  ])('%s', (_name, extra, ipam, observed, expectIt) => {
    expectIt(planAttach(conf(extra), ipam, observed, who));
  });

  it('VLAN access port with a gateway: vlan_filtering, the port\'s VIDs, and the gateway on <bridge>.<vlan>', () => {
    const p = planAttach(conf({ bridge: 'plbr', vlan: 10, vlanTrunk: [{ id: 20 }], isGateway: true }), v4, empty, who);
    expect(p.bridge.vlanFiltering).toBe(true);
    expect(p.port.vlans).toEqual({ dropExisting: true, add: [{ vid: 10, pvid: true, untagged: true }, { vid: 20, pvid: false, untagged: false }] });
    expect(p.gateway?.vlanGateway).toEqual({ name: 'plbr.10', vlan: 10, portVlans: { dropExisting: true, add: [{ vid: 10, pvid: true, untagged: true }] }, lockDir: expect.any(String) });
    expect(p.record.vlanGateway).toEqual({ name: 'plbr.10', vlan: 10 });
    expect(p.firewall.policy).toBeUndefined();
    // Applied to a port that came with the default PVID 1: drop it, then add ours (what planVlans gives).
    expect(portVlanOps(p.port.vlans!, [1])).toEqual([
      { op: 'del', vid: 1, pvid: false, untagged: false }, { op: 'add', vid: 10, pvid: true, untagged: true }, { op: 'add', vid: 20, pvid: false, untagged: false },
    ]);
  });

  it('preserveDefaultVlan keeps the VIDs the port came with', () => {
    const p = planAttach(conf({ vlan: 10, preserveDefaultVlan: true }), v4, empty, who);
    expect(p.port.vlans).toEqual({ dropExisting: false, add: [{ vid: 10, pvid: true, untagged: true }] });
    expect(portVlanOps(p.port.vlans!, [1])).toEqual([{ op: 'add', vid: 10, pvid: true, untagged: true }]);
  });

  it.each<[string, AttachObserved, number, RegExp]>([
    ['the container has the interface already: code 4', { ...empty, containerHasIfname: true }, 4, /container already has an interface named "eth0"/],
    ['the bridge name is taken by another device: code 7', { ...empty, bridge: bridgeLink('vxlan') }, 7, /"plbr0" already exists and is a vxlan, not a bridge/],
    ['another address on the bridge without forceAddress: refused', { ...empty, bridge: bridgeLink(), gatewayDeviceAddresses: [address('10.7.0.1/16')] }, 999,
      /"plbr0" already has an IP address different from 10.1.0.1\/24 \(10.7.0.1\/16\); set "forceAddress"/],
  ])('refuses: %s', (_name, observed, code, msg) => {
    const e = error(() => planAttach(conf({ isGateway: true }), v4, observed, who));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(msg);
  });

  it('IPAM configured but no address: refused before anything is planned', () => {
    expect(error(() => planAttach(conf(), { cniVersion: '1.1.0', ips: [] }, empty, who)).message).toMatch(/returned no IP addresses/);
  });

  it('is pure: the same input gives the same plan, and the inputs are left as they were', () => {
    const observed: AttachObserved = { ...empty, containerRoutes: [route('0.0.0.0/0', 1000000)] };
    const before = JSON.stringify([v4, observed]);
    const a = planAttach(conf({ isGateway: true, isDefaultGateway: true }), v4, observed, who);
    const b = planAttach(conf({ isGateway: true, isDefaultGateway: true }), v4, observed, who);
    expect(a).toEqual(b);
    expect(JSON.stringify([v4, observed])).toBe(before);
  });
});

describe('vxlan-overlay planAttach', () => {
  const agent: AgentState = {
    network: 'pl-ov', hostID: 'h1', pid: 1, subnet: '10.244.3.0/24', cidr: '10.244.0.0/16', gateway: '10.244.3.1',
    bridge: 'plov0', vxlan: 'plvx0', mtu: 1450, leaseOk: true, heartbeat: 0, heartbeatMs: 1000,
  };
  const overlayConf = (extra: Record<string, unknown> = {}): ReturnType<typeof parseOverlayConfig> =>
    parseOverlayConfig({ cniVersion: '1.1.0', name: 'pl-ov', type: 'vxlan-overlay', ...extra } as NetConf);
  const ipam: Result = { cniVersion: '1.1.0', ips: [{ address: '10.244.3.5/24', gateway: '10.244.3.1' }] };

  it('the same plan shape on the agent\'s bridge: MTU, cluster and default routes, masquerade leaving the cluster, record with the subnet', () => {
    const p = planOverlayAttach(overlayConf({ ipMasq: true }), agent, ipam, empty, who);
    expect(p.plugin).toBe('vxlan-overlay');
    expect(p.bridge).toEqual({ name: 'plov0', mtu: 1450, promisc: false, vlanFiltering: false });
    expect(p.veth.mtu).toBe(1450);
    expect(p.container.routes.map((r) => [r.dst, r.gw, r.priority])).toEqual([['10.244.0.0/16', '10.244.3.1', 1000000], ['0.0.0.0/0', '10.244.3.1', 1000000]]);
    expect(p.gateway).toEqual({ vlanGateway: undefined, addresses: [{ family: 4, cidr: '10.244.3.1/24' }], remove: [] });
    expect(p.firewall.masq?.entries).toEqual([{ address: '10.244.3.5', subnet: '10.244.0.0/16' }]);
    expect(p.record).toEqual({
      network: 'pl-ov', containerId: 'c1', ifname: 'eth0', subnet: '10.244.3.0/24', bridge: 'plov0',
      addresses: ['10.244.3.5/24'], masq: [{ address: '10.244.3.5', subnet: '10.244.0.0/16' }],
    });
  });

  it('internal and ICC off: no default route, no masquerade; the policy covers the bridge and the VXLAN device', () => {
    const p = planOverlayAttach(overlayConf({ ipMasq: true, internal: true, portIsolation: true }), agent, ipam, empty, who);
    expect(p.container.routes.map((r) => r.dst)).toEqual(['10.244.0.0/16']);
    expect(p.firewall.masq).toBeUndefined();
    expect(p.port.isolated).toBe(true);
    expect(p.firewall.policy).toEqual({ network: 'pl-ov', members: ['plov0', 'plvx0'], internal: true, iccOff: true });
  });

  it('host-local gave no address for the subnet: refused', () => {
    expect(() => planOverlayAttach(overlayConf(), agent, { cniVersion: '1.1.0', ips: [] }, empty, who)).toThrow(/host-local gave no address for 10.244.3.0\/24/);
  });
});
