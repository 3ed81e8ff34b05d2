#!/usr/bin/env node
// Bridge plugin benchmark: ours (dist/bin/bridge, nftables masquerade,
// host-local in-process) vs the reference /usr/lib/cni/bridge v1.1.1
// (iptables masquerade, host-local exec'd) vs `node -e 0`. Everything runs in
// throwaway namespaces and is removed at the end (also on Ctrl-C).
//
//   node scripts/bench/bridge.js [--counts 1,10,100,1000] [--reps 7] [--bin dist/bin/bridge] [--json out.json]
//     [--steps latency,lifecycle,concurrent,iperf,rss] [--concurrent-rounds 3]
//
// Pre-population: real containers cost a namespace each, so the N
// "containers already on the network" are made of the state an ADD/DEL can
// see, created in bulk: N veth pairs on the bridge in the host namespace
// (ip -batch), N host-local reservation files, and N masquerade entries in
// each implementation's own shape (ours: N map elements via one nft
// transaction; reference: per container a CNI-<hash> chain with its 2 rules
// plus a POSTROUTING jump, via one iptables-restore). Then one unmeasured
// ADD+DEL warms caches (and lets our host-local rebuild its index once after
// the bulk write), and `reps` real ADD/DEL pairs of a real namespace are
// timed. One of the N is a real container, attached first and kept: it holds
// the network's structure, so the timed pairs are the steady state.
// The lifecycle step times what a network's first ADD (its structure is
// built) and last DEL (its structure is torn down) cost: each rep on a fresh
// network of its own.
'use strict';
const { spawnSync, spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

// This machine exports NODE_EXTRA_CA_CERTS; runtimes do not pass it to plugins: no measured process gets it.
delete process.env.NODE_EXTRA_CA_CERTS;
const root = path.resolve(__dirname, '..', '..');
const argv0 = process.argv.slice(2);
// --bin FILE: another build of ours (scripts/bench/startup.js runs the build before the release this way).
const OURS = argv0.includes('--bin') ? path.resolve(argv0[argv0.indexOf('--bin') + 1]) : path.join(root, 'dist', 'bin', 'bridge');
// The floor: `node -e 0` of the Node inside the release.
const NODE = path.join(root, 'node_modules', `node-linux-${process.arch}`, 'bin', 'node');
const REF = '/usr/lib/cni/bridge';
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const COUNTS = opt('counts', '1,10,100,1000').split(',').map(Number);
const REPS = Number(opt('reps', '7'));
const CONC = Number(opt('concurrency', '64'));
const CONC_ROUNDS = Number(opt('concurrent-rounds', '3'));
const JSON_OUT = opt('json', '');
// --steps latency,concurrent,iperf,rss (default all): run a part alone, e.g. to diagnose one step.
const STEPS = new Set(opt('steps', 'latency,lifecycle,concurrent,iperf,rss').split(','));
const tag = `bb${crypto.randomBytes(2).toString('hex')}`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
const namespaces = [];

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}
function netns(name) { sh('ip', ['netns', 'add', name]); namespaces.push(name); sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']); return name; }
function cleanup() {
  for (const n of namespaces.splice(0).reverse()) spawnSync('ip', ['netns', 'del', n]);
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

/** One implementation under test, in its own host namespace. */
function impl(name, bin, backend, subnetOctet) {
  const host = netns(`${tag}-${name}`);
  const cniPath = path.join(tmp, `${name}-path`);
  fs.mkdirSync(cniPath);
  // Ours runs host-local in-process; the reference execs it from CNI_PATH.
  const conf = {
    cniVersion: '1.0.0', name: `bench${name}`, type: 'bridge', bridge: `br${name}`, isGateway: true, isDefaultGateway: true, ipMasq: true,
    ...(backend ? { ipMasqBackend: backend } : {}), stateDir: path.join(tmp, `${name}-state`),
    ipam: { type: 'host-local', subnet: `10.${subnetOctet}.0.0/16`, dataDir: path.join(tmp, `${name}-ipam`) },
  };
  return { name, bin, host, conf, cniPath, populated: 0, subnetOctet };
}

function runPlugin(im, cmd, id, nsPath, { async = false } = {}) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: nsPath, CNI_IFNAME: 'eth0', CNI_PATH: `${im.cniPath}:/usr/lib/cni` };
  const args = ['netns', 'exec', im.host, im.bin];
  if (async) {
    return new Promise((resolve) => {
      const p = spawn('ip', args, { env });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { err += d; });
      p.stdin.end(JSON.stringify(im.conf));
      p.on('close', (code, signal) => resolve({ code, signal, out, err }));
    });
  }
  // Under perf, the CPU time (task-clock of the whole tree: ip, the plugin, nft/iptables, an exec'd IPAM) is kept
  // in lastCpuMs: on a loaded machine it says more than wall time.
  const r = PERF
    ? spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', 'ip', ...args], { env, input: JSON.stringify(im.conf), encoding: 'utf8' })
    : spawnSync('ip', args, { env, input: JSON.stringify(im.conf), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${im.name} ${cmd} ${id}: ${r.stdout} ${r.stderr}`);
  lastCpuMs = PERF ? cpuOf(r.stderr) : NaN;
  return r.stdout;
}

const PERF = (() => {
  const r = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', 'true'], { encoding: 'utf8' });
  return r.status === 0 && /task-clock/.test(r.stderr);
})();
let lastCpuMs = NaN;
function cpuOf(stderr) { const m = /^([\d.]+),msec,task-clock/m.exec(stderr); return m ? Number(m[1]) : NaN; }

function ipOf(octet, i) { const n = i + 10; return `10.${octet}.${n >> 8}.${n & 255}`; }

/** Grow the synthetic population of `im` to `n` containers. */
function populate(im, n) {
  if (n <= im.populated) return;
  const from = im.populated;
  // The bridge and the network's structure must exist: one real container, attached with the real config and kept
  // (the last DEL of a network takes its structure along), is the first of the n.
  if (from === 0) {
    const ns = netns(`${tag}-${im.name}-w`);
    runPlugin(im, 'ADD', 'warm', `/run/netns/${ns}`);
    im.populated = 1;
    if (n === 1) return;
  }
  const batch = [];
  const ipamDir = path.join(im.conf.ipam.dataDir, im.conf.name);
  fs.mkdirSync(ipamDir, { recursive: true });
  const nft = [];
  const ipt = ['*nat'];
  const iptRules = [];
  for (let i = Math.max(from, 1); i < n; i++) {
    const id = `pop${im.name}${i}`;
    const v = `vp${im.name}${i.toString(16)}`;
    batch.push(`link add ${v} type veth peer name vq${im.name}${i.toString(16)}`, `link set ${v} master ${im.conf.bridge} up`);
    const ip = ipOf(im.subnetOctet, i);
    fs.writeFileSync(path.join(ipamDir, ip), `${id}\r\neth0`);
    if (im.name === 'ours') {
      nft.push({ ip, id });
    } else {
      const chain = `CNI-${crypto.createHash('sha512').update(im.conf.name + id).digest('hex').slice(0, 24)}`;
      const c = `-m comment --comment "name: \\"${im.conf.name}\\" id: \\"${id}\\""`;
      ipt.push(`:${chain} - [0:0]`);
      iptRules.push(`-A ${chain} -d 10.${im.subnetOctet}.0.0/16 ${c} -j ACCEPT`, `-A ${chain} ! -d 224.0.0.0/4 ${c} -j MASQUERADE`, `-A POSTROUTING -s ${ip}/32 ${c} -j ${chain}`);
    }
  }
  sh('ip', ['-n', im.host, '-batch', '-'], batch.join('\n') + '\n');
  if (nft.length) {
    // Same shape an ADD writes (lib/firewall/masquerade), in one transaction.
    const { renderMasqAddForBench } = loadMasq();
    sh('ip', ['netns', 'exec', im.host, 'nft', '-f', '-'], renderMasqAddForBench(im.conf.name, nft, `10.${im.subnetOctet}.0.0/16`));
  }
  if (iptRules.length) sh('ip', ['netns', 'exec', im.host, 'iptables-restore', '--noflush'], [...ipt, ...iptRules, 'COMMIT'].join('\n') + '\n');
  im.populated = n;
}

let masqMod;
function loadMasq() {
  if (masqMod) return masqMod;
  // The element shape mirrors lib/firewall/masquerade.ts (chain per network+subnet, comment with tags).
  const h = (s, n) => crypto.createHash('sha256').update(s).digest('hex').slice(0, n);
  masqMod = {
    renderMasqAddForBench(network, entries, subnet) {
      const chain = `masq-${h(`${network}\0${subnet}`, 16)}`;
      const net = h(`net\0${network}`, 12);
      const els = entries.map((e) => `${e.ip} comment "${net} ${h(`att\0${e.id}\0eth0`, 16)} ${e.id}/eth0" : jump ${chain}`);
      const out = [];
      for (let i = 0; i < els.length; i += 500) out.push(`add element inet node_cni_masq masq4 { ${els.slice(i, i + 500).join(', ')} }`);
      return out.join('\n') + '\n';
    },
  };
  return masqMod;
}

// ADD and DEL of both implementations in turn (ours, ref, ours, ref...): the machine's speed drifts over a run,
// and a ratio of two medians taken minutes apart carried that drift (2.06x and 2.35x in two runs of one build).
function timeAddDelPaired(ims, reps) {
  const out = ims.map(() => ({ add: [], del: [], addCpu: [], delCpu: [] }));
  const nss = ims.map((im) => netns(`${tag}-${im.name}-t${im.populated}`));
  ims.forEach((im, i) => { runPlugin(im, 'ADD', 'warmup', `/run/netns/${nss[i]}`); runPlugin(im, 'DEL', 'warmup', `/run/netns/${nss[i]}`); });
  for (let r = 0; r < reps; r++) {
    for (const [cmd, wall, cpu] of [['ADD', 'add', 'addCpu'], ['DEL', 'del', 'delCpu']]) {
      ims.forEach((im, i) => {
        const t0 = process.hrtime.bigint();
        runPlugin(im, cmd, `t${r}`, `/run/netns/${nss[i]}`);
        out[i][wall].push(ms(t0));
        out[i][cpu].push(lastCpuMs);
      });
    }
  }
  const addCpuRatio = median(out[0].addCpu.map((c, r) => c / out[1].addCpu[r]));
  return { rows: out.map((o) => ({ add: median(o.add), del: median(o.del), addCpu: median(o.addCpu), delCpu: median(o.delCpu) })), addCpuRatio };
}

/** A network's first ADD and last DEL: each rep on a fresh network (its own name, bridge and subnet). */
function timeLifecycle(name, bin, backend, octet, reps) {
  const add = [], del = [], addCpu = [], delCpu = [];
  for (let r = 0; r < reps; r++) {
    const im = impl(`${name}${r}`, bin, backend, octet);
    im.conf.ipam.subnet = `10.${octet}.${r}.0/24`;
    const ns = netns(`${tag}-${im.name}-f`);
    let t0 = process.hrtime.bigint();
    runPlugin(im, 'ADD', 'first', `/run/netns/${ns}`);
    add.push(ms(t0));
    addCpu.push(lastCpuMs);
    t0 = process.hrtime.bigint();
    runPlugin(im, 'DEL', 'first', `/run/netns/${ns}`);
    del.push(ms(t0));
    delCpu.push(lastCpuMs);
    for (const n of [ns, im.host]) { spawnSync('ip', ['netns', 'del', n]); namespaces.splice(namespaces.indexOf(n), 1); }
  }
  return { add: median(add), del: median(del), addCpu: median(addCpu), delCpu: median(delCpu) };
}

function timeNode(reps) {
  const xs = [], cpu = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    const args = ['ip', 'netns', 'exec', namespaces[0], NODE, '-e', '0'];
    const r2 = PERF ? spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', ...args], { encoding: 'utf8' }) : spawnSync(args[0], args.slice(1));
    if (r2.status !== 0) throw new Error(`node -e 0 failed: ${r2.stderr}`);
    xs.push(ms(t0));
    cpu.push(PERF ? cpuOf(r2.stderr) : NaN);
  }
  return { wall: median(xs), cpu: median(cpu) };
}

/** Distinct failure messages (names and numbers blanked) with counts: a count alone does not say whose fault it is. */
function summarize(im, cmd, failed) {
  const seen = new Map();
  for (const r of failed) {
    let msg = `exit ${r.code ?? r.signal}: ${r.out.trim() || r.err.trim()}`.replace(/\s+/g, ' ').slice(0, 300);
    msg = msg.replace(/veth[0-9a-f]{8}/g, 'veth*').replace(/#\d+/g, '#N');
    seen.set(msg, (seen.get(msg) || 0) + 1);
  }
  const out = [...seen].map(([m, k]) => `${cmd} x${k} ${m}`);
  for (const m of out) console.error(`  ${im.name} concurrent ${m}`);
  return out;
}

async function concurrent(im, n) {
  const nss = [];
  for (let i = 0; i < n; i++) nss.push(netns(`${tag}-${im.name}-c${i}`));
  const t0 = process.hrtime.bigint();
  const rs = await Promise.all(nss.map((ns, i) => runPlugin(im, 'ADD', `conc${i}`, `/run/netns/${ns}`, { async: true })));
  const wall = ms(t0);
  const failed = rs.filter((r) => r.code !== 0);
  const errors = failed.length;
  const messages = summarize(im, 'ADD', failed);
  const addrs = rs.filter((r) => r.code === 0).map((r) => JSON.parse(r.out).ips[0].address);
  const dup = addrs.length - new Set(addrs).size;
  const dels = await Promise.all(nss.map((ns, i) => runPlugin(im, 'DEL', `conc${i}`, `/run/netns/${ns}`, { async: true })));
  const delFailed = dels.filter((r) => r.code !== 0);
  const delErrors = delFailed.length;
  messages.push(...summarize(im, 'DEL', delFailed));
  for (const ns of nss) { spawnSync('ip', ['netns', 'del', ns]); namespaces.splice(namespaces.indexOf(ns), 1); }
  return { wall, errors, dup, delErrors, messages };
}

async function throughput(im, round = 0) {
  const a = netns(`${tag}-${im.name}-ia${round}`);
  const b = netns(`${tag}-${im.name}-ib${round}`);
  runPlugin(im, 'ADD', `iperf-a${round}`, `/run/netns/${a}`);
  const rb = JSON.parse(runPlugin(im, 'ADD', `iperf-b${round}`, `/run/netns/${b}`));
  const server = spawn('ip', ['netns', 'exec', b, 'iperf3', '-s', '-1'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const out = sh('ip', ['netns', 'exec', a, 'iperf3', '-c', rb.ips[0].address.split('/')[0], '-t', '3', '-J']);
  server.kill();
  runPlugin(im, 'DEL', `iperf-a${round}`, `/run/netns/${a}`);
  runPlugin(im, 'DEL', `iperf-b${round}`, `/run/netns/${b}`);
  return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
}

function peakMemory(im) {
  const ns = netns(`${tag}-${im.name}-m`);
  const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'mem', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: `${im.cniPath}:/usr/lib/cni` };
  const r = spawnSync('ip', ['netns', 'exec', im.host, '/usr/bin/time', '-f', 'MAXRSS %M', im.bin], { env, input: JSON.stringify(im.conf), encoding: 'utf8' });
  runPlugin(im, 'DEL', 'mem', `/run/netns/${ns}`);
  const m = /MAXRSS (\d+)/.exec(r.stderr);
  return m ? Number(m[1]) / 1024 : NaN;
}

async function main() {
  if (!fs.existsSync(OURS)) throw new Error('build first: node scripts/build.js bridge');
  const ours = impl('ours', OURS, 'nftables', 71);
  const ref = impl('ref', REF, undefined, 72);
  const rows = [];
  for (const n of COUNTS) {
    populate(ours, n);
    populate(ref, n);
    if (!STEPS.has('latency')) continue;
    const { rows: [o, r], addCpuRatio } = timeAddDelPaired([ours, ref], REPS);
    rows.push({ containers: n, oursAdd: o.add, oursDel: o.del, refAdd: r.add, refDel: r.del, oursAddCpu: o.addCpu, oursDelCpu: o.delCpu, refAddCpu: r.addCpu, refDelCpu: r.delCpu, addCpuRatio });
    console.error(`n=${n}: ours ADD ${o.add.toFixed(0)} DEL ${o.del.toFixed(0)} ms (CPU ${o.addCpu.toFixed(0)}/${o.delCpu.toFixed(0)}) | ref ADD ${r.add.toFixed(0)} DEL ${r.del.toFixed(0)} ms (CPU ${r.addCpu.toFixed(0)}/${r.delCpu.toFixed(0)}) | ADD CPU ours/ref, median of pairs ${addCpuRatio.toFixed(2)}`);
  }
  let lifecycle = null;
  if (STEPS.has('lifecycle')) {
    const o = timeLifecycle('of', OURS, 'nftables', 77, REPS);
    const r = timeLifecycle('rf', REF, undefined, 78, REPS);
    lifecycle = { ours: o, ref: r };
    console.error(`first ADD / last DEL of a network: ours ${o.add.toFixed(0)} / ${o.del.toFixed(0)} ms (CPU ${o.addCpu.toFixed(0)}/${o.delCpu.toFixed(0)}) | ref ${r.add.toFixed(0)} / ${r.del.toFixed(0)} ms (CPU ${r.addCpu.toFixed(0)}/${r.delCpu.toFixed(0)})`);
  }
  const nodeRun = timeNode(REPS);
  const node = nodeRun.wall;
  console.error(`node -e 0: ${node.toFixed(0)} ms (CPU ${nodeRun.cpu.toFixed(0)} ms)`);
  let concOurs = null, concRef = null, tputOurs = NaN, tputRef = NaN, memOurs = NaN, memRef = NaN;
  if (STEPS.has('concurrent')) {
    // On fresh networks: a Linux bridge takes at most 1023 ports (BR_MAX_PORTS 1024, port 0 unused), so after the
    // 1000-container population only 23 of 64 ADDs could ever succeed (EXFULL, for both implementations alike).
    // Fresh also means all 64 race to create the bridge, the nft table and the IPAM directory.
    // Rounds in turn (ours, ref, ours, ref...), each on fresh networks; the round of median wall time is reported,
    // with every round's walls and the median of the per-round ratios.
    const oursRounds = [], refRounds = [];
    for (let r = 0; r < CONC_ROUNDS; r++) {
      oursRounds.push(await concurrent(impl(`oc${r}`, OURS, 'nftables', 73), CONC));
      refRounds.push(await concurrent(impl(`rc${r}`, REF, undefined, 74), CONC));
    }
    const medianRound = (rounds) => [...rounds].sort((a, b) => a.wall - b.wall)[Math.floor(rounds.length / 2)];
    const sum = (rounds, k) => rounds.reduce((n, x) => n + x[k], 0);
    const ratio = median(oursRounds.map((o, r) => o.wall / refRounds[r].wall));
    concOurs = { ...medianRound(oursRounds), walls: oursRounds.map((x) => x.wall), errors: sum(oursRounds, 'errors'), dup: sum(oursRounds, 'dup'), delErrors: sum(oursRounds, 'delErrors') };
    concRef = { ...medianRound(refRounds), walls: refRounds.map((x) => x.wall), errors: sum(refRounds, 'errors'), dup: sum(refRounds, 'dup'), delErrors: sum(refRounds, 'delErrors') };
    concOurs.ratio = ratio;
    const walls = (c) => c.walls.map((w) => w.toFixed(0)).join('/');
    console.error(`${CONC} concurrent ADDs (${CONC_ROUNDS} rounds in turn): ours ${concOurs.wall.toFixed(0)} ms (${walls(concOurs)}; ${concOurs.errors} errors, ${concOurs.dup} dup, ${concOurs.delErrors} DEL errors) | ref ${concRef.wall.toFixed(0)} ms (${walls(concRef)}; ${concRef.errors} errors, ${concRef.dup} dup, ${concRef.delErrors} DEL errors) | ours/ref, median of rounds ${ratio.toFixed(2)}`);
  }
  if (STEPS.has('iperf')) {
    // Fresh networks (no pre-populated ports), rounds interleaved, median: one 3 s run per side was noise.
    const oi = impl('oi', OURS, 'nftables', 75);
    const ri = impl('ri', REF, undefined, 76);
    const runs = { ours: [], ref: [] };
    for (let round = 0; round < 3; round++) {
      runs.ours.push(await throughput(oi, round));
      runs.ref.push(await throughput(ri, round));
    }
    const med = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    tputOurs = med(runs.ours);
    tputRef = med(runs.ref);
    console.error(`iperf3: ours ${tputOurs.toFixed(2)} Gbit/s | ref ${tputRef.toFixed(2)} Gbit/s`);
  }
  if (STEPS.has('rss')) {
    memOurs = peakMemory(ours);
    memRef = peakMemory(ref);
    console.error(`peak RSS per ADD: ours ${memOurs.toFixed(1)} MiB | ref ${memRef.toFixed(1)} MiB`);
  }
  const out = { rows, lifecycle, load: os.loadavg(), node, nodeCpu: nodeRun.cpu, concurrent: { n: CONC, ours: concOurs, ref: concRef }, throughputGbps: { ours: tputOurs, ref: tputRef }, peakMiB: { ours: memOurs, ref: memRef } };
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify(out, null, 2));
  console.log(JSON.stringify(out, null, 2));
}

/** ADD latency against container count (log x), ours vs reference, as a standalone SVG. */
function plotSvg(data) {
  const W = 640, H = 360, L = 60, R = 20, T = 30, B = 50;
  // CPU time when the run has it (less hostage to the machine's load than wall time).
  const cpu = data.rows.every((r) => Number.isFinite(r.oursAddCpu) && Number.isFinite(r.refAddCpu));
  const rows = cpu ? data.rows.map((r) => ({ ...r, oursAdd: r.oursAddCpu, refAdd: r.refAddCpu })) : data.rows;
  const what = cpu ? 'CPU ms (median, whole process tree)' : 'median ms';
  const xs = rows.map((r) => Math.log10(Math.max(1, r.containers)));
  const maxY = Math.max(...rows.flatMap((r) => [r.oursAdd, r.refAdd])) * 1.15;
  const x = (v) => L + ((v - Math.min(...xs)) / Math.max(1e-9, Math.max(...xs) - Math.min(...xs))) * (W - L - R);
  const y = (v) => H - B - (v / maxY) * (H - T - B);
  const line = (key, color) => {
    const pts = rows.map((r, i) => `${x(xs[i]).toFixed(1)},${y(r[key]).toFixed(1)}`);
    const dots = rows.map((r, i) => `<circle cx="${x(xs[i]).toFixed(1)}" cy="${y(r[key]).toFixed(1)}" r="3.5" fill="${color}"/><text x="${x(xs[i]).toFixed(1)}" y="${(y(r[key]) - 8).toFixed(1)}" font-size="11" text-anchor="middle" fill="${color}">${r[key].toFixed(0)}</text>`);
    return `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>${dots.join('')}`;
  };
  const ticksY = [];
  const step = Math.pow(10, Math.floor(Math.log10(maxY / 4)));
  const yStep = Math.ceil(maxY / 5 / step) * step;
  for (let v = 0; v <= maxY; v += yStep) ticksY.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/><text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end">${v}</text>`);
  const ticksX = rows.map((r, i) => `<text x="${x(xs[i]).toFixed(1)}" y="${H - B + 18}" font-size="11" text-anchor="middle">${r.containers}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="18" font-size="14" text-anchor="middle">bridge ADD, ${what}, vs containers on the network</text>
${ticksY.join('\n')}
${ticksX.join('\n')}
<text x="${W / 2}" y="${H - 12}" font-size="12" text-anchor="middle">containers on the network (log scale)</text>
<text x="16" y="${H / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">${cpu ? 'CPU ms' : 'ms'}</text>
${line('refAdd', '#c0392b')}
${line('oursAdd', '#2471a3')}
<rect x="${L + 10}" y="${T + 4}" width="12" height="12" fill="#2471a3"/><text x="${L + 28}" y="${T + 14}" font-size="12">ours (nftables, host-local in-process)</text>
<rect x="${L + 10}" y="${T + 22}" width="12" height="12" fill="#c0392b"/><text x="${L + 28}" y="${T + 32}" font-size="12">reference v1.1.1 (iptables)</text>
</svg>
`;
}

if (argv[0] === '--plot') {
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.writeFileSync(argv[2], plotSvg(JSON.parse(fs.readFileSync(argv[1], 'utf8'))));
  process.exit(0);
}

main().then(cleanup, (err) => { cleanup(); console.error(err.stack || String(err)); process.exit(1); });
