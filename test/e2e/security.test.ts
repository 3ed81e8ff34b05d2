// Issue #12: the hostile inputs of the issue, exactly, against the built
// executables in a throwaway host namespace. Each case failed before the fix
// (the issue says how); each asserts the clean CNI error (or success) and
// that nothing was written, read, run or left behind.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, REFERENCE_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { dnsmasqPids } from '../helpers/dns';
import { OverlayHost, OVERLAY_BIN } from '../helpers/overlay-host';
import { cniEnv, execCni, type CniRun } from '../helpers/cni';

const PLUGINS = ['bridge', 'macvlan', 'vxlan-overlay', 'loopback', 'portmap', 'host-local', 'tuning', 'bandwidth', 'firewall'];

/** These tests send environments no runtime would (a variable missing, hostile values): exactly `env`. */
function runIn(host: string, bin: string, env: Record<string, string | undefined>, stdin: string | object, o: { cwd?: string; timeout?: number } = {}): CniRun {
  return execCni(host, bin, { command: env.CNI_COMMAND ?? '' }, stdin, { rawEnv: env, cwd: o.cwd, timeout: o.timeout ?? 20_000 });
}

function filesBelow(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      out.push(path.relative(root, path.join(d, e.name)));
      if (e.isDirectory()) walk(path.join(d, e.name));
    }
  };
  if (fs.existsSync(root)) walk(root);
  return out.sort();
}

beforeAll(() => ensureBuilt(...PLUGINS), 600_000);

describe('a throwaway host namespace', () => {
  const sb = new Sandbox('sx');
  let host: string;
  let ctr: string;
  let state: string;
  let evilDir: string;
  let marker: string;
  /** Default CNI_NETNS: a real container namespace (the case decides what else is wrong). */
  const env = (cmd: string, o: { id?: string; netns?: string; ifname?: string; args?: string } = {}) =>
    cniEnv({ command: cmd, containerId: o.id ?? `${sb.tag}c`, netns: o.netns ?? sb.nsPath(ctr), ifname: o.ifname ?? 'eth0', path: '/usr/lib/cni', args: o.args ?? '' });
  const run = (plugin: string, e: Record<string, string | undefined>, stdin: string | object, o?: { cwd?: string; timeout?: number }) => runIn(host, path.join(DIST_BIN, plugin), e, stdin, o);
  const dirs = () => ({ state: path.join(state, 'state'), ipam: path.join(state, 'ipam'), dns: path.join(state, 'dns'), run: path.join(state, 'run') });

  beforeAll(() => {
    host = sb.netns('h');
    ctr = sb.netns('c');
    state = sb.tmpdir('state');
    evilDir = sb.tmpdir('x');
    marker = path.join(evilDir, 'ran');
    fs.writeFileSync(path.join(evilDir, 'evil.sh'), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    sb.onCleanup(() => {
      for (const pid of dnsmasqPids(state)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    });
  });
  afterAll(() => sb.cleanup());

  describe('item 1: nothing from a config reaches dnsmasq as an option or a program', () => {
    const hostile: Array<[string, Record<string, unknown>, RegExp]> = [
      ['the evil.sh dhcp-script injection in resolvConf', { resolvConf: '/etc/resolv.conf\ndhcp-range=10.251.8.50,10.251.8.60\nleasefile-ro\ndhcp-script=EVIL' }, /"nameResolution.resolvConf".*control character/],
      ['conf-file=/etc/shadow in resolvConf', { resolvConf: '/x\nconf-file=/etc/shadow' }, /"nameResolution.resolvConf".*control character/],
      ['a newline in runDir', { runDir: 'RUNDIR\nconf-file=/etc/shadow' }, /"nameResolution.runDir".*control character/],
      ['nameResolution.dnsmasq naming a program', { dnsmasq: 'EVIL' }, /"nameResolution.dnsmasq".*never names a program/],
      ['a comma in runDir', { runDir: 'RUNDIR,x' }, /dnsmasq.conf/],
    ];
    const fill = (v: Record<string, unknown>) => JSON.parse(JSON.stringify(v).replace(/EVIL/g, path.join(evilDir, 'evil.sh')).replace(/RUNDIR/g, dirs().dns));

    it.each(hostile)('bridge: %s → 7 naming the field; nothing written, read or run', (_what, nr, msg) => {
      const ns = sb.netns('dns');
      const conf = {
        cniVersion: '1.1.0', name: 'sxdns', type: 'bridge', bridge: 'sxbr0', isGateway: true, stateDir: dirs().state,
        nameResolution: { runDir: dirs().dns, upstream: ['10.78.0.99'], ...fill(nr) }, ipam: { type: 'host-local', subnet: '10.251.8.0/24', dataDir: dirs().ipam },
      };
      if (nr.resolvConf) delete (conf.nameResolution as Record<string, unknown>).upstream;
      const r = run('bridge', env('ADD', { netns: sb.nsPath(ns) }), conf);
      expect(r.json).toMatchObject({ code: 7 });
      expect(r.json.msg).toMatch(msg);
      expect(fs.existsSync(marker)).toBe(false);
      expect(filesBelow(state)).toEqual([]);
      expect(dnsmasqPids(state)).toEqual([]);
      expect(sh('ip', ['-n', host, '-o', 'link'])).not.toContain('sxbr0');
      shTry('ip', ['netns', 'del', ns]);
    });

    it.each(hostile)('vxlan-overlay (the same parser): %s → 7, nothing written', (_what, nr) => {
      const r = run('vxlan-overlay', env('ADD'), {
        cniVersion: '1.1.0', name: 'sxov', type: 'vxlan-overlay', runDir: dirs().run, nameResolution: { runDir: dirs().dns, ...fill(nr) },
      });
      expect(r.json).toMatchObject({ code: 7 });
      expect(r.json.msg).toMatch(/^vxlan-overlay: "nameResolution\./);
      expect(fs.existsSync(marker)).toBe(false);
      expect(filesBelow(state)).toEqual([]);
    });
  });

  describe('item 2: log files', () => {
    it('"name": "../x" with a logFile → 7 and no file; a relative logFile → 7 and nothing in the working directory', () => {
      const logDir = sb.tmpdir('log');
      const cwd = sb.tmpdir('cwd');
      for (const plugin of PLUGINS) {
        const bad = run(plugin, { ...env('ADD'), NODE_CNI_LOG_DIR: logDir }, { cniVersion: '1.0.0', name: '../x', type: plugin, logFile: path.join(logDir, 'cni.log') }, { cwd });
        expect([plugin, bad.json?.code]).toEqual([plugin, 7]);
        const rel = run(plugin, env('ADD'), { cniVersion: '1.0.0', name: 'sxn', type: plugin, logFile: 'cni.log' }, { cwd });
        expect([plugin, rel.json?.code, rel.json?.msg]).toEqual([plugin, 7, expect.stringContaining('"logFile" "cni.log" is not an absolute path')]);
      }
      expect(fs.readdirSync(logDir)).toEqual([]);
      expect(fs.readdirSync(cwd)).toEqual([]);
    });
  });

  describe('items 5 and 9: a CNI_NETNS that is no network namespace', () => {
    let fifo: string;
    let empty: string;
    beforeAll(() => {
      const d = sb.tmpdir('ns');
      fifo = path.join(d, 'fifo');
      empty = path.join(d, 'empty');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      fs.writeFileSync(empty, '');
    });
    const confOf = (plugin: string): Record<string, unknown> => ({
      cniVersion: '1.1.0', name: 'sxns', type: plugin, master: 'lo', bridge: 'sxbr1', stateDir: dirs().state, runDir: dirs().run, dataDir: dirs().state,
      prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/x' }] }, ingressRate: 1000000, ingressBurst: 100000,
      ipam: plugin === 'vxlan-overlay' ? { dataDir: dirs().ipam } : { type: 'host-local', subnet: '10.251.9.0/24', dataDir: dirs().ipam },
    });

    // The overlay is checked the same way in its own block below (its ADD first needs a running agent).
    it.each(['bridge', 'macvlan', 'loopback', 'tuning', 'bandwidth', 'firewall'])('%s: a FIFO, an empty file, /proc/self/ns/mnt → ADD: one code-4 error naming the path, fast; DEL succeeds', (plugin) => {
      for (const ns of [fifo, empty, '/proc/self/ns/mnt']) {
        const r = run(plugin, env('ADD', { netns: ns }), confOf(plugin), { timeout: 10_000 });
        expect(r.ms).toBeLessThan(5000); // the reference answers in 10 ms; a blocking open never would
        if (plugin === 'firewall' && r.status === 0) {
          // Without a same-bridge/isolated policy the firewall never needs the namespace: fine, and DEL takes it back.
          expect(run(plugin, env('DEL', { netns: ns }), confOf(plugin)).status).toBe(0);
          continue;
        }
        expect([ns, r.status, r.json?.code]).toEqual([ns, 1, 4]);
        expect(r.json.msg).toContain(`CNI_NETNS "${ns}" is not a network namespace`);
        const check = run(plugin, env('CHECK', { netns: ns }), { ...confOf(plugin), prevResult: { cniVersion: '1.1.0' } }, { timeout: 10_000 });
        // CHECK may stop earlier (IPAM knows no such attachment: 3); it never hangs and never takes the path for a namespace.
        expect([ns, [3, 4].includes(check.json?.code)]).toEqual([ns, true]);
        expect(check.ms).toBeLessThan(5000);
        expect(run(plugin, env('DEL', { netns: ns }), confOf(plugin), { timeout: 10_000 })).toMatchObject({ status: 0, stdout: '' });
      }
      // Nothing at all: no record, no lock, no directory (the firewall's lock and record directory go with its last DEL).
      expect(filesBelow(dirs().state)).toEqual([]);
    });

    it('portmap never opens CNI_NETNS: a FIFO does not hang it', () => {
      const r = run('portmap', env('ADD', { netns: fifo }), { cniVersion: '1.1.0', name: 'sxns', type: 'portmap', dataDir: dirs().state, prevResult: { cniVersion: '1.1.0' } }, { timeout: 10_000 });
      expect(r.status).toBe(0);
    });
  });

  describe('item 6: files a config names are read with a limit', () => {
    it.each([
      ['/dev/zero', 7, /"ipam.resolvConf" "\/dev\/zero" is in \/dev/],
      ['/dev/urandom', 7, /is in \/dev/],
      ['a symlink to /dev/zero', 5, /not a regular file/],
      ['a FIFO', 5, /not a regular file/],
    ])('host-local "resolvConf": %s → %i fast, nothing reserved', (file, code, msg) => {
      let f = file;
      const d = sb.tmpdir('rf');
      if (file === 'a FIFO') spawnSync('mkfifo', [f = path.join(d, 'fifo')]);
      if (file.startsWith('a symlink')) fs.symlinkSync('/dev/zero', f = path.join(d, 'zero'));
      const ipamDir = sb.tmpdir('hl');
      const r = run('host-local', env('ADD'), { cniVersion: '1.1.0', name: 'sxhl', type: 'bridge', ipam: { type: 'host-local', subnet: '10.251.10.0/24', dataDir: ipamDir, resolvConf: f } }, { timeout: 10_000 });
      expect(r.json).toMatchObject({ code });
      expect(r.json.msg).toMatch(msg);
      expect(r.ms).toBeLessThan(5000); // before: killed at 5.4-6.9 GiB
      expect(filesBelow(ipamDir)).toEqual([]);
    });

    it('a resolvConf larger than 64 KiB is refused; a normal one is read', () => {
      const d = sb.tmpdir('rc');
      fs.writeFileSync(path.join(d, 'big'), `nameserver 10.0.0.1\n${'#'.repeat(70_000)}\n`);
      fs.writeFileSync(path.join(d, 'ok'), 'nameserver 10.0.0.1\nsearch a.example\n');
      const conf = (f: string) => ({ cniVersion: '1.1.0', name: 'sxhl2', type: 'bridge', ipam: { type: 'host-local', subnet: '10.251.11.0/24', dataDir: dirs().ipam, resolvConf: path.join(d, f) } });
      expect(run('host-local', env('ADD'), conf('big')).json).toMatchObject({ code: 5, msg: expect.stringContaining('larger than 65536 bytes') });
      const ok = run('host-local', env('ADD'), conf('ok'));
      expect(ok.json?.dns).toEqual({ nameservers: ['10.0.0.1'], search: ['a.example'] });
      expect(run('host-local', env('DEL'), conf('ok')).status).toBe(0);
    });
  });

  describe('item 10: accepted when it should not be, refused when it should be accepted', () => {
    it('macvlan "ipam": "x" → 7 naming the field (it meant: no IPAM)', () => {
      const r = run('macvlan', env('ADD'), { cniVersion: '1.1.0', name: 'sxmv', type: 'macvlan', master: 'lo', ipam: 'x' });
      expect(r.json).toMatchObject({ code: 7, msg: expect.stringContaining('"ipam" must be an object') });
    });

    it('portmap "runtimeConfig": "x" → 7 (the mappings were ignored)', () => {
      const r = run('portmap', env('ADD'), { cniVersion: '1.1.0', name: 'sxpm', type: 'portmap', runtimeConfig: 'x', prevResult: { cniVersion: '1.1.0' } });
      expect(r.json).toMatchObject({ code: 7, msg: expect.stringContaining('"runtimeConfig" must be an object') });
    });

    it.each(['0.1.0', '0.2.0'])('portmap accepts cniVersion %s (a 0.x prevResult names no interfaces): ADD publishes, DEL removes, like the reference', (v) => {
      if (!sh('ip', ['-n', host, '-o', 'link']).includes('sxpm0')) {
        sh('ip', ['-n', host, 'link', 'add', 'sxpm0', 'type', 'bridge']);
        sh('ip', ['-n', host, 'addr', 'add', '10.88.9.1/24', 'dev', 'sxpm0']);
        sh('ip', ['-n', host, 'link', 'set', 'sxpm0', 'up']);
      }
      const dataDir = path.join(state, `pm${v}`);
      const conf = {
        cniVersion: v, name: 'sxpm', type: 'portmap', dataDir, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
        prevResult: { cniVersion: v, ip4: { ip: '10.88.9.5/24', gateway: '10.88.9.1' } },
      };
      const add = run('portmap', env('ADD', { id: `${sb.tag}pm` }), conf);
      expect(add.stderr).toBe('');
      expect(add.status).toBe(0);
      expect(add.json).toMatchObject({ cniVersion: v, ip4: { ip: '10.88.9.5/24' } });
      expect(sh('ip', ['netns', 'exec', host, 'nft', 'list', 'ruleset'])).toContain('10.88.9.5');
      expect(run('portmap', env('DEL', { id: `${sb.tag}pm` }), conf)).toMatchObject({ status: 0, stdout: '' });
      expect(sh('ip', ['netns', 'exec', host, 'nft', 'list', 'ruleset'])).not.toContain('10.88.9.5');
      expect(filesBelow(dataDir).filter((f) => f.includes('/'))).toEqual([]);
    });
  });

  describe('item 8: without CNI_COMMAND, help on stderr and nothing on stdout, exit 0, like the reference', () => {
    it.each(PLUGINS)('%s', (plugin) => {
      for (const argv of [[], ['--help'], ['--bogus']]) {
        const r = spawnSync(path.join(DIST_BIN, plugin), argv, { encoding: 'utf8', env: { PATH: process.env.PATH } });
        expect([argv, r.status, r.stdout]).toEqual([argv, 0, '']);
        expect(r.stderr).toContain(plugin);
      }
      // Only an explicit --version answers on stdout, as any program does.
      const v = spawnSync(path.join(DIST_BIN, plugin), ['--version'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
      expect([v.status, v.stdout]).toEqual([0, expect.stringMatching(new RegExp(`^${plugin} \\(node-cni-plugins\\) v`))]);
      const ref = spawnSync(path.join(REFERENCE_BIN, plugin === 'vxlan-overlay' ? 'bridge' : plugin), [], { encoding: 'utf8', env: {} }); // the reference has all but the overlay
      expect([ref.status, ref.stdout]).toEqual([0, '']);
    });
  });
});

describe('items 3, 6, 7 with real attachments', () => {
  const sb = new Sandbox('sx');
  let host: string;
  let state: string;
  beforeAll(() => {
    host = sb.netns('h');
    state = sb.tmpdir('st');
    fs.chmodSync(state, 0o755); // dnsmasq (nobody) reads hosts.d below it
    sb.onCleanup(() => {
      for (const pid of dnsmasqPids(state)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    });
  });
  afterAll(() => sb.cleanup());

  const bridgeConf = {
    cniVersion: '1.1.0', name: 'sxcol', type: 'bridge', bridge: 'sxbr2', isGateway: true, ipMasq: true,
    get stateDir() { return path.join(state, 'bridge'); },
    get nameResolution() { return { runDir: path.join(state, 'dns'), upstream: ['10.78.0.99'] }; },
    get ipam() { return { type: 'host-local', subnet: '10.251.12.0/24', dataDir: path.join(state, 'ipam') }; },
  };
  const env = (cmd: string, id: string, ns: string | undefined, ifname: string) => cniEnv({ command: cmd, containerId: id, netns: ns, ifname, path: '/usr/lib/cni' });
  const bridge = (cmd: string, id: string, ns: string | undefined, ifname: string, extra: Record<string, unknown> = {}) =>
    runIn(host, path.join(DIST_BIN, 'bridge'), env(cmd, id, ns, ifname), { ...JSON.parse(JSON.stringify(bridgeConf)), ...extra });
  const hostLinks = () => sh('ip', ['-n', host, '-o', 'link']);
  /** The network's record files (the directory, with its lock, goes with the last attachment). */
  const bridgeRecords = () => {
    const d = path.join(state, 'bridge', 'sxcol');
    return fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith('.json')) : [];
  };
  /** Container addresses in the host's nft ruleset (the masquerade elements; the subnet's own rules are 10.251.12.0/24). */
  const masqElements = () => (shTry('ip', ['netns', 'exec', host, 'nft', 'list', 'ruleset']).stdout.match(/10\.251\.12\.\d+(?!\/)/g) ?? []);

  it('item 3: (cid a, ifname e.x) and (cid a.e, ifname x) keep their own record, hosts file and masquerade; DEL of one leaves the other whole', () => {
    const a = { id: `${sb.tag}a`, ifname: 'e.x', ns: sb.netns('ca') };
    const b = { id: `${sb.tag}a.e`, ifname: 'x', ns: sb.netns('cb') };
    const ra = bridge('ADD', a.id, sb.nsPath(a.ns), a.ifname, { runtimeConfig: { aliases: { sxcol: ['one'] } } });
    const rb = bridge('ADD', b.id, sb.nsPath(b.ns), b.ifname, { runtimeConfig: { aliases: { sxcol: ['two'] } } });
    expect([ra.status, rb.status]).toEqual([0, 0]);
    const vethA = ra.json.interfaces[1].name;
    const vethB = rb.json.interfaces[1].name;
    expect(bridgeRecords()).toHaveLength(2);
    expect(fs.readdirSync(path.join(state, 'dns', 'sxcol', 'hosts.d'))).toHaveLength(2);

    // DEL of the first without its namespace: only the record says what to remove.
    expect(bridge('DEL', a.id, undefined, a.ifname)).toMatchObject({ status: 0, stdout: '' });
    expect(hostLinks()).not.toContain(vethA);
    expect(hostLinks()).toContain(vethB);
    expect(bridgeRecords()).toHaveLength(1);
    expect(fs.readdirSync(path.join(state, 'dns', 'sxcol', 'hosts.d'))).toHaveLength(1);
    expect(masqElements()).toContain(rb.json.ips[0].address.split('/')[0]);
    expect(masqElements()).not.toContain(ra.json.ips[0].address.split('/')[0]);
    expect(bridge('CHECK', b.id, sb.nsPath(b.ns), b.ifname, { prevResult: rb.json }).status).toBe(0);

    expect(bridge('DEL', b.id, sb.nsPath(b.ns), b.ifname)).toMatchObject({ status: 0, stdout: '' });
    expect(bridgeRecords()).toEqual([]);
    expect(fs.existsSync(path.join(state, 'dns', 'sxcol'))).toBe(false); // last member: the service is gone
    expect(masqElements()).toEqual([]);
  });

  it('item 9: a 1000-character container ID works through ADD, CHECK, DEL (the reference accepts it)', () => {
    const id = `${sb.tag}${'l'.repeat(1000 - sb.tag.length)}`;
    const ns = sb.netns('long');
    const add = bridge('ADD', id, sb.nsPath(ns), 'eth0');
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    expect(bridge('CHECK', id, sb.nsPath(ns), 'eth0', { prevResult: add.json }).status).toBe(0);
    expect(bridge('DEL', id, sb.nsPath(ns), 'eth0')).toMatchObject({ status: 0, stdout: '' });
    expect(bridgeRecords()).toEqual([]);
    expect(fs.readdirSync(path.join(state, 'ipam', 'sxcol')).filter((f) => /^\d/.test(f))).toEqual([]);
  });

  it('item 6: "interface already exists" is code 4 in bridge and macvlan (a second ADD of one attachment)', () => {
    const ns = sb.netns('dup');
    const first = bridge('ADD', `${sb.tag}d1`, sb.nsPath(ns), 'eth0');
    expect(first.status).toBe(0);
    const again = bridge('ADD', `${sb.tag}d2`, sb.nsPath(ns), 'eth0');
    expect(again.json).toMatchObject({ code: 4, msg: expect.stringContaining('already has an interface named "eth0"') });
    sh('ip', ['-n', host, 'link', 'add', 'sxm0', 'type', 'veth', 'peer', 'name', 'sxm1']);
    sh('ip', ['-n', host, 'link', 'set', 'sxm0', 'up']);
    const mv = runIn(host, path.join(DIST_BIN, 'macvlan'), env('ADD', `${sb.tag}d3`, sb.nsPath(ns), 'eth0'), { cniVersion: '1.1.0', name: 'sxmv', type: 'macvlan', master: 'sxm0' });
    expect(mv.json).toMatchObject({ code: 4 });
    expect(bridge('DEL', `${sb.tag}d1`, sb.nsPath(ns), 'eth0').status).toBe(0);
  });
});

describe('item 7: vxlan-overlay, a field nested 8000 deep', () => {
  const sb = new Sandbox('sx');
  let ov: OverlayHost;
  const NET = 'sxdeep';
  beforeAll(() => {
    ov = new OverlayHost(sb, { network: NET, cidr: '10.247.0.0/16', underlay: '10.79.0.1' });
    ov.start();
  }, 60_000);
  afterAll(() => sb.cleanup());

  const text = (o: Record<string, unknown>, deep: boolean) => {
    const base = JSON.stringify({ cniVersion: '1.1.0', name: NET, type: 'vxlan-overlay', runDir: ov.runDir, ipam: { dataDir: path.join(ov.runDir, 'ipam') }, ...o });
    return deep ? `${base.slice(0, -1)},"x":${'['.repeat(8000)}${']'.repeat(8000)}}` : base;
  };
  const run = (cmd: string, id: string, ns: string | undefined, stdin: string) =>
    runIn(ov.host, OVERLAY_BIN, cniEnv({ command: cmd, containerId: id, netns: ns, ifname: 'eth0', path: '/nonexistent' }), stdin);
  const reservations = () => filesBelow(path.join(ov.runDir, 'ipam')).filter((f) => /\/\d+\.\d+\.\d+\.\d+$/.test(f));
  const records = () => filesBelow(path.join(ov.runDir, NET)).filter((f) => f.endsWith('.json') && f.startsWith('attachments-'));

  it('ADD with it → 6 naming the limit, nothing made; after a good ADD, DEL with it succeeds and leaves nothing', () => {
    const ns = sb.netns('c1');
    const id = `${sb.tag}deep`;
    const refused = run('ADD', id, sb.nsPath(ns), text({}, true));
    expect(refused.json).toMatchObject({ code: 6, details: expect.stringContaining('deeper than 1000 levels') });
    expect(reservations()).toEqual([]);

    const add = run('ADD', id, sb.nsPath(ns), text({}, false));
    expect(add.status).toBe(0);
    expect(reservations()).toHaveLength(1);
    expect(records()).toHaveLength(1);
    const del = run('DEL', id, sb.nsPath(ns), text({}, true));
    expect(del).toMatchObject({ status: 0, stdout: '' });
    expect(reservations()).toEqual([]);
    expect(records()).toEqual([]);
    expect(sh('ip', ['-n', sb.nsPath(ns).split('/').pop()!, '-o', 'link'])).not.toContain('eth0');
  });

  it('a FIFO or /proc/self/ns/mnt as CNI_NETNS: ADD → 4 naming it, fast, nothing reserved; DEL succeeds', () => {
    const fifo = path.join(sb.tmpdir('ns'), 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    for (const ns of [fifo, '/proc/self/ns/mnt']) {
      const r = run('ADD', `${sb.tag}f`, ns, text({}, false));
      expect([ns, r.json?.code]).toEqual([ns, 4]);
      expect(r.json.msg).toContain(`CNI_NETNS "${ns}" is not a network namespace`);
      expect(r.ms).toBeLessThan(5000);
      expect(run('DEL', `${sb.tag}f`, ns, text({}, false)).status).toBe(0);
    }
    expect(reservations()).toEqual([]);
    expect(records()).toEqual([]);
  });

  it('"interface already exists" is code 4 here too', () => {
    const ns = sb.netns('c2');
    expect(run('ADD', `${sb.tag}o1`, sb.nsPath(ns), text({}, false)).status).toBe(0);
    expect(run('ADD', `${sb.tag}o2`, sb.nsPath(ns), text({}, false)).json).toMatchObject({ code: 4 });
    expect(run('DEL', `${sb.tag}o1`, sb.nsPath(ns), text({}, false)).status).toBe(0);
    expect(reservations()).toEqual([]);
  });
});
