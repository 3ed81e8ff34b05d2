// A runtime's environment reaches every plugin unfiltered: the release ignores
// NODE_OPTIONS and every Node variable that loads code, reads or writes files,
// or changes the runtime, and never runs a `node` from PATH. Each hostile
// variable below is shown to act on a plain Node (the one inside the release),
// so the test would fail if the release honoured it.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { DIST_BIN, ROOT, Sandbox } from '../helpers/sandbox';

const sb = new Sandbox('rl');
afterAll(() => sb.cleanup());
beforeAll(() => ensureBuilt('loopback', 'bridge'), 300000);

const NODE_INSIDE = path.join(ROOT, 'node_modules', `node-linux-${process.arch}`, 'bin', 'node');

interface Hostile { dir: string; env: Record<string, string>; marker: string }

/** Every variable points into one fresh directory; the injected code and the fake `node` write the marker. */
function hostile(): Hostile {
  const dir = sb.tmpdir('-env');
  const marker = path.join(dir, 'ran');
  fs.writeFileSync(path.join(dir, 'inject.js'), `require('fs').appendFileSync(${JSON.stringify(marker)}, 'inject.js\\n');`);
  fs.mkdirSync(path.join(dir, 'path'));
  fs.writeFileSync(path.join(dir, 'node'), `#!/bin/sh\necho "PATH node $*" >> ${marker}\nexit 1\n`, { mode: 0o755 });
  // An OpenSSL config that loads a provider: Node reads OPENSSL_CONF before any JavaScript.
  fs.writeFileSync(path.join(dir, 'openssl.cnf'), [
    'nodejs_conf = init', '[init]', 'providers = providers', '[providers]', 'rl = rl', '[rl]', `module = ${path.join(dir, 'provider.so')}`, 'activate = 1', '',
  ].join('\n'));
  return {
    dir,
    marker,
    env: {
      PATH: `${dir}:${process.env.PATH}`,
      NODE_OPTIONS: `--require ${path.join(dir, 'inject.js')}`,
      NODE_PATH: path.join(dir, 'path'),
      OPENSSL_CONF: path.join(dir, 'openssl.cnf'),
      NODE_ICU_DATA: path.join(dir, 'icu'),
      NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.pem'),
      NODE_REDIRECT_WARNINGS: path.join(dir, 'warnings'),
      NODE_V8_COVERAGE: path.join(dir, 'coverage'),
      NODE_REPL_HISTORY: path.join(dir, 'repl'),
      NODE_UNIQUE_ID: '1',
      NODE_PENDING_DEPRECATION: '1',
      UV_THREADPOOL_SIZE: '1',
    },
  };
}

// Not here: NODE_CHANNEL_FD (Node makes that fd its IPC channel, and aborts if it is none, before any code of ours;
// Node removes it from the environment of the child it forks, so nothing inherits it) and NODE_COMPILE_CACHE (Node
// creates that directory, empty: nothing is compiled from disk in the release). docs/benchmarks/startup.md, "Environment".

/** Paths under dir that a process opened, created or looked at (strace), as "syscall path". */
function touched(dir: string, cmd: string[], env: Record<string, string>, input = ''): { status: number | null; stdout: string; paths: string[] } {
  const trace = path.join(sb.tmpdir('-trace'), 'trace');
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=%file', '-o', trace, ...cmd], { env, input, encoding: 'utf8', timeout: 30000 });
  const paths = fs.readFileSync(trace, 'utf8').split('\n').filter((l) => l.includes(dir)).map((l) => l.replace(/^\d+\s+/, ''));
  return { status: r.status, stdout: r.stdout, paths };
}

// The control: each variable acts on a plain Node (the one inside the release), so the assertions on the release can fail.
it.each([
  ['NODE_OPTIONS', (h: Hostile) => expect(fs.readFileSync(h.marker, 'utf8')).toContain('inject.js')],
  ['OPENSSL_CONF', (_h: Hostile, paths: string[]) => expect(paths.join('\n')).toContain('provider.so')],
  ['NODE_ICU_DATA', (h: Hostile, paths: string[]) => expect(paths.join('\n')).toContain(path.join(h.dir, 'icu'))],
  ['NODE_V8_COVERAGE', (h: Hostile) => expect(fs.readdirSync(path.join(h.dir, 'coverage')).length).toBeGreaterThan(0)],
])('a plain Node honours %s', (name, check) => {
  const h = hostile();
  const r = touched(h.dir, [NODE_INSIDE, '-e', '0'], { PATH: process.env.PATH!, [name]: h.env[name] });
  check(h, r.paths);
});

describe('the release', () => {
  it('VERSION: none of them acts, nothing under their paths is touched, no `node` from PATH runs', () => {
    const h = hostile();
    const r = touched(h.dir, [path.join(DIST_BIN, 'bridge')], { ...h.env, CNI_COMMAND: 'VERSION' });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).supportedVersions).toContain('1.1.0');
    expect(fs.existsSync(h.marker)).toBe(false);
    expect(r.paths).toEqual([]);
  });

  it('a loopback ADD and DEL: the same', () => {
    const h = hostile();
    const host = sb.netns('h');
    const ctr = sb.netns('c');
    const env = { ...h.env, CNI_CONTAINERID: 'rl-env', CNI_NETNS: sb.nsPath(ctr), CNI_IFNAME: 'lo', CNI_PATH: DIST_BIN };
    const input = JSON.stringify({ cniVersion: '1.1.0', name: 'rlenv', type: 'loopback' });
    for (const verb of ['ADD', 'DEL']) {
      const r = touched(h.dir, ['ip', 'netns', 'exec', host, path.join(DIST_BIN, 'loopback')], { ...env, CNI_COMMAND: verb }, input);
      expect(r.status).toBe(0);
      expect(r.paths).toEqual([]);
    }
    expect(fs.existsSync(h.marker)).toBe(false);
    expect(fs.existsSync(path.join(h.dir, 'coverage'))).toBe(false);
  });
});
