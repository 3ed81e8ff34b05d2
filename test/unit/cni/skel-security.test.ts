// Issue #12, the findings the skel decides for every plugin, each with the
// exact hostile input of the issue: log files (2), CNI_NETNS that is no
// network namespace (5, 9), stdin and nesting limits (6, 7), wrong types of
// the common fields (10), and CNI_ARGS of a plugin that takes none (#15).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { handleInvocation, jsonDepthExceeds, MAX_JSON_DEPTH, MAX_STDIN_BYTES } from '../../../lib/cni/skel';
import { fakePlugin } from './fake-plugin';
import { CniError } from '../../../lib/cni/errors';
import { isNetnsGone, Netns } from '../../../lib/netns';

const CONF = { cniVersion: '1.1.0', name: 'net1', type: 'fake' };
let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-skelsec-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

type Env = Record<string, string | undefined>;
async function run(env: Env, stdin: string | object = CONF, plugin = fakePlugin()) {
  const body = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  const out = await handleInvocation(plugin, { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/run/netns/sx-none', CNI_IFNAME: 'eth0', ...env } as NodeJS.ProcessEnv, Buffer.from(body));
  let json: any;
  try { json = out.stdout ? JSON.parse(out.stdout) : undefined; } catch { json = 'NOT JSON'; }
  return { ...out, json, calls: plugin.calls };
}

/** Every file below `root`, relative. */
function filesBelow(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(root, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

describe('item 2: log files are data (logFile, NODE_CNI_LOG_FILE)', () => {
  it('a config the skel refuses never creates its logFile ("name": "../x" → 7, no file)', async () => {
    const log = path.join(dir, 'cni.log');
    const r = await run({ NODE_CNI_LOG_DIR: dir }, { ...CONF, name: '../x', logFile: log });
    expect(r.json.code).toBe(7);
    expect(fs.existsSync(log)).toBe(false);
  });

  it('a config the plugin refuses (code 7) does not get its logFile either; NODE_CNI_LOG_FILE still logs', async () => {
    const { CniError } = await import('../../../lib/cni/errors');
    const confLog = path.join(dir, 'conf.log');
    const envLog = path.join(dir, 'env.log');
    const r = await run({ NODE_CNI_LOG_DIR: dir, NODE_CNI_LOG_FILE: envLog }, { ...CONF, logFile: confLog }, fakePlugin({ fail: new CniError(7, 'bad field') }));
    expect(r.json.code).toBe(7);
    expect(fs.existsSync(confLog)).toBe(false);
    expect(fs.readFileSync(envLog, 'utf8')).toContain('bad field');
  });

  it('an accepted config logs to its logFile', async () => {
    const log = path.join(dir, 'ok.log');
    const r = await run({ NODE_CNI_LOG_DIR: dir }, { ...CONF, logFile: log }, fakePlugin({ fail: new Error('kernel said no') }));
    expect(r.json.code).toBe(999);
    expect(fs.readFileSync(log, 'utf8')).toContain('kernel said no');
    expect(fs.statSync(log).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['a relative path', 'cni.log', 'not an absolute path'],
    ['a path outside the log directory', '/etc/cron.d/x', 'not a file directly in the log directory'],
    ['a path below a subdirectory', '/var/log/cni/sub/x.log', 'not a file directly in the log directory'],
    ['a dotfile', '/var/log/cni/.hidden', 'must be named'],
    ['a newline', '/var/log/cni/a\nb', 'control character'],
    ['dot-dot', '/var/log/cni/../../etc/passwd', 'not normalized'],
  ])('logFile %s → 7 naming the field, nothing written', async (_what, logFile, why) => {
    const r = await run({}, { ...CONF, logFile });
    expect(r.json).toMatchObject({ code: 7 });
    expect(r.json.msg).toContain('"logFile"');
    expect(r.json.msg).toContain(why);
    expect(r.calls).toEqual([]);
  });

  it('logFile of the wrong type → 7', async () => {
    expect((await run({}, { ...CONF, logFile: 5 })).json).toMatchObject({ code: 7, msg: expect.stringContaining('"logFile" must be a string') });
  });

  it.each([['relative', 'x.log'], ['elsewhere', '/tmp/x.log']])('NODE_CNI_LOG_FILE %s → 4 naming it', async (_what, file) => {
    const r = await run({ NODE_CNI_LOG_FILE: file });
    expect(r.json).toMatchObject({ code: 4, msg: expect.stringContaining('NODE_CNI_LOG_FILE') });
    expect(fs.existsSync(path.resolve(file))).toBe(false);
  });

  it('a log directory others can write is not used; a symlink or FIFO as the log file is not followed or waited on', async () => {
    const open = path.join(dir, 'open');
    fs.mkdirSync(open, { mode: 0o777 });
    fs.chmodSync(open, 0o777);
    await run({ NODE_CNI_LOG_DIR: open }, { ...CONF, logFile: path.join(open, 'x.log') }, fakePlugin({ fail: new Error('e') }));
    expect(fs.readdirSync(open)).toEqual([]);

    const target = path.join(dir, 'target');
    fs.writeFileSync(target, '');
    fs.symlinkSync(target, path.join(dir, 'link.log'));
    await run({ NODE_CNI_LOG_DIR: dir }, { ...CONF, logFile: path.join(dir, 'link.log') }, fakePlugin({ fail: new Error('e') }));
    expect(fs.readFileSync(target, 'utf8')).toBe('');

    expect(spawnSync('mkfifo', [path.join(dir, 'fifo.log')]).status).toBe(0);
    const r = await run({ NODE_CNI_LOG_DIR: dir }, { ...CONF, logFile: path.join(dir, 'fifo.log') }, fakePlugin({ fail: new Error('e') }));
    expect(r.json.code).toBe(999); // answered: the FIFO did not block
  });
});

describe('items 5 and 9: CNI_NETNS must be a network namespace, checked before anything opens it', () => {
  const netnsPlugin = () => fakePlugin({ ignoresNetns: false });
  const cases: Array<[string, () => string, RegExp]> = [
    ['a FIFO', () => { const p = path.join(dir, 'fifo'); spawnSync('mkfifo', [p]); return p; }, /is not a network namespace: it is a FIFO/],
    ['an empty regular file', () => { const p = path.join(dir, 'empty'); fs.writeFileSync(p, ''); return p; }, /is not a network namespace: it is an empty regular file/],
    ['a directory', () => dir, /is not a network namespace: it is a directory/],
    ['/proc/self/ns/mnt', () => '/proc/self/ns/mnt', /is not a network namespace: it is a namespace of another type/],
    ['a path that does not exist', () => path.join(dir, 'nope'), /does not exist/],
  ];

  // Every plugin opens CNI_NETNS through Netns.open: the one check, the one error (code 4 naming the path), never blocking.
  it.each(cases)('Netns.open of %s → code 4 naming the path, at once', (_what, make, msg) => {
    const ns = make();
    let err: any;
    try { Netns.open(ns).close(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(CniError);
    expect(err.code).toBe(4);
    expect(err.message).toContain(`CNI_NETNS "${ns}"`);
    expect(err.message).toMatch(msg);
    expect(isNetnsGone(err)).toBe(true);
  });

  it.each(cases)('DEL with %s succeeds as without a namespace (the container is gone)', async (_what, make) => {
    const r = await run({ CNI_COMMAND: 'DEL', CNI_NETNS: make() }, CONF, netnsPlugin());
    expect(r.exitCode).toBe(0);
    expect(r.calls[0].inv.env.netns).toBeUndefined();
    expect(r.stderr).toContain('CNI_NETNS ignored');
  });

  it('the plugin\'s own namespace is still code 8 (libcni\'s ErrInvalidNetNS), CNI_NETNS_OVERRIDE lets it through', async () => {
    expect((await run({ CNI_NETNS: '/proc/self/ns/net' }, CONF, netnsPlugin())).json).toMatchObject({ code: 8 });
    expect((await run({ CNI_NETNS: '/proc/self/ns/net', CNI_NETNS_OVERRIDE: '1' }, CONF, netnsPlugin())).exitCode).toBe(0);
  });

  it('a plugin that never opens CNI_NETNS (IPAM, portmap) keeps it on DEL as given', async () => {
    const r = await run({ CNI_COMMAND: 'DEL', CNI_NETNS: path.join(dir, 'nope') }, CONF, fakePlugin({ ignoresNetns: true }));
    expect(r.calls[0].inv.env.netns).toBe(path.join(dir, 'nope'));
  });
});

describe('items 6 and 7: bounded stdin and nesting', () => {
  it('stdin larger than the limit → 6', async () => {
    const big = JSON.stringify({ ...CONF, pad: 'x'.repeat(MAX_STDIN_BYTES) });
    expect((await run({}, big)).json).toMatchObject({ code: 6, details: expect.stringContaining(`larger than ${MAX_STDIN_BYTES}`) });
  });

  it.each(['ADD', 'CHECK', 'GC', 'STATUS'])('%s: a field nested 8000 deep (Go accepts 10 000) → 6 naming the limit', async (verb) => {
    const deep = `{"cniVersion":"1.1.0","name":"net1","type":"fake","prevResult":{"cniVersion":"1.1.0"},"x":${'['.repeat(8000)}${']'.repeat(8000)}}`;
    const r = await run({ CNI_COMMAND: verb, CNI_PATH: '/x' }, deep);
    expect(r.json).toMatchObject({ code: 6, details: expect.stringContaining(`deeper than ${MAX_JSON_DEPTH} levels`) });
  });

  it('DEL takes any depth (it must clean up what ADD made) and nothing recurses on it', async () => {
    const deep = `{"cniVersion":"1.1.0","name":"net1","type":"fake","x":${'['.repeat(100000)}${']'.repeat(100000)}}`;
    const r = await run({ CNI_COMMAND: 'DEL' }, deep);
    expect(r.exitCode).toBe(0);
    expect(r.calls).toHaveLength(1);
  });

  it('the depth scan ignores brackets inside strings', () => {
    expect(jsonDepthExceeds(JSON.stringify({ a: '['.repeat(5000) }), 10)).toBe(false);
    expect(jsonDepthExceeds(JSON.stringify({ a: '\\"[[[' }), 1)).toBe(false);
    expect(jsonDepthExceeds('[[[]]]', 3)).toBe(false);
    expect(jsonDepthExceeds('[[[[]]]]', 3)).toBe(true);
  });
});

describe('item 10: common fields of the wrong type → 7 naming the field, in every plugin', () => {
  it.each([
    ['ipam', 'x'], ['runtimeConfig', 'x'], ['args', 'x'], ['capabilities', ['portMappings']], ['dns', 'x'], ['type', 5], ['prevResult', 'x'],
  ])('"%s": %j', async (key, value) => {
    const r = await run({}, { ...CONF, [key]: value });
    expect(r.json).toMatchObject({ code: 7, msg: expect.stringContaining(`"${key}" must be`) });
    expect(r.calls).toEqual([]);
  });
  it('"args.cni": "x"', async () => {
    expect((await run({}, { ...CONF, args: { cni: 'x' } })).json).toMatchObject({ code: 7, msg: expect.stringContaining('"args.cni"') });
  });
  it('null counts as absent', async () => {
    expect((await run({}, { ...CONF, ipam: null, runtimeConfig: null })).exitCode).toBe(0);
  });
});

describe('#15: a plugin that takes no CNI_ARGS ignores them (the reference loopback does)', () => {
  it.each(['none', 'IgnoreUnknown=1;K8S_POD_NAME=x', 'FOO=bar', ';;==', 'a=b=c'])('CNI_ARGS=%j → success', async (args) => {
    const plugin = fakePlugin();
    delete (plugin as { knownArgs?: unknown }).knownArgs;
    const r = await run({ CNI_ARGS: args }, CONF, plugin);
    expect(r.exitCode).toBe(0);
    expect(r.calls[0].inv.cniArgs).toBeUndefined();
  });
});

describe('no file is written outside the log directory, whatever the input', () => {
  it('a run of hostile log inputs leaves the temp dir as it was', async () => {
    const before = filesBelow(dir);
    for (const logFile of ['../x', `${dir}/../escape.log`, `${dir}/a/b.log`, 'rel.log', `${dir}\n/x`]) {
      await run({ NODE_CNI_LOG_DIR: dir }, { ...CONF, logFile });
      await run({ NODE_CNI_LOG_DIR: dir, NODE_CNI_LOG_FILE: logFile });
    }
    expect(filesBelow(dir)).toEqual(before);
    expect(fs.existsSync(path.join(path.dirname(dir), 'escape.log'))).toBe(false);
  });
});
