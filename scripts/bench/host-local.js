#!/usr/bin/env node
// host-local benchmark: ADD+DEL latency of our dist/bin/host-local vs the
// reference /usr/lib/cni/host-local v1.1.1 vs `node -e 0` (the floor of any
// Node executable), with 0, 1 000 and 10 000 reservations of other containers
// already in the directory; plus the in-process cost our plugins pay (the
// bridge calls ipam/host-local's handlers without a process).
//
//   node scripts/bench/host-local.js [--counts 0,1000,10000] [--reps 9] [--md docs/benchmarks/host-local.md]
//
// Each implementation gets its own dataDir (so neither reads the other's
// files), pre-filled with N reservation files in the reference format. One
// unmeasured ADD+DEL comes first: for ours it is the one-time index rebuild
// after the bulk write (reported separately as "first op"), for both it warms
// the page cache. Then `reps` ADD/DEL pairs are timed (median). No root needed
// beyond writing a temp dir; nothing outside it is touched.
'use strict';
// This machine exports NODE_EXTRA_CA_CERTS; runtimes do not pass it to plugins: no measured process gets it.
delete process.env.NODE_EXTRA_CA_CERTS;
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const OURS = path.join(root, 'dist', 'bin', 'host-local');
const REF = '/usr/lib/cni/host-local';
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const COUNTS = opt('counts', '0,1000,10000').split(',').map(Number);
const REPS = Number(opt('reps', '9'));
const MD = opt('md', path.join(root, 'docs', 'benchmarks', 'host-local.md'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hlbench-'));
const cleanup = () => fs.rmSync(tmp, { recursive: true, force: true });
process.on('SIGINT', () => { cleanup(); process.exit(130); });

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const now = () => process.hrtime.bigint();
const ms = (t0) => Number(now() - t0) / 1e6;

const SUBNET = '10.200.0.0/16'; // 65 533 allocatable: room for 10 000 others
const ipOf = (i) => `10.200.${(i + 2) >> 8}.${(i + 2) & 255}`;

function prefill(dataDir, n) {
  const dir = path.join(dataDir, 'bench');
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Others occupy the addresses right after the gateway; round-robin moves past them.
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, ipOf(i)), `other${i}\r\neth0`, { mode: 0o600 });
}

function conf(dataDir) {
  return JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'bridge', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: SUBNET }]] } });
}

const TIME_OUT = path.join(tmp, 'time.out');

/** Run once under /usr/bin/time: wall ms (what the runtime waits) and user+sys CPU ms (stable under load). */
function timed(argv, stdin, env) {
  const t0 = now();
  const r = spawnSync('/usr/bin/time', ['-o', TIME_OUT, '-f', '%U %S', ...argv], { input: stdin, encoding: 'utf8', env });
  const wall = ms(t0);
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stdout} ${r.stderr}`);
  const [u, sy] = fs.readFileSync(TIME_OUT, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return { wall, cpu: (u + sy) * 1000 };
}

function exec(bin, command, id, stdin) {
  return timed([bin], stdin, { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_NETNS: '/run/netns/none', CNI_PATH: '/usr/lib/cni' });
}

/** Both binaries and the node floor, interleaved rep by rep so load drift hits all columns alike. */
function measureBinaries(n) {
  const impls = [['ours', OURS], ['ref', REF]].map(([label, bin]) => {
    const dataDir = path.join(tmp, `${label}-${n}`);
    prefill(dataDir, n);
    const stdin = conf(dataDir);
    const first = exec(bin, 'ADD', 'warm', stdin).wall + exec(bin, 'DEL', 'warm', stdin).wall;
    return { label, bin, dataDir, stdin, first, add: [], del: [], cpu: [] };
  });
  const floor = { wall: [], cpu: [] };
  for (let i = 0; i < REPS; i++) {
    // The floor: `node -e 0` of the Node inside the release.
    const f = timed([path.join(__dirname, '..', '..', 'node_modules', `node-linux-${process.arch}`, 'bin', 'node'), '-e', '0'], '', process.env);
    floor.wall.push(f.wall);
    floor.cpu.push(f.cpu);
    for (const m of impls) {
      const a = exec(m.bin, 'ADD', `b${i}`, m.stdin);
      const d = exec(m.bin, 'DEL', `b${i}`, m.stdin);
      m.add.push(a.wall);
      m.del.push(d.wall);
      m.cpu.push(a.cpu + d.cpu);
    }
  }
  const out = { floor: { wall: median(floor.wall), cpu: median(floor.cpu) } };
  for (const m of impls) {
    fs.rmSync(m.dataDir, { recursive: true, force: true });
    out[m.label] = { first: m.first, add: median(m.add), del: median(m.del), cpu: median(m.cpu) };
  }
  return out;
}

// In-process: load the TypeScript sources with a transpile-on-require hook
// (plain node, no build step), exactly the handlers dist/bin/host-local runs.
function loadPlugin() {
  const ts = require(path.join(root, 'node_modules', 'typescript'));
  require.extensions['.ts'] = (module, filename) => {
    const src = fs.readFileSync(filename, 'utf8');
    const out = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } });
    module._compile(out.outputText, filename);
  };
  return require(path.join(root, 'ipam', 'host-local', 'plugin.ts')).hostLocal;
}

async function measureInProcess(hostLocal, n) {
  const dataDir = path.join(tmp, `inproc-${n}`);
  prefill(dataDir, n);
  const confObj = JSON.parse(conf(dataDir));
  const inv = (command, id) => ({ env: { command, containerId: id, ifname: 'eth0', path: [] }, conf: confObj, raw: Buffer.alloc(0), cniArgs: {} });
  let t0 = now();
  await hostLocal.add(inv('ADD', 'warm'));
  await hostLocal.del(inv('DEL', 'warm'));
  const first = ms(t0);
  const reps = REPS * 20;
  const add = [];
  const del = [];
  for (let i = 0; i < reps; i++) {
    t0 = now();
    await hostLocal.add(inv('ADD', `p${i}`));
    add.push(ms(t0));
    t0 = now();
    await hostLocal.del(inv('DEL', `p${i}`));
    del.push(ms(t0));
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
  return { first, add: median(add), del: median(del) };
}

const f1 = (x) => x.toFixed(1);
const f2 = (x) => x.toFixed(2);

async function main() {
  if (!fs.existsSync(OURS)) throw new Error(`${OURS} is missing: node scripts/build.js host-local`);
  const hostLocal = loadPlugin();
  const rows = [];
  for (const n of COUNTS) {
    const b = measureBinaries(n);
    const inproc = await measureInProcess(hostLocal, n);
    rows.push({ n, ...b, inproc });
    process.stderr.write(`N=${n} done\n`);
  }
  const load = os.loadavg().map((x) => x.toFixed(1)).join(' ');
  const header = [
    '| reservations already there | ours ADD | ours DEL | reference ADD | reference DEL | ours/ref wall (ADD+DEL) | CPU ours / ref / 2× `node -e 0` (ADD+DEL) | ours first op after bulk write | in-process ADD | in-process DEL | in-process first op |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const lines = rows.map(({ n, ours, ref, floor, inproc }) => {
    const o = ours.add + ours.del;
    const r = ref.add + ref.del;
    return `| ${n} | ${f1(ours.add)} ms | ${f1(ours.del)} ms | ${f1(ref.add)} ms | ${f1(ref.del)} ms | ${f2(o / r)}× | ${f1(ours.cpu)} / ${f1(ref.cpu)} / ${f1(2 * floor.cpu)} ms | ${f1(ours.first)} ms | ${f2(inproc.add)} ms | ${f2(inproc.del)} ms | ${f1(inproc.first)} ms |`;
  });
  const floors = rows.map((r) => `${f1(r.floor.wall)} ms wall, ${f1(r.floor.cpu)} ms CPU`).join('; ');
  const table = [...header, ...lines].join('\n');
  const meta = `\`node -e 0\` per row: ${floors}. Wall = median of ${REPS} interleaved runs per cell; CPU = user+sys of the process (GNU time). In-process: median of ${REPS * 20} calls. ${os.cpus().length} CPUs, load average ${load} at the end of the run (the machine is shared), the floor is the release's Node (the script itself runs on ${process.version}), ${new Date().toISOString()}.`;
  console.log(table);
  console.log(`\n${meta}`);
  writeMarkdown(table, meta);
}

function writeMarkdown(table, meta) {
  const docPath = MD;
  const begin = '<!-- results:begin -->';
  const end = '<!-- results:end -->';
  const block = `${begin}\n${table}\n\n${meta}\n${end}`;
  let text = fs.existsSync(docPath) ? fs.readFileSync(docPath, 'utf8') : `# host-local benchmark\n\n${begin}\n${end}\n`;
  if (!text.includes(begin)) text += `\n${begin}\n${end}\n`;
  text = text.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), block);
  fs.mkdirSync(path.dirname(docPath), { recursive: true });
  fs.writeFileSync(docPath, text);
  process.stderr.write(`wrote ${path.relative(root, docPath)}\n`);
}

main().then(cleanup, (err) => { cleanup(); console.error(err.stack || String(err)); process.exit(1); });
