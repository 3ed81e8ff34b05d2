// The release scripts/build.js makes: one single executable application and a
// link per program, in a tarball that dist/bin is the unpacked copy of. It
// dispatches on the name it was started as, answers --version everywhere, and
// loads native code only from a private directory after its SHA-256 matched.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { DIST_BIN, ROOT, Sandbox, sh, shTry } from '../helpers/sandbox';

const sb = new Sandbox('rl');
afterAll(() => sb.cleanup());

const EXECUTABLE = 'node-cni-plugins';
const LICENSES = `${EXECUTABLE}-LICENSES.txt`;
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; optionalDependencies: Record<string, string> };
const NODE_VERSION = pkg.optionalDependencies[`node-linux-${process.arch}`];
const TARBALL = path.join(ROOT, 'dist', 'release', `${EXECUTABLE}-linux-${process.arch}-v${pkg.version}.tgz`);
const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Every program the sources define (what scripts/build.js discovers), so a new plugin is covered without editing this test. */
function programs(): string[] {
  const found: string[] = [];
  for (const dir of ['plugins', 'ipam']) {
    for (const name of fs.readdirSync(path.join(ROOT, dir))) if (fs.existsSync(path.join(ROOT, dir, name, 'main.ts'))) found.push(name);
  }
  return [...found, 'cnictl'].sort();
}
const PROGRAMS = programs();

function run(bin: string, env: Record<string, string>, args: string[] = [], input = '') {
  return shTry(bin, args, { input, env: { PATH: process.env.PATH, ...env } });
}

function privateDir(suffix: string): string {
  const dir = path.join(sb.tmpdir(suffix), 'native');
  fs.mkdirSync(dir, { mode: 0o700 });
  return dir;
}

function supportedVersions(stdout: string): string[] {
  return (JSON.parse(stdout) as { supportedVersions: string[] }).supportedVersions;
}

beforeAll(() => ensureBuilt(...PROGRAMS), 300000);

describe('the tarball', () => {
  it('holds one executable and a link per program at its top, and its .sha256 matches', () => {
    const listing = sh('tar', ['-tvzf', TARBALL]).trim().split('\n');
    const entries = listing.map((l) => l.split(/\s+/).slice(5).join(' ')).sort();
    expect(entries).toEqual([EXECUTABLE, LICENSES, ...PROGRAMS.map((p) => `${p} -> ${EXECUTABLE}`)].sort());
    expect(listing.every((l) => l.includes('0/0'))).toBe(true); // owned by root when untarred as root
    expect(fs.readFileSync(`${TARBALL}.sha256`, 'utf8')).toBe(`${sha256(TARBALL)}  ${path.basename(TARBALL)}\n`);
    expect(fs.statSync(TARBALL).size).toBeLessThanOrEqual(60 * 1024 * 1024);
  });

  it('is what dist/bin holds (dist/bin is the tarball unpacked)', () => {
    expect(fs.readdirSync(DIST_BIN).sort()).toEqual([EXECUTABLE, LICENSES, ...PROGRAMS].sort());
    // Node's license and the bundled npm packages' travel with what they are part of.
    const licenses = fs.readFileSync(path.join(DIST_BIN, LICENSES), 'utf8');
    expect(licenses).toContain('Node.js is licensed for use as follows');
    expect(licenses).toContain('yargs');
    const dir = sb.tmpdir('-untar');
    sh('tar', ['-xzf', TARBALL, '-C', dir]);
    expect(sha256(path.join(dir, EXECUTABLE))).toBe(sha256(path.join(DIST_BIN, EXECUTABLE)));
    for (const p of PROGRAMS) expect(fs.readlinkSync(path.join(DIST_BIN, p))).toBe(EXECUTABLE);
  });
});

describe.each(PROGRAMS)('%s', (name) => {
  it('--version names our version, the commit, the Node inside and the CNI versions', () => {
    const r = run(path.join(DIST_BIN, name), {}, ['--version']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${name} \\(node-cni-plugins\\) v${pkg.version.replace(/\./g, '\\.')}, commit ([0-9a-f]{12}(-dirty)?|unknown), Node v${NODE_VERSION.replace(/\./g, '\\.')}; CNI spec versions [0-9., ]*1\\.1\\.0\n$`));
  });
});

it('cnictl, whose --version line comes from the snapshot (cli/cnictl/info.ts), compiles and runs its on-demand bundle when started', () => {
  const help = run(path.join(DIST_BIN, 'cnictl'), {}, ['--help']);
  expect(help.status).toBe(0);
  expect(help.stdout + help.stderr).toMatch(/cnictl <command>/);
  const unknown = run(path.join(DIST_BIN, 'cnictl'), {}, ['nosuchcommand']);
  expect(unknown.status).toBe(2);
});

describe('started by another name', () => {
  const exe = path.join(DIST_BIN, EXECUTABLE);

  it('runs as any program through a symlink or a hard link in another directory', () => {
    // A hard link must be on the executable's file system.
    const dir = fs.mkdtempSync(path.join(ROOT, 'dist', `.${sb.tag}-links-`));
    sb.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.symlinkSync(exe, path.join(dir, 'loopback'));
    fs.linkSync(exe, path.join(dir, 'host-local'));
    for (const p of ['loopback', 'host-local']) {
      const r = run(path.join(dir, p), { CNI_COMMAND: 'VERSION' });
      expect(r.status).toBe(0);
      expect(supportedVersions(r.stdout)).toContain('1.1.0');
    }
    expect(run(path.join(dir, 'host-local'), {}, ['--version']).stdout).toMatch(/^host-local /);
  });

  it('runs a program named as its first argument, and lists every program with --version', () => {
    const r = run(exe, { CNI_COMMAND: 'VERSION' }, ['bridge']);
    expect(r.status).toBe(0);
    expect(supportedVersions(r.stdout)).toContain('1.1.0');
    const all = run(exe, {}, ['--version']);
    expect(all.stdout.trim().split('\n').map((l) => l.split(' ')[0])).toEqual(PROGRAMS);
  });

  it('refuses an unknown name with a clear error (a CNI error object when run as a plugin)', () => {
    const dir = sb.tmpdir('-unknown');
    fs.symlinkSync(exe, path.join(dir, 'rl-nosuch'));
    const r = run(path.join(dir, 'rl-nosuch'), { CNI_COMMAND: 'ADD' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no program named "rl-nosuch" in this executable');
    expect(r.stderr).toContain('bridge');
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 999, msg: 'unknown program name' });
    const bare = run(exe, {}, ['rl-nosuch']);
    expect(bare.status).toBe(1);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toContain('no program named "rl-nosuch"');
  });
});

describe('native code', () => {
  const BIN = path.join(DIST_BIN, 'loopback');
  const input = JSON.stringify({ cniVersion: '1.1.0', name: 'rlnet', type: 'loopback' });
  let host: string;
  let container: string;
  beforeAll(() => {
    host = sb.netns('h');
    container = sb.netns('c');
  });
  const add = (nativeDir: string) => sb.inNs(host, BIN, [], {
    input,
    env: { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'rl1', CNI_NETNS: sb.nsPath(container), CNI_IFNAME: 'lo', CNI_NATIVE_DIR: nativeDir },
  });

  it('is unpacked into the private directory under its SHA-256, and a tampered copy is replaced and the call succeeds', () => {
    const dir = privateDir('-tamper');
    const r = add(dir);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const addons = fs.readdirSync(dir).filter((f) => f.endsWith('.node'));
    expect(addons.length).toBeGreaterThan(0);
    for (const f of addons) expect(`${sha256(path.join(dir, f))}.node`).toBe(f);

    for (const f of addons) {
      const victim = path.join(dir, f);
      fs.chmodSync(victim, 0o700);
      fs.writeFileSync(victim, 'not the code we shipped');
    }
    const again = add(dir);
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    for (const f of addons) expect(`${sha256(path.join(dir, f))}.node`).toBe(f);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('is refused from a directory owned by another user, with a clear error, while VERSION still answers', () => {
    const dir = privateDir('-other');
    fs.chownSync(dir, 65534, 65534);
    const r = add(dir);
    expect(r.status).not.toBe(0);
    expect(JSON.parse(r.stdout).details ?? JSON.parse(r.stdout).msg).toMatch(/refusing to load native code from ".*" \(a directory owned by uid 65534, mode 700\): it must be a directory owned by uid 0/);
    expect(fs.readdirSync(dir)).toEqual([]);
    const v = run(BIN, { CNI_COMMAND: 'VERSION', CNI_NATIVE_DIR: dir });
    expect(v.status).toBe(0);
    expect(supportedVersions(v.stdout)).toContain('1.1.0');
  });

  it('is refused from a directory others can write', () => {
    const dir = privateDir('-open');
    fs.chmodSync(dir, 0o777);
    const r = add(dir);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/refusing to load native code from/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('defaults to /run/node-cni-plugins/native, owned by root and private (0700)', () => {
    const r = add('');
    expect(r.status).toBe(0);
    const st = fs.lstatSync('/run/node-cni-plugins/native');
    expect(st.isDirectory()).toBe(true);
    expect(st.uid).toBe(0);
    expect(st.mode & 0o777).toBe(0o700);
  });
});
