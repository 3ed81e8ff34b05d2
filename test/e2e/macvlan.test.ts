// The built macvlan plugin, run inside a throwaway "host" namespace with
// `ip netns exec`. The master is one end of a veth in that namespace (both
// ends up, so the macvlans have carrier); containers are other namespaces.
// Real traffic: ping between containers.
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { execCni } from '../helpers/cni';
import { SUPPORTED_VERSIONS } from '../../lib/cni/version';

const BIN = path.join(DIST_BIN, 'macvlan');
const VERSIONS = SUPPORTED_VERSIONS;

/** Can this kernel make 802.1q links? Probed in a throwaway namespace. */
function probeVlan(): { ok: boolean; reason: string } {
  const sb = new Sandbox('mvp');
  try {
    const ns = sb.netns('probe');
    sh('ip', ['-n', ns, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
    const r = shTry('ip', ['-n', ns, 'link', 'add', 'link', 'p0', 'name', 'p0.5', 'type', 'vlan', 'id', '5']);
    if (r.status === 0) return { ok: true, reason: '' };
    const msg = `${r.stderr}`.trim();
    if (/Unknown device type|not supported|EOPNOTSUPP|ENOTSUP/i.test(msg)) return { ok: false, reason: `the kernel has no 802.1q (8021q) support: "${msg}"` };
    throw new Error(`probing 802.1q support failed unexpectedly: ${msg}`);
  } finally {
    sb.cleanup();
  }
}

interface Run { status: number | null; stdout: string; stderr: string; json?: any }

class Env {
  readonly sb = new Sandbox('mv');
  readonly host: string;
  readonly data: string;
  readonly ipamDir: string;
  /** CNI_PATH dir where "host-local-ref" is the reference host-local (ours runs in-process as "host-local"). */
  readonly cniPath: string;

  constructor() {
    this.host = this.sb.netns('h');
    this.data = this.sb.tmpdir('data');
    this.ipamDir = this.sb.tmpdir('ipam');
    this.cniPath = this.sb.tmpdir('cnipath');
    fs.symlinkSync('/usr/lib/cni/host-local', path.join(this.cniPath, 'host-local-ref'));
    this.master('m0');
  }

  /** A veth in the host namespace, both ends up: `name` is the master. */
  master(name: string, mtu = 1500): void {
    sh('ip', ['-n', this.host, 'link', 'add', name, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', `${name}p`]);
    sh('ip', ['-n', this.host, 'link', 'set', name, 'up']);
    sh('ip', ['-n', this.host, 'link', 'set', `${name}p`, 'up']);
  }

  container(suffix: string): string {
    return this.sb.netns(suffix);
  }

  conf(extra: Record<string, unknown> = {}, version = '1.1.0', ipamType = 'host-local'): Record<string, unknown> {
    return {
      cniVersion: version, name: 'mvnet', type: 'macvlan', master: 'm0', dataDir: this.data,
      ipam: { type: ipamType, subnet: '10.252.0.0/24', gateway: '10.252.0.1', dataDir: this.ipamDir, routes: [{ dst: '0.0.0.0/0' }] },
      ...extra,
    };
  }

  run(cmd: string, conf: Record<string, unknown>, o: { id?: string; netns?: string; ifname?: string; args?: string } = {}): Run {
    const call = { command: cmd, containerId: o.id, netns: o.netns, ifname: o.ifname ?? (o.id ? 'eth0' : ''), path: `${this.cniPath}:/usr/lib/cni`, args: o.args ?? '' };
    return execCni(this.host, BIN, call, conf);
  }

  add(conf: Record<string, unknown>, id: string, ns: string, args?: string): any {
    const r = this.run('ADD', conf, { id, netns: this.sb.nsPath(ns), args });
    if (r.status !== 0) throw new Error(`ADD ${id} failed: ${r.stdout} ${r.stderr}`);
    return r.json;
  }

  ok(cmd: string, conf: Record<string, unknown>, o: { id?: string; netns?: string; ifname?: string }): void {
    const r = this.run(cmd, conf, o);
    if (r.status !== 0) throw new Error(`${cmd} ${o.id ?? ''} failed: ${r.stdout} ${r.stderr}`);
    expect(r.stdout).toBe('');
  }

  ping(ns: string, ip: string): boolean {
    return this.sb.inNs(ns, 'ping', ['-c', '1', '-W', '2', ip]).status === 0;
  }

  /** Addresses host-local (ours or the reference) still holds for mvnet. */
  reservations(): string[] {
    const dir = path.join(this.ipamDir, 'mvnet');
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/i.test(f) && f.includes('.')) : [];
  }

  containerLinks(ns: string): string[] {
    return sh('ip', ['-n', ns, '-o', 'link']).split('\n').filter(Boolean).map((l) => l.split(': ')[1].split('@')[0]);
  }

  hostLinks(): string[] {
    return this.containerLinks(this.host);
  }
}

const ip = (r: any): string => r.ips[0].address.split('/')[0];
const withPrev = (conf: Record<string, unknown>, prev: any) => ({ ...conf, prevResult: prev });

describe('macvlan (built binary, throwaway host namespace)', () => {
  let env: Env;
  beforeAll(() => ensureBuilt('macvlan'), 180_000);
  beforeEach(() => { env = new Env(); });
  afterEach(() => env.sb.cleanup());

  it('bridge mode: two containers ping each other; CHECK; DEL cleans up; DEL twice', () => {
    const [a, b] = [env.container('a'), env.container('b')];
    const conf = env.conf();
    const ra = env.add(conf, 'ca', a);
    const rb = env.add(conf, 'cb', b);
    expect(ra.interfaces).toEqual([expect.objectContaining({ name: 'eth0', sandbox: env.sb.nsPath(a), mac: expect.stringMatching(/^[0-9a-f:]{17}$/) })]);
    expect(ra.ips).toEqual([{ address: '10.252.0.2/24', gateway: '10.252.0.1', interface: 0 }]);
    expect(sh('ip', ['-n', a, '-d', 'link', 'show', 'eth0'])).toMatch(/macvlan mode bridge/);
    expect(sh('ip', ['-n', a, 'route'])).toMatch(/default via 10\.252\.0\.1 dev eth0/);
    expect(sh('ip', ['netns', 'exec', a, 'cat', '/proc/sys/net/ipv4/conf/eth0/arp_notify']).trim()).toBe('1');
    expect(env.ping(a, ip(rb))).toBe(true);
    expect(env.ping(b, ip(ra))).toBe(true);

    env.ok('CHECK', withPrev(conf, ra), { id: 'ca', netns: env.sb.nsPath(a) });
    env.ok('DEL', withPrev(conf, ra), { id: 'ca', netns: env.sb.nsPath(a) });
    env.ok('DEL', withPrev(conf, ra), { id: 'ca', netns: env.sb.nsPath(a) });
    expect(env.containerLinks(a)).toEqual(['lo']);
    expect(env.reservations()).toEqual(['10.252.0.3']);
    env.ok('DEL', conf, { id: 'cb', netns: env.sb.nsPath(b) });
    expect(env.reservations()).toEqual([]);
    expect(env.hostLinks().sort()).toEqual(['lo', 'm0', 'm0p']);
  });

  it('private mode: two containers on one master cannot reach each other', () => {
    const [a, b] = [env.container('a'), env.container('b')];
    const conf = env.conf({ mode: 'private' });
    env.add(conf, 'ca', a);
    const rb = env.add(conf, 'cb', b);
    expect(sh('ip', ['-n', a, '-d', 'link', 'show', 'eth0'])).toMatch(/macvlan mode private/);
    expect(env.ping(a, ip(rb))).toBe(false);
  });

  it('passthru takes the master for a single container; a second ADD fails cleanly', () => {
    env.master('m1');
    const [a, b] = [env.container('a'), env.container('b')];
    const conf = env.conf({ mode: 'passthru', master: 'm1' });
    const ra = env.add(conf, 'ca', a);
    expect(sh('ip', ['-n', a, '-d', 'link', 'show', 'eth0'])).toMatch(/macvlan mode passthru/);
    const r = env.run('ADD', conf, { id: 'cb', netns: env.sb.nsPath(b) });
    expect(r.status).not.toBe(0);
    expect(r.json.msg).toMatch(/master "m1"/);
    expect(env.containerLinks(b)).toEqual(['lo']);
    expect(env.reservations()).toEqual([ip(ra)]);
    env.ok('CHECK', withPrev(conf, ra), { id: 'ca', netns: env.sb.nsPath(a) });
  });

  it('refuses an mtu above the master\'s (code 7) and leaves nothing', () => {
    const a = env.container('a');
    const r = env.run('ADD', env.conf({ mtu: 9000 }), { id: 'ca', netns: env.sb.nsPath(a) });
    expect(r.status).toBe(1);
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(/mtu 9000 is larger than the MTU 1500 of master "m0"/) });
    expect(env.containerLinks(a)).toEqual(['lo']);
    expect(env.reservations()).toEqual([]);
    const ok = env.add(env.conf({ mtu: 1400 }), 'ca', a);
    expect(ok.interfaces[0].mtu).toBe(1400);
    expect(sh('ip', ['-n', a, 'link', 'show', 'eth0'])).toMatch(/mtu 1400/);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a master that does not exist', { master: 'nosuch0' }, /master "nosuch0" does not exist/],
    ['a vlan id out of range', { vlan: 4095 }, /"vlan" must be an 802\.1q id from 1 to 4094, got 4095/],
    ['an unknown mode', { mode: 'wild' }, /unknown mode "wild"/],
  ])('refuses %s with code 7', (_what, extra, msg) => {
    const a = env.container('a');
    const r = env.run('ADD', env.conf(extra), { id: 'ca', netns: env.sb.nsPath(a) });
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(msg) });
    expect(env.containerLinks(a)).toEqual(['lo']);
    expect(env.reservations()).toEqual([]);
  });

  it('DEL works after the namespace is gone and with CNI_NETNS empty, releasing IPAM', () => {
    const [a, b] = [env.container('a'), env.container('b')];
    const conf = env.conf();
    env.add(conf, 'ca', a);
    env.add(conf, 'cb', b);
    const pathA = env.sb.nsPath(a);
    sh('ip', ['netns', 'del', a]);
    env.ok('DEL', conf, { id: 'ca', netns: pathA });
    env.ok('DEL', conf, { id: 'ca', netns: pathA });
    env.ok('DEL', conf, { id: 'cb' });
    expect(env.reservations()).toEqual([]);
    env.ok('DEL', conf, { id: 'never-added', netns: env.sb.nsPath(b) });
  });

  it('a failure after IPAM rolls back the interface and the reservation', () => {
    const a = env.container('a');
    const conf = env.conf();
    (conf.ipam as any).routes = [{ dst: '192.168.0.0/16', gw: '172.31.0.1' }]; // gateway off-link: adding the route fails
    const r = env.run('ADD', conf, { id: 'ca', netns: env.sb.nsPath(a) });
    expect(r.status).toBe(1);
    expect(r.json.msg).toMatch(/192\.168\.0\.0\/16/);
    expect(env.containerLinks(a)).toEqual(['lo']);
    expect(env.reservations()).toEqual([]);
  });

  it('refuses a second ADD of the same ifname and keeps the first', () => {
    const a = env.container('a');
    const conf = env.conf();
    env.add(conf, 'ca', a);
    const r = env.run('ADD', conf, { id: 'ca2', netns: env.sb.nsPath(a) });
    expect(r.status).toBe(1);
    expect(r.json).toMatchObject({ code: 4, msg: expect.stringMatching(/already has an interface named "eth0"/) });
    expect(env.containerLinks(a)).toEqual(['lo', 'eth0']);
    expect(env.reservations()).toEqual(['10.252.0.2']);
  });

  it('takes the MAC by precedence runtimeConfig > CNI_ARGS > config', () => {
    const [a, b, c] = [env.container('a'), env.container('b'), env.container('c')];
    expect(env.add(env.conf({ mac: '02:aa:00:00:00:01' }), 'ca', a).interfaces[0].mac).toBe('02:aa:00:00:00:01');
    expect(env.add(env.conf({ mac: '02:aa:00:00:00:01' }), 'cb', b, 'IgnoreUnknown=1;MAC=02:aa:00:00:00:02').interfaces[0].mac).toBe('02:aa:00:00:00:02');
    expect(env.add(env.conf({ runtimeConfig: { mac: '02:aa:00:00:00:03' } }), 'cc', c, 'MAC=02:aa:00:00:00:02').interfaces[0].mac).toBe('02:aa:00:00:00:03');
    expect(sh('ip', ['-n', c, 'link', 'show', 'eth0'])).toMatch(/02:aa:00:00:00:03/);
  });

  it('without ipam the interface is L2 only and up; without master it takes the default route\'s', () => {
    sh('ip', ['-n', env.host, 'addr', 'add', '10.253.0.1/24', 'dev', 'm0']);
    sh('ip', ['-n', env.host, 'route', 'add', 'default', 'via', '10.253.0.254']);
    const a = env.container('a');
    const conf = { cniVersion: '1.1.0', name: 'mvnet', type: 'macvlan', dataDir: env.data };
    const r = env.add(conf, 'ca', a);
    expect(r.ips ?? []).toEqual([]);
    const link = sh('ip', ['-n', a, '-d', 'link', 'show', 'eth0']);
    expect(link).toMatch(/state UP|LOWER_UP/);
    expect(sh('ip', ['-n', a, '-o', 'addr', 'show', 'eth0'])).not.toMatch(/inet /);
    env.ok('CHECK', withPrev(conf, r), { id: 'ca', netns: env.sb.nsPath(a) });
    env.ok('DEL', conf, { id: 'ca', netns: env.sb.nsPath(a) });
  });

  it('linkInContainer: the master is looked up and used inside the container', () => {
    const a = env.container('a');
    sh('ip', ['-n', env.host, 'link', 'add', 'cm0', 'type', 'veth', 'peer', 'name', 'cm0p', 'netns', a]);
    sh('ip', ['-n', env.host, 'link', 'set', 'cm0', 'up']);
    sh('ip', ['-n', a, 'link', 'set', 'cm0p', 'up']);
    const conf = env.conf({ master: 'cm0p', linkInContainer: true });
    const r = env.run('ADD', conf, { id: 'ca', netns: env.sb.nsPath(a), ifname: 'net1' });
    expect(r.status).toBe(0);
    expect(sh('ip', ['-n', a, '-d', 'link', 'show', 'net1'])).toMatch(/net1@cm0p[\s\S]*macvlan mode bridge/);
    env.ok('CHECK', withPrev(conf, r.json), { id: 'ca', netns: env.sb.nsPath(a), ifname: 'net1' });
    env.ok('DEL', conf, { id: 'ca', netns: env.sb.nsPath(a), ifname: 'net1' });
    expect(env.containerLinks(a).sort()).toEqual(['cm0p', 'lo']);
    expect(env.reservations()).toEqual([]);
  });

  it('CHECK fails when the address was removed or the mode differs', () => {
    const a = env.container('a');
    const conf = env.conf();
    const r = env.add(conf, 'ca', a);
    const modeOff = env.run('CHECK', withPrev(env.conf({ mode: 'vepa' }), r), { id: 'ca', netns: env.sb.nsPath(a) });
    expect(modeOff.status).toBe(1);
    expect(modeOff.json.msg).toMatch(/mode bridge, expected vepa/);
    sh('ip', ['-n', a, 'addr', 'del', '10.252.0.2/24', 'dev', 'eth0']);
    const gone = env.run('CHECK', withPrev(conf, r), { id: 'ca', netns: env.sb.nsPath(a) });
    expect(gone.status).toBe(1);
    expect(gone.json.msg).toMatch(/lacks address 10\.252\.0\.2\/24/);
    expect(env.run('CHECK', conf, { id: 'ca', netns: env.sb.nsPath(a) }).json.msg).toMatch(/prevResult missing/);
  });

  it('STATUS: ready while the master is up; 50 when it is down or missing', () => {
    env.ok('STATUS', env.conf(), {});
    sh('ip', ['-n', env.host, 'link', 'set', 'm0', 'down']);
    expect(env.run('STATUS', env.conf(), {}).json).toMatchObject({ code: 50, msg: expect.stringMatching(/master "m0" is down/) });
    expect(env.run('STATUS', env.conf({ master: 'nosuch0' }), {}).json).toMatchObject({ code: 50, msg: expect.stringMatching(/"nosuch0" does not exist/) });
  });

  it('GC releases the reservations of attachments no longer valid', () => {
    const [a, b] = [env.container('a'), env.container('b')];
    const conf = env.conf();
    env.add(conf, 'ca', a);
    const rb = env.add(conf, 'cb', b);
    env.ok('GC', { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'cb', ifname: 'eth0' }] }, {});
    expect(env.reservations()).toEqual([ip(rb)]);
  });

  it.each(VERSIONS)('cniVersion %s: ADD, CHECK (0.4.0+), DEL, with host-local in-process', (version) => {
    const a = env.container('a');
    const conf = env.conf({}, version);
    const r = env.add(conf, 'ca', a);
    expect(r.cniVersion).toBe(version);
    if (version < '0.3.0') expect(r.ip4.ip).toBe('10.252.0.2/24');
    else expect(r.ips[0].address).toBe('10.252.0.2/24');
    if (version >= '0.4.0') env.ok('CHECK', withPrev(conf, r), { id: 'ca', netns: env.sb.nsPath(a) });
    env.ok('DEL', version >= '0.4.0' ? withPrev(conf, r) : conf, { id: 'ca', netns: env.sb.nsPath(a) });
    expect(env.containerLinks(a)).toEqual(['lo']);
    expect(env.reservations()).toEqual([]);
  });

  it.each(['0.3.1', '1.0.0'])('cniVersion %s with the reference host-local exec\'d: ping, CHECK, DEL', (version) => {
    const [a, b] = [env.container('a'), env.container('b')];
    const conf = env.conf({}, version, 'host-local-ref');
    const ra = env.add(conf, 'ca', a);
    const rb = env.add(conf, 'cb', b);
    expect(ra.ips[0].address).toBe('10.252.0.2/24');
    expect(env.ping(a, ip(rb))).toBe(true);
    if (version >= '0.4.0') env.ok('CHECK', withPrev(conf, ra), { id: 'ca', netns: env.sb.nsPath(a) });
    env.ok('DEL', conf, { id: 'ca', netns: env.sb.nsPath(a) });
    env.ok('DEL', conf, { id: 'cb', netns: env.sb.nsPath(b) });
    expect(env.reservations()).toEqual([]);
  });
});

describe('macvlan trunk mode (802.1q sub-interface parent)', () => {
  const vlan = probeVlan();
  let env: Env;
  beforeAll(() => ensureBuilt('macvlan'), 180_000);
  beforeEach(() => { env = new Env(); });
  afterEach(() => env.sb.cleanup());

  // Only a kernel without 802.1q can show this; trunk mode itself runs in the l2 tier (test/l2/macvlan-trunk.test.ts).
  (vlan.ok ? it.skip : it)('without 802.1q in the kernel, ADD fails clearly and leaves nothing', () => {
    const a = env.container('a');
    const r = env.run('ADD', env.conf({ vlan: 10 }), { id: 'ca', netns: env.sb.nsPath(a) });
    expect(r.status).toBe(1);
    expect(r.json.msg).toMatch(/cannot create 802\.1q sub-interface "m0\.10" on master "m0": the kernel has no 802\.1q/);
    expect(env.hostLinks().sort()).toEqual(['lo', 'm0', 'm0p']);
    expect(env.containerLinks(a)).toEqual(['lo']);
    expect(env.reservations()).toEqual([]);
    expect(fs.existsSync(path.join(env.data, 'trunk')) || fs.existsSync(path.join(env.data, 'trunk.lock'))).toBe(false);
  });
  // With 802.1q: test/l2/macvlan-trunk.test.ts (the l2 tier, user-mode-linux).
});
