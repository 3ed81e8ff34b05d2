// lib/util/paths (the text rule of every path kind) and lib/util/fs (the disk side).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseReadFile, parseStateDir, pathTextProblem, readFileProblem, stateDirProblem } from '../../lib/util/paths';
import { ensurePrivateDir, readBoundedFile, requireSafeDir } from '../../lib/util/fs';
import { show } from '../../lib/util/show';

describe('path text', () => {
  it.each([
    ['', 'is empty'], ['rel/dir', 'not an absolute path'], ['/a/../b', 'not normalized'], ['/a//b', 'not normalized'], ['/a/./b', 'not normalized'],
    ['/a/', 'not normalized'], ['/a\nb', 'control character'], ['/a\tb', 'control character'], ['/a\u0085b', 'control character'],
    ['/a\u2028b', 'control character'], ['/a\ud800b', 'well-formed'], [`/${'x'.repeat(256)}`, 'longer than 255'], [`/${'x/'.repeat(600)}x`, 'longer than 1024'],
  ])('%j %s', (p, why) => expect(pathTextProblem(p)).toContain(why));
  it.each(['/', '/run/cni', '/var/lib/cni/networks', '/tmp/sx-1/a b', '/caf\u00e9'])('%j is fine', (p) => expect(pathTextProblem(p)).toBeUndefined());
});

describe('kinds', () => {
  it.each(['/run/x', '/var/run/cni', '/var/lib/cni/networks', '/var/cache/x', '/tmp/sx-1', '/var/tmp/y'])('state %s is fine', (p) => expect(stateDirProblem(p)).toBeUndefined());
  it.each(['/run', '/tmp', '/etc/cni', '/', '/runx/y', '/usr/lib', '/root/x', '/var/log/x'])('state %s is refused', (p) => expect(stateDirProblem(p)).toContain('not below one of'));
  it.each(['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf', '/tmp/r'])('read %s is fine', (p) => expect(readFileProblem(p)).toBeUndefined());
  it.each(['/dev/zero', '/proc/self/environ', '/sys/kernel/x', '/'])('read %s is refused', (p) => expect(readFileProblem(p)).toBeDefined());
  it('code 7 naming the plugin, the field and the value', () => {
    expect(() => parseStateDir('/etc/x', { plugin: 'bridge', field: 'stateDir' })).toThrow(/^bridge: "stateDir" "\/etc\/x" is not below one of/);
    expect(() => parseReadFile(5, { plugin: 'host-local', field: 'ipam.resolvConf' })).toThrow(/"ipam.resolvConf" must be a string \(a path\), got 5/);
    try { parseStateDir('x', { plugin: 'p', field: 'f' }); } catch (e) { expect((e as { code: number }).code).toBe(7); }
  });
});

describe('on disk', () => {
  let tmp: string;
  beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-paths-')); });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a state dir reached through a symlink to outside the state places is refused', () => {
    fs.symlinkSync('/etc', path.join(tmp, 'link'));
    expect(() => requireSafeDir(path.join(tmp, 'link'))).toThrow(/resolves to "\/etc"/);
    expect(() => ensurePrivateDir(path.join(tmp, 'link', 'sx-never', 'deeper'))).toThrow(/resolves to "\/etc\/sx-never\/deeper"/);
    expect(fs.existsSync('/etc/sx-never')).toBe(false); // refused before anything was created
  });

  it('creates missing components one by one, refusing a symlink planted where one goes', () => {
    const want = path.join(tmp, 'a', 'b', 'c');
    ensurePrivateDir(want);
    expect(fs.statSync(want).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(tmp, 'a')).mode & 0o777).toBe(0o755);
    fs.symlinkSync('/etc', path.join(tmp, 'a', 'planted'));
    expect(() => ensurePrivateDir(path.join(tmp, 'a', 'planted', 'x'))).toThrow(/resolves to "\/etc\/x"/);
    fs.symlinkSync(path.join(tmp, 'nowhere'), path.join(tmp, 'a', 'dangling'));
    expect(() => ensurePrivateDir(path.join(tmp, 'a', 'dangling'))).toThrow(/not a directory \(a symlink\?\)/);
    expect(fs.existsSync(path.join(tmp, 'nowhere'))).toBe(false);
  });

  it('a directory others can write (or one below a non-sticky writable parent) is refused', () => {
    const open = path.join(tmp, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    expect(() => requireSafeDir(open)).toThrow(/writable by group or others/);
    fs.mkdirSync(path.join(open, 'sub'), { mode: 0o700 });
    expect(() => requireSafeDir(path.join(open, 'sub'))).toThrow(/writable by group or others/);
    fs.chmodSync(open, 0o1777); // sticky, like /tmp: what we own below it is safe
    expect(() => requireSafeDir(path.join(open, 'sub'))).not.toThrow();
  });

  it('a directory owned by someone else is refused', () => {
    if (process.geteuid?.() !== 0) return; // chown needs root (the unit tier may run without)
    const d = path.join(tmp, 'theirs');
    fs.mkdirSync(d, { mode: 0o755 });
    fs.chownSync(d, 65534, 65534);
    expect(() => requireSafeDir(d)).toThrow(/owned by uid 65534/);
  });

  it('reads a regular file up to the limit; refuses devices, FIFOs and larger files without reading them', () => {
    const f = path.join(tmp, 'r');
    fs.writeFileSync(f, 'nameserver 10.0.0.1\n');
    expect(readBoundedFile(f, { what: 'resolvConf' })).toBe('nameserver 10.0.0.1\n');
    expect(() => readBoundedFile('/dev/zero', { what: 'resolvConf' })).toThrow(/not a regular file/);
    fs.writeFileSync(f, 'x'.repeat(100));
    expect(() => readBoundedFile(f, { what: 'resolvConf', limit: 99 })).toThrow(/larger than 99 bytes/);
    expect(() => readBoundedFile(path.join(tmp, 'nope'), { what: 'resolvConf' })).toThrow(/ENOENT/);
  });
});

describe('show', () => {
  it('renders small values like JSON and bounds deep or long ones', () => {
    expect(show({ a: [1, 'x'] })).toBe('{"a":[1,"x"]}');
    let deep: unknown = [];
    for (let i = 0; i < 100000; i++) deep = [deep];
    expect(show(deep)).toBe('[[[[…]]]]');
    expect(show('x'.repeat(10000)).length).toBeLessThan(200);
  });
});
