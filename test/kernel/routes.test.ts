// lib/routes/install.ts against the real kernel: the default routes of two
// interfaces coexist with metrics from their gateway priorities and attach
// order; deleting the preferred interface leaves the next route in use.
import { CniError } from '../../lib/cni/errors';
import { openRtnl, type Rtnl } from '../../lib/netlink';
import { Netns } from '../../lib/netns';
import { missingRoutes } from '../../lib/routes/check';
import { installRoutes } from '../../lib/routes/install';
import { Sandbox, sh } from '../helpers/sandbox';

const sb = new Sandbox('mnrt');
let ns: string;
let netns: Netns;
let rtnl: Rtnl;

beforeAll(() => {
  ns = sb.netns('c');
  for (const [i, dev] of ['e0', 'e1', 'e2'].entries()) {
    sh('ip', ['-n', ns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`]);
    sh('ip', ['-n', ns, 'addr', 'add', `10.9.${i}.2/24`, 'dev', dev]);
    sh('ip', ['-n', ns, '-6', 'addr', 'add', `fd00:9:${i}::2/64`, 'dev', dev, 'nodad']);
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', `${dev}p`, 'up']);
  }
  netns = Netns.open(sb.nsPath(ns));
  rtnl = openRtnl(netns);
});
afterAll(() => {
  rtnl?.close();
  netns?.close();
  sb.cleanup();
});

const index = (dev: string): Promise<number> => rtnl.requireLink(dev).then((l) => l.index);
const defaults = (family: 4 | 6): string[] => sh('ip', ['-n', ns, `-${family}`, 'route', 'show', 'default']).split('\n').map((l) => l.trim()).filter(Boolean);

it('installs both default routes, the first attached first; a higher priority wins; IPv6 the same', async () => {
  const add = async (dev: string, i: number, gwPriority: number) => installRoutes(rtnl, {
    plugin: 'test', ifname: dev, index: await index(dev), gwPriority,
    routes: [{ dst: '0.0.0.0/0', gw: `10.9.${i}.1` }, { dst: '::/0', gw: `fd00:9:${i}::1` }, { dst: '10.200.0.0/16', gw: `10.9.${i}.1` }],
  });
  const a = await add('e0', 0, 0);
  const b = await add('e1', 1, 0);
  const c = await add('e2', 2, 5);
  expect(a.map((r) => r.priority)).toEqual([1000000, 1000000, 1000000]);
  expect(b.map((r) => r.priority)).toEqual([1000001, 1000001, 1000001]);
  expect(c.map((r) => r.priority)).toEqual([999500, 999500, 999500]);
  expect(defaults(4)).toEqual(['default via 10.9.2.1 dev e2 metric 999500', 'default via 10.9.0.1 dev e0 metric 1000000', 'default via 10.9.1.1 dev e1 metric 1000001']);
  expect(defaults(6).map((l) => l.replace(/ pref medium/, ''))).toEqual(['default via fd00:9:2::1 dev e2 metric 999500', 'default via fd00:9::1 dev e0 metric 1000000', 'default via fd00:9:1::1 dev e1 metric 1000001']);
  expect(sh('ip', ['-n', ns, '-6', 'route', 'get', 'fd00:77::1'])).toMatch(/via fd00:9:2::1 dev e2/);
  // Each attachment's CHECK finds its own routes, out of its own interface.
  const routes = await rtnl.listRoutes({ table: 0 });
  expect(missingRoutes(b, routes, await index('e1'))).toBeUndefined();
  expect(missingRoutes(b, routes, await index('e0'))).toBe('0.0.0.0/0 via 10.9.1.1 metric 1000001');

  // The preferred interface goes: the next route is already there.
  sh('ip', ['-n', ns, 'link', 'set', 'e2', 'down']);
  expect(sh('ip', ['-n', ns, 'route', 'get', '10.77.0.1'])).toMatch(/via 10\.9\.0\.1 dev e0/);
  expect(sh('ip', ['-n', ns, '-6', 'route', 'get', 'fd00:77::1'])).toMatch(/via fd00:9::1 dev e0/);
  sh('ip', ['-n', ns, 'link', 'set', 'e0', 'down']);
  expect(sh('ip', ['-n', ns, 'route', 'get', '10.77.0.1'])).toMatch(/via 10\.9\.1\.1 dev e1/);
  sh('ip', ['-n', ns, 'link', 'set', 'e0', 'up']);
  sh('ip', ['-n', ns, 'link', 'set', 'e2', 'up']);
});

it('takes an explicit priority as it is and names a clash', async () => {
  const e0 = await index('e0');
  const e1 = await index('e1');
  const [r] = await installRoutes(rtnl, { plugin: 'test', ifname: 'e0', index: e0, gwPriority: 0, routes: [{ dst: '10.201.0.0/16', gw: '10.9.0.1', priority: 42 }] });
  expect(r.priority).toBe(42);
  const clash = installRoutes(rtnl, { plugin: 'test', ifname: 'e1', index: e1, gwPriority: 0, routes: [{ dst: '10.201.0.0/16', gw: '10.9.1.1', priority: 42 }] });
  await expect(clash).rejects.toBeInstanceOf(CniError);
  await expect(clash).rejects.toThrow(/test: cannot add route 10\.201\.0\.0\/16 via 10\.9\.1\.1 metric 42 on "e1": the container already has a route to 10\.201\.0\.0\/16 with metric 42/);
});
