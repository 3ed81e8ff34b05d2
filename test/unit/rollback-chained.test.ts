// Rollback tables (test/helpers/rollback-table.ts) of the chained plugins'
// ADD: fail each kernel and nft step in turn; the injected error is reported
// and the kernel, the nft elements and the plugin's records are as before.
// The e2e tests of each plugin prove the real kernel does what the fakes claim.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Invocation, NetConf } from '../../lib/cni/types';
import { useNftBackend } from '../../lib/firewall/nft';
import { makeFirewallPlugin } from '../../plugins/firewall/plugin';
import { makePortmapPlugin } from '../../plugins/portmap/plugin';
import { FakeIptables } from '../helpers/fake-iptables';
import { useIptablesRunner } from '../../lib/firewall/iptables';
import { FakeKernel, HOST } from '../helpers/fake-rtnl';
import { FakeNft } from '../helpers/fake-nft';
import { brokenRows, filesUnder, rollbackTable, teardownTable, type TeardownWorld } from '../helpers/rollback-table';

const NETNS = '/run/netns/sm-rollback-chained';
let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-rollback-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** What the bridge ADD of container `n` returned (each container its own addresses). */
function prevResultOf(n: number) {
  return {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'smbr0', mac: '02:42:0a:4e:00:01' }, { name: 'vethsm0001', mac: '02:42:0a:4e:00:02' }, { name: 'eth0', mac: '02:42:0a:4e:00:03', sandbox: NETNS }],
    ips: [{ address: `10.78.0.${n + 2}/24`, gateway: '10.78.0.1', interface: 2 }, { address: `fd00:78::${n + 2}/64`, gateway: 'fd00:78::1', interface: 2 }],
  };
}

function invocation(conf: Record<string, unknown>, containerId = 'smctr1', command: 'ADD' | 'DEL' = 'ADD'): Invocation {
  const n = containerId.startsWith('smother') ? Number(containerId.slice('smother'.length)) + 1 : 0;
  const full = { cniVersion: '1.0.0', name: 'smnet', prevResult: prevResultOf(n), ...conf } as NetConf;
  return { env: { command, containerId, netns: NETNS, ifname: 'eth0', path: [] }, conf: full, raw: Buffer.from(JSON.stringify(full)) };
}

describe('portmap ADD rollback', () => {
  const conf = (hostPort: number, snat: boolean) => ({
    type: 'portmap', snat, dataDir: path.join(tmp, 'state', 'portmap'), capabilities: { portMappings: true },
    runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }, { hostPort: hostPort + 1, containerPort: 443, protocol: 'tcp', hostIP: '10.78.0.1' }] },
  });
  const world = (others: number, snat: boolean) => async (): Promise<TeardownWorld> => {
    fs.rmSync(path.join(tmp, 'state'), { recursive: true, force: true });
    // CNI_NETNS is not a fake namespace: the route metrics read finds none (best effort).
    const kernel = new FakeKernel();
    // The host side as bridge left it: SNAT's route_localnet goes on the interface that routes to the container.
    const host = kernel.openRtnl();
    await host.createBridge({ name: 'smbr0' });
    await host.setLinkUp('smbr0');
    await host.addAddress('smbr0', '10.78.0.1/24');
    const nft = new FakeNft(kernel);
    const portmapPlugin = makePortmapPlugin(kernel);
    const restore = useNftBackend(nft);
    try {
      for (let i = 0; i < others; i++) await portmapPlugin.add(invocation(conf(18000 + 10 * i, snat), `smother${i}`));
    } finally {
      restore();
    }
    kernel.steps.length = 0;
    return { kernel, nft, add: () => portmapPlugin.add(invocation(conf(18080, snat))), del: () => portmapPlugin.del(invocation(conf(18080, snat), 'smctr1', 'DEL')) };
  };

  it.each([
    ['the first published container of a network', 0, false],
    ['a container joining another', 1, false],
    ['the first, with SNAT (route_localnet on the host interface to the container)', 0, true],
    ['a container joining another, with SNAT', 1, true],
  ])('%s: fails at every step with everything as before', async (_case, others, snat) => {
    // Reading the container's default-route metrics is best effort: a namespace it cannot read counts as no default route.
    const tolerated = [/^openNetns /];
    const { steps, rows } = await rollbackTable({ setup: world(others, snat), state: () => filesUnder(path.join(tmp, 'state')), tolerated });
    expect(steps.filter((s) => s.op.startsWith('nft')).length).toBeGreaterThan(1);
    if (snat) expect(steps.map((s) => s.op)).toEqual(expect.arrayContaining(['routeTo 10.78.0.2', 'sysctl.read net/ipv4/conf/smbr0/route_localnet']));
    expect(brokenRows(rows)).toEqual([]);
    const del = await teardownTable({ setup: world(others, snat), state: () => filesUnder(path.join(tmp, 'state')) });
    expect(brokenRows(del.rows)).toEqual([]);
  });
});

describe('firewall ADD rollback', () => {
  const conf = (policy: string) => ({ type: 'firewall', stateDir: path.join(tmp, 'state', 'firewall'), ingressPolicy: policy });
  /** The world a bridge ADD left: smbr0 on the host, each container's eth0 with its peer on it. */
  const world = (policy: string, others: number) => async (): Promise<TeardownWorld> => {
    fs.rmSync(path.join(tmp, 'state'), { recursive: true, force: true });
    const kernel = new FakeKernel();
    const host = kernel.openRtnl();
    await host.createBridge({ name: 'smbr0' });
    await host.setLinkUp('smbr0');
    const plugin = makeFirewallPlugin(kernel);
    const attach = async (containerId: string, netns: string, peer: string) => {
      kernel.addNamespace(netns);
      await kernel.openRtnl(kernel.openNetns(netns)).createVeth({ name: 'eth0', peerName: peer, peerNetns: HOST });
      await host.setMaster(peer, 'smbr0');
      await host.setLinkUp(peer);
      const inv = invocation(conf(policy), containerId);
      return { ...inv, env: { ...inv.env, netns } };
    };
    const nft = new FakeNft(kernel);
    const iptables = new FakeIptables(kernel);
    const restore = [useNftBackend(nft), useIptablesRunner(iptables)];
    try {
      for (let i = 0; i < others; i++) await plugin.add(await attach(`smother${i}`, `${NETNS}-${i}`, `vethsmo${i}`));
    } finally {
      for (const r of restore) r();
    }
    const inv = await attach('smctr1', NETNS, 'vethsm0001');
    kernel.steps.length = 0;
    return { kernel, nft, iptables, add: () => plugin.add(inv), del: () => plugin.del({ ...inv, env: { ...inv.env, command: 'DEL' } }) };
  };

  it.each([
    ['the first container of the host', 'open', 0],
    ['a container joining another', 'open', 1],
    ['same-bridge, the first of its bridge', 'same-bridge', 0],
    ['isolated, joining another', 'isolated', 1],
  ])('%s: fails at every step with everything as before', async (_case, policy, others) => {
    const { steps, rows } = await rollbackTable({
      setup: world(policy as string, others as number), state: () => filesUnder(path.join(tmp, 'state')),
      // Lookups whose failure reads as "not there": the jump and the chain are then written again, and ADD goes on.
      tolerated: [/^ip6?tables -C FORWARD /, /^ip6?tables -S /],
    });
    expect(steps.filter((s) => s.op.startsWith('nft')).length).toBeGreaterThan(0);
    expect(steps.filter((s) => s.op.startsWith('iptables')).length).toBeGreaterThan(0);
    expect(brokenRows(rows)).toEqual([]);
    // The port's isolated flag is not taken back: the bridge's DEL, next in the chain, deletes the port.
    const del = await teardownTable({ setup: world(policy as string, others as number), state: () => filesUnder(path.join(tmp, 'state')), sharedLinks: ['vethsm0001'] });
    expect(brokenRows(del.rows)).toEqual([]);
  });
});
