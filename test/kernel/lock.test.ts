// lib/sys/lock and lib/util/network-state with real flock between processes:
// a lock file removed by its holder while another process waits on it is
// noticed (the waiter starts over on a fresh file instead of holding a lock
// on an unlinked inode, which would let a third process in beside it).
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { withFileLock } from '../../lib/sys/lock';
import { NetworkState } from '../../lib/util/network-state';
import { Sandbox } from '../helpers/sandbox';

const sb = new Sandbox('lflk');
afterAll(() => sb.cleanup());

/** Another process holds an exclusive flock on `file` for `ms`, then unlinks it and exits. Resolves once it holds the lock. */
async function holdAndRemove(file: string, ms: number): Promise<{ exited: Promise<void> }> {
  const ready = `${file}.ready`;
  const child = spawn('flock', ['-x', file, '-c', `touch ${ready}; sleep ${ms / 1000}; rm -f ${file} ${ready}`], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  for (let i = 0; i < 200 && !fs.existsSync(ready); i++) await new Promise((r) => setTimeout(r, 10));
  return { exited };
}

it('a waiter whose lock file was removed meanwhile locks the file the path names now', async () => {
  const dir = sb.tmpdir();
  const file = path.join(dir, 'net', '.lock');
  fs.mkdirSync(path.dirname(file));
  fs.writeFileSync(file, '');
  const holder = await holdAndRemove(file, 300);
  expect(fs.existsSync(`${file}.ready`)).toBe(true); // it holds the lock now
  const inode = await withFileLock(file, () => {
    // We hold the lock on the file at the path, not on the one the holder unlinked.
    expect(fs.existsSync(file)).toBe(true);
    return fs.statSync(file).ino;
  });
  await holder.exited;
  expect(fs.statSync(file).ino).toBe(inode);
});

it('removeOnRelease takes the lock file and its empty directory away; shared holders may not', async () => {
  const dir = sb.tmpdir();
  const file = path.join(dir, 'net', '.lock');
  await withFileLock(file, (lock) => lock.removeOnRelease({ dir: true }));
  expect(fs.existsSync(path.dirname(file))).toBe(false);
  await expect(withFileLock(file, (lock) => lock.removeOnRelease(), { shared: true })).rejects.toThrow(/only an exclusive holder/);
  // Parents are created 0755 (dnsmasq, running as nobody, must search them), the lock's own directory 0700.
  const deep = path.join(dir, 'a', 'b', '.lock');
  await withFileLock(deep, () => undefined);
  expect(fs.statSync(path.join(dir, 'a')).mode & 0o777).toBe(0o755);
  expect(fs.statSync(path.join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
});

it('NetworkState: the last member out tears down and leaves no directory; a member keeps it', async () => {
  const dir = path.join(sb.tmpdir(), 'net1');
  const state = new NetworkState(dir, (n) => n.endsWith('.json'));
  let torn = 0;
  await state.whileAttaching(async () => {
    fs.writeFileSync(path.join(dir, 'a.json'), '{}');
    fs.writeFileSync(path.join(dir, 'b.json'), '{}');
  });
  expect(await state.teardownIfUnused(() => { torn++; })).toBe(false);
  fs.rmSync(path.join(dir, 'a.json'));
  expect(await state.teardownIfUnused(() => { torn++; })).toBe(false);
  fs.rmSync(path.join(dir, 'b.json'));
  fs.writeFileSync(path.join(dir, 'b.json.123.tmp'), ''); // a writer's leftover is not a member
  expect(await state.teardownIfUnused(() => { torn++; })).toBe(true);
  expect(torn).toBe(1);
  expect(fs.existsSync(dir)).toBe(false);
  // A failed teardown keeps the directory, for the next DEL or GC to finish.
  await state.whileAttaching(async () => undefined);
  await expect(state.teardownIfUnused(() => { throw new Error('nft said no'); })).rejects.toThrow(/nft said no/);
  expect(fs.existsSync(state.lockFile)).toBe(true);
  expect(await state.teardownIfUnused(() => undefined)).toBe(true);
  expect(fs.existsSync(dir)).toBe(false);
});

it('NetworkState: a teardown waits for an ADD holding the shared lock, then sees its record and keeps the network', async () => {
  const dir = path.join(sb.tmpdir(), 'net2');
  const state = new NetworkState(dir, (n) => n.endsWith('.json'));
  await state.whileAttaching(async () => undefined); // the directory and lock exist, no member yet
  // Another process is an ADD: shared lock held while it writes its record.
  const ready = path.join(dir, 'ready');
  const add = spawn('flock', ['-s', state.lockFile, '-c', `touch ${ready}; sleep 0.4; touch ${path.join(dir, 'c1.json')}`], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => add.on('exit', () => r()));
  for (let i = 0; i < 200 && !fs.existsSync(ready); i++) await new Promise((r) => setTimeout(r, 10));
  fs.rmSync(ready);
  // Had it not waited for the ADD, it would have found no record and torn down (throwing here).
  expect(await state.teardownIfUnused(() => { throw new Error('must not tear down a network an ADD is joining'); })).toBe(false);
  await exited;
  expect(fs.readdirSync(dir).sort()).toEqual(['.lock', 'c1.json']);
});
