// Route metrics from gateway priorities (lib/routes/priority.ts): higher
// priority, lower metric; equal priority, the earlier attachment first.
import { CniError } from '../../lib/cni/errors';
import type { NetConf } from '../../lib/cni/types';
import { gwPriorityOf, metricBand, nextMetric, priorityOfMetric, ROUTE_SLOTS } from '../../lib/routes/priority';

const conf = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.1.0', name: 'n', type: 'bridge', ...extra });

describe('metrics', () => {
  it('orders priorities: higher wins, default 0 at 1000000, never 0', () => {
    expect(metricBand(0)).toBe(1000000);
    expect(metricBand(10)).toBeLessThan(metricBand(0));
    expect(metricBand(-1)).toBeGreaterThan(metricBand(0) + ROUTE_SLOTS - 1);
    expect(metricBand(9999)).toBe(100);
    expect(metricBand(-9999) + ROUTE_SLOTS - 1).toBeLessThan(2 ** 32);
  });

  it('gives the next attachment of a priority the slot after the last one used', () => {
    expect(nextMetric(0, [])).toBe(1000000);
    expect(nextMetric(0, [1000000])).toBe(1000001);
    // A gap left by a disconnected network is not reused: order stays attach order.
    expect(nextMetric(0, [1000000, 1000003])).toBe(1000004);
    // Routes of other priorities (and the kernel's own) do not count.
    expect(nextMetric(0, [0, 256, 999900, 1000100])).toBe(1000000);
    expect(nextMetric(5, [1000000])).toBe(999500);
  });

  it('says when a priority has no slot left', () => {
    expect(nextMetric(0, [1000000 + ROUTE_SLOTS - 1])).toBeUndefined();
  });

  it('reads the priority back from a metric of ours', () => {
    expect(priorityOfMetric(1000001)).toBe(0);
    expect(priorityOfMetric(999542)).toBe(5);
    expect(priorityOfMetric(0)).toBeUndefined();
  });
});

describe('gwPriorityOf', () => {
  it.each<[string, NetConf, Record<string, string>, number]>([
    ['nothing', conf(), {}, 0],
    ['the network config', conf({ gwPriority: 7 }), {}, 7],
    ['CNI_ARGS over the config', conf({ gwPriority: 7 }), { GW_PRIORITY: '-3' }, -3],
    ['runtimeConfig over CNI_ARGS', conf({ gwPriority: 7, runtimeConfig: { gwPriority: 12 } }), { GW_PRIORITY: '-3' }, 12],
    ['an empty CNI_ARGS value', conf({ gwPriority: 7 }), { GW_PRIORITY: '' }, 7],
  ])('takes %s', (_what, c, args, want) => {
    expect(gwPriorityOf(c, args, 'bridge')).toBe(want);
  });

  it.each<[string, NetConf, Record<string, string>, RegExp]>([
    ['a fraction', conf({ gwPriority: 1.5 }), {}, /bridge: "gwPriority" must be a whole number from -9999 to 9999.*got 1\.5/],
    ['a string', conf({ gwPriority: '5' }), {}, /"gwPriority".*got "5"/],
    ['out of range', conf({ runtimeConfig: { gwPriority: 10000 } }), {}, /runtimeConfig\.gwPriority.*got 10000/],
    ['CNI_ARGS garbage', conf(), { GW_PRIORITY: 'high' }, /CNI_ARGS GW_PRIORITY.*got "high"/],
  ])('refuses %s with code 7', (_what, c, args, msg) => {
    let err: unknown;
    try { gwPriorityOf(c, args, 'bridge'); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(7);
    expect((err as CniError).message).toMatch(msg);
  });
});
