// What only the embedded file store has to prove: several processes sharing one
// directory (the single-machine cluster), log trimming, crash leftovers.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FileStore } from '../../plugins/vxlan-overlay/store/file-store';
import { OverlayStore } from '../../plugins/vxlan-overlay/store/overlay';
import { WatchEvent, WatchHandle } from '../../plugins/vxlan-overlay/store/types';

const ROOT = path.resolve(__dirname, '..', '..');

/** Run TypeScript in a fresh node process (transpiled on require, no build step). */
function runTs(code: string, env: Record<string, string>): Promise<string> {
  const hook = `
    const ts = require('typescript'), fs = require('fs');
    require.extensions['.ts'] = (m, f) => m._compile(ts.transpileModule(fs.readFileSync(f, 'utf8'),
      { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText, f);
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', hook + code], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (status) => (status === 0 ? resolve(out) : reject(new Error(`child exited ${status}: ${err}`))));
  });
}

function waitUntil(what: string, pred: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (pred()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

describe('file store', () => {
  let dir: string;
  const stores: FileStore[] = [];
  const watches: WatchHandle[] = [];
  const open = (opts: { maxLogLines?: number } = {}): FileStore => {
    const s = new FileStore({ dir, pollMs: 100, ...opts });
    stores.push(s);
    return s;
  };

  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-test-ovfile-')); });
  afterEach(async () => {
    for (const w of watches.splice(0)) w.cancel();
    for (const s of stores.splice(0)) await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('three processes claiming at once get distinct subnets, and a watcher in a fourth sees every claim', async () => {
    const ov = new OverlayStore(open(), 'multi');
    await ov.ensureNetworkConfig({ cidr: '10.90.0.0/24', subnetLength: 28, vni: 5 });
    const { revision } = await open().list(ov.subnetsPrefix);
    const seen: WatchEvent[] = [];
    watches.push(stores[1].watch(ov.subnetsPrefix, revision + 1, { onEvents: (e) => seen.push(...e), onCompacted: () => undefined }));

    const claimer = `
      const { FileStore } = require('./plugins/vxlan-overlay/store/file-store.ts');
      const { OverlayStore } = require('./plugins/vxlan-overlay/store/overlay.ts');
      (async () => {
        const kv = new FileStore({ dir: process.env.DIR });
        const ov = new OverlayStore(kv, 'multi');
        const out = [];
        for (let i = 0; i < 5; i++) out.push((await ov.claimSubnet(process.env.WHO + '-' + i)).subnet);
        await kv.close();
        console.log(JSON.stringify(out));
      })().catch((e) => { console.error(e); process.exit(1); });
    `;
    const outs = await Promise.all(['p1', 'p2', 'p3'].map((who) => runTs(claimer, { DIR: dir, WHO: who })));
    const subnets = outs.flatMap((o) => JSON.parse(o) as string[]);
    expect(subnets).toHaveLength(15);
    expect(new Set(subnets).size).toBe(15);
    const stored = await ov.listSubnets();
    expect(stored.size).toBe(15);
    expect(new Set([...stored.values()].map((o) => o.hostID)).size).toBe(15);

    await waitUntil('15 put events', () => seen.length >= 15);
    expect(seen.every((e) => e.type === 'put')).toBe(true);
    expect(new Set(seen.map((e) => e.key)).size).toBe(15);
    const revs = seen.map((e) => e.modRevision);
    expect(revs).toEqual([...revs].sort((a, b) => a - b));
  }, 30000);

  it('expires a lease for a watcher even when nobody else touches the store', async () => {
    const writer = open();
    const lease = await writer.grantLease(1);
    const rev = await writer.put('/x/live', 'v', { lease });
    await writer.close();
    const seen: WatchEvent[] = [];
    watches.push(open().watch('/x/', rev + 1, { onEvents: (e) => seen.push(...e), onCompacted: () => undefined }));
    await waitUntil('the delete event', () => seen.length > 0);
    expect(seen).toEqual([{ type: 'delete', key: '/x/live', value: '', modRevision: rev + 1 }]);
  });

  it('trims the event log past maxLogLines; a watcher from trimmed history gets compacted, a recent one does not', async () => {
    const kv = open({ maxLogLines: 10 });
    const first = await kv.put('/log/k', '0');
    for (let i = 1; i < 25; i++) await kv.put('/log/k', String(i));
    const lines = fs.readFileSync(kv.logPath, 'utf8').trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(11);
    expect(JSON.parse(lines[0]).compact).toBeGreaterThan(first);

    let compacted = false;
    watches.push(kv.watch('/log/', first + 1, { onEvents: () => undefined, onCompacted: () => (compacted = true) }));
    const recent: WatchEvent[] = [];
    const head = (await kv.get('/log/k'))!.modRevision;
    watches.push(kv.watch('/log/', head, { onEvents: (e) => recent.push(...e), onCompacted: () => (compacted = compacted) }));
    await waitUntil('the compacted signal', () => compacted);
    await waitUntil('the head event', () => recent.length >= 1);
    expect(recent[0]).toMatchObject({ value: '24', modRevision: head });
  });

  it('never delivers a log line whose write crashed before its state was committed, and drops it', async () => {
    const kv = open();
    const rev = await kv.put('/c/a', '1');
    let compacted = false;
    const seen: WatchEvent[] = [];
    watches.push(kv.watch('/c/', rev + 1, { onEvents: (e) => seen.push(...e), onCompacted: () => (compacted = true) }));
    // A writer died after appending its revision but before committing state.json.
    fs.appendFileSync(kv.logPath, JSON.stringify({ r: rev + 1, e: [{ t: 'put', k: '/c/ghost', v: 'x' }] }) + '\n');
    await new Promise((r) => setTimeout(r, 300)); // a few watch polls
    expect(await kv.get('/c/ghost')).toBeUndefined();
    const next = await kv.put('/c/b', '2');
    expect(next).toBe(rev + 1); // the uncommitted revision number is reused, with the real content
    await waitUntil('the put of /c/b', () => seen.length >= 1);
    expect(seen).toEqual([{ type: 'put', key: '/c/b', value: '2', modRevision: rev + 1 }]);
    expect(compacted).toBe(false);
    expect(fs.readFileSync(kv.logPath, 'utf8')).not.toContain('ghost');
    expect((await kv.list('/c/')).kvs.map((k) => k.key)).toEqual(['/c/a', '/c/b']);
  });

  it('never leaves a temp file or a half-written state behind', async () => {
    const kv = open();
    for (let i = 0; i < 20; i++) await kv.put(`/s/${i}`, 'v'.repeat(1000));
    expect(fs.readdirSync(dir).sort()).toEqual(['events.log', 'lock', 'state.json']);
    expect(() => JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'))).not.toThrow();
  });
});
