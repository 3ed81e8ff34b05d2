#!/usr/bin/env node
// Benchmark of the vxlan-overlay network (docs/benchmarks/overlay.md):
//  1. Throughput: iperf3 TCP container -> container across two "hosts" through
//     our overlay, IPv4 over an IPv4 underlay and IPv6 over an IPv6 underlay,
//     each against two hand-built baselines of the same families and MTU: the
//     same topology (container netns, veth, bridge, routing, VXLAN; no nft)
//     and a bare pair (two namespaces talking over a VXLAN device), rounds of
//     all three interleaved (goal: ratio >= 0.9). --tweak runs a second,
//     modified overlay in the same rounds (experiments: tweakOverlay).
//  2. Join with real hosts (etcd): from spawning a new host's agent until the
//     containers of both other hosts ping a container on it (goal < 2 s).
//  3. Scale, per cluster size N (default 10, 100, 300, --hosts): N - 1
//     simulated hosts (dual-stack records in etcd, no namespaces) and one real
//     host whose agent is measured: time to program every peer from its
//     start, latency of one more host joining and leaving (store write ->
//     both routes in or out of the kernel, seen by `ip monitor`; goal <= 200
//     ms and within 1.2x of the smallest size), agent CPU per event, a full
//     reconcile (SIGHUP), RSS (after the first sync, after the events, after
//     the reconciles, peak), and etcd keys and bytes per host.
// Everything lives in throwaway namespaces (underlay 10.78.0.0/24 and
// fd00:78::/64 on a "switch" namespace running etcd) and a temp dir, removed
// at the end, also on failure. Needs root, iperf3, etcd, a built
// dist/bin/vxlan-overlay. Measured processes run without NODE_EXTRA_CA_CERTS.
// Bounded: the whole default run takes ~2-3 minutes; a watchdog stops it at 9.
// Usage: node scripts/bench/overlay.js [--hosts 1000] [--sizes 10,100,300,1000] [--events 50]
//          [--rounds 3] [--seconds 4] [--joins 3] [--only throughput,join,scale] [--json out.json]
//          [--tweak flush,veth-gro,no-snooping,ct-nochecksum,notrack-underlay]
//        node scripts/bench/overlay.js --plot out.json docs/benchmarks/overlay-join.svg
'use strict';
// This machine exports NODE_EXTRA_CA_CERTS; runtimes do not pass it to plugins: no measured process gets it.
delete process.env.NODE_EXTRA_CA_CERTS;
const { spawn, spawnSync, execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const ROOT = path.resolve(__dirname, '..', '..');
const BUILT = path.join(ROOT, 'dist', 'bin', 'vxlan-overlay');
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const num = (name, def) => Number(opt(name, def));

if (argv[0] === '--plot') {
  fs.writeFileSync(argv[2], plotSvg(JSON.parse(fs.readFileSync(argv[1], 'utf8'))));
  process.exit(0);
}

const HOSTS = num('hosts', 1000);
const SIZES = opt('sizes') ? opt('sizes').split(',').map(Number) : [...new Set([10, 100, 300].filter((s) => s < HOSTS).concat(HOSTS))];
const EVENTS = num('events', 50);
const ROUNDS = num('rounds', 3);
const SECONDS = num('seconds', 4);
const JOINS = num('joins', 3);
const TWEAKS = opt('tweak') ? opt('tweak').split(',') : [];
const ONLY = new Set((opt('only', 'throughput,join,scale')).split(','));
const JSON_OUT = opt('json');
const TAG = `ovb${crypto.randomBytes(2).toString('hex')}`;
// Measured processes start like a runtime starts them (README: no CA bundle parsing at every start).
const ENV = { ...process.env };
delete ENV.NODE_EXTRA_CA_CERTS;

const namespaces = [];
const procs = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-`));

const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...opts });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const hr = () => process.hrtime.bigint();
const ms = (a, b) => Number(b - a) / 1e6;
const inNs = (n, cmd, args, opts) => spawnSync('ip', ['netns', 'exec', n, cmd, ...args], { encoding: 'utf8', ...opts });

function ns(suffix) {
  const name = `${TAG}-${suffix}`;
  sh('ip', ['netns', 'add', name]);
  namespaces.push(name);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

function track(p) {
  procs.push(p);
  return p;
}

function cleanup() {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  for (const n of namespaces.reverse()) spawnSync('ip', ['netns', 'del', n]);
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
const watchdog = setTimeout(() => { console.error('overlay bench: stopped by its 9-minute watchdog'); process.exit(3); }, 9 * 60 * 1000);
watchdog.unref();

// ---- the machine: a switch with etcd, hosts plugged into it -----------------

const SW = ns('sw');
// A fixed MAC: a bridge's own MAC otherwise follows its lowest port MAC, and hosts plugged in later would change it.
sh('ip', ['-n', SW, 'link', 'add', 'br0', 'address', '02:00:0a:4e:00:fe', 'type', 'bridge']);
sh('ip', ['-n', SW, 'addr', 'add', '10.78.0.254/24', 'dev', 'br0']);
sh('ip', ['-n', SW, 'addr', 'add', 'fd00:78::fe/64', 'dev', 'br0', 'nodad']);
sh('ip', ['-n', SW, 'link', 'set', 'br0', 'up']);

/** A host namespace on the switch; `families` says which underlay addresses it gets (10.78.0.i, fd00:78::i). */
function plug(name, i, families = [4]) {
  const n = ns(name);
  sh('ip', ['-n', SW, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'u0', 'netns', n]);
  sh('ip', ['-n', SW, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
  if (families.includes(4)) sh('ip', ['-n', n, 'addr', 'add', `10.78.0.${i}/24`, 'dev', 'u0']);
  if (families.includes(6)) sh('ip', ['-n', n, 'addr', 'add', `fd00:78::${i.toString(16)}/64`, 'dev', 'u0', 'nodad']);
  sh('ip', ['-n', n, 'link', 'set', 'u0', 'up']);
  return { ns: n, ip: families.includes(4) ? `10.78.0.${i}` : `fd00:78::${i.toString(16)}`, name };
}

const BIN = BUILT;

let ETCD4 = '';
let ETCD6 = '';
async function startEtcd() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  ETCD4 = `http://10.78.0.254:${port}`;
  ETCD6 = `http://[fd00:78::fe]:${port}`;
  const peer = `http://10.78.0.254:${port + 1}`;
  const p = track(spawn('ip', ['netns', 'exec', SW, '/usr/bin/etcd', '--name', 'b', '--data-dir', path.join(tmp, 'etcd'),
    '--listen-client-urls', `${ETCD4},${ETCD6}`, '--advertise-client-urls', ETCD4, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `b=${peer}`, '--heartbeat-interval', '50', '--election-timeout', '500', '--quota-backend-bytes', String(2 ** 31)],
  { stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`etcd not ready:\n${out.slice(-1000)}`)), 15000);
    const on = (c) => { out += c; if (/ready to serve client requests/.test(out)) { clearTimeout(t); resolve(); } };
    p.stdout.on('data', on);
    p.stderr.on('data', on);
  });
}

/** scripts/bench/overlay-store-writer.js inside the switch namespace: one request at a time. */
function startWriter() {
  const p = track(spawn('ip', ['netns', 'exec', SW, process.execPath, path.join(__dirname, 'overlay-store-writer.js'), ETCD4],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'], env: ENV }));
  const pending = [];
  readline.createInterface({ input: p.stdout }).on('line', (line) => {
    const r = JSON.parse(line);
    const w = pending.shift();
    if (r.ok) w.resolve(r);
    else w.reject(new Error(`store writer: ${r.error}`));
  });
  return (cmd) => new Promise((resolve, reject) => {
    pending.push({ resolve, reject });
    p.stdin.write(`${JSON.stringify(cmd)}\n`);
  });
}

// ---- agents, containers, processes ---------------------------------------------

const runDir = path.join(tmp, 'run');
function stateOf(h, net) {
  const file = path.join(runDir, net, `agent-${fs.statSync(`/run/netns/${h.ns}`).ino}.json`);
  try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch { return undefined; }
}

function startAgent(h, o) {
  const args = ['netns', 'exec', h.ns, BIN, 'agent', '--network', o.net, '--cidr', o.cidr, ...(o.cidr6 ? ['--ipv6-cidr', o.cidr6] : []),
    '--etcd', o.etcd, '--underlay-ip', h.ip, '--host-id', o.hostID ?? h.name, '--lease-ttl', String(o.ttl ?? 5), '--run-dir', runDir,
    '--heartbeat-ms', String(o.heartbeatMs ?? 250), ...(o.vni ? ['--vni', String(o.vni)] : []), ...(o.reconcileMs ? ['--reconcile-ms', String(o.reconcileMs)] : [])];
  const p = track(spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], env: ENV }));
  p.log = '';
  p.stderr.on('data', (c) => { p.log += c; if (p.log.length > 1e6) p.log = p.log.slice(-5e5); });
  h.agent = p;
  agents.push(p);
  return p;
}

async function waitReady(h, net, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = stateOf(h, net);
    if (s && s.pid === h.agent.pid && s.leaseOk) return s;
    if (Date.now() > deadline) throw new Error(`agent on ${h.name} not ready:\n${h.agent.log.slice(-2000)}`);
    await sleep(10);
  }
}

async function stopAgent(h) {
  const p = h.agent;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await exited;
}

function addContainer(h, suffix, net) {
  const c = ns(suffix);
  const conf = { cniVersion: '1.1.0', name: net, type: 'vxlan-overlay', runDir, ipam: { dataDir: path.join(tmp, `ipam-${h.name}`) } };
  const env = { ...ENV, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `${TAG}-${suffix}`, CNI_NETNS: `/run/netns/${c}`, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent' };
  const r = spawnSync('ip', ['netns', 'exec', h.ns, BIN], { input: JSON.stringify(conf), env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ADD on ${h.name}: ${r.stdout}${r.stderr}`);
  const ips = JSON.parse(r.stdout).ips.map((i) => i.address.split('/')[0]);
  return { ns: c, ip: ips.find((a) => !a.includes(':')), ip6: ips.find((a) => a.includes(':')) };
}

async function pingUntil(fromNs, ip, ms = 10000) {
  const deadline = Date.now() + ms;
  while (inNs(fromNs, 'ping', ['-c1', '-W1', ip]).status !== 0) {
    if (Date.now() > deadline) throw new Error(`${ip} does not answer from ${fromNs}`);
    await sleep(20);
  }
}

/** CPU time of a process, all its threads, in ms (schedstat: ns resolution, unlike the 10 ms ticks of /proc/pid/stat). */
function cpuMs(pid) {
  let total = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try { total += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]); } catch { /* thread gone */ }
  }
  return total / 1e6;
}

function memMiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)[1]);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}

/** Routes through one device as `ip monitor route` reports them: the set of destinations, and waits on it. */
class RouteMonitor {
  constructor(nsName, dev) {
    this.dsts = new Set();
    this.waiters = [];
    this.proc = track(spawn('ip', ['-n', nsName, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] }));
    const re = new RegExp(`^(Deleted )?(\\S+) via \\S+ dev ${dev}\\b`);
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const m = re.exec(line);
      if (!m) return;
      if (m[1]) this.dsts.delete(m[2]);
      else this.dsts.add(m[2]);
      const t = hr();
      this.waiters = this.waiters.filter((w) => (w.pred() ? (w.resolve(t), false) : true));
    });
  }

  until(pred, timeoutMs, what) {
    if (pred()) return Promise.resolve(hr());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (t) => { clearTimeout(timer); resolve(t); } });
    });
  }

  stop() {
    this.proc.kill('SIGTERM');
  }
}

// ---- 1. throughput ---------------------------------------------------------------

function iperf(clientNs, serverNs, serverIp) {
  const srv = track(spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1'], { stdio: 'ignore' }));
  spawnSync('sleep', ['0.3']);
  const r = inNs(clientNs, 'iperf3', ['-c', serverIp, '-t', String(SECONDS), '-J'], { timeout: (SECONDS + 10) * 1000 });
  srv.kill('SIGKILL');
  const j = JSON.parse(r.stdout);
  if (j.error) throw new Error(`iperf3 to ${serverIp}: ${j.error}`);
  return j.end.sum_received.bits_per_second / 1e9;
}

/** The bare pair: a hand-built VXLAN between two plugged namespaces, same underlay and MTU, the inner family of the test, addresses on vx0 itself. */
function handBuilt(b1, b2, o) {
  for (const [b, peer, me] of [[b1, b2.ip, o.inner[0]], [b2, b1.ip, o.inner[1]]]) {
    sh('ip', ['-n', b.ns, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '99', 'local', b.ip, 'dstport', '4789', 'dev', 'u0', 'nolearning']);
    sh('ip', ['-n', b.ns, 'link', 'set', 'vx0', 'mtu', String(o.mtu), 'up']);
    sh('ip', ['-n', b.ns, 'addr', 'add', `${me}/${o.prefix}`, 'dev', 'vx0', ...(o.prefix > 32 ? ['nodad'] : [])]);
    sh('bridge', ['-n', b.ns, 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', peer]);
  }
}

/**
 * The same-topology baseline: the overlay's datapath built by hand with no
 * nft at all. Per host a container netns whose veth is a port of a bridge
 * holding the gateway, forwarding on, a VXLAN device (learning off, its own
 * MAC, the VTEP address) and per peer a permanent neighbour, an FDB entry
 * and a route "subnet via VTEP onlink", as the agent programs them; same
 * MTUs. IPv4: subnets 10.79.<i>.0/24 of 10.79.0.0/16; IPv6: fd00:79:0:<i>::/64.
 * Returns the container namespaces and the second container's address.
 */
function sameTopology(hosts, fam, mtu, suffix) {
  const M = String(mtu);
  const vtep = (i) => (fam === 4 ? `10.79.${i}.0` : `fd00:79:0:${i}::`);
  const gw = (i) => (fam === 4 ? `10.79.${i}.1` : `fd00:79:0:${i}::1`);
  const ctr = (i) => (fam === 4 ? `10.79.${i}.2` : `fd00:79:0:${i}::2`);
  const sub = (i) => (fam === 4 ? `10.79.${i}.0/24` : `fd00:79:0:${i}::/64`);
  const mac = (i) => `0a:79:00:00:0${i}:00`;
  const v6 = fam === 6 ? ['nodad'] : [];
  const ctrs = hosts.map((h, i) => {
    const c = ns(`${suffix}c${i + 1}`);
    sh('ip', ['netns', 'exec', h.ns, 'sysctl', '-qw', fam === 4 ? 'net.ipv4.ip_forward=1' : 'net.ipv6.conf.all.forwarding=1']);
    sh('ip', ['-n', h.ns, 'link', 'add', 'br0', 'mtu', M, 'type', 'bridge']);
    sh('ip', ['-n', h.ns, 'addr', 'add', `${gw(i)}/${fam === 4 ? 24 : 64}`, 'dev', 'br0', ...v6]);
    sh('ip', ['-n', h.ns, 'link', 'set', 'br0', 'up']);
    sh('ip', ['-n', h.ns, 'link', 'add', 'vh0', 'mtu', M, 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', M, 'netns', c]);
    sh('ip', ['-n', h.ns, 'link', 'set', 'vh0', 'master', 'br0', 'up']);
    sh('ip', ['-n', c, 'addr', 'add', `${ctr(i)}/${fam === 4 ? 24 : 64}`, 'dev', 'eth0', ...v6]);
    sh('ip', ['-n', c, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', c, 'route', 'add', 'default', 'via', gw(i)]);
    sh('ip', ['-n', h.ns, 'link', 'add', 'vx0', 'address', mac(i), 'mtu', M, 'type', 'vxlan', 'id', '98', 'local', h.ip, 'dstport', '4789', 'dev', 'u0', 'nolearning']);
    // As the agent does: no link-local address (nor its DAD) on the VXLAN device.
    if (fam === 6) sh('ip', ['-n', h.ns, 'link', 'set', 'vx0', 'addrgenmode', 'none']);
    sh('ip', ['-n', h.ns, 'addr', 'add', fam === 4 ? `${vtep(i)}/16` : `${vtep(i)}/128`, 'dev', 'vx0', ...v6]);
    sh('ip', ['-n', h.ns, 'link', 'set', 'vx0', 'up']);
    return c;
  });
  hosts.forEach((h, i) => {
    const j = 1 - i;
    sh('ip', ['-n', h.ns, 'neigh', 'add', vtep(j), 'lladdr', mac(j), 'dev', 'vx0', 'nud', 'permanent']);
    sh('bridge', ['-n', h.ns, 'fdb', 'append', mac(j), 'dev', 'vx0', 'dst', hosts[j].ip, 'self', 'permanent']);
    sh('ip', ['-n', h.ns, 'route', 'add', sub(j), 'via', vtep(j), 'dev', 'vx0', 'onlink']);
  });
  return { ctrs, dst: ctr(1) };
}

/**
 * Experiments (`--tweak a,b`): a second overlay of the family gets them
 * after its containers are attached and runs in the same rounds; the first
 * overlay and the baselines are never touched. `flush`: no nft ruleset
 * (what the plugins' rules and the conntrack they bring cost); `veth-gro`:
 * GRO (veth NAPI) on both ends of every container veth; `no-snooping`: the
 * bridge's multicast snooping off; `ct-nochecksum`: conntrack does not
 * verify checksums (net.netfilter.nf_conntrack_checksum=0);
 * `notrack-underlay`: the encapsulated packets (UDP to port 4789) are not
 * tracked (a raw-priority table of its own).
 */
function tweakOverlay(hosts, ctrs, tweaks) {
  for (const t of tweaks) {
    for (const h of hosts) {
      if (t === 'flush') sh('ip', ['netns', 'exec', h.ns, 'nft', 'flush', 'ruleset']);
      else if (t === 'notrack-underlay') {
        sh('ip', ['netns', 'exec', h.ns, 'nft', 'add table inet ot_notrack; add chain inet ot_notrack pre { type filter hook prerouting priority raw; };'
          + ' add chain inet ot_notrack out { type filter hook output priority raw; }; add rule inet ot_notrack pre udp dport 4789 notrack;'
          + ' add rule inet ot_notrack out udp dport 4789 notrack']);
      } else if (t === 'ct-nochecksum') sh('ip', ['netns', 'exec', h.ns, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_checksum=0']);
      else if (t === 'no-snooping') {
        for (const l of JSON.parse(sh('ip', ['-n', h.ns, '-j', 'link', 'show', 'type', 'bridge']))) sh('ip', ['-n', h.ns, 'link', 'set', l.ifname, 'type', 'bridge', 'mcast_snooping', '0']);
      } else if (t !== 'veth-gro') throw new Error(`--tweak: unknown "${t}" (flush, veth-gro, no-snooping, ct-nochecksum, notrack-underlay)`);
    }
    if (t !== 'veth-gro') continue;
    for (const n of [...hosts.map((h) => h.ns), ...ctrs]) {
      for (const l of JSON.parse(sh('ip', ['-n', n, '-j', 'link', 'show', 'type', 'veth']))) {
        if (l.ifname !== 'u0') sh('ip', ['netns', 'exec', n, 'ethtool', '-K', l.ifname, 'gro', 'on']);
      }
    }
  }
}

/** Two hosts of an overlay network of the family (agents on the etcd of the switch) with a container each, pinging. */
async function overlayPair(fam, o) {
  const [h1, h2] = [plug(`${o.tag}a`, o.base, [fam]), plug(`${o.tag}b`, o.base + 1, [fam])];
  const n = { net: o.net, cidr: o.cidr, cidr6: fam === 6 ? o.cidr6 : undefined, etcd: fam === 4 ? ETCD4 : ETCD6, vni: o.vni };
  startAgent(h1, n);
  startAgent(h2, n);
  const s1 = await waitReady(h1, o.net);
  await waitReady(h2, o.net);
  const c1 = addContainer(h1, `${o.tag}c1`, o.net);
  const c2 = addContainer(h2, `${o.tag}c2`, o.net);
  const dst = fam === 4 ? c2.ip : c2.ip6;
  await pingUntil(c1.ns, dst);
  return { hosts: [h1, h2], ctrs: [c1.ns, c2.ns], dst, mtu: s1.mtu };
}

async function throughput() {
  const out = {};
  // IPv4 in IPv4: the overlay is an IPv4 network; IPv6 in IPv6: a dual-stack overlay whose underlay is IPv6
  // only. The baselines carry the family over the same underlay family. With --tweak, a second overlay of the
  // family gets the experiment and runs in the same rounds (tweaked / untweaked is then a paired ratio).
  for (const fam of [4, 6]) {
    const base = fam === 4 ? 1 : 0x11;
    const cidr6 = (third) => `fd00:10:${third}::/56`;
    const ours = await overlayPair(fam, { tag: `t${fam}`, base, net: `ovt${fam}`, cidr: fam === 4 ? '10.246.0.0/16' : '10.247.0.0/16', cidr6: cidr6(247), vni: 10 + fam });
    const tweaked = TWEAKS.length ? await overlayPair(fam, { tag: `u${fam}`, base: base + 6, net: `ovu${fam}`, cidr: fam === 4 ? '10.244.0.0/16' : '10.245.0.0/16', cidr6: cidr6(245), vni: 20 + fam }) : undefined;
    if (tweaked) tweakOverlay(tweaked.hosts, tweaked.ctrs, TWEAKS);
    const [b1, b2] = [plug(`t${fam}x`, base + 2, [fam]), plug(`t${fam}y`, base + 3, [fam])];
    handBuilt(b1, b2, fam === 4 ? { mtu: ours.mtu, inner: ['10.79.0.1', '10.79.0.2'], prefix: 24 } : { mtu: ours.mtu, inner: ['fd00:79::1', 'fd00:79::2'], prefix: 64 });
    const bareDst = fam === 4 ? '10.79.0.2' : 'fd00:79::2';
    await pingUntil(b1.ns, bareDst);
    const same = sameTopology([plug(`t${fam}p`, base + 4, [fam]), plug(`t${fam}q`, base + 5, [fam])], fam, ours.mtu, `t${fam}s`);
    await pingUntil(same.ctrs[0], same.dst);
    const runs = { ours: [], same: [], bare: [], tweaked: [] };
    for (let i = 0; i < ROUNDS; i++) {
      runs.bare.push(iperf(b1.ns, b2.ns, bareDst));
      runs.same.push(iperf(same.ctrs[0], same.ctrs[1], same.dst));
      runs.ours.push(iperf(ours.ctrs[0], ours.ctrs[1], ours.dst));
      if (tweaked) runs.tweaked.push(iperf(tweaked.ctrs[0], tweaked.ctrs[1], tweaked.dst));
    }
    const ratio = (a, b) => median(runs[a]) / median(runs[b]);
    out[`ipv${fam}`] = {
      mtu: ours.mtu, ...runs, ratioSame: ratio('ours', 'same'), ratioBare: ratio('ours', 'bare'),
      ...(tweaked ? { tweaks: TWEAKS, ratioTweak: ratio('tweaked', 'ours') } : {}),
    };
    for (const h of [...ours.hosts, ...(tweaked ? tweaked.hosts : [])]) await stopAgent(h);
  }
  return out;
}

// ---- 2. join with real hosts -----------------------------------------------------

async function realJoins() {
  const o = { net: 'ovj', cidr: '10.248.0.0/16', etcd: ETCD4, vni: 20 };
  const hosts = [plug('j1', 31), plug('j2', 32)];
  for (const h of hosts) startAgent(h, o);
  for (const h of hosts) await waitReady(h, o.net);
  const ctrs = hosts.map((h, i) => addContainer(h, `jc${i + 1}`, o.net));
  const h3 = plug('j3', 33);
  const joins = [];
  let c3;
  for (let j = 0; j < JOINS; j++) {
    const t0 = hr();
    startAgent(h3, o);
    await waitReady(h3, o.net);
    const tReady = hr();
    if (!c3) c3 = addContainer(h3, 'jc3', o.net);
    const tAdd = hr();
    await Promise.all(ctrs.map((c) => pingUntil(c.ns, c3.ip)));
    const t1 = hr();
    joins.push({ total: ms(t0, t1), ready: ms(t0, tReady), add: ms(tReady, tAdd), reach: ms(tAdd, t1) });
    await stopAgent(h3);
  }
  for (const h of hosts) await stopAgent(h);
  return joins;
}

// ---- 3. scale --------------------------------------------------------------------

const SCALE_CIDR = '10.240.0.0/12';
const SCALE_CIDR6 = 'fd00:10:240::/52';

/** The i-th /24 of 10.240.0.0/12 and the i-th /64 of fd00:10:240::/52 (i < 4096), as the agent pairs them. */
function subnetsOf(i) {
  const base = (10 << 24) + (240 << 16) + i * 256;
  const v4 = `${base >>> 24}.${(base >>> 16) & 255}.${(base >>> 8) & 255}.0/24`;
  const v6 = i === 0 ? 'fd00:10:240::/64' : `fd00:10:240:${i.toString(16)}::/64`;
  return { v4, v6, key: v4.replace('/', '_') };
}

/** A simulated host's keys: its sticky subnet and its live record (as an agent writes them; no lease, removed at the end). */
function simHost(prefix, i, vni) {
  const s = subnetsOf(i);
  const b = s.v4.split('/')[0].split('.').map(Number);
  const rec = {
    hostID: `sim-${i}`, underlayIP: `10.80.${i >> 8}.${i & 255}`, vtepMAC: ['0a', '76', ...b.map((x) => x.toString(16).padStart(2, '0'))].join(':'),
    vni, port: 4789, mtu: 1450, subnet: s.v4, subnet6: s.v6,
  };
  return { subnet: s, puts: [[`${prefix}subnets/${s.key}`, rec.hostID], [`${prefix}hosts/${rec.hostID}`, JSON.stringify(rec)]] };
}

async function scaleRun(store, n, index) {
  const vni = 100 + index;
  const net = `ovs${n}`;
  const prefix = `/node-cni/overlay/${net}/`;
  const config = { cidr: SCALE_CIDR, subnetLength: 24, vni, port: 4789, ipv6Cidr: SCALE_CIDR6, ipv6SubnetLength: 64 };
  const puts = [[`${prefix}config`, JSON.stringify(config)]];
  for (let i = 1; i < n; i++) puts.push(...simHost(prefix, i, vni).puts);
  const written = await store({ op: 'bulk', puts });
  const h = plug(`s${n}`, 100 + index);
  const dev = `ovx${vni}`;
  const mon = new RouteMonitor(h.ns, dev);
  await sleep(300); // ip monitor subscribes before the agent starts
  const peers = n - 1;
  const t0 = hr();
  const agent = startAgent(h, { net, cidr: SCALE_CIDR, cidr6: SCALE_CIDR6, etcd: ETCD4, vni, ttl: 10, heartbeatMs: 1000, reconcileMs: 3600000, hostID: `real-${n}` });
  const tAll = await mon.until(() => mon.dsts.size >= 2 * peers, 120000, `${2 * peers} routes on ${dev}`);
  await waitReady(h, net);
  const tReady = hr();
  await sleep(1000);
  const memProgrammed = memMiB(agent.pid);

  // Idle CPU (heartbeat, keepalive), to take out of the event window.
  const idle0 = cpuMs(agent.pid);
  const i0 = Date.now();
  await sleep(2000);
  const idleRate = (cpuMs(agent.pid) - idle0) / (Date.now() - i0);

  const join = [];
  const leave = [];
  // The first events of a fresh agent also compile its event path: ten unmeasured ones first.
  const WARMUP = 10;
  let cpu0 = 0;
  let e0 = 0;
  for (let j = 0; j < WARMUP + EVENTS; j++) {
    if (j === WARMUP) {
      join.length = leave.length = 0;
      cpu0 = cpuMs(agent.pid);
      e0 = Date.now();
    }
    const sim = simHost(prefix, n + j, vni);
    const both = () => mon.dsts.has(sim.subnet.v4) && mon.dsts.has(sim.subnet.v6);
    const put = await store({ op: 'txn', puts: sim.puts });
    join.push(ms(BigInt(put.t0), await mon.until(both, 10000, `the routes of ${sim.subnet.v4}`)));
    const del = await store({ op: 'txn', dels: sim.puts.map(([k]) => k) });
    leave.push(ms(BigInt(del.t0), await mon.until(() => !mon.dsts.has(sim.subnet.v4) && !mon.dsts.has(sim.subnet.v6), 10000, `no routes of ${sim.subnet.v4}`)));
  }
  const eventMs = Date.now() - e0;
  const cpuPerEvent = (cpuMs(agent.pid) - cpu0 - idleRate * eventMs) / (2 * EVENTS);
  const memEvents = memMiB(agent.pid);

  // Full reconciles on demand: dump every entry of the device, diff with the table.
  const reconciles = [];
  for (let r = 0; r < 3; r++) {
    const seen = (agent.log.match(/reconcile of \d+ peers/g) || []).length;
    const c0 = cpuMs(agent.pid);
    agent.kill('SIGHUP');
    for (let w = 0; (agent.log.match(/reconcile of \d+ peers/g) || []).length === seen; w++) {
      if (w > 1000) throw new Error(`no reconcile after SIGHUP:\n${agent.log.slice(-1000)}`);
      await sleep(10);
    }
    const took = Number([...agent.log.matchAll(/reconcile of \d+ peers: \d+ changes, (\d+) ms/g)].pop()[1]);
    reconciles.push({ cpu: cpuMs(agent.pid) - c0, wall: took });
  }
  const mem = memMiB(agent.pid);
  const keys = await store({ op: 'count', prefix });
  await stopAgent(h);
  mon.stop();
  await store({ op: 'delprefix', prefix });
  spawnSync('ip', ['netns', 'del', h.ns]);
  namespaces.splice(namespaces.indexOf(h.ns), 1);
  const row = {
    hosts: n, peers, writeMs: written.ms,
    programAllMs: ms(t0, tAll), readyMs: ms(t0, tReady),
    joinMs: { median: median(join), p90: pct(join, 0.9), max: Math.max(...join) },
    leaveMs: { median: median(leave), p90: pct(leave, 0.9), max: Math.max(...leave) },
    cpuPerEventMs: cpuPerEvent, idleCpuPct: idleRate * 100,
    reconcileMs: { wall: median(reconciles.map((r) => r.wall)), cpu: median(reconciles.map((r) => r.cpu)) },
    rssMiB: { afterProgramming: memProgrammed.now, afterEvents: memEvents.now, afterReconciles: mem.now, peak: mem.peak }, etcdKeysPerHost: (keys.keys - 1) / n, etcdBytesPerHost: (keys.bytes) / n,
  };
  console.error(`scale ${n} hosts: all ${peers} peers programmed ${row.programAllMs.toFixed(0)} ms after start; join ${row.joinMs.median.toFixed(1)} ms (p90 ${row.joinMs.p90.toFixed(1)}), leave ${row.leaveMs.median.toFixed(1)} ms; CPU/event ${cpuPerEvent.toFixed(2)} ms; reconcile ${row.reconcileMs.wall} ms; RSS peak ${mem.peak.toFixed(0)} MiB`);
  return row;
}

// ---- run -----------------------------------------------------------------------------

async function main() {
  const loadBefore = os.loadavg();
  const uptimeBefore = sh('uptime', []).trim();
  await startEtcd();
  const out = { date: new Date().toISOString(), tweaks: TWEAKS, cpus: os.cpus().length, node: process.version, kernel: os.release(), uptimeBefore, sizes: SIZES, events: EVENTS };
  if (ONLY.has('throughput')) {
    out.throughput = await throughput();
    for (const [k, t] of Object.entries(out.throughput)) {
      const g = (xs) => xs.map((x) => x.toFixed(2)).join(' ');
      console.error(`throughput ${k} (MTU ${t.mtu}): overlay ${g(t.ours)} | same topology ${g(t.same)} | bare pair ${g(t.bare)} Gbit/s`
        + ` | overlay/same ${t.ratioSame.toFixed(2)}, overlay/bare ${t.ratioBare.toFixed(2)}`);
      if (t.tweaks) console.error(`  overlay with ${t.tweaks.join(',')}: ${g(t.tweaked)} Gbit/s | tweaked/overlay ${t.ratioTweak.toFixed(2)}`);
    }
  }
  if (ONLY.has('join')) {
    out.realJoins = await realJoins();
    console.error(`real-host joins: ${out.realJoins.map((j) => `${j.total.toFixed(0)} ms (ready ${j.ready.toFixed(0)} + ADD ${j.add.toFixed(0)} + reach ${j.reach.toFixed(0)})`).join('; ')}`);
  }
  if (ONLY.has('scale')) {
    const store = startWriter();
    out.scale = [];
    for (const [i, n] of SIZES.entries()) out.scale.push(await scaleRun(store, n, i));
    const first = out.scale[0];
    const last = out.scale[out.scale.length - 1];
    out.scaleRatio = { join: last.joinMs.median / first.joinMs.median, leave: last.leaveMs.median / first.leaveMs.median, cpuPerEvent: last.cpuPerEventMs / first.cpuPerEventMs };
  }
  out.uptimeAfter = sh('uptime', []).trim();
  out.loadavg = { before: loadBefore, after: os.loadavg() };
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 2));
}

/** Join and leave latency (median, p90 bar) against cluster size (log x), as a standalone SVG. */
function plotSvg(data) {
  const rows = data.scale;
  const W = 640, H = 360, L = 60, R = 20, T = 30, B = 50;
  const xs = rows.map((r) => Math.log10(r.hosts));
  const maxY = Math.max(10, ...rows.flatMap((r) => [r.joinMs.p90, r.leaveMs.p90])) * 1.2;
  const x = (v) => L + ((v - Math.min(...xs)) / Math.max(1e-9, Math.max(...xs) - Math.min(...xs))) * (W - L - R - 20) + 10;
  const y = (v) => H - B - (v / maxY) * (H - T - B);
  const series = (key, color, dx) => {
    const pts = rows.map((r, i) => `${(x(xs[i]) + dx).toFixed(1)},${y(r[key].median).toFixed(1)}`);
    const marks = rows.map((r, i) => {
      const cx = (x(xs[i]) + dx).toFixed(1);
      return `<line x1="${cx}" x2="${cx}" y1="${y(r[key].median).toFixed(1)}" y2="${y(r[key].p90).toFixed(1)}" stroke="${color}"/>`
        + `<circle cx="${cx}" cy="${y(r[key].median).toFixed(1)}" r="3.5" fill="${color}"/>`
        + `<text x="${cx}" y="${(y(r[key].p90) - 6).toFixed(1)}" font-size="11" text-anchor="middle" fill="${color}">${r[key].median.toFixed(1)}</text>`;
    });
    return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>${marks.join('')}`;
  };
  const step = Math.pow(10, Math.floor(Math.log10(maxY / 4)));
  const yStep = Math.ceil(maxY / 5 / step) * step;
  const ticksY = [];
  for (let v = 0; v <= maxY; v += yStep) ticksY.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/><text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${v}</text>`);
  const goal = `<line x1="${L}" x2="${W - R}" y1="${y(200).toFixed(1)}" y2="${y(200).toFixed(1)}" stroke="#999" stroke-dasharray="4 3"/><text x="${W - R}" y="${(y(200) - 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#666">goal 200 ms</text>`;
  const ticksX = rows.map((r, i) => `<text x="${x(xs[i]).toFixed(1)}" y="${H - B + 18}" font-size="11" text-anchor="middle">${r.hosts}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="18" font-size="14" text-anchor="middle">vxlan-overlay: one host joining / leaving, store write to kernel routes (ms; goal ≤ 200)</text>
${ticksY.join('\n')}
${maxY > 200 ? goal : ''}
${ticksX.join('\n')}
<text x="${W / 2}" y="${H - 12}" font-size="12" text-anchor="middle">hosts in the cluster (log scale); dot: median, bar: p90</text>
<text x="16" y="${H / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">ms</text>
${series('leaveMs', '#c0392b', 4)}
${series('joinMs', '#2471a3', -4)}
<rect x="${L + 10}" y="${T + 4}" width="12" height="12" fill="#2471a3"/><text x="${L + 28}" y="${T + 14}" font-size="12">join (dual-stack: 2 neighbours, 1 FDB entry, 2 routes)</text>
<rect x="${L + 10}" y="${T + 22}" width="12" height="12" fill="#c0392b"/><text x="${L + 28}" y="${T + 32}" font-size="12">leave (the same entries removed)</text>
</svg>
`;
}

const agents = [];
main().then(() => process.exit(0), (err) => {
  console.error(err.stack || String(err));
  for (const a of agents) if (a.log) console.error(`--- agent ${a.spawnargs.slice(3, 4).join(' ')} ${a.spawnargs.join(' ').match(/--network \S+ /)?.[0] ?? ''}(last lines):\n${a.log.split('\n').slice(-15).join('\n')}`);
  process.exit(1);
});
