// tuning e2e: the built dist/bin/tuning chained after a hand-wired veth (a
// hand-written prevResult), run in a throwaway "host" namespace: sysctls and
// interface attributes change in the container only, traffic obeys the new
// MTU and MAC, CHECK compares, DEL restores the originals (also without the
// namespace, and twice), GC drops stale records, bad keys are refused.
import * as fs from 'fs';
import { ensureBuilt } from '../helpers/build';
import { runCni, type CniCall } from '../helpers/cni';
import { Sandbox, sh, shTry } from '../helpers/sandbox';
import { SUPPORTED_VERSIONS } from '../../lib/cni/version';

jest.setTimeout(120000);

const VERSIONS = SUPPORTED_VERSIONS;

interface Container { ns: string; hostVeth: string; prevResult: Record<string, unknown> }

describe('tuning (chained after a hand-wired veth)', () => {
  let sb: Sandbox;
  let host: string;
  let dataDir: string;
  let n = 0;

  beforeAll(() => ensureBuilt('tuning'), 180000);
  beforeEach(() => {
    sb = new Sandbox('cft');
    host = sb.netns('h');
    dataDir = sb.tmpdir('data');
  });
  afterEach(() => sb.cleanup());

  /** eth0 in a new namespace, its peer in the host namespace, 10.77.<n>.2/24 <-> .1. */
  function container(cniVersion = '1.1.0'): Container {
    const i = ++n;
    const ns = sb.netns(`c${i}`);
    const hostVeth = `cfv${i}`;
    sh('ip', ['-n', host, 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['-n', host, 'addr', 'add', `10.77.${i}.1/24`, 'dev', hostVeth]);
    sh('ip', ['-n', host, 'link', 'set', hostVeth, 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `10.77.${i}.2/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    const mac = link(ns).mac;
    const prevResult = cniVersion.startsWith('0.1') || cniVersion.startsWith('0.2')
      ? { cniVersion, ip4: { ip: `10.77.${i}.2/24` } }
      : {
        cniVersion,
        interfaces: [{ name: hostVeth }, { name: 'eth0', mac, sandbox: sb.nsPath(ns) }],
        ips: [{ ...(cniVersion.startsWith('0.') ? { version: '4' } : {}), address: `10.77.${i}.2/24`, interface: 1 }],
      };
    return { ns, hostVeth, prevResult };
  }

  function link(ns: string): { mac: string; mtu: number; flags: string[]; txqlen: number } {
    const j = JSON.parse(sh('ip', ['-n', ns, '-j', 'link', 'show', 'eth0']))[0];
    return { mac: j.address, mtu: j.mtu, flags: j.flags, txqlen: j.txqlen };
  }

  const sysctl = (ns: string, key: string): string => sh('ip', ['netns', 'exec', ns, 'sysctl', '-n', key]).trim().split(/\s+/).join(' ');
  const backups = (): string[] => (fs.existsSync(dataDir) ? fs.readdirSync(dataDir) : []);

  const conf = (cniVersion: string, prevResult: unknown, extra: Record<string, unknown> = {}) => ({
    cniVersion, name: 'cftnet', type: 'tuning', dataDir, ...extra, ...(prevResult ? { prevResult } : {}),
  });
  const call = (command: CniCall['command'], c: Container | undefined, extra: { id?: string; netns?: string; args?: string } = {}): CniCall => ({
    command, containerId: extra.id ?? 'cft-ctr', netns: extra.netns ?? (c ? sb.nsPath(c.ns) : ''), ifname: 'eth0', args: extra.args,
  });
  const tuning = (c: CniCall, cf: unknown) => runCni(host, 'tuning', c, cf);

  const ALL = {
    mac: 'c2:11:22:33:44:55', mtu: 1400, promisc: true, allmulti: true, txQLen: 2000,
    sysctl: { 'net.ipv4.conf.IFNAME.arp_ignore': '1', 'net/ipv4/ip_default_ttl': '33', 'net.ipv4.tcp_rmem': '4096 87380 6291456' },
  };

  it.each(VERSIONS)('cniVersion %s: ADD changes the container only, traffic follows, CHECK, DEL restores, DEL again and without netns', (v) => {
    const c = container(v);
    const before = link(c.ns);
    const hostTtl = sysctl(host, 'net.ipv4.ip_default_ttl');
    const add = tuning(call('ADD', c), conf(v, c.prevResult, ALL));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    if (v.startsWith('0.1') || v.startsWith('0.2')) expect(add.json).toEqual(c.prevResult); // no interfaces to carry the MAC
    else expect((add.json.interfaces as Array<{ name: string; mac?: string }>).find((i) => i.name === 'eth0')?.mac).toBe('c2:11:22:33:44:55');

    const now = link(c.ns);
    expect(now).toMatchObject({ mac: 'c2:11:22:33:44:55', mtu: 1400, txqlen: 2000 });
    expect(now.flags).toEqual(expect.arrayContaining(['PROMISC', 'ALLMULTI']));
    expect(sysctl(c.ns, 'net.ipv4.conf.eth0.arp_ignore')).toBe('1');
    expect(sysctl(c.ns, 'net.ipv4.ip_default_ttl')).toBe('33');
    expect(sysctl(c.ns, 'net.ipv4.tcp_rmem')).toBe('4096 87380 6291456');
    expect(sysctl(host, 'net.ipv4.ip_default_ttl')).toBe(hostTtl); // the host keeps its own
    // Real traffic: the host reaches the container at its new MAC, and the MTU holds (DF set).
    const i = n;
    expect(shTry('ip', ['netns', 'exec', host, 'ping', '-c', '1', '-W', '2', '-M', 'do', '-s', '1372', `10.77.${i}.2`]).status).toBe(0);
    expect(sh('ip', ['-n', host, 'neigh', 'show', `10.77.${i}.2`])).toContain('c2:11:22:33:44:55');
    expect(shTry('ip', ['netns', 'exec', c.ns, 'ping', '-c', '1', '-W', '2', '-M', 'do', '-s', '1373', `10.77.${i}.1`]).status).not.toBe(0);
    expect(backups()).toEqual(['cft-ctr_eth0.json']);

    const check = tuning(call('CHECK', c), conf(v, add.json, ALL));
    if (v === '0.1.0' || v === '0.2.0' || v.startsWith('0.3')) expect(check.json?.code).toBe(1); // CHECK came with 0.4.0
    else {
      expect(check.stdout + check.stderr).toBe('');
      expect(check.status).toBe(0);
      sh('ip', ['-n', c.ns, 'link', 'set', 'eth0', 'mtu', '1300']);
      const bad = tuning(call('CHECK', c), conf(v, add.json, ALL));
      expect(bad.status).not.toBe(0);
      expect(bad.json.msg).toMatch(/MTU of "eth0" is 1300, configured 1400/);
    }

    const del = tuning(call('DEL', c), conf(v, add.json, ALL));
    expect(del.stdout + del.stderr).toBe('');
    expect(del.status).toBe(0);
    const restored = link(c.ns);
    expect(restored).toMatchObject({ mac: before.mac, mtu: before.mtu, txqlen: before.txqlen });
    expect(restored.flags).not.toContain('PROMISC');
    expect(restored.flags).not.toContain('ALLMULTI');
    expect(backups()).toEqual([]);
    expect(tuning(call('DEL', c), conf(v, add.json, ALL)).status).toBe(0);
    expect(tuning(call('DEL', undefined), conf(v, undefined, ALL)).status).toBe(0);
  });

  it('DEL after the namespace is gone succeeds and leaves no record', () => {
    const c = container();
    expect(tuning(call('ADD', c), conf('1.1.0', c.prevResult, { mtu: 1300 })).status).toBe(0);
    expect(backups()).toHaveLength(1);
    sh('ip', ['netns', 'del', c.ns]);
    const del = tuning(call('DEL', c), conf('1.1.0', c.prevResult, { mtu: 1300 }));
    expect(del.stdout).toBe('');
    expect(del.status).toBe(0);
    expect(backups()).toEqual([]);
  });

  it('restores what the reference tuning saved, and the reference restores what we saved (same record)', () => {
    const c = container('1.0.0');
    const before = link(c.ns);
    const ref = runCni(host, 'tuning', call('ADD', c), conf('1.0.0', c.prevResult, { mtu: 1280, mac: 'c2:00:00:00:00:07' }), { bin: '/usr/lib/cni/tuning' });
    expect(ref.status).toBe(0);
    expect(tuning(call('DEL', c), conf('1.0.0', ref.json, {})).status).toBe(0);
    expect(link(c.ns)).toMatchObject({ mtu: before.mtu, mac: before.mac });
    expect(backups()).toEqual([]);

    expect(tuning(call('ADD', c), conf('1.0.0', c.prevResult, { mtu: 1280 })).status).toBe(0);
    expect(runCni(host, 'tuning', call('DEL', c), conf('1.0.0', c.prevResult, {}), { bin: '/usr/lib/cni/tuning' }).status).toBe(0);
    expect(link(c.ns).mtu).toBe(before.mtu);
    expect(backups()).toEqual([]);
  });

  it('MAC precedence: args.cni > runtimeConfig.mac > CNI_ARGS MAC > "mac"', () => {
    const cases: Array<[Record<string, unknown>, string | undefined, string]> = [
      [{ mac: 'c2:00:00:00:00:01' }, undefined, 'c2:00:00:00:00:01'],
      [{ mac: 'c2:00:00:00:00:01' }, 'IgnoreUnknown=1;MAC=c2:00:00:00:00:02', 'c2:00:00:00:00:02'],
      [{ mac: 'c2:00:00:00:00:01', runtimeConfig: { mac: 'c2:00:00:00:00:03' } }, 'MAC=c2:00:00:00:00:02', 'c2:00:00:00:00:03'],
      [{ runtimeConfig: { mac: 'c2:00:00:00:00:03' }, args: { cni: { mac: 'c2:00:00:00:00:04' } } }, 'MAC=c2:00:00:00:00:02', 'c2:00:00:00:00:04'],
    ];
    for (const [extra, args, want] of cases) {
      const c = container();
      const add = tuning(call('ADD', c, { args }), conf('1.1.0', c.prevResult, extra));
      expect([add.status, link(c.ns).mac]).toEqual([0, want]);
      expect(tuning(call('DEL', c), conf('1.1.0', add.json)).status).toBe(0);
    }
  });

  it.each([
    ['a key outside net.', { 'kernel.hostname': 'x' }, /sysctl "kernel.hostname" is not allowed: only keys under net\./],
    ['a path out of /proc/sys/net', { 'net/ipv4/../../kernel/hostname': 'x' }, /is not allowed/],
    ['a key that is not per-namespace (read-only here)', { 'net.core.rmem_max': '1' }, /"net.core.rmem_max" is read-only in the container's network namespace/],
    ['a key the namespace has not', { 'net.ipv4.conf.nosuchif.forwarding': '1' }, /does not exist in the container's network namespace/],
  ])('refuses %s with code 7, changing nothing', (_what, sysctls, msg) => {
    const c = container();
    const ttl = sysctl(c.ns, 'net.ipv4.ip_default_ttl');
    const r = tuning(call('ADD', c), conf('1.1.0', c.prevResult, { sysctl: { 'net.ipv4.ip_default_ttl': '44', ...sysctls }, mtu: 1300 }));
    expect(r.status).not.toBe(0);
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(msg) });
    expect(sysctl(c.ns, 'net.ipv4.ip_default_ttl')).toBe(ttl);
    expect(link(c.ns).mtu).toBe(1500);
    expect(backups()).toEqual([]);
  });

  it('a failed ADD rolls back the sysctls it already wrote', () => {
    const c = container();
    const ttl = sysctl(c.ns, 'net.ipv4.ip_default_ttl');
    // A new namespace inherits ip_forward from the host's (devconf_inherit_init_net 0): flip whatever it is.
    const forward = sysctl(c.ns, 'net.ipv4.ip_forward');
    const r = tuning(call('ADD', c), conf('1.1.0', c.prevResult, { sysctl: { 'net.ipv4.ip_default_ttl': '44', 'net.ipv4.ip_forward': forward === '1' ? '0' : '1', 'net.ipv4.tcp_syn_retries': '0' } }));
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(/the kernel refuses "0" for sysctl "net.ipv4.tcp_syn_retries"/) });
    expect(sysctl(c.ns, 'net.ipv4.ip_default_ttl')).toBe(ttl);
    expect(sysctl(c.ns, 'net.ipv4.ip_forward')).toBe(forward);
  });

  it('a 1000-character container ID (too long for the file name the reference uses): ADD keeps its backup, DEL restores it and leaves no file', () => {
    const c = container('1.1.0');
    const before = link(c.ns);
    const id = `cft-${'l'.repeat(996)}`;
    const add = tuning(call('ADD', c, { id }), conf('1.1.0', c.prevResult, { mtu: 1280 }));
    expect([add.status, add.stderr]).toEqual([0, '']);
    expect(link(c.ns).mtu).toBe(1280);
    expect(backups()).toHaveLength(1);
    expect(tuning(call('DEL', c, { id }), conf('1.1.0', add.json, { mtu: 1280 })).status).toBe(0);
    expect(link(c.ns).mtu).toBe(before.mtu);
    expect(backups()).toEqual([]);
  });

  it('refuses a sysctl key written twice, and two spellings of one key', () => {
    const c = container();
    const raw = `{"cniVersion":"1.1.0","name":"cftnet","type":"tuning","dataDir":"${dataDir}","sysctl":{"net.ipv4.ip_forward":"1","net.ipv4.ip_forward":"0"},"prevResult":${JSON.stringify(c.prevResult)}}`;
    const r = runCni(host, 'tuning', { command: 'ADD', containerId: 'x', netns: sb.nsPath(c.ns), path: '/x' }, raw);
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringMatching(/"net.ipv4.ip_forward" is given twice/) });
    const alias = tuning(call('ADD', c), conf('1.1.0', c.prevResult, { sysctl: { 'net.ipv4.ip_forward': '1', 'net/ipv4/ip_forward': '0' } }));
    expect(alias.json).toMatchObject({ code: 7, msg: expect.stringMatching(/name the same file/) });
  });

  it('honours /etc/cni/tuning/allowlist.conf (in a private mount namespace)', () => {
    const c = container();
    // The test never touches the host's /etc: a tmpfs over /etc/cni, seen only by this plugin run.
    const withAllowlist = ['unshare', '-m', '--propagation', 'private', 'sh', '-c',
      'mount -t tmpfs cftuning /etc/cni && mkdir /etc/cni/tuning && printf "%s\\n" "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]+$" "^net\\.core\\.somaxconn$" > /etc/cni/tuning/allowlist.conf && exec "$1"', 'sh'];
    const ok = runCni(host, 'tuning', call('ADD', c), conf('1.1.0', c.prevResult, { sysctl: { 'net.ipv4.conf.IFNAME.arp_ignore': '2', 'net.core.somaxconn': '512' } }), { wrap: withAllowlist });
    expect(ok.stderr).toBe('');
    expect(sysctl(c.ns, 'net.ipv4.conf.eth0.arp_ignore')).toBe('2');
    const no = runCni(host, 'tuning', call('ADD', c, { id: 'other' }), conf('1.1.0', c.prevResult, { sysctl: { 'net.ipv4.ip_default_ttl': '9' } }), { wrap: withAllowlist });
    expect(no.json).toMatchObject({ code: 7, msg: expect.stringMatching(/"net.ipv4.ip_default_ttl" is not allowed by \/etc\/cni\/tuning\/allowlist.conf/) });
    expect(sysctl(c.ns, 'net.ipv4.ip_default_ttl')).not.toBe('9');
    expect(fs.existsSync('/etc/cni/tuning')).toBe(false);
  });

  it('GC removes the records of this network\'s stale attachments only; STATUS answers', () => {
    const a = container();
    const b = container();
    const other = container();
    expect(tuning(call('ADD', a, { id: 'cft-a' }), conf('1.1.0', a.prevResult, { mtu: 1300 })).status).toBe(0);
    expect(tuning(call('ADD', b, { id: 'cft-b' }), conf('1.1.0', b.prevResult, { mtu: 1300 })).status).toBe(0);
    expect(tuning(call('ADD', other, { id: 'cft-o' }), { ...conf('1.1.0', other.prevResult, { mtu: 1300 }), name: 'cftother' }).status).toBe(0);
    expect(backups().sort()).toEqual(['cft-a_eth0.json', 'cft-b_eth0.json', 'cft-o_eth0.json']);
    const gc = tuning({ command: 'GC' }, { ...conf('1.1.0', undefined), 'cni.dev/valid-attachments': [{ containerID: 'cft-a', ifname: 'eth0' }] });
    expect(gc.stdout + gc.stderr).toBe('');
    expect(gc.status).toBe(0);
    expect(backups().sort()).toEqual(['cft-a_eth0.json', 'cft-o_eth0.json']);
    expect(tuning({ command: 'STATUS' }, conf('1.1.0', undefined)).status).toBe(0);
  });

  it('needs prevResult on ADD and CHECK', () => {
    const c = container();
    expect(tuning(call('ADD', c), conf('1.1.0', undefined, { mtu: 1300 })).json).toMatchObject({ code: 7, msg: expect.stringMatching(/Required prevResult missing/) });
    expect(tuning(call('CHECK', c), conf('1.1.0', undefined, { mtu: 1300 })).json).toMatchObject({ code: 7 });
  });
});
