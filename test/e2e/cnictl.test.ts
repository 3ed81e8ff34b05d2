// cnictl built to dist/bin/cnictl, run like cnitool against the reference
// loopback plugin in a throwaway namespace: netns add → add → check → del →
// netns del, with a private result cache and config directory.
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, REFERENCE_BIN, Sandbox, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';

const CNICTL = path.join(DIST_BIN, 'cnictl');
const LOOPBACK = path.join(REFERENCE_BIN, 'loopback');
const sb = new Sandbox('cctl');
let confDir: string;
let cacheDir: string;
let nsName: string;

function cnictl(args: string[], env: Record<string, string> = {}) {
  return shTry(CNICTL, args, { env: { ...process.env, NETCONFPATH: confDir, CNI_PATH: REFERENCE_BIN, CNI_CACHE_DIR: cacheDir, ...env }, timeout: 60000 });
}

function loUp(): boolean {
  const r = shTry('ip', ['-n', nsName, '-o', 'link', 'show', 'lo']);
  return /[<,]UP[,>]/.test(r.stdout);
}

beforeAll(() => {
  ensureBuilt('cnictl');
  confDir = sb.tmpdir('-conf');
  cacheDir = sb.tmpdir('-cache');
  nsName = `${sb.tag}-c`;
  sb.onCleanup(() => shTry('ip', ['netns', 'del', nsName]));
  fs.writeFileSync(path.join(confDir, '10-lo.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: `${sb.tag}-lo`, plugins: [{ type: 'loopback' }] }));
}, 120000);
afterAll(() => sb.cleanup());

(fs.existsSync(LOOPBACK) ? describe : describe.skip)('cnictl with the reference loopback plugin', () => {
  it('netns add creates a namespace that ip netns sees', () => {
    const r = cnictl(['netns', 'add', nsName]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`/run/netns/${nsName}`);
    expect(cnictl(['netns', 'list']).stdout.split('\n')).toContain(nsName);
    expect(loUp()).toBe(false);
  });

  it('add → check → del', () => {
    const net = `${sb.tag}-lo`;
    const add = cnictl(['add', net, nsName]);
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    const result = JSON.parse(add.stdout);
    expect(result.cniVersion).toBe('1.0.0');
    expect(result.interfaces).toEqual([{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: `/run/netns/${nsName}` }]);
    expect(loUp()).toBe(true);
    const cached = fs.readdirSync(path.join(cacheDir, 'results'));
    expect(cached).toHaveLength(1);
    expect(cached[0]).toMatch(new RegExp(`^${net}-cnitool-[0-9a-f]{20}-eth0$`));

    const check = cnictl(['check', net, nsName]);
    expect([check.status, check.stderr]).toEqual([0, '']);

    const del = cnictl(['del', net, nsName]);
    expect([del.status, del.stderr]).toEqual([0, '']);
    expect(loUp()).toBe(false);
    expect(fs.readdirSync(path.join(cacheDir, 'results'))).toEqual([]);

    // CHECK with nothing cached is an error sentence with a CNI code
    const again = cnictl(['check', net, nsName]);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/^cnictl: no cached result .*\(CNI error code 3\)/);
  });

  it('a plugin error is reported as a sentence with its CNI code', () => {
    const r = cnictl(['add', `${sb.tag}-lo`, nsName], { CNI_IFNAME: 'eth0:1' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^cnictl: .*\(CNI error code 4\)/m);
  });

  it('unknown network and unknown verb fail', () => {
    expect(cnictl(['add', 'no-such-net', nsName]).stderr).toMatch(/no network named "no-such-net".*code 7/);
    expect(cnictl(['frobnicate']).status).not.toBe(0);
  });

  it('netns del removes it and is idempotent', () => {
    expect(cnictl(['netns', 'del', nsName]).status).toBe(0);
    expect(fs.existsSync(`/run/netns/${nsName}`)).toBe(false);
    expect(cnictl(['netns', 'del', nsName]).status).toBe(0);
  });
});
