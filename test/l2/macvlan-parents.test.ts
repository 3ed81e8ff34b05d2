// macvlan on masters this machine's kernel cannot make: a `dummy` device and
// an active-backup bond (with eth0 as its slave), plain and in trunk mode.
// Real traffic: containers ping each other, and through the bond the wire.
import { ensureBuilt } from '../helpers/build';
import { addrOf, L2Env } from './env';

let env: L2Env;
beforeAll(() => ensureBuilt('macvlan'), 180_000);
beforeEach(() => { env = new L2Env(); });
afterEach(() => env.sb.cleanup());

function conf(name: string, master: string, subnet: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.1.0', name, type: 'macvlan', master, dataDir: env.state, ipam: { type: 'host-local', dataDir: env.ipamDir, subnet }, ...extra };
}

/** ADD a and b, ping, DEL both; returns what the host has left. `also` runs before the DELs. */
function pair(c: Record<string, unknown>, also?: (a: string, ra: any) => void): string[] {
  const [a, b] = [env.container(`${c.name}a`), env.container(`${c.name}b`)];
  env.add('macvlan', c, 'ca', a);
  const rb = env.add('macvlan', c, 'cb', b);
  expect(env.ping(a, addrOf(rb))).toBe(true);
  also?.(a, rb);
  for (const [id, ns] of [['ca', a], ['cb', b]]) {
    env.ok('macvlan', 'DEL', c, { id, netns: env.sb.nsPath(ns) });
    expect(env.links(ns)).toEqual(['lo']);
  }
  return env.links(env.host);
}

it('on a dummy master, and in trunk mode on it (dum0.10 made and removed)', () => {
  env.ip(env.host, 'link', 'add', 'dum0', 'type', 'dummy');
  env.ip(env.host, 'link', 'set', 'dum0', 'up');
  expect(pair(conf('l2dum', 'dum0', '10.71.0.0/24'))).toEqual(['dum0', 'eth0', 'lo']);
  const trunk = conf('l2dumv', 'dum0', '10.71.1.0/24', { vlan: 10 });
  expect(pair(trunk, () => {
    expect(env.ip(env.host, '-d', 'link', 'show', 'dum0.10')).toMatch(/vlan protocol 802\.1Q id 10 /);
  })).toEqual(['dum0', 'eth0', 'lo']);
});

it('on an active-backup bond of eth0, and in trunk mode on it: the wire is reached through the bond', async () => {
  env.ip(env.host, 'link', 'add', 'bond0', 'type', 'bond', 'mode', 'active-backup', 'miimon', '100');
  env.ip(env.host, 'link', 'set', 'eth0', 'down');
  env.ip(env.host, 'link', 'set', 'eth0', 'master', 'bond0');
  env.ip(env.host, 'link', 'set', 'bond0', 'up');
  env.ip(env.wire, 'addr', 'add', '10.72.0.254/24', 'dev', 'wire0');
  env.ip(env.wire, 'link', 'add', 'link', 'wire0', 'name', 'wire0.10', 'type', 'vlan', 'id', '10');
  env.ip(env.wire, 'addr', 'add', '10.72.1.254/24', 'dev', 'wire0.10');
  env.ip(env.wire, 'link', 'set', 'wire0.10', 'up');

  expect(pair(conf('l2bond', 'bond0', '10.72.0.0/24'), (a) => expect(env.ping(a, '10.72.0.254')).toBe(true))).toEqual(['bond0', 'eth0', 'lo']);
  expect(pair(conf('l2bondv', 'bond0', '10.72.1.0/24', { vlan: 10 }), (a) => {
    expect(env.ip(env.host, '-d', 'link', 'show', 'bond0.10')).toMatch(/bond0\.10@bond0: [\s\S]*vlan protocol 802\.1Q id 10 /);
    expect(env.ping(a, '10.72.1.254')).toBe(true);
  })).toEqual(['bond0', 'eth0', 'lo']);
});
