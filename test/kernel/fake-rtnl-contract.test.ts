// The fake kernel (test/helpers/fake-rtnl.ts) holds to the real one: the same
// sequence of facade calls, through the Kernel a plugin gets, answered by the
// real kernel in throwaway namespaces and by the fake, must leave the same
// links, ports, addresses and routes and fail with the same errnos. The
// rollback tables (test/unit/rollback-*.test.ts) trust the fake that far.
import { HOST_KERNEL, type Kernel } from '../../lib/kernel';
import { NetlinkError, type Rtnl } from '../../lib/netlink';
import type { Netns } from '../../lib/netns';
import { FakeKernel } from '../helpers/fake-rtnl';
import { Sandbox } from '../helpers/sandbox';

const sb = new Sandbox('smk');
let hostPath: string;
let ctrPath: string;

beforeAll(() => {
  hostPath = sb.nsPath(sb.netns('h'));
  ctrPath = sb.nsPath(sb.netns('c'));
});
afterAll(() => sb.cleanup());

async function errnoOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof NetlinkError ? err.code : `not a NetlinkError: ${(err as Error).message}`;
  }
}

/** What both kernels must agree on, per namespace: links by name (no lo, no MACs, no indexes), IPv4 addresses, routes we added. */
async function observe(r: Rtnl): Promise<unknown> {
  const links = (await r.listLinks()).filter((l) => l.name !== 'lo');
  const nameOf = (i?: number) => links.find((l) => l.index === i)?.name;
  return {
    links: links.map((l) => ({ name: l.name, kind: l.kind, up: l.up, master: nameOf(l.master), mtu: l.mtu })).sort((a, b) => a.name.localeCompare(b.name)),
    addresses: (await r.listAddresses(undefined, 4)).filter((a) => nameOf(a.index)).map((a) => `${nameOf(a.index)} ${a.cidr}`).sort(),
    // proto kernel (2) routes are the kernel's own (an address's subnet): the fake does not make them.
    routes: (await r.listRoutes({ family: 4 })).filter((x) => x.protocol !== 2).map((x) => `${x.dst} via ${x.gw} dev ${nameOf(x.oif)} metric ${x.metric ?? 0}`).sort(),
  };
}

async function scenario(kernel: Kernel): Promise<unknown[]> {
  const hostNs: Netns = kernel.openNetns(hostPath);
  const ctrNs: Netns = kernel.openNetns(ctrPath);
  const host = kernel.openRtnl(hostNs);
  const ctr = kernel.openRtnl(ctrNs);
  const seen: unknown[] = [];
  try {
    const br = await host.ensureBridge({ name: 'smbr0' });
    await host.setLinkUp(br.index);
    seen.push('bridge again', (await host.ensureBridge({ name: 'smbr0' })).name);
    const veth = await ctr.createVeth({ name: 'eth0', peerName: 'smveth0', peerNetns: hostNs, mtu: 1400 });
    seen.push('veth', veth.name, veth.kind, veth.mtu);
    seen.push('veth twice', await errnoOf(ctr.createVeth({ name: 'eth0', peerName: 'smveth1', peerNetns: hostNs })));
    seen.push('peer name taken', await errnoOf(ctr.createVeth({ name: 'eth1', peerName: 'smveth0', peerNetns: hostNs })));
    await host.setMaster('smveth0', 'smbr0');
    await host.setLinkUp('smveth0');
    seen.push('ports', (await host.listBridgePorts('smbr0')).map((p) => p.name));
    await ctr.addAddress('eth0', '10.66.0.2/24');
    seen.push('address twice', await errnoOf(ctr.addAddress('eth0', '10.66.0.2/24')));
    await ctr.setLinkUp('eth0');
    await ctr.addRoute({ dst: '0.0.0.0/0', gw: '10.66.0.1', dev: 'eth0', metric: 100 });
    seen.push('route twice', await errnoOf(ctr.addRoute({ dst: '0.0.0.0/0', gw: '10.66.0.1', dev: 'eth0', metric: 100 })));
    await ctr.addRoute({ dst: '0.0.0.0/0', gw: '10.66.0.1', dev: 'eth0', metric: 200 });
    await host.addAddress('smbr0', '10.66.0.1/24');
    seen.push('host', await observe(host), 'container', await observe(ctr));
    const lookup = async (r: Rtnl, ip: string) => {
      const route = await r.routeTo(ip);
      return route && { dev: (await r.getLink(route.oif!))?.name, gw: route.gw, dst: route.dst };
    };
    seen.push('route get', await lookup(host, '10.66.0.2'), await lookup(ctr, '10.99.0.1'), await lookup(ctr, '10.66.0.7'), await lookup(host, '10.99.0.1'));
    seen.push('missing link', await host.getLink('smnope0'), await errnoOf(host.deleteLink('smnope0')), await errnoOf(host.setLinkUp('smnope0')));
    seen.push('missing address', await errnoOf(ctr.deleteAddress('eth0', '10.66.0.9/24')));
    await ctr.deleteRoute({ dst: '0.0.0.0/0', gw: '10.66.0.1', dev: 'eth0', metric: 200 });
    seen.push('missing route', await errnoOf(ctr.deleteRoute({ dst: '0.0.0.0/0', gw: '10.66.0.1', dev: 'eth0', metric: 200 })));
    await ctr.deleteAddress('eth0', '10.66.0.2/24');
    seen.push('address gone', await observe(ctr));
    // Deleting one end takes the other, and the bridge loses its port.
    await ctr.deleteLink('eth0');
    seen.push('after delete', await observe(host), await observe(ctr));
    await host.deleteLink('smbr0');
    seen.push('clean', await observe(host));
  } finally {
    host.close();
    ctr.close();
    hostNs.close();
    ctrNs.close();
  }
  return seen;
}

it('the fake kernel answers the facade like the real one', async () => {
  const real = await scenario(HOST_KERNEL);
  const fake = await scenario(new FakeKernel().addNamespace(hostPath).addNamespace(ctrPath));
  expect(fake).toEqual(real);
  const at = real.indexOf('route get');
  expect(real.slice(at + 1, at + 5)).toEqual([
    { dev: 'smbr0', gw: undefined, dst: '10.66.0.2/32' }, { dev: 'eth0', gw: '10.66.0.1', dst: '10.99.0.1/32' }, { dev: 'eth0', gw: undefined, dst: '10.66.0.7/32' }, undefined,
  ]);
});
