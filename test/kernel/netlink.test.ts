// The kernel facade against the real kernel, in throwaway namespaces.
import { Netns } from '../../lib/netns';
import { openRtnl, Rtnl, isExists, isNotFound, NetlinkError } from '../../lib/netlink';
import { Sandbox } from '../helpers/sandbox';

const sb = new Sandbox('nlk');
let hostName: string, ctrName: string;
let hostNs: Netns, ctrNs: Netns;
let host: Rtnl, ctr: Rtnl;

beforeAll(() => {
  hostName = sb.netns('h');
  ctrName = sb.netns('c');
  hostNs = Netns.open(sb.nsPath(hostName));
  ctrNs = Netns.open(sb.nsPath(ctrName));
  host = openRtnl(hostNs);
  ctr = openRtnl(ctrNs);
});

afterAll(() => {
  host?.close();
  ctr?.close();
  hostNs?.close();
  ctrNs?.close();
  sb.cleanup();
});

function ip(ns: string, ...args: string[]): string {
  const r = sb.inNs(ns, 'ip', args);
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('links', () => {
  it('reads lo', async () => {
    const lo = await ctr.getLink('lo');
    expect(lo).toMatchObject({ name: 'lo', index: 1, mac: '00:00:00:00:00:00', up: true });
    expect(await ctr.getLink('nope0')).toBeUndefined();
  });

  it('creates a veth from the container side with the peer in the host namespace', async () => {
    const eth = await ctr.createVeth({ name: 'eth0', peerName: 'vethA1', peerNetns: hostNs, mtu: 1400, mac: '02:00:00:00:00:a1' });
    expect(eth).toMatchObject({ name: 'eth0', kind: 'veth', mtu: 1400, mac: '02:00:00:00:00:a1', up: false });
    const peer = await host.getLink('vethA1');
    expect(peer).toMatchObject({ kind: 'veth', mtu: 1400 });
    expect(eth.peerIndex).toBe(peer!.index);
    expect(ip(ctrName, '-o', 'link', 'show', 'eth0')).toContain('mtu 1400');
    expect(await host.getLink('eth0')).toBeUndefined();
  });

  it('brings links up, waits for carrier, attaches to a bridge', async () => {
    const br = await host.createBridge({ name: 'br0', mtu: 1400 });
    expect(br.kind).toBe('bridge');
    await host.setMaster('vethA1', 'br0');
    await host.setLinkUp('vethA1');
    await host.setLinkUp('br0');
    await ctr.setLinkUp('eth0');
    const up = await ctr.waitOperUp('eth0', 5000);
    expect(up.operUp).toBe(true);
    expect((await host.getLink('vethA1'))!.master).toBe(br.index);
    expect(ip(hostName, '-o', 'link', 'show', 'vethA1')).toContain('master br0');
    await host.setMaster('vethA1', null);
    expect((await host.getLink('vethA1'))!.master).toBeUndefined();
    await host.setMaster('vethA1', br);
  });

  it('maps errno: create twice -> isExists, delete missing -> isNotFound', async () => {
    const err = await host.createBridge({ name: 'br0' }).catch((e) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(isExists(err)).toBe(true);
    expect(err.message).toContain('"br0"');
    const again = await host.ensureBridge({ name: 'br0' });
    expect(again.kind).toBe('bridge');
    const gone = await host.deleteLink('missing0').catch((e) => e);
    expect(isNotFound(gone)).toBe(true);
    const gone2 = await host.deleteLink(987654).catch((e) => e);
    expect(isNotFound(gone2)).toBe(true);
    expect(gone2.code).toBe('ENODEV');
  });

  it('adds addresses v4 and v6 and routes', async () => {
    await ctr.addAddress('eth0', '10.99.0.5/24');
    await ctr.addAddress('eth0', 'fd99::5/64', { nodad: true });
    const addrs = await ctr.listAddresses('eth0');
    expect(addrs.map((a) => a.cidr)).toEqual(expect.arrayContaining(['10.99.0.5/24', 'fd99::5/64']));
    expect(ip(ctrName, '-o', 'addr', 'show', 'eth0')).toMatch(/inet 10\.99\.0\.5\/24 brd 10\.99\.0\.255/);
    expect(isExists(await ctr.addAddress('eth0', '10.99.0.5/24').catch((e) => e))).toBe(true);
    await ctr.addRoute({ dst: 'default', gw: '10.99.0.1', dev: 'eth0' });
    await ctr.addRoute({ dst: '10.50.0.0/16', gw: '10.99.0.1', dev: 'eth0', table: 100, metric: 50, mtu: 1300 });
    await ctr.addRoute({ dst: 'fd50::/64', gw: 'fd99::1', dev: 'eth0', metric: 10 });
    const main = await ctr.listRoutes({ family: 4 });
    expect(main).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '0.0.0.0/0', gw: '10.99.0.1' })]));
    const t100 = await ctr.listRoutes({ table: 100 });
    expect(t100).toEqual([expect.objectContaining({ dst: '10.50.0.0/16', gw: '10.99.0.1', metric: 50, mtu: 1300, table: 100 })]);
    expect(ip(ctrName, 'route', 'show', 'table', '100')).toContain('10.50.0.0/16 via 10.99.0.1 dev eth0 metric 50 mtu 1300');
    expect(ip(ctrName, '-6', 'route', 'show')).toContain('fd50::/64 via fd99::1 dev eth0');
    await ctr.deleteRoute({ dst: '10.50.0.0/16', table: 100 });
    expect(await ctr.listRoutes({ table: 100 })).toEqual([]);
    expect(isNotFound(await ctr.deleteRoute({ dst: '10.50.0.0/16', table: 100 }).catch((e) => e))).toBe(true);
    await ctr.deleteAddress('eth0', '10.99.0.5/24');
    expect((await ctr.listAddresses('eth0', 4)).length).toBe(0);
  });
});
