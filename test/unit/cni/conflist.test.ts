// The conflist runner (what libcni does) against fake plugins: node scripts
// that record the verb, env and stdin they get, and on ADD append an interface
// to prevResult so ordering and prevResult injection are visible.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ChainRunner, loadNetwork, negotiateListVersion, parseNetworkConfig, buildPluginConfig } from '../../../lib/cni/conflist';

const FAKE = `#!${process.execPath}
const fs = require('fs');
const stdin = fs.readFileSync(0, 'utf8');
const conf = JSON.parse(stdin);
const verb = process.env.CNI_COMMAND;
fs.appendFileSync(process.env.REC_LOG, JSON.stringify({ verb, tag: conf.tag, conf, ifname: process.env.CNI_IFNAME, id: process.env.CNI_CONTAINERID, args: process.env.CNI_ARGS }) + '\\n');
if (conf.failOn === verb) { console.log(JSON.stringify({ code: 11, msg: 'fake ' + conf.tag + ' refuses ' + verb })); process.exit(1); }
if (verb === 'ADD') {
  const prev = conf.prevResult || { cniVersion: conf.cniVersion, ips: [{ address: '10.0.0.2/24' }] };
  prev.interfaces = (prev.interfaces || []).concat([{ name: conf.tag }]);
  console.log(JSON.stringify(prev));
}
`;

jest.setTimeout(60000); // each fake plugin is a node process; the machine is shared

let dir: string;
let bin: string;
let log: string;
let cacheDir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conflist-'));
  bin = path.join(dir, 'bin');
  cacheDir = path.join(dir, 'cache');
  log = path.join(dir, 'rec.log');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'fake'), FAKE, { mode: 0o755 });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function records(): any[] {
  if (!fs.existsSync(log)) return [];
  const out = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  fs.rmSync(log);
  return out;
}

function list(extra: object = {}, plugins: object[] = [{ type: 'fake', tag: 'a' }, { type: 'fake', tag: 'b', capabilities: { portMappings: true, mac: false } }, { type: 'fake', tag: 'c' }]) {
  return parseNetworkConfig(Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'net1', plugins, ...extra })));
}

const RT = { containerId: 'ctr1', netns: '/run/netns/x', ifname: 'eth0', args: 'IgnoreUnknown=1;K8S_POD_NAME=p', capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], mac: '02:00:00:00:00:09' } };

function runner() {
  return new ChainRunner({ cniPath: [bin], cacheDir, env: { ...process.env, REC_LOG: log } });
}

describe('ChainRunner', () => {
  it('ADD runs in order, chaining prevResult, injecting name/cniVersion and only declared capabilities; caches the result', async () => {
    const r = runner();
    const result = await r.add(list(), RT);
    expect(result.interfaces?.map((i) => i.name)).toEqual(['a', 'b', 'c']);
    const rec = records();
    expect(rec.map((x) => `${x.verb}:${x.tag}`)).toEqual(['ADD:a', 'ADD:b', 'ADD:c']);
    expect(rec[0].conf).not.toHaveProperty('prevResult');
    expect(rec[1].conf.prevResult.interfaces).toEqual([{ name: 'a' }]);
    expect(rec[2].conf.prevResult.interfaces).toEqual([{ name: 'a' }, { name: 'b' }]);
    expect(rec.every((x) => x.conf.name === 'net1' && x.conf.cniVersion === '1.1.0' && x.args === RT.args && x.id === 'ctr1')).toBe(true);
    expect(rec[0].conf).not.toHaveProperty('runtimeConfig'); // nothing declared → omitted
    expect(rec[1].conf.runtimeConfig).toEqual({ portMappings: RT.capabilityArgs.portMappings }); // mac: false → not sent
    expect(r.cachedAttachments('net1')).toEqual([{ containerID: 'ctr1', ifname: 'eth0' }]);
    const cacheFile = JSON.parse(fs.readFileSync(path.join(cacheDir, 'results', 'net1-ctr1-eth0'), 'utf8'));
    expect(cacheFile).toMatchObject({ kind: 'cniCacheV1', containerId: 'ctr1', ifName: 'eth0', networkName: 'net1', netns: '/run/netns/x', cniArgs: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'p']] });
    expect(cacheFile.result.interfaces).toHaveLength(3);
  });

  it('ADD stops at the first error and passes the error up; nothing is cached', async () => {
    const r = runner();
    await expect(r.add(list({}, [{ type: 'fake', tag: 'a' }, { type: 'fake', tag: 'b', failOn: 'ADD' }, { type: 'fake', tag: 'c' }]), RT)).rejects.toMatchObject({ code: 11, message: 'fake b refuses ADD' });
    expect(records().map((x) => x.tag)).toEqual(['a', 'b']);
    expect(r.cachedAttachments('net1')).toEqual([]);
  });

  it('CHECK runs in order with the cached final result; DEL runs in reverse with it, then drops the cache', async () => {
    const r = runner();
    const l = list();
    await r.add(l, RT);
    records();
    await r.check(l, RT);
    await r.del(l, RT);
    const rec = records();
    expect(rec.map((x) => `${x.verb}:${x.tag}`)).toEqual(['CHECK:a', 'CHECK:b', 'CHECK:c', 'DEL:c', 'DEL:b', 'DEL:a']);
    for (const x of rec) expect(x.conf.prevResult.interfaces.map((i: any) => i.name)).toEqual(['a', 'b', 'c']);
    expect(r.cachedAttachments('net1')).toEqual([]);
    await r.del(l, RT); // DEL again: no cache → no prevResult, still fine
    expect(records().every((x) => x.conf.prevResult === undefined)).toBe(true);
    await expect(r.check(l, RT)).rejects.toMatchObject({ code: 3 });
  });

  it('DEL in 0.3.1 never sends prevResult; CHECK needs 0.4.0; disableCheck skips CHECK', async () => {
    const r = runner();
    const old = list({ cniVersion: '0.3.1' });
    await r.add(old, RT);
    records();
    await r.del(old, RT);
    expect(records().every((x) => x.conf.prevResult === undefined && x.conf.cniVersion === '0.3.1')).toBe(true);
    await expect(r.check(old, RT)).rejects.toMatchObject({ code: 1 });
    const noCheck = list({ disableCheck: 'true' });
    await r.add(noCheck, RT);
    records();
    await r.check(noCheck, RT);
    expect(records()).toEqual([]);
  });

  it('GC DELs stale cached attachments, then GCs every plugin with both keys, continuing past errors', async () => {
    const r = runner();
    const l = list({}, [{ type: 'fake', tag: 'a', failOn: 'GC' }, { type: 'fake', tag: 'b' }]);
    await r.add(l, RT);
    await r.add(l, { ...RT, containerId: 'ctr2' });
    records();
    const valid = [{ containerID: 'ctr1', ifname: 'eth0' }];
    await expect(r.gc(l, valid)).rejects.toMatchObject({ code: 11, message: expect.stringContaining('plugin "fake"') });
    const rec = records();
    expect(rec.map((x) => `${x.verb}:${x.tag}:${x.id}`)).toEqual(['DEL:b:ctr2', 'DEL:a:ctr2', 'GC:a:', 'GC:b:']);
    const gc = rec[3].conf;
    expect(gc['cni.dev/valid-attachments']).toEqual(valid);
    expect(gc['cni.dev/attachments']).toEqual(valid);
    expect(gc).not.toHaveProperty('prevResult');
    expect(r.cachedAttachments('net1')).toEqual(valid);
    await r.gc(list({ disableGC: true }), []);
    expect(records()).toEqual([]);
  });

  it('STATUS runs in order and stops at the first error; below 1.1.0 it is a no-op', async () => {
    const r = runner();
    await expect(r.status(list({}, [{ type: 'fake', tag: 'a' }, { type: 'fake', tag: 'b', failOn: 'STATUS' }, { type: 'fake', tag: 'c' }]))).rejects.toMatchObject({ code: 11 });
    expect(records().map((x) => x.tag)).toEqual(['a', 'b']);
    await r.status(list({ cniVersion: '1.0.0' }));
    expect(records()).toEqual([]);
  });
});

describe('loading', () => {
  it.each([
    ['1.0.0', undefined, '1.0.0'],
    ['1.0.0', ['0.4.0', '1.1.0', '9.0.0'], '1.1.0'], // above what we know → dropped
    [undefined, ['0.3.1', '1.0.0'], '1.0.0'],
    [undefined, undefined, '0.1.0'],
  ])('cniVersion %j + cniVersions %j → %s', (v, vs, want) => {
    expect(negotiateListVersion(v, vs)).toBe(want);
  });
  it.each([
    [{ name: 'n', plugins: [] }, /non-empty/],
    [{ name: 'n', plugins: [{ type: '../x' }] }, /invalid plugin/],
    [{ plugins: [{ type: 'x' }] }, /missing network name/],
    [{ name: 'n', cniVersions: ['1.x'], plugins: [{ type: 'x' }] }, /not a version/],
    [{ name: 'n', disableCheck: 'maybe', plugins: [{ type: 'x' }] }, /boolean/],
  ])('%j is rejected', (conf, msg) => {
    expect(() => parseNetworkConfig(Buffer.from(JSON.stringify(conf)))).toThrow(msg);
  });
  it('finds a network by name among .conflist, .conf and .json files; a single .conf becomes a list', () => {
    const d = path.join(dir, 'net.d');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, '10-a.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'a', plugins: [{ type: 'fake' }] }));
    fs.writeFileSync(path.join(d, '20-b.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'b', type: 'fake', ipam: {} }));
    fs.writeFileSync(path.join(d, '30-broken.json'), '{');
    fs.writeFileSync(path.join(d, 'README'), 'not a config');
    expect(loadNetwork(d, 'a').plugins).toEqual([{ type: 'fake' }]);
    const b = loadNetwork(d, 'b');
    expect([b.cniVersion, b.plugins.length, b.plugins[0].type]).toEqual(['0.4.0', 1, 'fake']);
    expect(() => loadNetwork(d, 'zzz')).toThrow(/no network named "zzz"/);
  });
  it('a plugin config never carries runtimeConfig from the file', () => {
    const l = list({}, [{ type: 'fake', runtimeConfig: { x: 1 } }]);
    expect(JSON.parse(buildPluginConfig(l, l.plugins[0]).toString())).toEqual({ type: 'fake', name: 'net1', cniVersion: '1.1.0' });
  });
});
