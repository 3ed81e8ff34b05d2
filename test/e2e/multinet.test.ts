// One container on several networks (Docker's `network connect` and
// `disconnect`): bridge networks A and B and macvlan network C, attached in
// every order, each with a default route of its own (lib/routes): exactly
// one is used (the highest gwPriority, then the first attached), every
// gateway answers, every CHECK passes, and when the preferred network is
// disconnected, traffic goes on through the next one with no ADD.
import { ensureBuilt } from '../helpers/build';
import { sh } from '../helpers/sandbox';
import { GATEWAY, MultiNetEnv, type NetName, waitFor } from './multinet-helpers';

jest.setTimeout(180000);
beforeAll(() => ensureBuilt('bridge', 'macvlan'), 300000);

const ORDERS: NetName[][] = [['A', 'B', 'C'], ['A', 'C', 'B'], ['B', 'A', 'C'], ['B', 'C', 'A'], ['C', 'A', 'B'], ['C', 'B', 'A']];

describe('a container on several networks', () => {
  let env: MultiNetEnv;
  beforeEach(() => { env = new MultiNetEnv(); });
  afterEach(() => env.sb.cleanup());

  it.each(ORDERS)('attached to %s, %s, %s: the first keeps the default route, every gateway answers, CHECK passes, DEL leaves lo', (...order) => {
    const ns = env.sb.netns('c');
    const id = 'ctr-multi';
    const results = order.map((net, i) => env.add(env.conf(net), id, ns, `eth${i}`));
    // One default route per network and family, each with its own metric; the first attached wins.
    for (const family of [4, 6] as const) {
      const defaults = sh('ip', ['-n', ns, `-${family}`, 'route', 'show', 'default']).trim().split('\n');
      expect(defaults).toHaveLength(3);
      expect(new Set(defaults.map((l) => /metric (\d+)/.exec(l)?.[1])).size).toBe(3);
      expect(env.via(ns, family)).toBe(GATEWAY[order[0]][family === 4 ? 'v4' : 'v6']);
    }
    for (const net of order) expect(env.ping(ns, GATEWAY[net].v4)).toBe(true);
    // Each result reports the routes it installed, with their metrics, and CHECK finds them.
    results.forEach((r, i) => {
      const dflt = r.routes.find((x: any) => x.dst === '0.0.0.0/0');
      expect(dflt.priority).toBe(1000000 + i);
      const c = env.check(env.conf(order[i]), r, id, ns, `eth${i}`);
      expect({ net: order[i], status: c.status, out: c.stdout }).toEqual({ net: order[i], status: 0, out: '' });
    });
    order.forEach((net, i) => env.del(env.conf(net), id, ns, `eth${i}`));
    expect(sh('ip', ['-n', ns, '-o', 'link']).trim().split('\n').map((l) => l.split(':')[1].trim())).toEqual(['lo']);
    expect(sh('ip', ['-n', ns, 'route']).trim()).toBe('');
  });

  it('gwPriority changes the choice, from the config, runtimeConfig or CNI_ARGS, for IPv4 and IPv6', () => {
    const ns = env.sb.netns('c');
    env.add(env.conf('A'), 'ctr-p', ns, 'eth0');
    const rb = env.add(env.conf('B', { runtimeConfig: { gwPriority: 10 } }), 'ctr-p', ns, 'eth1');
    expect(rb.routes.find((x: any) => x.dst === '::/0').priority).toBe(999000);
    expect([env.via(ns, 4), env.via(ns, 6)]).toEqual([GATEWAY.B.v4, GATEWAY.B.v6]);
    // C with an even higher priority by CNI_ARGS takes over; the config's gwPriority is weaker than CNI_ARGS.
    env.add(env.conf('C', { gwPriority: -5 }), 'ctr-p', ns, 'eth2', 'IgnoreUnknown=1;GW_PRIORITY=20');
    expect([env.via(ns, 4), env.via(ns, 6)]).toEqual([GATEWAY.C.v4, GATEWAY.C.v6]);
    // Disconnecting C falls back to B (priority 10), then A.
    env.del(env.conf('C'), 'ctr-p', ns, 'eth2');
    expect(env.via(ns, 4)).toBe(GATEWAY.B.v4);
    env.del(env.conf('B'), 'ctr-p', ns, 'eth1');
    expect([env.via(ns, 4), env.via(ns, 6)]).toEqual([GATEWAY.A.v4, GATEWAY.A.v6]);
    env.del(env.conf('A'), 'ctr-p', ns, 'eth0');
  });

  it('refuses a gwPriority out of range with code 7 and leaves nothing', () => {
    const ns = env.sb.netns('c');
    const r = env.run('ADD', env.conf('A', { gwPriority: 100000 }), { id: 'ctr-bad', netns: env.sb.nsPath(ns), ifname: 'eth0' });
    expect(r.status).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringMatching(/"gwPriority" must be a whole number from -9999 to 9999/) });
    expect(sh('ip', ['-n', ns, '-o', 'link']).trim().split('\n')).toHaveLength(1);
  });

  it.each<[NetName, NetName]>([['A', 'B'], ['A', 'C'], ['C', 'A']])('a transfer over %s goes on through %s when the first is disconnected, with no ADD', async (first, second) => {
    const ns = env.sb.netns('c');
    env.add(env.conf(first), 'ctr-f', ns, 'eth0');
    env.add(env.conf(second), 'ctr-f', ns, 'eth1');
    const port = 7300;
    await env.startServer(port);
    const client = env.startClient(ns, port);
    const subnet = (n: NetName) => GATEWAY[n].v4.replace(/\.1$/, '.');
    await waitFor(`a connection through ${first}`, () => client.events.find((e) => e.up?.startsWith(subnet(first))));
    const before = client.events.length;
    const t0 = Date.now();
    env.del(env.conf(first), 'ctr-f', ns, 'eth0');
    const t1 = Date.now();
    const next = await waitFor(`a connection through ${second}`, () => client.events.slice(before).find((e) => e.up?.startsWith(subnet(second))));
    client.stop();
    expect(env.via(ns)).toBe(GATEWAY[second].v4);
    // For the record (no timing asserts): disconnect → the next connection carries data.
    console.log(`failover ${first} -> ${second}: ${next.t - t0} ms after DEL started, ${next.t - t1} ms after it returned`);
    env.del(env.conf(second), 'ctr-f', ns, 'eth1');
  });
});
