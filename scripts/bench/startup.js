#!/usr/bin/env node
// What one invocation costs, side by side in one run: the release (dist/bin:
// one single executable application started from a V8 startup snapshot), the
// build before it (one ncc bundle per plugin, run by the host's Node, a
// hand-made V8 code cache; built from --baseline-ref), `node -e 0` of the Node
// inside the release (the floor of any Node program), an empty SEA (the same
// executable and flags with nothing of ours in its snapshot: `build.js --floor`,
// the floor of this design) and the reference Go plugins in /usr/lib/cni.
// Cases: VERSION of every name, loopback ADD+DEL, bridge ADD+DEL at 1
// container, STATUS of a bridge + portmap conflist; then
// scripts/bench/bridge.js for the release and the baseline (ADD+DEL at 1000
// containers, 64 concurrent ADDs) unless --no-bridge.
//
// Every command runs without NODE_EXTRA_CA_CERTS (this machine exports it;
// runtimes do not pass it to plugins). Commands are interleaved (each once per
// round), medians of --runs rounds are reported: wall ms, CPU ms (task-clock
// of the process tree from `perf stat`, else user+sys from /usr/bin/time) and
// peak RSS (/usr/bin/time %M). Each binary is dropped from the page cache
// first: how the file got into it (a fresh copy, a tar) changes the RSS of
// mapped file pages by 10+ MiB (docs/benchmarks/startup.md).
//
//   node scripts/bench/startup.js [--runs 21] [--baseline-ref ddb89d5] [--no-bridge] [--json out.json]
//
// Bounded: ~5 min on an idle 2-core machine with --runs 21 (bridge.js ~3 min of it; the baseline build ~1 min, once).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

delete process.env.NODE_EXTRA_CA_CERTS;
const root = path.resolve(__dirname, '..', '..');
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const RUNS = Number(opt('runs', '21'));
const RELEASE = path.join(root, 'dist', 'bin');
// The last commit whose dist/bin was one bundle per plugin (before the release).
const BASELINE_REF = opt('baseline-ref', 'ddb89d5');
const REF_DIR = '/usr/lib/cni';
const NODE_INSIDE = path.join(root, 'node_modules', `node-linux-${process.arch}`, 'bin', 'node');
const JSON_OUT = opt('json', '');
const TAG = `rb${process.pid.toString(36)}`;

const median = (xs) => { const s = xs.filter(Number.isFinite).sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const PERF = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', 'true'], { encoding: 'utf8' }).stderr?.includes('task-clock');

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** The baseline's dist/bin, built once from BASELINE_REF's tree with this checkout's node_modules. */
function baselineBin() {
  const dir = path.join(root, 'dist', 'bench', `baseline-${BASELINE_REF}`);
  const bin = path.join(dir, 'bin');
  if (fs.existsSync(path.join(bin, 'bridge'))) return bin;
  console.error(`building the baseline (${BASELINE_REF}) in ${path.relative(root, dir)}...`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const tar = spawnSync('git', ['-C', root, 'archive', BASELINE_REF], { maxBuffer: 1 << 30 });
  if (tar.status !== 0) throw new Error(`git archive ${BASELINE_REF}: ${tar.stderr}`);
  sh('tar', ['-x', '-C', dir], { input: tar.stdout });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  sh(process.execPath, [path.join(dir, 'scripts', 'build.js'), '--out', bin], { cwd: dir });
  return bin;
}

/** The same executable with an empty snapshot (scripts/build.js --floor), built for this run. */
function emptySeaBin(made) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-empty-sea-`));
  made.push(dir);
  sh(process.execPath, [path.join(root, 'scripts', 'build.js'), '--floor', '--out', path.join(dir, 'bin')]);
  return path.join(dir, 'bin');
}

/** Drop a binary from the page cache, so every variant's mapped pages come in the same way (readahead). */
function evict(file) {
  sh('dd', [`if=${fs.realpathSync(file)}`, 'iflag=nocache', 'count=0', 'status=none']);
}

/** One measured process: wall, CPU and peak RSS. */
function runOnce(cmd, env, input) {
  const timed = ['/usr/bin/time', '-f', 'RL %M %U %S', ...cmd];
  const t0 = process.hrtime.bigint();
  const r = PERF
    ? spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', ...timed], { env, input, encoding: 'utf8' })
    : spawnSync(timed[0], timed.slice(1), { env, input, encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} (${env.CNI_COMMAND || ''}) failed: ${r.stdout} ${r.stderr}`);
  const t = /RL (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  const cpu = PERF ? Number(/^([\d.]+),msec,task-clock/m.exec(r.stderr)[1]) : (Number(t[2]) + Number(t[3])) * 1000;
  return { wall, cpu, rss: Number(t[1]) / 1024, stdout: r.stdout };
}

/** A case is a list of steps measured as one sample (summed wall and CPU, the largest RSS). */
function sample(c) {
  const total = { wall: 0, cpu: 0, rss: 0 };
  for (const s of c.steps) {
    const m = runOnce(s.cmd, { PATH: process.env.PATH, ...s.env }, s.input);
    total.wall += m.wall;
    total.cpu += m.cpu;
    total.rss = Math.max(total.rss, m.rss);
  }
  return total;
}

/** Interleaved rounds over all cases, after one unmeasured warm-up each (native code unpacked, caches written). */
function measure(cases) {
  for (const c of cases) for (const s of c.steps) evict(s.cmd.find((a) => a.startsWith('/') && !a.startsWith('/run/')) || s.cmd[0]);
  for (const c of cases) sample(c);
  const res = cases.map(() => ({ wall: [], cpu: [], rss: [] }));
  for (let r = 0; r < RUNS; r++) {
    cases.forEach((c, i) => {
      const m = sample(c);
      for (const k of ['wall', 'cpu', 'rss']) res[i][k].push(m[k]);
    });
  }
  return cases.map((c, i) => ({ group: c.group, label: c.label, processes: c.steps.length, wall: median(res[i].wall), cpu: median(res[i].cpu), rss: median(res[i].rss) }));
}

function variants(baseline) {
  const v = [{ label: 'release', dir: RELEASE }];
  if (baseline) v.push({ label: 'baseline', dir: baseline });
  v.push({ label: 'reference', dir: REF_DIR });
  return v;
}

const has = (dir, name) => fs.existsSync(path.join(dir, name));
const inNs = (ns, cmd) => ['ip', 'netns', 'exec', ns, ...cmd];

function versionCases(vs, emptySea) {
  // Every program is a link to the one executable.
  const names = fs.readdirSync(RELEASE).filter((n) => fs.lstatSync(path.join(RELEASE, n)).isSymbolicLink()).sort();
  const cases = [
    { group: 'node -e 0', label: 'floor', steps: [{ cmd: [NODE_INSIDE, '-e', '0'], env: {} }] },
    { group: 'empty SEA', label: 'floor', steps: [{ cmd: [path.join(emptySea, 'bridge')], env: { CNI_COMMAND: 'VERSION' }, input: '' }] },
  ];
  for (const name of names) {
    for (const v of vs) {
      if (!has(v.dir, name)) continue;
      // cnictl is no plugin: its VERSION is --version.
      const step = name === 'cnictl' ? { cmd: [path.join(v.dir, name), '--version'], env: {} } : { cmd: [path.join(v.dir, name)], env: { CNI_COMMAND: 'VERSION' }, input: '' };
      cases.push({ group: `${name} VERSION`, label: v.label, steps: [step] });
    }
  }
  return cases;
}

/** loopback ADD+DEL and bridge ADD+DEL at 1 container, each variant in its own host namespace. */
function pluginCases(vs, emptySea, made) {
  const cases = [];
  vs.forEach((v, i) => {
    const host = `${TAG}-h${i}`;
    const ctr = `${TAG}-c${i}`;
    for (const ns of [host, ctr]) { sh('ip', ['netns', 'add', ns]); made.push(ns); sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']); }
    const env = (cmd, ifname) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: `${TAG}-${i}`, CNI_NETNS: `/run/netns/${ctr}`, CNI_IFNAME: ifname, CNI_PATH: v.dir });
    const lo = JSON.stringify({ cniVersion: '1.0.0', name: `${TAG}lo`, type: 'loopback' });
    cases.push({ group: 'loopback ADD+DEL', label: v.label, steps: ['ADD', 'DEL'].map((c) => ({ cmd: inNs(host, [path.join(v.dir, 'loopback')]), env: env(c, 'lo'), input: lo })) });
    const state = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-${v.label}-`));
    made.push(state);
    const br = JSON.stringify({
      cniVersion: '1.0.0', name: `${TAG}br${i}`, type: 'bridge', bridge: `${TAG}b${i}`, isGateway: true, ipMasq: true,
      ...(v.label === 'reference' ? {} : { stateDir: path.join(state, 'bridge') }),
      ipam: { type: 'host-local', subnet: `10.${180 + i}.0.0/24`, dataDir: path.join(state, 'ipam') },
    });
    cases.push({ group: 'bridge ADD+DEL (1 container)', label: v.label, steps: ['ADD', 'DEL'].map((c) => ({ cmd: inNs(host, [path.join(v.dir, 'bridge')]), env: env(c, 'eth0'), input: br })) });
    // What a CNI 1.1 runtime polls every few seconds: STATUS through each plugin of the conflist.
    if (v.label !== 'reference') {
      const status = (type, extra) => ({ cmd: inNs(host, [path.join(v.dir, type)]), env: { CNI_COMMAND: 'STATUS', CNI_PATH: v.dir }, input: JSON.stringify({ ...extra, cniVersion: '1.1.0', name: `${TAG}br${i}`, type }) });
      cases.push({ group: 'STATUS bridge + portmap', label: v.label, steps: [status('bridge', JSON.parse(br)), status('portmap', { capabilities: { portMappings: true } })] });
      // Two starts of the empty SEA, called the same way: what any poll of two plugins built on it costs at least.
      if (v.label === 'release') {
        const empty = (type) => ({ ...status(type, {}), cmd: inNs(host, [path.join(emptySea, type)]) });
        cases.push({ group: 'STATUS bridge + portmap', label: 'empty SEA', steps: [empty('bridge'), empty('portmap')] });
      }
    }
  });
  return cases;
}

function runBridgeBench(label, bin, out) {
  console.error(`bridge.js for ${label} (1000 containers, 64 concurrent ADDs)...`);
  const r = spawnSync(process.execPath, [path.join(__dirname, 'bridge.js'), '--bin', bin, '--counts', '1,1000', '--reps', String(RUNS), '--steps', 'latency,concurrent,rss', '--json', out],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  // (Its JSON is read here and folded into this run's own --json: nothing is left in the temporary directory.)
  try {
    return r.status === 0 ? JSON.parse(fs.readFileSync(out, 'utf8')) : null;
  } finally {
    fs.rmSync(out, { force: true });
  }
}

const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '—');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');

function table(rows, floor) {
  // × node -e 0 is per process: a case of two invocations is compared with two Node starts.
  const lines = ['| case | variant | CPU ms | × node -e 0 | × reference | wall ms | peak RSS MiB |', '|---|---|---|---|---|---|---|'];
  const groups = [...new Set(rows.map((r) => r.group))];
  for (const g of groups) {
    const rs = rows.filter((r) => r.group === g);
    const ref = rs.find((r) => r.label === 'reference');
    for (const r of rs) {
      lines.push(`| ${g} | ${r.label} | ${f1(r.cpu)} | ${f1(r.cpu / (floor.cpu * r.processes))} | ${ref ? f1(r.cpu / ref.cpu) : '—'} | ${f0(r.wall)} | ${f1(r.rss)} |`);
    }
  }
  return lines.join('\n');
}

function main() {
  if (!fs.existsSync(path.join(RELEASE, 'bridge'))) throw new Error('build first: npm run build');
  const load = [sh('uptime', []).trim()];
  let baseline = null;
  try { baseline = baselineBin(); } catch (err) { console.error(`no baseline: ${String(err.message).slice(0, 300)}`); }
  const vs = variants(baseline);
  const made = [];
  let rows;
  try {
    const emptySea = emptySeaBin(made);
    const cases = [...versionCases(vs, emptySea), ...pluginCases(vs, emptySea, made)];
    console.error(`${cases.length} cases x ${RUNS} interleaved rounds (${PERF ? 'perf task-clock' : '/usr/bin/time'})...`);
    rows = measure(cases);
  } finally {
    for (const m of made.reverse()) {
      if (m.startsWith('/')) fs.rmSync(m, { recursive: true, force: true });
      else spawnSync('ip', ['netns', 'del', m]);
    }
  }
  const floor = rows.find((r) => r.group === 'node -e 0');
  const emptySea = rows.find((r) => r.group === 'empty SEA');
  const status = rows.find((r) => r.group === 'STATUS bridge + portmap' && r.label === 'release');
  const statusFloor = rows.find((r) => r.group === 'STATUS bridge + portmap' && r.label === 'empty SEA');
  const tarball = fs.readdirSync(path.join(root, 'dist', 'release')).find((f) => f.endsWith('.tgz'));
  const summary = {
    tarballMiB: tarball ? fs.statSync(path.join(root, 'dist', 'release', tarball)).size / 1048576 : NaN,
    // One poll every 5 s: 720 an hour.
    statusCpuSecondsPerHour: status ? (status.cpu * 720) / 1000 : NaN,
    statusFloorCpuSecondsPerHour: statusFloor ? (statusFloor.cpu * 720) / 1000 : NaN,
    emptySeaRssMiB: emptySea.rss,
  };
  const bridge = {};
  if (!argv.includes('--no-bridge')) {
    bridge.release = runBridgeBench('release', path.join(RELEASE, 'bridge'), path.join(os.tmpdir(), `${TAG}-bridge-release.json`));
    if (baseline) bridge.baseline = runBridgeBench('baseline', path.join(baseline, 'bridge'), path.join(os.tmpdir(), `${TAG}-bridge-baseline.json`));
  }
  load.push(sh('uptime', []).trim());
  console.log(`load before/after: ${load.join(' | ')}`);
  console.log(`node -e 0 (Node inside the release, ${sh(NODE_INSIDE, ['--version']).trim()}): CPU ${f1(floor.cpu)} ms, wall ${f0(floor.wall)} ms, peak RSS ${f1(floor.rss)} MiB\n`);
  console.log(`empty SEA (the release's Node and flags, an empty snapshot): CPU ${f1(emptySea.cpu)} ms, wall ${f0(emptySea.wall)} ms, peak RSS ${f1(emptySea.rss)} MiB\n`);
  console.log(table(rows.filter((r) => r.group !== 'node -e 0' && r.group !== 'empty SEA'), floor));
  console.log(`\ntarball ${f1(summary.tarballMiB)} MiB; STATUS poll of bridge + portmap every 5 s: ${f1(summary.statusCpuSecondsPerHour)} CPU-s per hour (two empty-SEA starts: ${f1(summary.statusFloorCpuSecondsPerHour)})`);
  for (const [k, b] of Object.entries(bridge)) if (b) console.log(`bridge.js ${k}: ${JSON.stringify(b.rows ?? b).slice(0, 600)}`);
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify({ runs: RUNS, cpuSource: PERF ? 'perf task-clock' : '/usr/bin/time', load, floor, emptySea, rows, summary, bridge }, null, 2));
}

main();
