// The release where no Node exists: a private mount namespace in which
// /usr/bin/node, every `node` on PATH and the Node running this test are
// covered (bind mounts) by a stub that records being run. In it cnictl runs a
// [bridge, portmap] conflist: ADD, traffic to the container through the
// published port, CHECK, DEL; and the vxlan-overlay agent with its file store
// serves an ADD and a DEL. The stub must never run.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { DIST_BIN, Sandbox, sh } from '../helpers/sandbox';
import { eventually, fetchFrom, startHttpd } from './portmap-helpers';

jest.setTimeout(180000);

const sb = new Sandbox('rl');
let holder: ChildProcess;
let stubLog: string;

beforeAll(() => {
  ensureBuilt('bridge', 'portmap', 'host-local', 'cnictl', 'vxlan-overlay');
  const dir = sb.tmpdir('-nonode');
  stubLog = path.join(dir, 'node-ran');
  const stub = path.join(dir, 'node');
  fs.writeFileSync(stub, `#!/bin/sh\necho "$0 $*" >> ${stubLog}\nexit 127\n`, { mode: 0o755 });
  // Slave propagation: namespaces the test mounts under /run/netns later still appear inside.
  holder = spawn('unshare', ['--mount', '--propagation', 'slave', 'sleep', 'infinity'], { stdio: 'ignore' });
  sb.onCleanup(() => holder.kill('SIGKILL'));
  waitFor(() => fs.readlinkSync(`/proc/${holder.pid}/ns/mnt`) !== fs.readlinkSync('/proc/self/ns/mnt'));
  const nodes = new Set(['/usr/bin/node', '/usr/local/bin/node', process.execPath]);
  for (const d of (process.env.PATH ?? '').split(':')) if (d) nodes.add(path.join(d, 'node'));
  for (const n of [...nodes]) if (fs.existsSync(n)) nodes.add(fs.realpathSync(n));
  for (const n of nodes) {
    if (fs.existsSync(n)) sh('nsenter', [`--mount=/proc/${holder.pid}/ns/mnt`, 'mount', '--bind', stub, n]);
  }
  // The stub is what `node` is in there now.
  const probe = inMountNs(['node', '-e', '0'], {});
  expect(probe.status).toBe(127);
  expect(fs.readFileSync(stubLog, 'utf8')).toContain('-e 0');
  fs.writeFileSync(stubLog, '');
});
afterAll(() => sb.cleanup());
afterEach(() => expect(fs.readFileSync(stubLog, 'utf8')).toBe(''));

function waitFor(ok: () => boolean): void {
  for (let i = 0; i < 200; i++) {
    try { if (ok()) return; } catch { /* not yet */ }
    spawnSync('sleep', ['0.05']);
  }
  throw new Error('timed out');
}

function inMountNs(cmd: string[], env: Record<string, string>, input?: string) {
  return spawnSync('nsenter', [`--mount=/proc/${holder.pid}/ns/mnt`, '--', ...cmd], {
    env: { PATH: process.env.PATH, ...env }, input, encoding: 'utf8', timeout: 60000,
  });
}

describe('cnictl with a [bridge, portmap] conflist', () => {
  it('ADD, traffic through the published port, CHECK, DEL', async () => {
    const host = sb.netns('h');
    const other = sb.netns('o');
    const ctr = sb.netns('c');
    sh('ip', ['-n', host, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', other]);
    sh('ip', ['-n', host, 'addr', 'add', '10.61.0.1/24', 'dev', 'ext0']);
    sh('ip', ['-n', host, 'link', 'set', 'ext0', 'up']);
    sh('ip', ['-n', other, 'addr', 'add', '10.61.0.2/24', 'dev', 'eth0']);
    sh('ip', ['-n', other, 'link', 'set', 'eth0', 'up']);
    startHttpd(sb, ctr, 'from the container');
    const conf = sb.tmpdir('-conf');
    const state = sb.tmpdir('-state');
    fs.writeFileSync(path.join(conf, '10-rl.conflist'), JSON.stringify({
      cniVersion: '1.1.0',
      name: 'rlnonode',
      plugins: [
        { type: 'bridge', bridge: 'rlbr0', isDefaultGateway: true, ipMasq: true, stateDir: path.join(state, 'bridge'), ipam: { type: 'host-local', subnet: '10.61.1.0/24', dataDir: path.join(state, 'ipam') } },
        { type: 'portmap', capabilities: { portMappings: true }, dataDir: path.join(state, 'portmap') },
      ],
    }));
    const env = {
      NETCONFPATH: conf, CNI_PATH: DIST_BIN, CNI_CACHE_DIR: path.join(state, 'cache'), CNI_CONTAINERID: `${sb.tag}-ctr`,
      CAP_ARGS: JSON.stringify({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }),
    };
    const cnictl = (verb: string) => {
      const r = inMountNs(['ip', 'netns', 'exec', host, path.join(DIST_BIN, 'cnictl'), verb, 'rlnonode', sb.nsPath(ctr)], env);
      if (r.status !== 0) throw new Error(`cnictl ${verb}: ${r.stdout} ${r.stderr}`);
      return r.stdout;
    };
    const added = JSON.parse(cnictl('add'));
    expect(added.ips[0].address).toMatch(/^10\.61\.1\.\d+\/24$/);
    expect(await eventually(() => fetchFrom(sb, other, '10.61.0.1', 8080))).toBe('from the container');
    cnictl('check');
    cnictl('del');
    expect(fetchFrom(sb, other, '10.61.0.1', 8080)).toBeUndefined();
    expect(sh('ip', ['-n', ctr, '-o', 'link', 'show']).includes('eth0')).toBe(false);
  });
});

describe('vxlan-overlay agent with its file store', () => {
  it('becomes ready and serves an ADD and a DEL', () => {
    const host = sb.netns('oh');
    const ctr = sb.netns('oc');
    const runDir = sb.tmpdir('-run');
    const storeDir = path.join(sb.tmpdir('-store'), 'store');
    sh('ip', ['-n', host, 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', 'u1']);
    sh('ip', ['-n', host, 'addr', 'add', '10.61.2.1/24', 'dev', 'u0']);
    sh('ip', ['-n', host, 'link', 'set', 'u0', 'up']);
    sh('ip', ['-n', host, 'link', 'set', 'u1', 'up']);
    const bin = path.join(DIST_BIN, 'vxlan-overlay');
    let log = '';
    const agent = spawn('nsenter', [`--mount=/proc/${holder.pid}/ns/mnt`, '--', 'ip', 'netns', 'exec', host, bin, 'agent',
      '--network', 'rlovl', '--cidr', '10.63.0.0/16', '--store-dir', storeDir, '--underlay-ip', '10.61.2.1',
      '--host-id', 'h1', '--lease-ttl', '5', '--run-dir', runDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    agent.stderr!.on('data', (c: Buffer) => { log += c.toString(); });
    sb.onCleanup(() => agent.kill('SIGKILL'));
    const readiness = path.join(runDir, 'rlovl', `agent-${fs.statSync(sb.nsPath(host)).ino}.json`);
    try {
      waitFor(() => JSON.parse(fs.readFileSync(readiness, 'utf8')).leaseOk === true);
    } catch {
      throw new Error(`the agent did not become ready (log: ${log})`);
    }
    const run = (verb: string) => {
      const r = inMountNs(['ip', 'netns', 'exec', host, bin], {
        CNI_COMMAND: verb, CNI_CONTAINERID: `${sb.tag}-ovl`, CNI_NETNS: sb.nsPath(ctr), CNI_IFNAME: 'eth0', CNI_PATH: DIST_BIN,
      }, JSON.stringify({ cniVersion: '1.1.0', name: 'rlovl', type: 'vxlan-overlay', runDir, ipam: { dataDir: path.join(runDir, 'ipam') } }));
      if (r.status !== 0) throw new Error(`vxlan-overlay ${verb}: ${r.stdout} ${r.stderr}`);
      return r.stdout;
    };
    const added = JSON.parse(run('ADD'));
    expect(added.ips[0].address).toMatch(/^10\.63\.\d+\.\d+\/24$/);
    const gateway = added.ips[0].gateway as string;
    expect(sb.inNs(ctr, 'ping', ['-c', '1', '-W', '2', gateway]).status).toBe(0);
    run('DEL');
    agent.kill('SIGTERM');
  });
});
