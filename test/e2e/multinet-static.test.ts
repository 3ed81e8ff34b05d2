// Docker's `--ip` and `--mac-address`: the `ips` capability (runtimeConfig.ips)
// or CNI_ARGS IP=, through host-local, on bridge, macvlan and vxlan-overlay,
// and the `mac` capability. The requested address is assigned; one that is
// taken or outside the ranges is a clear error naming it, and the failed ADD
// leaves nothing: no link, no address reservation, no record.
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { sh } from '../helpers/sandbox';
import { Cluster } from './overlay-helpers';
import { MultiNetEnv } from './multinet-helpers';

jest.setTimeout(180000);
beforeAll(() => ensureBuilt('bridge', 'macvlan', 'vxlan-overlay'), 300000);

const links = (ns: string): string[] => sh('ip', ['-n', ns, '-o', 'link']).trim().split('\n').map((l) => l.split(':')[1].trim().split('@')[0]);
const macOf = (ns: string, dev: string): string => JSON.parse(sh('ip', ['-n', ns, '-j', 'link', 'show', dev]))[0].address;
const addrsOf = (ns: string, dev: string): string[] => JSON.parse(sh('ip', ['-n', ns, '-j', 'addr', 'show', dev]))[0].addr_info
  .filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`);
/** Every file under a directory, relative. */
const files = (dir: string): string[] => {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath ?? (e as any).path, e.name))).sort();
};

describe.each(['A', 'C'] as const)('--ip and --mac-address on %s (A: bridge, C: macvlan)', (net) => {
  let env: MultiNetEnv;
  beforeEach(() => { env = new MultiNetEnv(); });
  afterEach(() => env.sb.cleanup());
  const n = net === 'A' ? 161 : 163;

  it('assigns the requested addresses (ips capability, CNI_ARGS IP) and MAC; a taken or foreign address fails naming it and leaves nothing', () => {
    const c1 = env.sb.netns('c1');
    const c2 = env.sb.netns('c2');
    const c3 = env.sb.netns('c3');
    const r1 = env.add(env.conf(net, { runtimeConfig: { ips: [`10.${n}.0.42/24`, `fd00:${n}::42/64`], mac: '02:42:0a:00:00:2a' } }), 'ctr-ip1', c1, 'eth0');
    expect(r1.ips.map((i: any) => i.address)).toEqual([`10.${n}.0.42/24`, `fd00:${n}::42/64`]);
    expect(addrsOf(c1, 'eth0')).toEqual(expect.arrayContaining([`10.${n}.0.42/24`, `fd00:${n}::42/64`]));
    expect(macOf(c1, 'eth0')).toBe('02:42:0a:00:00:2a');
    expect(r1.interfaces.find((i: any) => i.name === 'eth0').mac).toBe('02:42:0a:00:00:2a');
    const r2 = env.add(env.conf(net), 'ctr-ip2', c2, 'eth0', `IgnoreUnknown=1;IP=10.${n}.0.43`);
    expect(r2.ips[0].address).toBe(`10.${n}.0.43/24`);
    expect(env.ping(c2, `10.${n}.0.42`)).toBe(true);

    const hostLinks = links(env.host);
    const ipam = files(env.ipamDir);
    const state = files(env.state);
    const taken = env.run('ADD', env.conf(net, { runtimeConfig: { ips: [`10.${n}.0.42/24`] } }), { id: 'ctr-ip3', netns: env.sb.nsPath(c3), ifname: 'eth0' });
    expect(taken.status).not.toBe(0);
    expect(JSON.parse(taken.stdout)).toMatchObject({ code: 11, msg: expect.stringContaining(`requested IP address 10.${n}.0.42 is not available in range set 0`) });
    expect(JSON.parse(taken.stdout).msg).toContain('in use by container "ctr-ip1" interface "eth0"');
    const foreign = env.run('ADD', env.conf(net), { id: 'ctr-ip3', netns: env.sb.nsPath(c3), ifname: 'eth0', args: 'IP=10.99.0.5' });
    expect(foreign.status).not.toBe(0);
    expect(JSON.parse(foreign.stdout)).toMatchObject({ code: 7, msg: 'requested IP 10.99.0.5 is not in any range set' });
    // Nothing of either failed ADD is left.
    expect(links(c3)).toEqual(['lo']);
    expect(links(env.host)).toEqual(hostLinks);
    expect(files(env.ipamDir)).toEqual(ipam);
    expect(files(env.state)).toEqual(state);

    env.del(env.conf(net), 'ctr-ip1', c1, 'eth0');
    env.del(env.conf(net), 'ctr-ip2', c2, 'eth0');
    expect([links(c1), links(c2)]).toEqual([['lo'], ['lo']]);
  });
});

describe('--ip and --mac-address on vxlan-overlay', () => {
  let c: Cluster;
  afterEach(() => c.cleanup());

  it('assigns the requested address and MAC; a taken or foreign address fails naming it and leaves nothing', async () => {
    c = new Cluster({ prefix: 'mnov', hosts: 1, store: 'file', network: 'mnovl' });
    const h = c.hosts[0];
    c.startAgent(h);
    const st = await c.waitReady(h);
    const want = st.subnet.replace(/\.0\/24$/, '.42');
    const ns1 = c.sb.netns('c1');
    const conf = { ...c.conf(h), runtimeConfig: { mac: '02:42:0a:00:00:2b' } };
    const r = c.plugin(h, 'ADD', c.containerId('c1'), c.sb.nsPath(ns1), conf, `IgnoreUnknown=1;IP=${want}`);
    expect(r.status).toBe(0);
    expect(r.json.ips[0].address).toBe(`${want}/24`);
    expect(macOf(ns1, 'eth0')).toBe('02:42:0a:00:00:2b');
    const ns2 = c.sb.netns('c2');
    const hostLinks = links(h.ns);
    const ipam = files(c.ipamDir(h));
    const taken = c.plugin(h, 'ADD', c.containerId('c2'), c.sb.nsPath(ns2), c.conf(h), `IP=${want}`);
    expect(taken.status).not.toBe(0);
    expect(taken.json).toMatchObject({ code: 11, msg: expect.stringContaining(`requested IP address ${want} is not available`) });
    const foreign = c.plugin(h, 'ADD', c.containerId('c2'), c.sb.nsPath(ns2), c.conf(h), 'IP=10.99.0.5');
    expect(foreign.json).toMatchObject({ code: 7, msg: 'requested IP 10.99.0.5 is not in any range set' });
    expect(links(ns2)).toEqual(['lo']);
    expect(links(h.ns)).toEqual(hostLinks);
    expect(files(c.ipamDir(h))).toEqual(ipam);
    expect(c.plugin(h, 'DEL', c.containerId('c1'), c.sb.nsPath(ns1)).status).toBe(0);
  });
});
