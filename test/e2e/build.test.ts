// The single-file executables scripts/build.js makes: a portable shebang, they
// run copied alone into an empty directory, the V8 code cache is an
// optimisation that never breaks a run, and native code is loaded only from a
// private directory after its SHA-256 matched.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, shTry } from '../helpers/sandbox';

const sb = new Sandbox('bld');
afterAll(() => sb.cleanup());

const executables = fs.existsSync(DIST_BIN) ? fs.readdirSync(DIST_BIN).filter((f) => !f.endsWith('.tmp')).sort() : [];
const plugins = executables.filter((f) => f !== 'cnictl');
const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function run(bin: string, env: Record<string, string>, input = '') {
  return shTry(bin, [], { input, env: { PATH: process.env.PATH, ...env } });
}

function privateDir(suffix: string): string {
  const dir = path.join(sb.tmpdir(suffix), 'native');
  fs.mkdirSync(dir, { mode: 0o700 });
  return dir;
}

function supportedVersions(stdout: string): string[] {
  return (JSON.parse(stdout) as { supportedVersions: string[] }).supportedVersions;
}

it('dist/bin holds the plugins (run `node scripts/build.js` first)', () => {
  expect(plugins).toEqual(expect.arrayContaining(['bridge', 'host-local', 'loopback']));
});

describe.each(executables)('dist/bin/%s', (name) => {
  const file = path.join(DIST_BIN, name);

  it('starts with a portable shebang and is plain ASCII (no file next to it is needed)', () => {
    const text = fs.readFileSync(file, 'latin1');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(/[^\x00-\x7f]/.test(text)).toBe(false);
    expect(fs.statSync(file).mode & 0o111).toBe(0o111);
  });
});

describe.each(plugins)('%s copied alone into an empty directory', (name) => {
  it('answers VERSION with 1.1.0, before and after its code cache exists, and survives a corrupt cache', () => {
    const dir = sb.tmpdir(`-${name}`);
    const lone = path.join(dir, name);
    fs.copyFileSync(path.join(DIST_BIN, name), lone);
    fs.chmodSync(lone, 0o755);
    const native = privateDir(`-${name}-n`);
    const env = { CNI_COMMAND: 'VERSION', CNI_NATIVE_DIR: native };

    const first = run(lone, env);
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(supportedVersions(first.stdout)).toContain('1.1.0');
    const caches = fs.readdirSync(native).filter((f) => f.endsWith('.jscache'));
    expect(caches).toHaveLength(1);
    expect(caches[0]).toMatch(new RegExp(`^${name}\\.[0-9a-f]{64}\\..*\\.VERSION\\.jscache$`));

    const second = run(lone, env);
    expect(second.status).toBe(0);
    expect(second.stdout).toBe(first.stdout);

    // Caches of other builds of this plugin: a day-old one goes when a cache is written, a fresh one stays.
    const otherBuild = (sha: string) => path.join(native, caches[0].replace(/^([^.]+)\.[0-9a-f]{64}\./, `$1.${sha}.`));
    const stale = otherBuild('a'.repeat(64));
    const recent = otherBuild('b'.repeat(64));
    fs.writeFileSync(stale, 'old');
    fs.utimesSync(stale, new Date(Date.now() - 2 * 86400e3), new Date(Date.now() - 2 * 86400e3));
    fs.writeFileSync(recent, 'new');

    // V8 rejects a cache that does not fit; the run must still answer and rewrite it.
    const cacheFile = path.join(native, caches[0]);
    fs.writeFileSync(cacheFile, crypto.randomBytes(4096));
    const damaged = run(lone, env);
    expect(damaged.status).toBe(0);
    expect(damaged.stdout).toBe(first.stdout);
    expect(fs.statSync(cacheFile).size).not.toBe(4096);
    expect(fs.existsSync(stale)).toBe(false);
    expect(fs.existsSync(recent)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual([name]); // nothing written next to the executable
  });
});

describe('native code', () => {
  const BIN = path.join(DIST_BIN, 'loopback');
  const input = JSON.stringify({ cniVersion: '1.1.0', name: 'bldnet', type: 'loopback' });
  let host: string;
  let container: string;
  beforeAll(() => {
    host = sb.netns('h');
    container = sb.netns('c');
  });
  const add = (nativeDir: string) => sb.inNs(host, BIN, [], {
    input,
    env: { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bld1', CNI_NETNS: sb.nsPath(container), CNI_IFNAME: 'lo', CNI_NATIVE_DIR: nativeDir },
  });

  it('is unpacked into the private directory under its SHA-256, and a tampered copy is detected and replaced', () => {
    const dir = privateDir('-tamper');
    const r = add(dir);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const addons = fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
    expect(addons.length).toBeGreaterThan(0);
    for (const f of addons) expect(`${sha256(path.join(dir, f))}.node`).toBe(f);

    const victim = path.join(dir, addons[0]);
    fs.chmodSync(victim, 0o700);
    fs.writeFileSync(victim, 'not the code we shipped');
    const again = add(dir);
    expect(again.status).toBe(0);
    expect(`${sha256(victim)}.node`).toBe(addons[0]);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('is refused from a directory others can write, while VERSION still answers (without a cache)', () => {
    const dir = privateDir('-open');
    fs.chmodSync(dir, 0o777);
    const r = add(dir);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/refusing to load native code from/);
    expect(fs.readdirSync(dir)).toEqual([]);

    const v = run(BIN, { CNI_COMMAND: 'VERSION', CNI_NATIVE_DIR: dir });
    expect(v.status).toBe(0);
    expect(supportedVersions(v.stdout)).toContain('1.1.0');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('defaults to /run/node-cni-plugins/native, owned by root and private (0700)', () => {
    const r = run(BIN, { CNI_COMMAND: 'VERSION' });
    expect(r.status).toBe(0);
    const st = fs.lstatSync('/run/node-cni-plugins/native');
    expect(st.isDirectory()).toBe(true);
    expect(st.uid).toBe(0);
    expect(st.mode & 0o777).toBe(0o700);
  });
});
