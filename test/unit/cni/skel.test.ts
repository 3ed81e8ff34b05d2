// The CONFORMANCE §8 rows the skel decides, driven through handleInvocation
// with an in-memory plugin. Every failure row also checks E50: stdout is
// exactly one JSON error object, exit code non-zero, nothing from the plugin ran.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { handleInvocation, InvocationOutput } from '../../../lib/cni/skel';
import { runHelp } from '../../../lib/cni/help';
import { SUPPORTED_VERSIONS } from '../../../lib/cni/version';
import { fakePlugin } from './fake-plugin';

const BASE = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/run/netns/skel-test-none', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
const CONF = { cniVersion: '1.1.0', name: 'net1', type: 'fake' };

type Env = Record<string, string | undefined>;
async function run(env: Env, stdin: string | object = CONF, plugin = fakePlugin()): Promise<InvocationOutput & { plugin: ReturnType<typeof fakePlugin>; json: any }> {
  const body = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
  const out = await handleInvocation(plugin, env as NodeJS.ProcessEnv, Buffer.from(body));
  let json: unknown;
  try { json = out.stdout ? JSON.parse(out.stdout) : undefined; } catch { json = 'NOT JSON'; }
  return { ...out, plugin, json };
}

/** E50: one JSON object (the error), non-zero exit, the plugin never called. */
async function expectError(env: Env, stdin: string | object, code: number, msg?: RegExp) {
  const r = await run(env, stdin);
  expect(r.exitCode).not.toBe(0);
  expect(r.json).toEqual(expect.objectContaining({ code, msg: expect.any(String) }));
  expect(Object.keys(r.json).sort()).toEqual(expect.arrayContaining(['code', 'cniVersion', 'msg']));
  expect(r.stdout.trim().split('\n').length).toBe(1);
  expect(r.stdout).not.toMatch(/\n\s+at /); // no stack trace
  expect(r.stderr).toContain(`code ${code}`);
  expect(r.plugin.calls).toEqual([]);
  if (msg) expect(`${r.json.msg} ${r.json.details ?? ''}`).toMatch(msg);
  return r;
}

describe('environment (E1–E9, E34)', () => {
  it('E1 no CNI_COMMAND → code 4 from the core (the binary prints help instead, see below)', async () => {
    await expectError({ ...BASE, CNI_COMMAND: undefined }, CONF, 4, /CNI_COMMAND/);
    await expectError({ ...BASE, CNI_COMMAND: '' }, CONF, 4, /CNI_COMMAND/);
  });
  it.each(['add', 'FOO', 'Add'])('E2 CNI_COMMAND=%s → code 4 unknown CNI_COMMAND', async (cmd) => {
    await expectError({ ...BASE, CNI_COMMAND: cmd }, CONF, 4, new RegExp(`unknown CNI_COMMAND: ${cmd}`));
    await expectError({ ...BASE, CNI_COMMAND: cmd }, 'not json', 4);
  });
  it('E3 one error naming every missing var (empty counts as unset)', async () => {
    const r = await expectError({ ...BASE, CNI_CONTAINERID: undefined, CNI_NETNS: '' }, CONF, 4);
    expect(r.json.msg).toBe('required env variables [CNI_CONTAINERID,CNI_NETNS] missing');
  });
  it('E4 ADD without CNI_IFNAME → 4', async () => {
    await expectError({ ...BASE, CNI_IFNAME: undefined }, CONF, 4, /CNI_IFNAME/);
  });
  it('E5 ADD without CNI_PATH succeeds when nothing is delegated', async () => {
    const r = await run({ ...BASE, CNI_PATH: undefined });
    expect(r.exitCode).toBe(0);
    expect(r.plugin.calls[0].inv.env.path).toEqual([]);
  });
  it.each(['-abc', 'a:b', 'a/b', 'a b', '.x', '_x'])('E6 container ID %j → 4 with the value in details', async (id) => {
    const r = await expectError({ ...BASE, CNI_CONTAINERID: id }, CONF, 4, /invalid characters in containerID/);
    expect(r.json.details).toContain(JSON.stringify(id));
  });
  it('E7 container ID A.b_c-1 accepted', async () => {
    expect((await run({ ...BASE, CNI_CONTAINERID: 'A.b_c-1' })).exitCode).toBe(0);
  });
  it.each(['abcdefghijklmnop', '.', '..', 'a/b', 'eth0:1', 'eth 0', 'eth\t0', 'eth\u00a00', 'é'.repeat(8)])('E8 ifname %j → 4', async (n) => {
    await expectError({ ...BASE, CNI_IFNAME: n }, CONF, 4, /CNI_IFNAME/);
  });
  it('E8 ifname "" counts as missing → 4', async () => {
    await expectError({ ...BASE, CNI_IFNAME: '' }, CONF, 4, /CNI_IFNAME/);
  });
  it('E9 ifname of exactly 15 bytes accepted', async () => {
    expect((await run({ ...BASE, CNI_IFNAME: 'abcdefghijklmno' })).exitCode).toBe(0);
  });
  it('E34 DEL still validates container ID and ifname', async () => {
    await expectError({ ...BASE, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'a/b' }, CONF, 4);
    await expectError({ ...BASE, CNI_COMMAND: 'DEL', CNI_IFNAME: 'eth0:1' }, CONF, 4);
  });
  it('DEL without CNI_NETNS is valid (the netns may be gone)', async () => {
    const r = await run({ ...BASE, CNI_COMMAND: 'DEL', CNI_NETNS: '' });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.plugin.calls[0].inv.env.netns).toBeUndefined();
  });
  it('tolerates extra env (CNI_NETNS_OVERRIDE, TRACEPARENT)', async () => {
    expect((await run({ ...BASE, TRACEPARENT: '00-abc', BAGGAGE: 'x=y' })).exitCode).toBe(0);
  });
});

describe('stdin and config (E10–E15)', () => {
  it.each(['', '   ', '{"name":', '[]', '"str"', '42'])('E10 stdin %j → 6', async (s) => {
    await expectError(BASE, s, 6);
  });
  it.each([{ cniVersion: '1.1.0', type: 'fake' }, { ...CONF, name: '' }, 'null'])('E11 %j → 7 missing network name', async (s) => {
    await expectError(BASE, s, 7, /missing network name/);
  });
  it.each(['net/1', '-net', 'n et'])('E12 name %j → 7 with the name in details', async (n) => {
    const r = await expectError(BASE, { ...CONF, name: n }, 7);
    expect(r.json.details).toContain(JSON.stringify(n));
  });
  it.each(['9.9.9', '1.0', 'v1.0.0'])('E13 cniVersion %j → 1 listing supported versions', async (v) => {
    const r = await expectError(BASE, { ...CONF, cniVersion: v }, 1, /incompatible CNI versions/);
    for (const s of SUPPORTED_VERSIONS) expect(r.json.details).toContain(s);
  });
  it('E13 a plugin that declares fewer versions lists those', async () => {
    const plugin = { ...fakePlugin(), supportedVersions: ['1.0.0'] };
    const out = await handleInvocation(plugin, BASE, Buffer.from(JSON.stringify(CONF)));
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 1, details: 'config is "1.1.0", plugin supports ["1.0.0"]' });
  });
  it('E14 numeric cniVersion → 6', async () => {
    await expectError(BASE, '{"cniVersion":1.1,"name":"n"}', 6);
  });
  it('E15 no cniVersion → 0.1.0 result (ip4)', async () => {
    const r = await run(BASE, { name: 'net1', type: 'fake' });
    expect(r.exitCode).toBe(0);
    expect(r.json).toEqual({ cniVersion: '0.1.0', ip4: { ip: '10.1.0.5/24', gateway: '10.1.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }] } });
    expect(r.plugin.calls[0].inv.conf.cniVersion).toBe('0.1.0');
  });
});

describe('results per version (E16, E17)', () => {
  it.each(['0.3.0', '0.3.1', '0.4.0'])('E16 %s: cniVersion echoed, ips[].version present, no 1.x fields', async (v) => {
    const r = await run(BASE, { ...CONF, cniVersion: v });
    expect(r.exitCode).toBe(0);
    expect(r.json.cniVersion).toBe(v);
    expect(r.json.ips).toEqual([{ version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }]);
    expect(r.json.interfaces[0]).not.toHaveProperty('mtu');
    expect(r.json.routes[0]).toEqual({ dst: '0.0.0.0/0', gw: '10.1.0.1' });
  });
  it('E16 1.0.0: no ips[].version, no 1.1 fields', async () => {
    const r = await run(BASE, { ...CONF, cniVersion: '1.0.0' });
    expect(r.json.cniVersion).toBe('1.0.0');
    expect(r.json.ips[0]).not.toHaveProperty('version');
    expect(r.json.interfaces[0]).toEqual({ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: BASE.CNI_NETNS });
    expect(r.json.routes[0]).toEqual({ dst: '0.0.0.0/0', gw: '10.1.0.1' });
  });
  it('E16 1.1.0: keeps mtu and route table', async () => {
    const r = await run(BASE, CONF);
    expect(r.json.cniVersion).toBe('1.1.0');
    expect(r.json.interfaces[0].mtu).toBe(1500);
    expect(r.json.routes[0].table).toBe(100);
  });
  it('E17 0.2.0 result with no IPs → error, no partial output', async () => {
    const plugin = fakePlugin({ result: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }] } });
    const out = await handleInvocation(plugin, BASE, Buffer.from(JSON.stringify({ ...CONF, cniVersion: '0.2.0' })));
    expect(out.exitCode).not.toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ msg: 'cannot convert: no valid IP addresses' });
  });
});

describe('E20 own netns', () => {
  it('CNI_NETNS = our own netns → 8 before the plugin runs', async () => {
    await expectError({ ...BASE, CNI_NETNS: '/proc/self/ns/net' }, CONF, 8);
    await expectError({ ...BASE, CNI_COMMAND: 'DEL', CNI_NETNS: `/proc/${process.pid}/ns/net` }, CONF, 8);
  });
  it('CNI_NETNS_OVERRIDE=true bypasses it', async () => {
    expect((await run({ ...BASE, CNI_NETNS: '/proc/self/ns/net', CNI_NETNS_OVERRIDE: 'true' })).exitCode).toBe(0);
  });
});

const PREV_11 = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:09', mtu: 9000, sandbox: '/run/netns/x', socketPath: '/run/s.sock', pciID: '0000:04:00.5' }],
  ips: [{ address: '10.2.0.5/24', gateway: '10.2.0.1', interface: 0 }],
  routes: [{ dst: '10.3.0.0/16', gw: '10.2.0.1', mtu: 1400, advmss: 1360, priority: 5, table: 100, scope: 0 }],
  dns: { nameservers: ['10.2.0.1'], domain: 'example', search: ['a.example'], options: ['ndots:2'] },
};

describe('prevResult (E23–E25)', () => {
  it('E23 a 1.1.0 prevResult reaches the plugin whole, and a pass-through plugin prints it whole', async () => {
    const plugin = fakePlugin();
    plugin.add = async (inv) => { plugin.calls.push({ verb: 'ADD', inv }); return inv.conf.prevResult!; };
    const out = await handleInvocation(plugin, BASE, Buffer.from(JSON.stringify({ ...CONF, prevResult: PREV_11 })));
    expect(out.exitCode).toBe(0);
    expect(plugin.calls[0].inv.conf.prevResult).toEqual(PREV_11);
    expect(JSON.parse(out.stdout)).toEqual(PREV_11);
  });
  it('E24 a 0.4.0 prevResult in a 1.0.0 config → error naming the version', async () => {
    const r = await expectError(BASE, { ...CONF, cniVersion: '1.0.0', prevResult: { cniVersion: '0.4.0', ips: [] } }, 1);
    expect(r.json.msg).toBe('result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "0.4.0"');
  });
  it('E24 same family is fine: 1.0.0 prevResult in a 1.1.0 config', async () => {
    expect((await run(BASE, { ...CONF, prevResult: { ...PREV_11, cniVersion: '1.0.0' } })).exitCode).toBe(0);
  });
  it('E25 prevResult without cniVersion takes the config version; a 0.4.0 one is converted to 1.x', async () => {
    const r = await run(BASE, { ...CONF, cniVersion: '0.4.0', prevResult: { ips: [{ version: '4', address: '10.2.0.5/24', interface: 0 }] } });
    expect(r.exitCode).toBe(0);
    expect(r.plugin.calls[0].inv.conf.prevResult).toEqual({ cniVersion: '0.4.0', ips: [{ address: '10.2.0.5/24', interface: 0 }] });
  });
  it('a malformed prevResult → 6', async () => {
    await expectError(BASE, { ...CONF, prevResult: { ips: [{ address: 'not-an-ip' }] } }, 6);
  });
});

describe('config tolerance and CNI_ARGS (E26–E29)', () => {
  it('E26 capabilities, undeclared runtimeConfig keys and unknown keys pass through', async () => {
    const r = await run(BASE, { ...CONF, capabilities: { portMappings: true }, runtimeConfig: { foo: 1 }, whatever: { a: 1 } });
    expect(r.exitCode).toBe(0);
    expect(r.plugin.calls[0].inv.conf.whatever).toEqual({ a: 1 });
  });
  it('E27 the containerd CNI_ARGS set is accepted and parsed', async () => {
    const r = await run({ ...BASE, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID=d' });
    expect(r.exitCode).toBe(0);
    expect(r.plugin.calls[0].inv.cniArgs).toMatchObject({ K8S_POD_NAMESPACE: 'a', K8S_POD_NAME: 'b', K8S_POD_UID: 'd' });
  });
  it('E28 an unknown key without IgnoreUnknown → error naming it', async () => {
    await expectError({ ...BASE, CNI_ARGS: 'FOO=bar' }, CONF, 4, /unknown args \[FOO=bar\]/);
  });
  it('a key the plugin declares is accepted', async () => {
    const plugin = fakePlugin({ knownArgs: ['MAC'] });
    const out = await handleInvocation(plugin, { ...BASE, CNI_ARGS: 'MAC=02:00:00:00:00:05' }, Buffer.from(JSON.stringify(CONF)));
    expect(out.exitCode).toBe(0);
    expect(plugin.calls[0].inv.cniArgs).toEqual({ MAC: '02:00:00:00:00:05' });
  });
  it.each(['K8S_POD_NAME=a;', 'X=a=b', 'IgnoreUnknown=yes', 'ignoreunknown=1;FOO=1'])('E29 CNI_ARGS %j → error', async (a) => {
    await expectError({ ...BASE, CNI_ARGS: a }, CONF, 4, /CNI_ARGS/);
  });
});

describe('verbs and versions (E35, E39–E41, E43, E45, E46)', () => {
  it('E35 CHECK with config 0.3.1 → 1', async () => {
    await expectError({ ...BASE, CNI_COMMAND: 'CHECK' }, { ...CONF, cniVersion: '0.3.1' }, 1, /config version does not allow CHECK/);
  });
  it('CHECK with 0.4.0 reaches the plugin with prevResult; empty stdout', async () => {
    const r = await run({ ...BASE, CNI_COMMAND: 'CHECK' }, { ...CONF, cniVersion: '0.4.0', prevResult: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.1.0.5/24' }] } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.plugin.calls[0].verb).toBe('CHECK');
  });
  it('E39 VERSION with the libcni dummy env and stdin', async () => {
    const r = await run({ CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: 'dummy', CNI_CONTAINERID: '', CNI_ARGS: '' }, { cniVersion: '1.1.0' });
    expect(r.exitCode).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] });
  });
  it('VERSION echoes a supported input version', async () => {
    expect((await run({ CNI_COMMAND: 'VERSION' }, { cniVersion: '0.4.0' })).json.cniVersion).toBe('0.4.0');
  });
  it.each(['garbage', '', '{"cniVersion":7}'])('E40 VERSION with stdin %j → exit 0', async (s) => {
    const r = await run({ CNI_COMMAND: 'VERSION', CNI_IFNAME: 'bad/name' }, s);
    expect(r.exitCode).toBe(0);
    expect(r.json.supportedVersions.length).toBeGreaterThan(0);
  });
  it('E41 GC with config 1.0.0 → 1', async () => {
    await expectError({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, { ...CONF, cniVersion: '1.0.0' }, 1, /does not allow GC/);
  });
  it('GC gets cni.dev/valid-attachments; the libcni blanks are fine', async () => {
    const valid = [{ containerID: 'a', ifname: 'eth0' }];
    const r = await run({ CNI_COMMAND: 'GC', CNI_PATH: '/x', CNI_CONTAINERID: '', CNI_NETNS: '', CNI_IFNAME: '', CNI_ARGS: '' }, { ...CONF, 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': [] });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('');
    expect((r.plugin.calls[0].inv as any).validAttachments).toEqual(valid);
  });
  it('E43 GC with only cni.dev/attachments', async () => {
    const valid = [{ containerID: 'b', ifname: 'net1' }];
    const r = await run({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, { ...CONF, 'cni.dev/attachments': valid });
    expect((r.plugin.calls[0].inv as any).validAttachments).toEqual(valid);
  });
  it('GC with neither key → [] (libcni: everything was DELed)', async () => {
    const r = await run({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, CONF);
    expect((r.plugin.calls[0].inv as any).validAttachments).toEqual([]);
  });
  it('GC with a malformed attachment list → 6', async () => {
    await expectError({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, { ...CONF, 'cni.dev/valid-attachments': [{ containerID: 1 }] }, 6);
  });
  it('E45 GC without CNI_PATH → 4', async () => {
    await expectError({ CNI_COMMAND: 'GC' }, CONF, 4, /CNI_PATH/);
  });
  it('E46 STATUS with config 1.0.0 → 1; with 1.1.0 → plugin status, empty stdout', async () => {
    await expectError({ CNI_COMMAND: 'STATUS' }, { ...CONF, cniVersion: '1.0.0' }, 1, /does not allow STATUS/);
    const r = await run({ CNI_COMMAND: 'STATUS' }, CONF);
    expect([r.exitCode, r.stdout, r.plugin.calls[0].verb]).toEqual([0, '', 'STATUS']);
  });
});

describe('errors from the plugin (E50)', () => {
  it('a CniError passes through with its code and details', async () => {
    const { CniError } = await import('../../../lib/cni/errors');
    const r = await run(BASE, CONF, fakePlugin({ fail: new CniError(11, 'busy', 'try again') }));
    expect(r.exitCode).toBe(1);
    expect(r.json).toEqual({ cniVersion: '1.1.0', code: 11, msg: 'busy', details: 'try again' });
  });
  it('any other error → 999 with its message, no stack on stdout, the version of the config', async () => {
    const r = await run(BASE, { ...CONF, cniVersion: '0.4.0' }, fakePlugin({ fail: new TypeError('x is undefined') }));
    expect(r.json).toEqual({ cniVersion: '0.4.0', code: 999, msg: 'x is undefined' });
    expect(r.stderr).toBe('fake ADD abc/eth0: error: x is undefined (CNI error code 999)\n');
  });
  it('errors go to the log file named by the config, or by NODE_CNI_LOG_FILE, in the log directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sx-skel-log-'));
    try {
      const f1 = path.join(dir, 'conf.log');
      const f2 = path.join(dir, 'env.log');
      await run({ ...BASE, NODE_CNI_LOG_DIR: dir }, { ...CONF, logFile: f1 }, fakePlugin({ fail: new Error('kaput') }));
      expect(fs.readFileSync(f1, 'utf8')).toMatch(/fake ADD abc\/eth0: error: kaput \(CNI error code 999\)/);
      await run({ ...BASE, NODE_CNI_LOG_DIR: dir, NODE_CNI_LOG_FILE: f2, CNI_IFNAME: 'bad:name' }, CONF);
      expect(fs.readFileSync(f2, 'utf8')).toMatch(/invalid CNI_IFNAME/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('help (no CNI_COMMAND, run by hand): stderr only, stdout empty, exit 0, like the reference', () => {
  const plugin = fakePlugin();
  it('--version answers on stdout, like any program (the release executable does the same)', () => {
    const out = runHelp(plugin, ['--version']);
    expect([out.exitCode, out.stderr]).toEqual([0, '']);
    expect(out.stdout).toMatch(/^fake \(node-cni-plugins\) v\d+\.\d+\.\d+; CNI spec versions .*1\.1\.0\n$/);
  });
  it.each([[[]], [['--help']], [['--bogus']], [['--version', 'x']]])('%j prints name, package version and spec versions', (argv) => {
    const out = runHelp(plugin, argv as string[]);
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toBe('');
    expect(out.stderr).toContain('fake');
    expect(out.stderr).toMatch(/v\d+\.\d+\.\d+/);
    expect(out.stderr).toContain('1.1.0');
  });
  it('an unknown flag is named', () => {
    expect(runHelp(plugin, ['--bogus']).stderr).toContain('unknown argument "--bogus"');
  });
});
