// The bridge plugin's VLANs on a kernel with bridge VLAN filtering: `vlan`
// (an access port, untagged, with the gateway on the VLAN gateway interface
// `<bridge>.<vlan>` as the reference puts it), `vlanTrunk` ranges, and
// `preserveDefaultVlan`. Containers in one subnet but different VLANs must
// not talk. Real traffic: ping, and tcpdump -e in the containers.
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { addrOf, L2Env } from './env';

const BR = 'l2br';

let env: L2Env;
beforeAll(() => ensureBuilt('bridge'), 180_000);
beforeEach(() => { env = new L2Env(); });
afterEach(() => env.sb.cleanup());

/** A network on the test bridge; `range` keeps networks that share a subnet apart. */
function conf(name: string, subnet: string, extra: Record<string, unknown> = {}, range?: [string, string]): Record<string, unknown> {
  const r = range ? { rangeStart: range[0], rangeEnd: range[1] } : {};
  return {
    cniVersion: '1.1.0', name, type: 'bridge', bridge: BR, stateDir: env.state,
    ipam: { type: 'host-local', dataDir: env.ipamDir, ranges: [[{ subnet, ...r }]] },
    ...extra,
  };
}

const hostVeth = (r: any): string => r.interfaces[1].name;
const del = (c: Record<string, unknown>, id: string, ns: string) => env.ok('bridge', 'DEL', c, { id, netns: env.sb.nsPath(ns) });
/** The VLAN gateways' lock directory goes with the last of them. */
const gatewayLocks = (): boolean => fs.existsSync(path.join(env.state, 'vlan-gateway'));
const ipv4On = (dev: string): string[] => env.ip(env.host, '-4', '-o', 'addr', 'show', 'dev', dev).split('\n').filter(Boolean).map((l) => l.split(/\s+/)[3]);

it('vlan: access ports untagged in their VLAN, the gateway on <bridge>.<vlan>, shared and removed with the VLAN\'s last container', async () => {
  const v10 = conf('l2v10', '10.73.0.0/24', { vlan: 10, isGateway: true }, ['10.73.0.10', '10.73.0.49']);
  const v20 = conf('l2v20', '10.73.0.0/24', { vlan: 20 }, ['10.73.0.50', '10.73.0.89']); // same subnet, other VLAN
  const [a, b, c] = [env.container('a'), env.container('b'), env.container('c')];
  const ra = env.add('bridge', v10, 'ca', a);
  const rb = env.add('bridge', v10, 'cb', b);
  const rc = env.add('bridge', v20, 'cc', c);

  expect(env.ip(env.host, '-d', 'link', 'show', BR)).toContain('vlan_filtering 1');
  expect(ra.interfaces).toHaveLength(4);
  expect(ra.interfaces[3]).toEqual({ name: `${BR}.10`, mac: expect.stringMatching(/^[0-9a-f:]{17}$/) });
  expect(rb.interfaces[3]).toEqual(ra.interfaces[3]); // one gateway interface for the VLAN
  expect(rc.interfaces).toHaveLength(3);
  expect(env.portVlans(hostVeth(ra))).toEqual(['10 PVID Egress Untagged']); // the default VLAN 1 is gone
  expect(env.portVlans(hostVeth(rc))).toEqual(['20 PVID Egress Untagged']);
  // The gateway is on the VLAN gateway veth, not on the bridge; its peer is an access port of VLAN 10.
  expect(ipv4On(`${BR}.10`)).toEqual(['10.73.0.1/24']);
  expect(ipv4On(BR)).toEqual([]);
  const gw = env.ip(env.host, '-d', 'link', 'show', `${BR}.10`);
  expect(gw).toMatch(/state UP/);
  expect(gw).toMatch(/alias node-cni-plugins bridge VLAN gateway/);
  const gwPort = env.ip(env.host, '-o', 'link', 'show', 'master', BR).split('\n').map((l) => l.split(': ')[1]?.split('@')[0])
    .filter((n) => n && ![hostVeth(ra), hostVeth(rb), hostVeth(rc)].includes(n));
  expect(gwPort).toHaveLength(1);
  expect(env.portVlans(gwPort[0])).toEqual(['10 PVID Egress Untagged']);

  expect(env.ping(a, addrOf(rb))).toBe(true);
  const frames = await env.capture(a, 'eth0', 'icmp', () => expect(env.ping(a, '10.73.0.1')).toBe(true));
  expect(frames.length).toBeGreaterThanOrEqual(2);
  expect(frames.every((l) => /ethertype IPv4/.test(l) && !/802\.1Q/.test(l))).toBe(true); // untagged on the container's side
  expect(env.ping(c, addrOf(ra))).toBe(false);
  expect(env.ping(c, '10.73.0.1')).toBe(false);

  env.ok('bridge', 'CHECK', { ...v10, prevResult: ra }, { id: 'ca', netns: env.sb.nsPath(a) });
  del(v10, 'ca', a);
  expect(env.links(env.host)).toContain(`${BR}.10`);
  expect(env.ping(b, '10.73.0.1')).toBe(true);
  del(v10, 'cb', b);
  del(v10, 'cb', b);
  del(v20, 'cc', c);
  expect(env.links(env.host)).toEqual(['eth0', 'l2br', 'lo']); // the bridge stays, as in the reference
  expect([a, b, c].map((ns) => env.links(ns))).toEqual([['lo'], ['lo'], ['lo']]);
  expect(gatewayLocks()).toBe(false);
});

it('vlanTrunk ranges: the port carries VLANs 100-102 and 200 tagged and VLAN 1 untagged, nothing else', () => {
  const trunk = conf('l2trunk', '10.74.1.0/24', { vlanTrunk: [{ minID: 100, maxID: 102 }, { id: 200 }] }, ['10.74.1.10', '10.74.1.49']);
  const native = conf('l2native', '10.74.1.0/24', {}, ['10.74.1.50', '10.74.1.89']);
  const a101 = conf('l2a101', '10.74.101.0/24', { vlan: 101 });
  const a103 = conf('l2a103', '10.74.103.0/24', { vlan: 103 });
  const [t, n, x, y] = [env.container('t'), env.container('n'), env.container('x'), env.container('y')];
  const rt = env.add('bridge', trunk, 'ct', t);
  const rn = env.add('bridge', native, 'cn', n);
  const rx = env.add('bridge', a101, 'cx', x);
  const ry = env.add('bridge', a103, 'cy', y);
  expect(env.portVlans(hostVeth(rt))).toEqual(['1 PVID Egress Untagged', '100', '101', '102', '200']);
  expect(env.portVlans(hostVeth(rn))).toEqual(['1 PVID Egress Untagged']);

  // The container side of the trunk: 802.1q sub-interfaces on its eth0.
  for (const vid of [101, 103]) {
    env.ip(t, 'link', 'add', 'link', 'eth0', 'name', `eth0.${vid}`, 'type', 'vlan', 'id', String(vid));
    env.ip(t, 'addr', 'add', `10.74.${vid}.200/24`, 'dev', `eth0.${vid}`);
    env.ip(t, 'link', 'set', `eth0.${vid}`, 'up');
  }
  expect(env.ping(t, addrOf(rx))).toBe(true); // tagged 101 on the trunk, untagged on x's access port
  expect(env.ping(t, addrOf(ry))).toBe(false); // 103 is not in the trunk
  expect(env.ping(t, addrOf(rn))).toBe(true); // native VLAN 1, untagged
  expect(env.ping(x, addrOf(rn))).toBe(false);

  del(trunk, 'ct', t);
  del(native, 'cn', n);
  del(a101, 'cx', x);
  del(a103, 'cy', y);
  expect(env.links(env.host)).toEqual(['eth0', 'l2br', 'lo']);
});

it('preserveDefaultVlan: false takes the port out of VLAN 1, true keeps it there; neither talks to VLAN 1', async () => {
  const subnet = '10.75.0.0/24';
  const dropped = conf('l2drop', subnet, { vlan: 10 }, ['10.75.0.10', '10.75.0.19']);
  const kept = conf('l2keep', subnet, { vlan: 11, preserveDefaultVlan: true }, ['10.75.0.20', '10.75.0.29']);
  const native = conf('l2nat', subnet, {}, ['10.75.0.30', '10.75.0.39']);
  const [p, k, n] = [env.container('p'), env.container('k'), env.container('n')];
  const rp = env.add('bridge', dropped, 'cp', p);
  const rk = env.add('bridge', kept, 'ck', k);
  const rn = env.add('bridge', native, 'cn', n);
  expect(env.portVlans(hostVeth(rp))).toEqual(['10 PVID Egress Untagged']);
  expect(env.portVlans(hostVeth(rk))).toEqual(['1 Egress Untagged', '11 PVID Egress Untagged']);

  // n's ARP requests (VLAN 1) reach the port that kept VLAN 1, never the other; no reply gets back to n.
  const heardByKept = await env.capture(k, 'eth0', 'arp', () => expect(env.ping(n, addrOf(rk))).toBe(false));
  expect(heardByKept.some((l) => l.includes(`who-has ${addrOf(rk)} tell ${addrOf(rn)}`))).toBe(true);
  const heardByDropped = await env.capture(p, 'eth0', 'arp', () => expect(env.ping(n, addrOf(rp))).toBe(false));
  expect(heardByDropped.filter((l) => l.includes(`tell ${addrOf(rn)}`))).toEqual([]);

  del(dropped, 'cp', p);
  del(kept, 'ck', k);
  del(native, 'cn', n);
  expect(env.links(env.host)).toEqual(['eth0', 'l2br', 'lo']);
});

it('the VLAN gateway: a failed ADD removes the one it made, GC removes one without ports, CHECK sees it missing and ADD repairs it, one the user made stays', () => {
  // The user's own <bridge>.<vlan>: an 802.1q device on the bridge's self port, used as it is.
  env.ip(env.host, 'link', 'add', BR, 'type', 'bridge', 'vlan_filtering', '1');
  env.ip(env.host, 'link', 'set', BR, 'up');
  env.ip(env.host, 'link', 'add', 'link', BR, 'name', `${BR}.30`, 'type', 'vlan', 'id', '30');
  env.bridgeCmd(env.host, 'vlan', 'add', 'dev', BR, 'vid', '30', 'self');
  env.ip(env.host, 'link', 'set', `${BR}.30`, 'up');
  const v30 = conf('l2v30', '10.76.30.0/24', { vlan: 30, isGateway: true });
  const u = env.container('u');
  expect(env.add('bridge', v30, 'cu', u).interfaces[3].name).toBe(`${BR}.30`);
  expect(env.ping(u, '10.76.30.1')).toBe(true);
  del(v30, 'cu', u);
  expect(env.links(env.host)).toContain(`${BR}.30`);
  expect(ipv4On(`${BR}.30`)).toEqual(['10.76.30.1/24']); // the gateway address stays, as on a bridge

  // ADD fails after making l2br.40 (IPv6 is off for new host interfaces): the rollback removes it.
  const v40 = conf('l2v40', 'fd00:76:40::/64', { vlan: 40, isGateway: true });
  const f = env.container('f');
  env.sb.inNs(env.host, 'sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);
  const failed = env.run('bridge', 'ADD', v40, { id: 'cf', netns: env.sb.nsPath(f) });
  env.sb.inNs(env.host, 'sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=0']);
  expect(failed.status).not.toBe(0);
  expect(failed.json.msg).toMatch(/failed to add gateway address fd00:76:40::1\/64 to "l2br\.40"/);
  expect(env.links(env.host)).toEqual(['eth0', 'l2br', 'l2br.30', 'lo']);
  expect(env.links(f)).toEqual(['lo']);

  // A container gone without DEL: its port went with its namespace; GC removes the gateway.
  const v50 = conf('l2v50', '10.76.50.0/24', { vlan: 50, isGateway: true });
  const g = env.container('g');
  env.add('bridge', v50, 'cg', g);
  env.ip(g, 'link', 'del', 'eth0');
  expect(env.links(env.host)).toContain(`${BR}.50`);
  env.ok('bridge', 'GC', { ...v50, 'cni.dev/valid-attachments': [] });
  expect(env.links(env.host)).not.toContain(`${BR}.50`);

  // CHECK notices a deleted gateway; the next ADD of that VLAN makes it again.
  const v60 = conf('l2v60', '10.76.60.0/24', { vlan: 60, isGateway: true });
  const [h, i] = [env.container('c60'), env.container('d60')];
  const rh = env.add('bridge', v60, 'ch', h);
  env.ok('bridge', 'CHECK', { ...v60, prevResult: rh }, { id: 'ch', netns: env.sb.nsPath(h) });
  env.ip(env.host, 'link', 'del', `${BR}.60`);
  const check = env.run('bridge', 'CHECK', { ...v60, prevResult: rh }, { id: 'ch', netns: env.sb.nsPath(h) });
  expect(check.json.msg).toBe('bridge CHECK: VLAN gateway interface "l2br.60" is missing or down');
  env.add('bridge', v60, 'ci', i);
  expect(env.ping(h, '10.76.60.1')).toBe(true);
  del(v60, 'ch', h);
  del(v60, 'ci', i);
  expect(env.links(env.host)).toEqual(['eth0', 'l2br', 'l2br.30', 'lo']);
  expect(gatewayLocks()).toBe(false);
});
