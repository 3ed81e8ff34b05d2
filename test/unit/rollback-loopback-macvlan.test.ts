// Rollback tables (test/helpers/rollback-table.ts) of loopback and macvlan ADD
// over the fake kernel: fail each kernel step in turn; the injected error is
// reported and the kernel, the IPAM store and the trunk records are as before.
// test/e2e/loopback.test.ts and macvlan.test.ts prove the real kernel does what the fake claims.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { IN_PROCESS_IPAM } from '../../ipam';
import type { Invocation, NetConf } from '../../lib/cni/types';
import { makeLoopbackPlugin } from '../../plugins/loopback/plugin';
import { makeMacvlanPlugin } from '../../plugins/macvlan/plugin';
import { FakeKernel, HOST } from '../helpers/fake-rtnl';
import { brokenRows, filesUnder, rollbackTable, teardownTable } from '../helpers/rollback-table';

const NETNS = '/run/netns/sm-rollback';
let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-rollback-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function invocation(conf: Record<string, unknown>, o: { containerId?: string; ifname?: string; command?: 'ADD' | 'DEL' } = {}): Invocation {
  const full = { cniVersion: '1.0.0', name: 'smnet', ...conf } as NetConf;
  return {
    env: { command: o.command ?? 'ADD', containerId: o.containerId ?? 'smctr1', netns: NETNS, ifname: o.ifname ?? 'eth0', path: [] },
    conf: full, raw: Buffer.from(JSON.stringify(full)),
  };
}

describe('loopback ADD rollback', () => {
  it('fails at every step with the kernel as before', async () => {
    const { steps, rows } = await rollbackTable({
      setup: () => {
        const kernel = new FakeKernel().addNamespace(NETNS);
        const plugin = makeLoopbackPlugin(kernel);
        return { kernel, add: () => plugin.add(invocation({ type: 'loopback' })) };
      },
    });
    expect(steps.map((s) => s.op)).toEqual([`openNetns ${NETNS}`, 'requireLink lo', 'setLinkUp lo', 'listAddresses lo']);
    expect(brokenRows(rows)).toEqual([]);
  });

  it('sets lo back down when it refuses a foreign address', async () => {
    const kernel = new FakeKernel().addNamespace(NETNS);
    kernel.addAddressOf(NETNS, 'lo', '10.9.9.9/8');
    const before = kernel.snapshot();
    await expect(makeLoopbackPlugin(kernel).add(invocation({ type: 'loopback' }))).rejects.toThrow('non-loopback address "10.9.9.9');
    expect(kernel.snapshot()).toEqual(before);
  });
});

describe('macvlan ADD rollback and DEL', () => {
  const macvlanCase = (extra: Record<string, unknown>) => ({
    setup: () => {
      fs.rmSync(path.join(tmp, 'state'), { recursive: true, force: true });
      const kernel = new FakeKernel().addNamespace(NETNS);
      kernel.addLink(HOST, { name: 'sm-eth9' });
      const plugin = makeMacvlanPlugin(IN_PROCESS_IPAM, kernel);
      const conf = {
        type: 'macvlan', master: 'sm-eth9', dataDir: path.join(tmp, 'state', 'macvlan'), ...extra,
        ipam: { type: 'host-local', subnet: '10.77.0.0/24', dataDir: path.join(tmp, 'state', 'ipam'), routes: [{ dst: '0.0.0.0/0' }, { dst: '10.200.0.0/16', gw: '10.77.0.254' }] },
      };
      return { kernel, add: () => plugin.add(invocation(conf)), del: () => plugin.del(invocation(conf, { command: 'DEL' })) };
    },
    state: () => filesUnder(path.join(tmp, 'state')),
  });

  it('fails at every step with the kernel, the reservations and the records as before', async () => {
    const { steps, rows } = await rollbackTable(macvlanCase({}));
    expect(steps.some((s) => s.op.startsWith('createMacvlan eth0'))).toBe(true);
    expect(steps.filter((s) => s.op.startsWith('addRoute'))).toHaveLength(2);
    expect(brokenRows(rows)).toEqual([]);
  });

  it('in trunk mode, also deletes the 802.1q sub-interface it created and its records', async () => {
    const { steps, rows } = await rollbackTable(macvlanCase({ vlan: 42 }));
    expect(steps.some((s) => s.op === 'createVlan sm-eth9.42')).toBe(true);
    expect(brokenRows(rows)).toEqual([]);
  });

  it.each([['the default mode', {}], ['trunk mode, the last user of its sub-interface', { vlan: 42 }]])('%s: a DEL that fails at any step, then another, leaves what was there before ADD', async (_case, extra) => {
    const { steps, rows } = await teardownTable(macvlanCase(extra));
    expect(steps.some((s) => s.op.startsWith('deleteLink'))).toBe(true);
    expect(brokenRows(rows)).toEqual([]);
  });
});
