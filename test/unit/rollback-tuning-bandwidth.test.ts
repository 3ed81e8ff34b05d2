// Rollback tables (test/helpers/rollback-table.ts) of tuning and bandwidth
// ADD over the fake kernel: fail each kernel step in turn; the injected error
// is reported and the container's sysctls and interface, the qdiscs and IFBs,
// and the plugin's records are as before (test/e2e/tuning.test.ts and
// bandwidth.test.ts run the real kernel).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Invocation, NetConf } from '../../lib/cni/types';
import { makeBandwidthPlugin } from '../../plugins/bandwidth/plugin';
import { makeTuningPlugin } from '../../plugins/tuning/plugin';
import { FakeKernel, HOST } from '../helpers/fake-rtnl';
import { brokenRows, filesUnder, rollbackTable, teardownTable, type TeardownWorld } from '../helpers/rollback-table';

const NETNS = '/run/netns/sm-rollback-tb';
let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-rollback-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const prevResult = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'smbr0' }, { name: 'vethsm0001' }, { name: 'eth0', sandbox: NETNS }],
  ips: [{ address: '10.78.0.2/24', gateway: '10.78.0.1', interface: 2 }],
};

function invocation(conf: Record<string, unknown>, command: 'ADD' | 'DEL' = 'ADD'): Invocation {
  const full = { cniVersion: '1.0.0', name: 'smnet', prevResult, ...conf } as NetConf;
  return { env: { command, containerId: 'smctr1', netns: NETNS, ifname: 'eth0', path: [] }, conf: full, raw: Buffer.from(JSON.stringify(full)) };
}

/** A container with eth0, the peer of vethsm0001 on the host, as an interface plugin left it. */
async function containerWorld(): Promise<FakeKernel> {
  fs.rmSync(path.join(tmp, 'state'), { recursive: true, force: true });
  const kernel = new FakeKernel().addNamespace(NETNS);
  const ctr = kernel.openRtnl(kernel.openNetns(NETNS));
  await ctr.createVeth({ name: 'eth0', peerName: 'vethsm0001', peerNetns: HOST, mtu: 1500 });
  await ctr.setLinkUp('eth0');
  await kernel.openRtnl().setLinkUp('vethsm0001');
  kernel.sysctlsOf(NETNS).set('net/ipv4/conf/eth0/arp_filter', '0');
  kernel.steps.length = 0;
  return kernel;
}

describe('tuning ADD rollback', () => {
  it('fails at every step with the sysctls, the interface and the backups as before', async () => {
    const world = async (): Promise<TeardownWorld> => {
      const kernel = await containerWorld();
      const plugin = makeTuningPlugin(kernel);
      const conf = { type: 'tuning', dataDir: path.join(tmp, 'state', 'tuning'), sysctl: { 'net.ipv4.conf.eth0.arp_filter': '1' }, mtu: 1400, promisc: true, mac: '02:42:0a:4e:00:99', txQLen: 2000 };
      return { kernel, add: () => plugin.add(invocation(conf)), del: () => plugin.del(invocation(conf, 'DEL')) };
    };
    const { steps, rows } = await rollbackTable({
      setup: world, state: () => filesUnder(path.join(tmp, 'state')),
    });
    expect(steps.some((s) => s.op.startsWith('sysctl.write net/ipv4/conf/eth0/arp_filter'))).toBe(true);
    expect(steps.some((s) => s.op.startsWith('setMtu 1400'))).toBe(true);
    expect(brokenRows(rows)).toEqual([]);
  });
});

describe('tuning DEL', () => {
  // Sysctls are not restored by DEL (the reference's behaviour), so this table changes link attributes only.
  const conf = (): Record<string, unknown> => ({ type: 'tuning', dataDir: path.join(tmp, 'state', 'tuning'), mtu: 1400, promisc: true, allmulti: true, mac: '02:42:0a:4e:00:99', txQLen: 2000 });
  const world = async (): Promise<TeardownWorld> => {
    const kernel = await containerWorld();
    const plugin = makeTuningPlugin(kernel);
    return { kernel, add: () => plugin.add(invocation(conf())), del: () => plugin.del(invocation(conf(), 'DEL')) };
  };

  it('cut short at any step (ENOBUFS) answers "try again later" and the next DEL restores the interface and drops the record', async () => {
    const { steps, rows } = await teardownTable({ setup: world, state: () => filesUnder(path.join(tmp, 'state')) });
    expect(steps.map((s) => s.op.split(' ')[0])).toEqual(expect.arrayContaining(['setMtu', 'setMac', 'setPromisc', 'setAllmulti', 'setTxqlen']));
    expect(brokenRows(rows)).toEqual([]);
  });

  it('restores the other attributes when the kernel refuses one for good, and gives that one up', async () => {
    const w = await world();
    await w.add();
    const before = w.kernel.steps.length;
    await w.del();
    const mtuStep = w.kernel.steps.slice(before).findIndex((s) => s.op.startsWith('setMtu')); // restored first

    const w2 = await world();
    const link = async () => (await w2.kernel.openRtnl(w2.kernel.openNetns(NETNS)).getLink('eth0'))!;
    const original = await link();
    await w2.add();
    w2.kernel.failAt(w2.kernel.steps.length + mtuStep + 1, 'EINVAL');
    await expect(w2.del()).resolves.toBeUndefined();
    const eth0 = await link();
    expect(eth0.mtu).toBe(1400);
    expect({ mac: eth0.mac, flags: eth0.flags, txqlen: eth0.txqlen }).toEqual({ mac: original.mac, flags: original.flags, txqlen: original.txqlen });
    expect(filesUnder(path.join(tmp, 'state'))).toEqual([]);
  });
});

describe('bandwidth ADD rollback', () => {
  it.each([
    ['ingress and egress', { ingressRate: 8_000_000, ingressBurst: 80_000, egressRate: 16_000_000, egressBurst: 160_000 }],
    ['egress only', { egressRate: 16_000_000, egressBurst: 160_000 }],
  ])('%s: ADD fails at every step with no qdisc and no IFB left, and a DEL cut short at any step is finished by the next', async (_case, limits) => {
    const world = async (): Promise<TeardownWorld> => {
      const kernel = await containerWorld();
      const plugin = makeBandwidthPlugin(kernel);
      return { kernel, add: () => plugin.add(invocation({ type: 'bandwidth', ...limits })), del: () => plugin.del(invocation({ type: 'bandwidth', ...limits }, 'DEL')) };
    };
    const { steps, rows } = await rollbackTable({ setup: world });
    expect(steps.some((s) => s.op.startsWith('createIfb'))).toBe(true);
    expect(brokenRows(rows)).toEqual([]);
    const del = await teardownTable({ setup: world });
    expect(del.steps.some((s) => s.op.startsWith('deleteLink'))).toBe(true);
    expect(brokenRows(del.rows)).toEqual([]);
  });
});
