// Rollback tables (test/helpers/rollback-table.ts) of bridge and vxlan-overlay
// ADD over the fake kernel and the recording nft fake: fail each kernel and
// nft step in turn; the injected error is reported, and the kernel (links,
// addresses, routes, ports), the nft elements, the IPAM reservations and the
// attachment records are as before. The e2e tests prove the real kernel does what the fake claims.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { IN_PROCESS_IPAM } from '../../ipam';
import type { Invocation, NetConf } from '../../lib/cni/types';
import { useNftBackend } from '../../lib/firewall/nft';
import { makeBridgePlugin } from '../../plugins/bridge/plugin';
import { makeOverlayPlugin } from '../../plugins/vxlan-overlay/plugin';
import { statePath, writeAgentState } from '../../plugins/vxlan-overlay/readiness';
import { FakeKernel } from '../helpers/fake-rtnl';
import { FakeNft } from '../helpers/fake-nft';
import { brokenRows, filesUnder, rollbackTable, teardownTable, type TeardownWorld } from '../helpers/rollback-table';

const NETNS = '/run/netns/sm-rollback';
let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-rollback-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function invocation(conf: Record<string, unknown>, containerId = 'smctr1', command: 'ADD' | 'DEL' = 'ADD'): Invocation {
  const full = { cniVersion: '1.0.0', name: 'smnet', ...conf } as NetConf;
  return { env: { command, containerId, netns: NETNS, ifname: 'eth0', path: [] }, conf: full, raw: Buffer.from(JSON.stringify(full)) };
}

function bridgeConf(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'bridge', bridge: 'smbr0', isGateway: true, ipMasq: true, stateDir: path.join(tmp, 'state', 'bridge'), ...extra,
    ipam: { type: 'host-local', subnet: '10.78.0.0/24', dataDir: path.join(tmp, 'state', 'ipam'), routes: [{ dst: '0.0.0.0/0' }] },
  };
}

type MakePlugin = (kernel: FakeKernel) => { add(inv: Invocation): Promise<unknown>; del(inv: Invocation): Promise<unknown> };

/**
 * A fresh world for each row. `others` containers joined the network before
 * (in setup, so their elements, records and reservations are part of "before").
 */
function world(makePlugin: MakePlugin, conf: () => Record<string, unknown>, others = 0): () => Promise<TeardownWorld> {
  return async () => {
    fs.rmSync(path.join(tmp, 'state'), { recursive: true, force: true });
    const kernel = new FakeKernel().addNamespace(NETNS);
    const nft = new FakeNft(kernel);
    const plugin = makePlugin(kernel);
    const netConf = conf(); // before the snapshot: what it writes (an agent's state) is the test's own
    const restore = useNftBackend(nft);
    try {
      for (let i = 0; i < others; i++) {
        const inv = invocation(netConf, `smother${i}`);
        kernel.addNamespace(`${NETNS}-${i}`);
        await plugin.add({ ...inv, env: { ...inv.env, netns: `${NETNS}-${i}` } });
      }
    } finally {
      restore();
    }
    kernel.steps.length = 0;
    return { kernel, nft, add: () => plugin.add(invocation(netConf)), del: () => plugin.del(invocation(netConf, 'smctr1', 'DEL')) };
  };
}

const bridge: MakePlugin = (kernel) => makeBridgePlugin(IN_PROCESS_IPAM, kernel);
const overlay: MakePlugin = (kernel) => makeOverlayPlugin(IN_PROCESS_IPAM, kernel);

function overlayConf(extra: Record<string, unknown>): Record<string, unknown> {
  const runDir = path.join(tmp, 'state', 'run');
  const file = statePath(runDir, 'smnet');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeAgentState(file, {
      network: 'smnet', hostID: 'smhost', pid: process.pid, subnet: '10.79.3.0/24', cidr: '10.79.0.0/16', gateway: '10.79.3.1',
      bridge: 'smovl0', vxlan: 'smvx0', mtu: 1450, leaseOk: true, heartbeat: Date.now(), heartbeatMs: 600_000,
    });
  }
  return { type: 'vxlan-overlay', runDir, ...extra, ipam: { type: 'host-local', dataDir: path.join(tmp, 'state', 'ipam') } };
}

describe.each([
  ['bridge', bridge, bridgeConf, 'smbr0'],
  ['vxlan-overlay', overlay, overlayConf, 'smovl0'],
] as const)('%s ADD rollback', (_name, plugin, conf, sharedBridge) => {
  it.each([
    ['the first container of a network', {}, 0],
    ['a container joining two others', {}, 2],
    ['with the MAC spoof check, hairpin and port isolation', { macspoofchk: true, hairpinMode: true, portIsolation: true }, 1],
    ['on an internal network', { internal: true }, 1],
  ])('%s: fails at every step with everything as before', async (_case, extra, others) => {
    const { steps, rows } = await rollbackTable({
      setup: world(plugin, () => conf(extra), others), sharedLinks: [sharedBridge], state: () => filesUnder(path.join(tmp, 'state')),
    });
    expect(steps.some((s) => s.op.startsWith('createVeth eth0'))).toBe(true);
    expect(steps.some((s) => s.op.startsWith('nft'))).toBe(true);
    expect(brokenRows(rows)).toEqual([]);
  });
});

describe('bridge ADD rollback, bridge-only modes', () => {
  it.each([
    ['the first container of an isolated network', { isolation: true }, 0],
    ['an isolated network', { isolation: true }, 1],
    ['VLAN 100 with its gateway interface', { vlan: 100 }, 0],
    ['VLAN 100 joining another container', { vlan: 100 }, 1],
  ])('%s: fails at every step with everything as before', async (_case, extra, others) => {
    const { steps, rows } = await rollbackTable({
      setup: world(bridge, () => bridgeConf(extra), others), sharedLinks: ['smbr0'], state: () => filesUnder(path.join(tmp, 'state')),
    });
    expect(steps.some((s) => s.op.startsWith('createVeth eth0'))).toBe(true);
    expect(brokenRows(rows)).toEqual([]);
  });
});

describe.each([
  ['bridge', bridge, bridgeConf, 'smbr0'],
  ['vxlan-overlay', overlay, overlayConf, 'smovl0'],
] as const)('%s DEL', (_name, plugin, conf, sharedBridge) => {
  it.each([
    ['the last container of a network', {}, 0],
    ['one of three', {}, 2],
    ['with the MAC spoof check and port isolation', { macspoofchk: true, portIsolation: true }, 0],
  ])('%s: a DEL that fails at any step, then another, leaves what was there before ADD', async (_case, extra, others) => {
    const { steps, rows } = await teardownTable({
      setup: world(plugin, () => conf(extra), others), sharedLinks: [sharedBridge], state: () => filesUnder(path.join(tmp, 'state')),
    });
    expect(steps.some((s) => s.op.startsWith('deleteLink'))).toBe(true);
    expect(brokenRows(rows)).toEqual([]);
  });
});
