#!/usr/bin/env node
// Benchmark of the vxlan-overlay network (docs/benchmarks/overlay.md):
//  1. TCP throughput (iperf3) container -> container across two "hosts" through
//     our overlay, against two namespaces joined by a hand-built VXLAN with the
//     same MTU on the same underlay, rounds interleaved in one run (goal >= 0.9).
//  2. Join time with etcd: from spawning an agent on a new host until every
//     other host's container can ping a container on it (goal < 2 s).
// Everything lives in throwaway namespaces (10.78.0.0/24 underlay) and temp
// dirs, removed at the end, also on failure. Needs root, iperf3, etcd and a
// built dist/bin/vxlan-overlay.
// Usage: node scripts/bench/overlay.js [--rounds 3] [--seconds 4] [--joins 3]
'use strict';
// This machine exports NODE_EXTRA_CA_CERTS; runtimes do not pass it to plugins: no measured process gets it.
delete process.env.NODE_EXTRA_CA_CERTS;
const { spawn, spawnSync, execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILT = path.join(ROOT, 'dist', 'bin', 'vxlan-overlay');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const ROUNDS = arg('rounds', 3);
const SECONDS = arg('seconds', 4);
const JOINS = arg('joins', 3);
const TAG = `ovb${crypto.randomBytes(2).toString('hex')}`;
const NET = 'ovbench';

const namespaces = [];
const procs = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-`));

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...opts });
const ns = (suffix) => {
  const name = `${TAG}-${suffix}`;
  sh('ip', ['netns', 'add', name]);
  namespaces.push(name);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
};
const inNs = (n, cmd, args, opts) => spawnSync('ip', ['netns', 'exec', n, cmd, ...args], { encoding: 'utf8', ...opts });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function cleanup() {
  for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  for (const n of namespaces.reverse()) spawnSync('ip', ['netns', 'del', n]);
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

// The switch: a bridge every host plugs into, etcd on its address.
const sw = ns('sw');
sh('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
sh('ip', ['-n', sw, 'addr', 'add', '10.78.0.254/24', 'dev', 'br0']);
sh('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
let port = 0;
function plug(name, i) {
  const n = ns(name);
  sh('ip', ['-n', sw, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'u0', 'netns', n]);
  sh('ip', ['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
  sh('ip', ['-n', n, 'addr', 'add', `10.78.0.${i}/24`, 'dev', 'u0']);
  sh('ip', ['-n', n, 'link', 'set', 'u0', 'up']);
  return { ns: n, ip: `10.78.0.${i}`, name };
}

// The executable alone in a directory (etcd3's .proto files travel inside it).
const binDir = path.join(tmp, 'bin');
fs.mkdirSync(binDir);
const BIN = path.join(binDir, 'vxlan-overlay');
fs.copyFileSync(BUILT, BIN);
fs.chmodSync(BIN, 0o755);

async function startEtcd() {
  port = 20000 + Math.floor(Math.random() * 20000);
  const url = `http://10.78.0.254:${port}`;
  const peer = `http://10.78.0.254:${port + 1}`;
  const p = spawn('ip', ['netns', 'exec', sw, '/usr/bin/etcd', '--name', 'b', '--data-dir', path.join(tmp, 'etcd'),
    '--listen-client-urls', url, '--advertise-client-urls', url, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `b=${peer}`, '--heartbeat-interval', '50', '--election-timeout', '500'], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  let out = '';
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`etcd not ready:\n${out.slice(-1000)}`)), 15000);
    const on = (c) => { out += c; if (/ready to serve client requests/.test(out)) { clearTimeout(t); resolve(); } };
    p.stdout.on('data', on);
    p.stderr.on('data', on);
  });
  return url;
}

const runDir = path.join(tmp, 'run');
function stateOf(h) {
  const file = path.join(runDir, NET, `agent-${fs.statSync(`/run/netns/${h.ns}`).ino}.json`);
  try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch { return undefined; }
}
function startAgent(h, etcd) {
  const p = spawn('ip', ['netns', 'exec', h.ns, BIN, 'agent', '--network', NET, '--cidr', '10.246.0.0/16', '--etcd', etcd,
    '--underlay-ip', h.ip, '--host-id', h.name, '--lease-ttl', '5', '--run-dir', runDir, '--heartbeat-ms', '250'], { stdio: ['ignore', 'ignore', 'inherit'] });
  procs.push(p);
  h.agent = p;
  return p;
}
async function waitReady(h, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = stateOf(h);
    if (s && s.pid === h.agent.pid && s.leaseOk) return s;
    if (Date.now() > deadline) throw new Error(`agent on ${h.name} not ready`);
    await sleep(10);
  }
}
function addContainer(h, suffix) {
  const c = ns(suffix);
  const conf = { cniVersion: '1.1.0', name: NET, type: 'vxlan-overlay', runDir, ipam: { dataDir: path.join(tmp, `ipam-${h.name}`) } };
  const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `${TAG}-${suffix}`, CNI_NETNS: `/run/netns/${c}`, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' };
  const r = spawnSync('ip', ['netns', 'exec', h.ns, BIN], { input: JSON.stringify(conf), env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ADD on ${h.name}: ${r.stdout}${r.stderr}`);
  return { ns: c, ip: JSON.parse(r.stdout).ips[0].address.split('/')[0] };
}

function iperf(clientNs, serverNs, serverIp) {
  const srv = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1'], { stdio: 'ignore' });
  procs.push(srv);
  spawnSync('sleep', ['0.3']);
  const r = inNs(clientNs, 'iperf3', ['-c', serverIp, '-t', String(SECONDS), '-J'], { timeout: (SECONDS + 10) * 1000 });
  srv.kill('SIGKILL');
  const j = JSON.parse(r.stdout);
  return j.end.sum_received.bits_per_second / 1e9;
}

async function main() {
  const etcd = await startEtcd();
  const h1 = plug('h1', 1);
  const h2 = plug('h2', 2);
  startAgent(h1, etcd);
  startAgent(h2, etcd);
  const s1 = await waitReady(h1);
  await waitReady(h2);
  const c1 = addContainer(h1, 'c1');
  const c2 = addContainer(h2, 'c2');
  for (let i = 0; i < 100 && inNs(c1.ns, 'ping', ['-c1', '-W1', c2.ip]).status !== 0; i++) await sleep(50);

  // The baseline: two namespaces on the same switch, a hand-built VXLAN between them, same MTU.
  const b1 = plug('b1', 11);
  const b2 = plug('b2', 12);
  for (const [b, me, peer] of [[b1, '10.79.0.1', '10.78.0.12'], [b2, '10.79.0.2', '10.78.0.11']]) {
    sh('ip', ['-n', b.ns, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '99', 'local', b.ip, 'dstport', '4789', 'dev', 'u0', 'nolearning']);
    sh('ip', ['-n', b.ns, 'link', 'set', 'vx0', 'mtu', String(s1.mtu), 'up']);
    sh('ip', ['-n', b.ns, 'addr', 'add', `${me}/24`, 'dev', 'vx0']);
    sh('bridge', ['-n', b.ns, 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', peer]);
  }
  const ours = [];
  const base = [];
  for (let r = 0; r < ROUNDS; r++) {
    base.push(iperf(b1.ns, b2.ns, '10.79.0.2'));
    ours.push(iperf(c1.ns, c2.ns, c2.ip));
  }
  const ratio = median(ours) / median(base);

  // Join time: spawn the agent of a new host, ADD a container there as soon as
  // it is ready, and wait until the containers of both other hosts ping it.
  const h3 = plug('h3', 3);
  const joins = [];
  let c3;
  for (let j = 0; j < JOINS; j++) {
    const t0 = process.hrtime.bigint();
    startAgent(h3, etcd);
    await waitReady(h3);
    const tReady = process.hrtime.bigint();
    if (!c3) c3 = addContainer(h3, 'c3');
    const tAdd = process.hrtime.bigint();
    const reach = async (from) => {
      for (;;) {
        if (inNs(from.ns, 'ping', ['-c1', '-W1', c3.ip]).status === 0) return;
        await sleep(5);
      }
    };
    await Promise.all([reach(c1), reach(c2)]);
    const t1 = process.hrtime.bigint();
    const ms = (a, b) => Number(b - a) / 1e6;
    joins.push({ total: ms(t0, t1), ready: ms(t0, tReady), add: ms(tReady, tAdd), reach: ms(tAdd, t1) });
    const exited = new Promise((r) => h3.agent.once('exit', r));
    h3.agent.kill('SIGTERM');
    await exited;
  }

  const f = (x) => x.toFixed(2);
  console.log(`vxlan-overlay benchmark (${ROUNDS} rounds x ${SECONDS} s iperf3, ${JOINS} joins), MTU ${s1.mtu}, ${os.cpus().length} CPUs`);
  console.log(`throughput Gbit/s: overlay ${ours.map(f).join(' ')} (median ${f(median(ours))}); hand-built VXLAN ${base.map(f).join(' ')} (median ${f(median(base))})`);
  console.log(`ratio overlay / hand-built: ${f(ratio)} (goal >= 0.9: ${ratio >= 0.9 ? 'met' : 'NOT met'})`);
  for (const [i, j] of joins.entries()) {
    console.log(`join ${i + 1}${i === 0 ? ' (with first ADD)' : ''}: ${j.total.toFixed(0)} ms total = agent ready ${j.ready.toFixed(0)} + ADD ${j.add.toFixed(0)} + peers reach ${j.reach.toFixed(0)} ms`);
  }
  const medJoin = median(joins.map((j) => j.total));
  console.log(`join time median: ${medJoin.toFixed(0)} ms (goal < 2000 ms: ${medJoin < 2000 ? 'met' : 'NOT met'})`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
