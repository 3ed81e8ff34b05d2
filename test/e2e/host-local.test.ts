// host-local on a real filesystem through dist/bin/host-local: concurrency,
// exhaustion, sharing a dataDir with the reference binary, SIGKILL at random
// moments, GC. No namespaces needed: IPAM only touches dataDir.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, REFERENCE_BIN, Sandbox } from '../helpers/sandbox';
import { cniEnv } from '../helpers/cni';

const OURS = path.join(DIST_BIN, 'host-local');
const REF = path.join(REFERENCE_BIN, 'host-local');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

// Every case spawns real processes; a busy 2-core machine needs time.
jest.setTimeout(120_000);

const box = new Sandbox('hl');
let dataDir = '';

beforeAll(() => {
  if (!fs.existsSync(OURS)) throw new Error(`${OURS} is missing: run "node scripts/build.js host-local" first`);
  dataDir = box.tmpdir('-data');
});
afterAll(() => box.cleanup());

// The reference binaries are v1.1.1: they speak up to 1.0.0.
function netConf(name: string, ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { cniVersion: '1.0.0', name, type: 'bridge', ipam: { type: 'host-local', dataDir, ...ipam }, ...extra };
}

function run(bin: string, command: string, id: string, conf: object, opts: { ifname?: string; killAfterMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(bin, [], {
      env: cniEnv({ command, containerId: id, ifname: opts.ifname, netns: '/run/netns/none', path: REFERENCE_BIN }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.on('error', () => undefined); // killed before reading stdin
    child.stdin.end(JSON.stringify(conf));
    if (opts.killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function addressOf(r: Run): string {
  if (r.code !== 0) throw new Error(`ADD failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout).ips[0].address.split('/')[0];
}

/** Reservation files of a network: address → content. */
function reservations(name: string): Map<string, string> {
  const dir = path.join(dataDir, name);
  const out = new Map<string, string>();
  for (const f of fs.readdirSync(dir)) {
    if (/^[0-9.]+$|:/.test(f)) out.set(f, fs.readFileSync(path.join(dir, f), 'utf8'));
  }
  return out;
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

it('64 concurrent ADDs on a /25 get 64 distinct addresses; DEL and GC free them', async () => {
  const conf = netConf('conc', { ranges: [[{ subnet: '10.77.0.0/25' }]] });
  const results = await Promise.all(ids('c', 64).map((id) => run(OURS, 'ADD', id, conf)));
  const addrs = results.map(addressOf);
  expect(new Set(addrs).size).toBe(64);
  const files = reservations('conc');
  expect(files.size).toBe(64);
  ids('c', 64).forEach((id, i) => expect(files.get(addrs[i])).toBe(`${id}\r\neth0`));
  // Layout and modes: directories 0755, files 0600.
  const dir = path.join(dataDir, 'conc');
  expect(fs.statSync(dir).mode & 0o777).toBe(0o755);
  for (const f of [addrs[0], 'lock', 'last_reserved_ip.0']) expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);

  // Concurrent DELs of a quarter (processes are expensive on a busy machine), GC with no valid attachment for the rest.
  const dels = await Promise.all(ids('c', 16).map((id) => run(OURS, 'DEL', id, conf)));
  expect(dels.map((r) => r.code)).toEqual(new Array(16).fill(0));
  const left = reservations('conc');
  expect(left.size).toBe(48);
  for (const id of ids('c', 16)) expect([...left.values()]).not.toContain(`${id}\r\neth0`);
  expect((await run(OURS, 'GC', '', { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] })).code).toBe(0);
  expect(reservations('conc').size).toBe(0);
});

it('on a /28, exactly as many ADDs succeed as the range holds; the rest get the exhaustion error', async () => {
  const conf = netConf('full', { ranges: [[{ subnet: '10.78.0.0/28' }]] }, { cniVersion: '1.1.0' });
  const results = await Promise.all(ids('f', 16).map((id) => run(OURS, 'ADD', id, conf)));
  const ok = results.filter((r) => r.code === 0);
  expect(ok).toHaveLength(13); // .2–.14: .0 network, .1 gateway, .15 broadcast
  expect(new Set(ok.map(addressOf)).size).toBe(13);
  for (const r of results.filter((x) => x.code !== 0)) {
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 11, msg: 'no IP addresses available in range set 0: 10.78.0.1-10.78.0.14' });
  }
  const status = await run(OURS, 'STATUS', '', conf);
  expect(JSON.parse(status.stdout)).toMatchObject({ code: 50 });
  // A failed ADD left nothing behind.
  expect(reservations('full').size).toBe(13);
});

it('shares a dataDir with the reference host-local: concurrent ADDs never collide, each DELs the other\'s', async () => {
  const conf = netConf('mix', { ranges: [[{ subnet: '10.79.0.0/26' }], [{ subnet: 'fd79::/120' }]] });
  const ours = ids('o', 8);
  const refs = ids('r', 8);
  const results = await Promise.all([...ours.map((id) => run(OURS, 'ADD', id, conf)), ...refs.map((id) => run(REF, 'ADD', id, conf))]);
  for (const r of results) expect(r.code).toBe(0);
  const v4 = results.map(addressOf);
  const v6 = results.map((r) => JSON.parse(r.stdout).ips[1].address);
  expect(new Set(v4).size).toBe(16);
  expect(new Set(v6).size).toBe(16);
  expect(reservations('mix').size).toBe(32);

  // Duplicate detection works across implementations (ours falls back to a walk after a foreign change).
  const dupOurs = await run(OURS, 'ADD', refs[0], conf);
  expect(dupOurs.code).not.toBe(0);
  expect(dupOurs.stdout).toMatch(/duplicate allocation is not allowed/);
  const dupRef = await run(REF, 'ADD', ours[0], conf);
  expect(dupRef.code).not.toBe(0);
  expect(dupRef.stdout).toMatch(/duplicate allocation is not allowed/);
  // CHECK of the reference's reservation by ours, and of ours by the reference.
  expect((await run(OURS, 'CHECK', refs[1], conf)).code).toBe(0);
  expect((await run(REF, 'CHECK', ours[1], conf)).code).toBe(0);

  // Cross DEL, concurrently: ours frees the reference's, the reference frees ours.
  const dels = await Promise.all([...refs.map((id) => run(OURS, 'DEL', id, conf)), ...ours.map((id) => run(REF, 'DEL', id, conf))]);
  for (const r of dels) expect(r.code).toBe(0);
  expect(reservations('mix').size).toBe(0);
  // Our index does not keep stale entries alive: a new ADD by ours works and CHECK of a freed one fails.
  expect(addressOf(await run(OURS, 'ADD', 'after', conf))).toMatch(/^10\.79\.0\./);
  expect((await run(OURS, 'CHECK', ours[2], conf)).code).not.toBe(0);
});

it('SIGKILLed ADDs leave no stuck lock; GC then leaves exactly the completed attachments, no duplicates', async () => {
  const conf = netConf('kill', { ranges: [[{ subnet: '10.80.0.0/24' }]] }, { cniVersion: '1.1.0' });
  // Calibrate the kill window on the real process duration (busy machines are slow).
  const t0 = Date.now();
  addressOf(await run(OURS, 'ADD', 'calib', conf));
  const span = Math.max(Date.now() - t0, 50);

  const completed: string[] = ['calib'];
  let killed = 0;
  for (let round = 0; round < 3; round++) {
    const batch = ids(`k${round}x`, 8);
    const results = await Promise.all(batch.map((id) => run(OURS, 'ADD', id, conf, { killAfterMs: Math.floor(Math.random() * span * 1.2) })));
    results.forEach((r, i) => {
      if (r.code === 0) completed.push(batch[i]);
      else if (r.signal === 'SIGKILL') killed++;
      else throw new Error(`ADD ${batch[i]} failed without being killed: ${r.stdout} ${r.stderr}`);
    });
  }
  expect(killed).toBeGreaterThan(0);

  // No stuck lock: nobody holds it now.
  const lock = path.join(dataDir, 'kill', 'lock');
  expect(spawnSync('flock', ['-n', lock, 'true']).status).toBe(0);

  const gcConf = { ...conf, 'cni.dev/valid-attachments': completed.map((containerID) => ({ containerID, ifname: 'eth0' })) };
  const gc = await run(OURS, 'GC', '', gcConf);
  expect(gc.code).toBe(0);

  const files = reservations('kill');
  const owners = [...files.values()];
  expect(owners.sort()).toEqual(completed.map((id) => `${id}\r\neth0`).sort()); // no leak, no duplicate owner
  expect(fs.existsSync(path.join(dataDir, 'kill', '.reserve.tmp'))).toBe(false);

  // The index agrees: every completed attachment is CHECKable and DEL frees everything.
  const checks = await Promise.all(completed.map((id) => run(OURS, 'CHECK', id, conf)));
  for (const c of checks) expect(c.code).toBe(0);
  await Promise.all(completed.map((id) => run(OURS, 'DEL', id, conf)));
  expect(reservations('kill').size).toBe(0);
});

it('GC releases stale and legacy reservations of its network only', async () => {
  const a = netConf('gca', { subnet: '10.81.0.0/24' }, { cniVersion: '1.1.0' });
  const b = netConf('gcb', { subnet: '10.82.0.0/24' }, { cniVersion: '1.1.0' });
  await run(OURS, 'ADD', 'live', a);
  await run(OURS, 'ADD', 'dead', a);
  await run(OURS, 'ADD', 'other', b);
  fs.writeFileSync(path.join(dataDir, 'gca', '10.81.0.100'), 'legacy-dead', { mode: 0o600 });
  fs.writeFileSync(path.join(dataDir, 'gca', '10.81.0.101'), 'live', { mode: 0o600 }); // legacy file of a valid container
  const gc = await run(OURS, 'GC', '', { ...a, 'cni.dev/valid-attachments': [{ containerID: 'live', ifname: 'eth0' }] });
  expect(gc.code).toBe(0);
  expect([...reservations('gca').values()].sort()).toEqual(['live', 'live\r\neth0']);
  expect([...reservations('gcb').values()]).toEqual(['other\r\neth0']);
});

it('recovers the state a kill between link and stamp leaves: the temp still linked to a fresh reservation', async () => {
  const conf = netConf('crash', { subnet: '10.84.0.0/24' }, { cniVersion: '1.1.0' });
  addressOf(await run(OURS, 'ADD', 'before', conf));
  const dir = path.join(dataDir, 'crash');
  fs.writeFileSync(path.join(dir, '10.84.0.50'), 'ghost\r\neth0', { mode: 0o600 });
  fs.linkSync(path.join(dir, '10.84.0.50'), path.join(dir, '.reserve.tmp'));
  // The next ADD must not write through the stale temp into ghost's reservation.
  addressOf(await run(OURS, 'ADD', 'next', conf));
  expect(fs.readFileSync(path.join(dir, '10.84.0.50'), 'utf8')).toBe('ghost\r\neth0');
  // The index was rebuilt: ghost's reservation is known and DEL-able by its owner.
  expect((await run(OURS, 'CHECK', 'ghost', conf)).code).toBe(0);
  await run(OURS, 'GC', '', { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'before', ifname: 'eth0' }, { containerID: 'next', ifname: 'eth0' }] });
  expect([...reservations('crash').values()].sort()).toEqual(['before\r\neth0', 'next\r\neth0']);
  expect(fs.existsSync(path.join(dir, '.reserve.tmp'))).toBe(false);
});

it('refuses names that would escape dataDir', async () => {
  const r = await run(OURS, 'ADD', 'c1', netConf('../escape', { subnet: '10.83.0.0/24' }));
  expect(JSON.parse(r.stdout).code).toBe(7);
  const r2 = await run(OURS, 'ADD', '../c1', netConf('esc', { subnet: '10.83.0.0/24' }));
  expect(JSON.parse(r2.stdout).code).toBe(4);
  expect(fs.existsSync(path.join(path.dirname(dataDir), 'escape'))).toBe(false);
});
