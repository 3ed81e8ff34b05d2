#!/usr/bin/env node
// Benchmark: portmap ADD latency and time to first byte through a published
// port while 1, 100 and 1000 containers publish ports. Ours (dist/bin/portmap,
// nftables maps) vs the reference (/usr/lib/cni/portmap, iptables backend),
// each in its own throwaway "host" namespace, in the same run.
// The other N-1 publications are pre-filled in bulk with exactly the state
// each plugin's ADD would leave (our map elements; the reference's chains),
// because 1000 real reference ADDs would take many minutes.
// Each plugin run is timed for wall and CPU (user+sys of the plugin process
// and its children, nft included: bash's `time`), medians over --runs.
// --before <bin>: also measure an older build of ours (e.g. built from an
// earlier commit) in the same run, for before/after comparisons.
// Second part, one container publishing many ports (--mappings): ADD and DEL
// of one attachment with N mappings, half TCP and half UDP (every UDP port
// has its stale conntrack entries flushed), on a network that has its
// structure already (another container publishes a port). The reference
// (and --before) runs only up to --ref-max-mappings: it flushes conntrack
// once per UDP port, which takes minutes beyond a few thousand.
// Usage: node scripts/bench/portmap.js [--sizes 1,100,1000] [--runs 7] [--before /path/to/portmap]
//          [--mappings 300,3000,10000] [--mapping-runs 3] [--ref-max-mappings 300]
// (--sizes '' or --mappings '' skips that part; run as root, build first, ~6 min with the defaults;
// --ref-max-mappings 3000 adds the reference at 3000 mappings: minutes per ADD on a host whose conntrack table has 262 144 buckets)
'use strict';
// This machine exports NODE_EXTRA_CA_CERTS; runtimes do not pass it to plugins: no measured process gets it.
delete process.env.NODE_EXTRA_CA_CERTS;
const { execFileSync, spawnSync, spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const OURS = path.join(ROOT, 'dist', 'bin', 'portmap');
const REF = '/usr/lib/cni/portmap';
const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const list = (v) => v.split(',').filter(Boolean).map(Number);
const SIZES = list(arg('--sizes', '1,100,1000'));
const MAPPINGS = list(arg('--mappings', '300,3000,10000'));
const MAPPING_RUNS = Number(arg('--mapping-runs', '3'));
const REF_MAX_MAPPINGS = Number(arg('--ref-max-mappings', '300'));
const RUNS = Number(arg('--runs', '7'));
const TAG = `pmb${crypto.randomBytes(2).toString('hex')}`;
const NET = 'benchnet';
const BEFORE = arg('--before', undefined);

const sh = (cmd, args, input) => execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const inNs = (ns, cmd, args, input) => sh('ip', ['netns', 'exec', ns, cmd, ...args], input);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const namespaces = [];
const children = [];
const dirs = [];
function netns(name) { sh('ip', ['netns', 'add', name]); namespaces.push(name); sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']); return name; }
function cleanup() {
  for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ }
  for (const n of namespaces.reverse()) spawnSync('ip', ['netns', 'del', n]);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

/** host namespace + other host + one real container with httpd on 10.88.0.2:80. */
function topology(kind) {
  const h = netns(`${TAG}-${kind}h`), o = netns(`${TAG}-${kind}o`), c = netns(`${TAG}-${kind}c`);
  sh('ip', ['-n', h, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', o]);
  sh('ip', ['-n', h, 'addr', 'add', '192.168.77.1/24', 'dev', 'ext0']);
  sh('ip', ['-n', h, 'link', 'set', 'ext0', 'up']);
  sh('ip', ['-n', o, 'addr', 'add', '192.168.77.2/24', 'dev', 'eth0']);
  sh('ip', ['-n', o, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', h, 'link', 'add', 'br0', 'type', 'bridge']);
  sh('ip', ['-n', h, 'addr', 'add', '10.88.0.1/16', 'dev', 'br0']);
  sh('ip', ['-n', h, 'link', 'set', 'br0', 'up']);
  sh('ip', ['-n', h, 'link', 'add', 'vc', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c]);
  sh('ip', ['-n', h, 'link', 'set', 'vc', 'master', 'br0', 'up']);
  sh('ip', ['-n', c, 'addr', 'add', '10.88.0.2/16', 'dev', 'eth0']);
  sh('ip', ['-n', c, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', c, 'route', 'add', 'default', 'via', '10.88.0.1']);
  inNs(h, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  const www = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-www-`)); dirs.push(www);
  fs.writeFileSync(path.join(www, 'index.html'), 'hello\n');
  children.push(spawn('ip', ['netns', 'exec', c, '/bin/busybox', 'httpd', '-f', '-p', '80', '-h', www], { stdio: 'ignore' }));
  return { h, o, c };
}

const fakeIP = (i) => `10.88.${1 + (i >> 8)}.${i & 255}`;
const fakePort = (i) => 10000 + i;

/** One plugin run: { wall, cpu } in ms (cpu = user+sys of the plugin and the processes it waited for). */
function runPlugin(bin, topo, cmd, id, conf) {
  const r = spawnSync('ip', ['netns', 'exec', topo.h, 'bash', '-c', 'TIMEFORMAT="TIME %3R %3U %3S"; time "$0"', bin], {
    input: JSON.stringify(conf), encoding: 'utf8', maxBuffer: 1 << 30,
    env: { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${topo.c}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
  });
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${bin} ${cmd} ${id}: ${r.stdout} ${r.stderr}`);
  return { wall: Number(m[1]) * 1000, cpu: (Number(m[2]) + Number(m[3])) * 1000 };
}

function conf(kind, dataDir, ip, hostPort) {
  const c = {
    cniVersion: '1.0.0', name: NET, type: 'portmap', capabilities: { portMappings: true },
    runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] },
    prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }], ips: [{ address: `${ip}/16`, interface: 0 }] },
  };
  if (kind === 'ref') c.backend = 'iptables'; else c.dataDir = dataDir;
  return c;
}

/** Pre-fill n publications exactly as n ADDs would leave them. */
function prefill(kind, topo, n, dataDir) {
  if (n === 0) return;
  if (kind !== 'ref') {
    // One real ADD creates the table and chains; then the elements of the others in bulk.
    runPlugin(binOf(kind), topo, 'ADD', 'fill-0', conf(kind, dataDir, fakeIP(0), fakePort(0)));
    const pfx = `n_${crypto.createHash('sha256').update(NET).digest('hex').slice(0, 12)}`;
    const lines = [];
    for (let i = 1; i < n; i++) {
      const ip = fakeIP(i), p = fakePort(i), cm = `comment "${NET}/fill-${i}/eth0"`;
      lines.push(`create element inet cni_portmap claims4 { 0.0.0.0 . tcp . ${p} ${cm} : 0x8${i.toString(16).padStart(7, '0')} }`);
      lines.push(`create element inet cni_portmap ${pfx}_any4 { tcp . ${p} ${cm} : ${ip} . 80 }`);
      lines.push(`add element inet cni_portmap ${pfx}_targets4 { ${ip} . tcp . 80 }`);
      lines.push(`add element inet cni_portmap ${pfx}_hairpin4 { ${ip} . ${ip} }`);
    }
    if (lines.length) inNs(topo.h, 'nft', ['-f', '-'], lines.join('\n') + '\n');
  } else {
    // The reference's layout (reference-plugins.md §7.2): a jump per container, a chain per container.
    runPlugin(REF, topo, 'ADD', 'fill-0', conf(kind, dataDir, fakeIP(0), fakePort(0)));
    const out = ['*nat'];
    const rules = [];
    for (let i = 1; i < n; i++) {
      const ch = `CNI-DN-${crypto.createHash('sha512').update(`${NET}fill-${i}`).digest('hex').slice(0, 21)}`;
      const ip = fakeIP(i), p = fakePort(i);
      out.push(`:${ch} - [0:0]`);
      rules.push(`-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"${NET}\\" id: \\"fill-${i}\\"" -m multiport --dports ${p} -j ${ch}`);
      rules.push(`-A ${ch} -s ${ip}/16 -p tcp -m tcp --dport ${p} -j CNI-HOSTPORT-SETMARK`);
      rules.push(`-A ${ch} -s 127.0.0.1/32 -p tcp -m tcp --dport ${p} -j CNI-HOSTPORT-SETMARK`);
      rules.push(`-A ${ch} -p tcp -m tcp --dport ${p} -j DNAT --to-destination ${ip}:80`);
    }
    out.push(...rules, 'COMMIT', '');
    if (n > 1) inNs(topo.h, 'iptables-restore', ['--noflush'], out.join('\n'));
  }
}

function ttfb(topo) {
  const r = spawnSync('ip', ['netns', 'exec', topo.o, 'curl', '-s', '-o', '/dev/null', '-w', '%{time_starttransfer}', '--max-time', '3', 'http://192.168.77.1:8080/index.html'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`curl through the published port failed: ${r.stderr}`);
  return Number(r.stdout) * 1000;
}

const binOf = (kind) => (kind === 'ours' ? OURS : kind === 'before' ? BEFORE : REF);

function measure(kind, n) {
  const topo = topology(kind);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-data-`)); dirs.push(dataDir);
  try {
    prefill(kind, topo, n - 1, dataDir);
    const bin = binOf(kind);
    const c = conf(kind, dataDir, '10.88.0.2', 8080);
    const adds = [], dels = [], firstBytes = [];
    for (let r = 0; r < RUNS; r++) {
      adds.push(runPlugin(bin, topo, 'ADD', 'bench-real', c));
      for (let k = 0; k < 50 && spawnSync('ip', ['netns', 'exec', topo.o, 'curl', '-s', '-o', '/dev/null', '--max-time', '1', 'http://192.168.77.1:8080/']).status !== 0; k++);
      for (let k = 0; k < 5; k++) firstBytes.push(ttfb(topo));
      dels.push(runPlugin(bin, topo, 'DEL', 'bench-real', c));
    }
    const med = (xs, f) => median(xs.map((x) => x[f]));
    return { add: med(adds, 'wall'), addCpu: med(adds, 'cpu'), del: med(dels, 'wall'), delCpu: med(dels, 'cpu'), ttfb: median(firstBytes) };
  } finally {
    for (const ns of [topo.h, topo.o, topo.c]) { spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).forEach((p) => { try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }); }
    for (const ns of [topo.c, topo.o, topo.h]) { spawnSync('ip', ['netns', 'del', ns]); namespaces.splice(namespaces.indexOf(ns), 1); }
  }
}

/** ADD and DEL of one container publishing n ports (half udp), on a network another container already uses. */
function measureMappings(kind, n) {
  const topo = topology(kind);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-data-`)); dirs.push(dataDir);
  try {
    const bin = binOf(kind);
    runPlugin(bin, topo, 'ADD', 'other', conf(kind, dataDir, '10.88.0.3', 8080));
    const many = conf(kind, dataDir, '10.88.0.2', 0);
    many.runtimeConfig.portMappings = Array.from({ length: n }, (_, i) => ({ hostPort: 20000 + i, containerPort: 1000 + (i % 5000), protocol: i % 2 ? 'udp' : 'tcp' }));
    const adds = [], dels = [];
    for (let r = 0; r < MAPPING_RUNS; r++) {
      adds.push(runPlugin(bin, topo, 'ADD', 'bench-many', many));
      dels.push(runPlugin(bin, topo, 'DEL', 'bench-many', many));
    }
    const med = (xs, f) => median(xs.map((x) => x[f]));
    return { add: med(adds, 'wall'), addCpu: med(adds, 'cpu'), del: med(dels, 'wall'), delCpu: med(dels, 'cpu') };
  } finally {
    for (const ns of [topo.h, topo.o, topo.c]) { spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).forEach((p) => { try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }); }
    for (const ns of [topo.c, topo.o, topo.h]) { spawnSync('ip', ['netns', 'del', ns]); namespaces.splice(namespaces.indexOf(ns), 1); }
  }
}

function mappingsTable(kinds, label) {
  if (MAPPINGS.length === 0) return;
  const rows = [];
  for (const n of MAPPINGS) {
    const row = { n };
    for (const k of kinds) {
      if (k !== 'ours' && n > REF_MAX_MAPPINGS) continue;
      row[k] = measureMappings(k, n);
      const x = row[k];
      console.error(`mappings=${n} ${label[k]}: ADD ${x.add.toFixed(0)} ms (CPU ${x.addCpu.toFixed(0)}) DEL ${x.del.toFixed(0)} ms (CPU ${x.delCpu.toFixed(0)})`);
    }
    rows.push(row);
  }
  console.log('');
  console.log(`One container publishing N ports (half TCP, half UDP), ${MAPPING_RUNS} runs per cell (medians), load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('');
  const cols = ['ADD wall', 'ADD CPU', 'DEL wall', 'DEL CPU'];
  console.log(`| mappings | ${kinds.flatMap((k) => cols.map((c) => `${label[k]} ${c} (ms)`)).join(' | ')} |`);
  console.log(`|---:|${kinds.flatMap(() => cols.map(() => '---:')).join('|')}|`);
  for (const row of rows) {
    console.log(`| ${row.n} | ${kinds.flatMap((k) => { const x = row[k]; return x ? [x.add.toFixed(0), x.addCpu.toFixed(0), x.del.toFixed(0), x.delCpu.toFixed(0)] : ['-', '-', '-', '-']; }).join(' | ')} |`);
  }
}

function main() {
  if (!fs.existsSync(OURS)) throw new Error('build first: node scripts/build.js portmap');
  const kinds = BEFORE ? ['before', 'ours', 'ref'] : ['ours', 'ref'];
  const label = { before: 'ours before', ours: 'ours', ref: 'reference' };
  const rows = [];
  for (const n of SIZES) {
    const row = { n };
    for (const k of kinds) {
      row[k] = measure(k, n);
      const x = row[k];
      console.error(`N=${n} ${label[k]}: ADD ${x.add.toFixed(1)} ms (CPU ${x.addCpu.toFixed(0)}) DEL ${x.del.toFixed(1)} ms (CPU ${x.delCpu.toFixed(0)}) TTFB ${x.ttfb.toFixed(3)} ms`);
    }
    rows.push(row);
  }
  if (rows.length) {
    console.log(`${RUNS} runs per cell (medians), load average at the end ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    console.log('');
    const cols = ['ADD wall', 'ADD CPU', 'DEL wall', 'DEL CPU', 'TTFB'];
    console.log(`| containers publishing | ${kinds.flatMap((k) => cols.map((c) => `${label[k]} ${c} (ms)`)).join(' | ')} |`);
    console.log(`|---:|${kinds.flatMap(() => cols.map(() => '---:')).join('|')}|`);
    for (const row of rows) {
      console.log(`| ${row.n} | ${kinds.flatMap((k) => { const x = row[k]; return [x.add.toFixed(0), x.addCpu.toFixed(0), x.del.toFixed(0), x.delCpu.toFixed(0), x.ttfb.toFixed(2)]; }).join(' | ')} |`);
    }
  }
  mappingsTable(kinds, label);
}

main();
