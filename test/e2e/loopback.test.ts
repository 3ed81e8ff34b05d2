// dist/bin/loopback as a runtime runs it: CNI_* env, JSON on stdin, run from
// a throwaway "host" namespace against throwaway container namespaces.
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, REFERENCE_BIN, Sandbox, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { execCni } from '../helpers/cni';
import { SUPPORTED_VERSIONS } from '../../lib/cni/version';

const BIN = path.join(DIST_BIN, 'loopback');
const VERSIONS = SUPPORTED_VERSIONS;

const sb = new Sandbox('lbe');
let hostNs: string;

beforeAll(() => {
  ensureBuilt('loopback');
  hostNs = sb.netns('host');
}, 120_000);
afterAll(() => sb.cleanup());

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  json?: any;
}

/** `env` exactly (these tests also leave variables out, as libcni's VERSION does). */
function run(env: Record<string, string | undefined>, stdin: string, bin = BIN): Run {
  return execCni(hostNs, bin, { command: env.CNI_COMMAND ?? '' }, stdin, { rawEnv: env, timeout: 30_000 });
}

const conf = (v?: string, extra: Record<string, unknown> = {}) => JSON.stringify({ ...(v ? { cniVersion: v } : {}), name: 'lonet', type: 'loopback', ...extra });
const envFor = (cmd: string, ns: string | undefined, extra: Record<string, string> = {}) => ({
  CNI_COMMAND: cmd, CNI_CONTAINERID: 'ctr1', CNI_NETNS: ns === undefined ? undefined : ns, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', ...extra,
});

/** A fresh container namespace with lo down (Sandbox brings it up). */
function containerNs(suffix: string): { name: string; path: string } {
  const name = sb.netns(suffix);
  const r = shTry('ip', ['-n', name, 'link', 'set', 'lo', 'down']);
  if (r.status !== 0) throw new Error(r.stderr);
  return { name, path: sb.nsPath(name) };
}

function loIsUp(ns: string): boolean {
  const out = shTry('ip', ['-n', ns, '-o', 'link', 'show', 'lo']).stdout;
  if (!out) throw new Error(`no lo in ${ns}`);
  return /<[^>]*\bUP\b[^>]*>/.test(out);
}

describe.each(VERSIONS.map((v) => [v]).concat([['(absent)']]))('cniVersion %s', (label) => {
  const v = label === '(absent)' ? undefined : label;
  it('ADD -> CHECK -> DEL -> DEL again', () => {
    const ns = containerNs(`v${label.replace(/\W/g, '')}`);
    const add = run(envFor('ADD', ns.path), conf(v));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    expect(loIsUp(ns.name)).toBe(true);
    const res = add.json;
    expect(res.cniVersion).toBe(v ?? '0.1.0');
    if (!v || v < '0.3.0') {
      expect(res.ip4).toEqual({ ip: '127.0.0.1/8' });
    } else {
      expect(res.interfaces).toEqual([{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: ns.path }]);
      const v4 = res.ips.find((i: any) => i.address === '127.0.0.1/8');
      expect(v4).toMatchObject({ interface: 0 });
      if (v < '1.0.0') expect(v4.version).toBe('4');
      else expect(v4.version).toBeUndefined();
      expect(res.ips.map((i: any) => i.address)).toContain('::1/128');
    }

    if (v && v >= '0.4.0') {
      const check = run(envFor('CHECK', ns.path), conf(v, { prevResult: res }));
      expect(check).toMatchObject({ status: 0, stdout: '' });
    }
    const del = run(envFor('DEL', ns.path), conf(v));
    expect(del).toMatchObject({ status: 0, stdout: '' });
    expect(loIsUp(ns.name)).toBe(false);
    expect(run(envFor('DEL', ns.path), conf(v))).toMatchObject({ status: 0, stdout: '' });

    if (v && v >= '0.4.0') {
      const check = run(envFor('CHECK', ns.path), conf(v, { prevResult: res }));
      expect(check.status).not.toBe(0);
      expect(check.json).toMatchObject({ msg: 'loopback interface is down' });
    }
  });
});

describe('chaining and teardown', () => {
  it('passes a prevResult through unchanged (only cniVersion is the config one)', () => {
    const ns = containerNs('chain');
    const prevResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: ns.path, mtu: 1400 }],
      ips: [{ address: '10.22.0.5/16', gateway: '10.22.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1', table: 100, scope: 0 }],
      dns: { nameservers: ['10.22.0.1'], search: ['svc'] },
    };
    const add = run(envFor('ADD', ns.path), conf('1.1.0', { prevResult }));
    expect(add.status).toBe(0);
    expect(add.json).toEqual(prevResult);
    expect(loIsUp(ns.name)).toBe(true);
  });

  it('DEL succeeds with CNI_NETNS empty or unset, and with a deleted namespace', () => {
    expect(run(envFor('DEL', ''), conf('1.1.0'))).toMatchObject({ status: 0, stdout: '' });
    expect(run(envFor('DEL', undefined), conf('1.1.0'))).toMatchObject({ status: 0, stdout: '' });
    const ns = containerNs('gone');
    expect(run(envFor('ADD', ns.path), conf('1.1.0')).status).toBe(0);
    shTry('ip', ['netns', 'del', ns.name]);
    expect(fs.existsSync(ns.path)).toBe(false);
    expect(run(envFor('DEL', ns.path), conf('1.1.0'))).toMatchObject({ status: 0, stdout: '' });
  });

  it('ADD and CHECK fail on a namespace that does not exist', () => {
    const missing = `/run/netns/${sb.tag}-missing`;
    const add = run(envFor('ADD', missing), conf('1.1.0'));
    expect(add.status).not.toBe(0);
    expect(add.json).toMatchObject({ code: 4 });
    expect(add.json.msg).toContain(missing);
    expect(run(envFor('CHECK', missing), conf('1.1.0')).status).not.toBe(0);
  });

  it('refuses a non-loopback address on lo and leaves lo down', () => {
    const ns = containerNs('foreign');
    shTry('ip', ['-n', ns.name, 'addr', 'add', '10.77.0.1/32', 'dev', 'lo']);
    const add = run(envFor('ADD', ns.path), conf('1.1.0'));
    expect(add.status).not.toBe(0);
    expect(add.json.msg).toBe('loopback interface found with non-loopback address "10.77.0.1"');
    expect(add.stdout.trim().split('\n')).toHaveLength(1); // exactly one JSON object
    expect(loIsUp(ns.name)).toBe(false);
  });
});

describe('bad input (CONFORMANCE §8) is rejected with its code and leaves lo untouched', () => {
  let ns: { name: string; path: string };
  beforeAll(() => { ns = containerNs('bad'); });
  afterEach(() => expect(loIsUp(ns.name)).toBe(false));

  const cases: Array<[string, (p: string) => Record<string, string | undefined>, string, number]> = [
    ['E2 lower-case command', (p) => envFor('add', p), conf('1.1.0'), 4],
    ['E3 no container id and netns', () => envFor('ADD', undefined, { CNI_CONTAINERID: '' }), conf('1.1.0'), 4],
    ['E4 no ifname', (p) => ({ ...envFor('ADD', p), CNI_IFNAME: undefined }), conf('1.1.0'), 4],
    ['E6 bad container id', (p) => envFor('ADD', p, { CNI_CONTAINERID: 'a/b' }), conf('1.1.0'), 4],
    ['E8 ifname too long', (p) => envFor('ADD', p, { CNI_IFNAME: 'abcdefghijklmnop' }), conf('1.1.0'), 4],
    ['E10 empty stdin', (p) => envFor('ADD', p), '', 6],
    ['E10 truncated JSON', (p) => envFor('ADD', p), '{"name":', 6],
    ['E11 missing name', (p) => envFor('ADD', p), JSON.stringify({ cniVersion: '1.1.0', type: 'loopback' }), 7],
    ['E12 bad name', (p) => envFor('ADD', p), JSON.stringify({ cniVersion: '1.1.0', name: 'net/1', type: 'loopback' }), 7],
    ['E13 unknown version', (p) => envFor('ADD', p), conf('9.9.9'), 1],
    ['E14 numeric version', (p) => envFor('ADD', p), JSON.stringify({ cniVersion: 1.1, name: 'n', type: 'loopback' }), 6],
    ['E35 CHECK with 0.3.1', (p) => envFor('CHECK', p), conf('0.3.1'), 1],
  ];
  it.each(cases)('%s', (_label, env, stdin, code) => {
    const r = run(env(ns.path), stdin);
    expect(r.status).not.toBe(0);
    expect(r.json).toMatchObject({ code });
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('E20 CNI_NETNS naming the plugin\'s own namespace: code 8', () => {
    const r = run(envFor('ADD', sb.nsPath(hostNs)), conf('1.1.0'));
    expect(r.json).toMatchObject({ code: 8 });
    expect(loIsUp(hostNs)).toBe(true); // the host namespace's lo, brought up by Sandbox, untouched
  });

});

// #15: loopback takes no CNI_ARGS, so it ignores them, as the reference does (its own test suite sends CNI_ARGS=none).
describe('CNI_ARGS are ignored, like the reference loopback', () => {
  it.each(['none', 'IgnoreUnknown=1;K8S_POD_NAME=x', 'FOO=bar', ';;=a=b;'])('CNI_ARGS=%j: ADD, CHECK and DEL succeed, for the reference too', (args) => {
    for (const bin of [BIN, path.join(REFERENCE_BIN, 'loopback')]) {
      const ns = containerNs(`args${bin === BIN ? 'o' : 'r'}`);
      const cfg = conf('1.0.0');
      expect(run(envFor('ADD', ns.path, { CNI_ARGS: args }), cfg)).toMatchObject({ status: 0 });
      expect(loIsUp(ns.name)).toBe(true);
      expect(run(envFor('CHECK', ns.path, { CNI_ARGS: args }), conf('1.0.0', { prevResult: { cniVersion: '1.0.0' } }))).toMatchObject({ status: 0 });
      expect(run(envFor('DEL', ns.path, { CNI_ARGS: args }), cfg)).toMatchObject({ status: 0, stdout: '' });
      shTry('ip', ['netns', 'del', ns.name]);
    }
  });
});

describe('VERSION and a lone executable', () => {
  const libcniEnv = { CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy', CNI_CONTAINERID: '', CNI_ARGS: '' };

  it('answers VERSION as libcni asks it, and with garbage stdin', () => {
    const r = run(libcniEnv, '{"cniVersion":"1.1.0"}');
    expect(r.status).toBe(0);
    expect(r.json.cniVersion).toBe('1.1.0');
    expect(r.json.supportedVersions).toEqual(expect.arrayContaining(VERSIONS));
    expect(run(libcniEnv, 'garbage').status).toBe(0);
  });

  it('works copied alone into an empty directory (VERSION and a real ADD)', () => {
    const dir = sb.tmpdir('-lone');
    const lone = path.join(dir, 'loopback');
    fs.copyFileSync(BIN, lone);
    fs.chmodSync(lone, 0o755);
    const v = run(libcniEnv, '{"cniVersion":"1.1.0"}', lone);
    expect(v.status).toBe(0);
    expect(v.json.supportedVersions).toContain('1.1.0');
    const ns = containerNs('lone');
    const add = run(envFor('ADD', ns.path), conf('1.1.0'), lone);
    expect(add.status).toBe(0);
    expect(loIsUp(ns.name)).toBe(true);
  });

  it('gives the same ADD result as the reference plugin', () => {
    const ref = path.join(REFERENCE_BIN, 'loopback');
    if (!fs.existsSync(ref)) return console.warn(`skipped: no reference plugin at ${ref}`);
    const a = containerNs('refa');
    const b = containerNs('refb');
    const ours = run(envFor('ADD', a.path), conf('1.0.0')).json;
    const theirs = run(envFor('ADD', b.path), conf('1.0.0'), ref).json;
    // Go always prints an empty "dns": {}; it means the same as none.
    const normalise = ({ dns, ...r }: any) => ({
      ...r, ...(dns && Object.keys(dns).length ? { dns } : {}), interfaces: r.interfaces.map((i: any) => ({ ...i, sandbox: 'NS' })),
    });
    expect(normalise(ours)).toEqual(normalise(theirs));
  });
});
