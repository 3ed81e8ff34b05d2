// lib/cni/exec + lib/cni/ipam against small fake plugin scripts in a temp dir
// and, when installed, the reference /usr/lib/cni/host-local with a temp dataDir.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CniError } from '../../../lib/cni/errors';
import { execDelegate, findInPath, PluginUnavailableError } from '../../../lib/cni/exec';
import { ipamAdd, ipamCheck, ipamDel, ipamStatus } from '../../../lib/cni/ipam';
import type { Plugin } from '../../../lib/cni/plugin';
import type { CniEnv, Invocation, NetConf } from '../../../lib/cni/types';

let dir: string;
let other: string;

function script(where: string, name: string, body: string): void {
  fs.writeFileSync(path.join(where, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cniexec-'));
  other = fs.mkdtempSync(path.join(os.tmpdir(), 'cniexec2-'));
  // Records its env and stdin, prints a 0.4.0 result with an interface index (an IPAM must not, we strip it).
  script(dir, 'rec', `env | grep '^CNI_' | sort > "$0.env"; cat > "$0.stdin"
echo '{"cniVersion":"0.4.0","interfaces":[{"name":"x"}],"ips":[{"version":"4","address":"10.9.0.7/24","gateway":"10.9.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.9.0.1"]}}'`);
  script(dir, 'busy', `cat >/dev/null; echo '{"code":11,"msg":"try later","details":"pool locked"}'; exit 1`);
  script(dir, 'crash', `cat >/dev/null; echo "boom: disk on fire" >&2; exit 3`);
  script(dir, 'silent', `cat >/dev/null; exit 0`);
  script(dir, 'noversion', `cat >/dev/null; echo '{"ips":[{"address":"10.9.0.8/24"}]}'`);
  fs.mkdirSync(path.join(dir, 'adir'));
  script(other, 'rec', 'echo second-dir-should-not-win; exit 1');
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(other, { recursive: true, force: true });
});

function env(over: Partial<CniEnv> = {}): CniEnv {
  return { command: 'ADD', containerId: 'ctr1', netns: '/run/netns/none', ifname: 'eth0', args: 'IgnoreUnknown=1', path: [dir, other], ...over };
}

function inv(conf: Partial<NetConf>, over: Partial<CniEnv> = {}): Invocation {
  const full = { cniVersion: '1.0.0', name: 'net1', type: 'bridge', ...conf } as NetConf;
  return { env: env(over), conf: full, raw: Buffer.from(JSON.stringify(full)) };
}

describe('findInPath', () => {
  it('takes the first regular file in CNI_PATH order', () => {
    expect(findInPath('rec', [dir, other])).toBe(path.join(dir, 'rec'));
    expect(findInPath('rec', [other, dir])).toBe(path.join(other, 'rec'));
  });
  it.each(['../rec', '/bin/sh', 'a/b', '.', '..', ''])('rejects type %j', (t) => {
    expect(() => findInPath(t, [dir])).toThrow(expect.objectContaining({ code: 7 }));
  });
  it('skips directories and says where it looked', () => {
    expect(() => findInPath('adir', [dir])).toThrow(/failed to find plugin "adir" in path/);
  });
  it('no CNI_PATH → code 4 naming CNI_PATH', () => {
    expect(() => findInPath('rec', [])).toThrow(expect.objectContaining({ code: 4, message: expect.stringContaining('CNI_PATH') }));
  });
});

describe('execDelegate', () => {
  it('passes the same env with only CNI_COMMAND changed, and the raw stdin byte for byte', async () => {
    const raw = Buffer.from('{"cniVersion":"1.0.0", "name":"net1","type":"bridge","ipam":{"type":"rec"}}  ');
    await execDelegate({ type: 'rec', verb: 'DEL', env: env(), stdin: raw, confVersion: '1.0.0' });
    expect(fs.readFileSync(path.join(dir, 'rec.stdin'))).toEqual(raw);
    expect(fs.readFileSync(path.join(dir, 'rec.env'), 'utf8').trim().split('\n')).toEqual([
      'CNI_ARGS=IgnoreUnknown=1', 'CNI_COMMAND=DEL', 'CNI_CONTAINERID=ctr1', 'CNI_IFNAME=eth0', 'CNI_NETNS=/run/netns/none', `CNI_PATH=${dir}:${other}`,
    ]);
  });
  it('converts an ADD result to the 1.x shape', async () => {
    const res = await execDelegate({ type: 'rec', verb: 'ADD', env: env(), stdin: Buffer.from('{}'), confVersion: '1.0.0' });
    expect(res).toEqual({ cniVersion: '0.4.0', interfaces: [{ name: 'x' }], ips: [{ address: '10.9.0.7/24', gateway: '10.9.0.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0' }], dns: { nameservers: ['10.9.0.1'] } });
  });
  it('a result without cniVersion takes the config version', async () => {
    const res = await execDelegate({ type: 'noversion', verb: 'ADD', env: env(), stdin: Buffer.from('{}'), confVersion: '1.1.0' });
    expect(res?.cniVersion).toBe('1.1.0');
  });
  it("passes the delegate's error object up unchanged", async () => {
    const p = execDelegate({ type: 'busy', verb: 'ADD', env: env(), stdin: Buffer.from('{}'), confVersion: '1.0.0' });
    await expect(p).rejects.toBeInstanceOf(CniError);
    await expect(p).rejects.toMatchObject({ code: 11, message: 'try later', details: 'pool locked' });
  });
  it('a crash without an error object → 999 with the exit code and stderr', async () => {
    const seen: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: string | Uint8Array) => { seen.push(String(c)); return true; }) as typeof process.stderr.write;
    try {
      await expect(execDelegate({ type: 'crash', verb: 'ADD', env: env(), stdin: Buffer.from('{}'), confVersion: '1.0.0' }))
        .rejects.toMatchObject({ code: 999, message: 'plugin "crash" exited with code 3', details: 'boom: disk on fire' });
    } finally {
      process.stderr.write = orig;
    }
    expect(seen.join('')).toContain('boom: disk on fire'); // stderr relayed
  });
  it('ADD with empty stdout is a decoding error; DEL with empty stdout is fine', async () => {
    await expect(execDelegate({ type: 'silent', verb: 'ADD', env: env(), stdin: Buffer.from('{}'), confVersion: '1.0.0' })).rejects.toMatchObject({ code: 6 });
    await expect(execDelegate({ type: 'silent', verb: 'DEL', env: env(), stdin: Buffer.from('{}'), confVersion: '1.0.0' })).resolves.toBeUndefined();
  });
  it('a missing binary is a PluginUnavailableError', async () => {
    await expect(execDelegate({ type: 'nope', verb: 'ADD', env: env(), stdin: Buffer.from('{}'), confVersion: '1.0.0' })).rejects.toBeInstanceOf(PluginUnavailableError);
  });
});

describe('ipam', () => {
  it('ipamAdd strips interfaces and ips[].interface, labels the result with the config version', async () => {
    const res = await ipamAdd(inv({ ipam: { type: 'rec' } }));
    expect(res).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.9.0.7/24', gateway: '10.9.0.1' }], routes: [{ dst: '0.0.0.0/0' }], dns: { nameservers: ['10.9.0.1'] } });
  });
  it('runs an in-process plugin with the same Invocation (verb changed) instead of exec', async () => {
    const seen: Invocation[] = [];
    const local: Plugin = {
      name: 'rec', description: '',
      async add(i) { seen.push(i); return { cniVersion: '1.0.0', ips: [{ address: '10.5.0.2/16', interface: 3 }] }; },
      async del(i) { seen.push(i); },
    };
    const i = inv({ ipam: { type: 'rec' } });
    expect(await ipamAdd(i, { rec: local })).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.5.0.2/16' }] });
    await ipamDel(i, { rec: local });
    expect(seen.map((s) => s.env.command)).toEqual(['ADD', 'DEL']);
    expect(seen[1].raw).toBe(i.raw);
    expect(seen[1].conf).toBe(i.conf);
  });
  it('no ipam.type: DEL/CHECK/STATUS are no-ops, ADD is a config error', async () => {
    const i = inv({ ipam: {} });
    await expect(ipamDel(i)).resolves.toBeUndefined();
    await expect(ipamCheck(i)).resolves.toBeUndefined();
    await expect(ipamStatus(i)).resolves.toBeUndefined();
    await expect(ipamAdd(i)).rejects.toMatchObject({ code: 7 });
  });
  it('rejects an ipam.type with a path separator', async () => {
    await expect(ipamAdd(inv({ ipam: { type: '../../bin/sh' } }))).rejects.toMatchObject({ code: 7 });
  });
  it('STATUS: a missing IPAM binary is code 50; a delegate error passes through', async () => {
    await expect(ipamStatus(inv({ ipam: { type: 'nope' } }, { command: 'STATUS' }))).rejects.toMatchObject({ code: 50 });
    await expect(ipamStatus(inv({ ipam: { type: 'busy' } }, { command: 'STATUS' }))).rejects.toMatchObject({ code: 11 });
  });
});

const HOST_LOCAL = '/usr/lib/cni/host-local';
(fs.existsSync(HOST_LOCAL) ? describe : describe.skip)('reference host-local through ipamAdd/ipamCheck/ipamDel', () => {
  it('allocates, checks and releases in a temp dataDir', async () => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'cniexec-hl-'));
    try {
      const conf = { ipam: { type: 'host-local', dataDir: data, ranges: [[{ subnet: '10.77.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] } };
      const i = inv(conf, { path: ['/usr/lib/cni'] });
      const res = await ipamAdd(i);
      expect(res.ips).toEqual([{ address: '10.77.0.2/24', gateway: '10.77.0.1' }]);
      expect(res.routes).toEqual([{ dst: '0.0.0.0/0' }]);
      expect(fs.readFileSync(path.join(data, 'net1', '10.77.0.2'), 'utf8')).toContain('ctr1');
      await ipamCheck({ ...i, conf: { ...i.conf, prevResult: res } });
      await ipamDel(i);
      expect(fs.existsSync(path.join(data, 'net1', '10.77.0.2'))).toBe(false);
      await ipamDel(i); // idempotent
      await expect(ipamCheck(i)).rejects.toBeInstanceOf(CniError);
    } finally {
      fs.rmSync(data, { recursive: true, force: true });
    }
  });
});
