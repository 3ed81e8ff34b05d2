#!/usr/bin/env node
// Benchmark: what one nft transaction costs as a function of the elements
// already in the table, and which statements make nft 1.0.6 fetch them.
// Runs in one throwaway network namespace. For each size N it declares the
// real portmap table of one network and the real masquerade table (rendered
// by lib/firewall/*.ts), puts N containers' elements in each, then times one
// transaction per variant: CPU (user+sys of the nft process,
// which includes the kernel's commit work done in its syscalls) and wall,
// median of --runs, plus the bytes nft read from netlink (strace), which
// shows whether it listed the sets' contents before the transaction.
// Every timed change is undone (untimed) so N stays constant.
// Usage: node scripts/bench/nft.js [--sizes 0,100,1000,10000] [--runs 15] [--only a,b]
'use strict';
// This machine exports NODE_EXTRA_CA_CERTS; runtimes do not pass it to plugins: no measured process gets it.
delete process.env.NODE_EXTRA_CA_CERTS;
const { execFileSync, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const SIZES = arg('--sizes', '0,100,1000,10000').split(',').map(Number);
const RUNS = Number(arg('--runs', '15'));
const ONLY = arg('--only', '') ? arg('--only', '').split(',') : undefined;
const NS = `nftb${crypto.randomBytes(3).toString('hex')}`;
const DIR = fs.mkdtempSync(path.join(os.tmpdir(), `${NS}-`));

const sh = (cmd, args, input) => execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
const nftIn = (args, input) => sh('ip', ['netns', 'exec', NS, 'nft', ...args], input);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  spawnSync('ip', ['netns', 'del', NS]);
  fs.rmSync(DIR, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

// The real renderers (TypeScript, transpiled on the fly), so the bench sends what the plugins send.
const ts = require(path.join(__dirname, '..', '..', 'node_modules', 'typescript'));
require.extensions['.ts'] = (m, file) => {
  const out = ts.transpileModule(fs.readFileSync(file, 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020, esModuleInterop: true } });
  m._compile(out.outputText, file);
};
const pm = require('../../lib/firewall/portmap.ts');
const masq = require('../../lib/firewall/masquerade.ts');

const PM = 'bench_pm';
const MQ = 'bench_masq';
const T = `inet ${PM}`;
const NET = { name: 'benchnet', snat: true, masqAll: false, conditionsV4: [], conditionsV6: [] };
const P = pm.networkPrefix(NET.name);
const SUBNET = '10.96.0.0/11';
const ip = (i) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const mip = (i) => `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const port = (i) => 1024 + i;
const NEW = 64000; // the key of the "new container" each variant adds (above every prefilled port)
const lines = (ls) => ls.join('\n') + '\n';

// One container's elements, exactly as portmap/masquerade plan them.
const att = { network: NET.name, containerID: 'bench-new', ifname: 'eth0', entries: [{ family: 4, protocol: 'tcp', hostPort: port(NEW), containerIP: ip(NEW), containerPort: 80 }] };
const ops = pm.planElements(att);
const owner = { network: 'masqnet', containerId: 'bench-new', ifname: 'eth0' };
const mentries = [{ address: mip(NEW), subnet: SUBNET }];
const skeletonLines = pm.renderSkeleton(NET, PM).trim().split('\n');
const oldPmStructure = skeletonLines.join('\n') + '\n'; // re-declared on every ADD (the first ADD of a network, or a repair)
const oldMasqAdd = () => {
  // base + subnet chain re-declared + elements (the first ADD of a network, or a repair).
  const decl = masq.renderMasqDeclare(owner, mentries, MQ).trimEnd();
  const els = masq.renderMasqAdd(owner, mentries, MQ);
  return decl + els;
};

const undoPm = () => nftIn(['-f', '-'], lines(pm.renderRemoveElements(ops, PM).trim().split('\n').filter((l) => l.startsWith('delete'))));
const redoPm = () => nftIn(['-f', '-'], pm.renderAddElements(ops, PM));
const undoMasq = () => masqRemove();
const redoMasq = () => nftIn(['-f', '-'], masq.renderMasqAdd(owner, mentries, MQ));
function masqRemove() { nftIn(['-f', '-'], masq.renderMasqDel([mip(NEW)], MQ)); }
const claimKey = `0.0.0.0 . tcp . ${port(NEW)}`;
const addOnly = () => pm.renderAddElements(ops, PM).replace(/^create/gm, 'add');
const jsonAdd = () => JSON.stringify({ nftables: [
  { add: { element: { family: 'inet', table: PM, name: 'claims4', elem: [[{ concat: ['0.0.0.0', 'tcp', port(NEW)] }, 0x80000001]] } } },
  { add: { element: { family: 'inet', table: PM, name: `${P}_any4`, elem: [[{ concat: ['tcp', port(NEW)] }, { concat: [ip(NEW), 80] }]] } } },
  { add: { element: { family: 'inet', table: PM, name: `${P}_targets4`, elem: [{ concat: [ip(NEW), 'tcp', 80] }] } } },
  { add: { element: { family: 'inet', table: PM, name: `${P}_hairpin4`, elem: [{ concat: [ip(NEW), ip(NEW)] }] } } },
] });

/** Variants: name -> { args, input(), before() and undo() (untimed; keep N constant) }. */
const VARIANTS = {
  'portmap ADD before: skeleton re-declared + elements': { args: ['-f', '-'], input: () => oldPmStructure + pm.renderAddElements(ops, PM), undo: undoPm },
  'portmap ADD steady: elements only (the chains checked over netlink before)': { args: ['-f', '-'], input: () => pm.renderAddElements(ops, PM), undo: undoPm },
  'portmap ADD after, declaring (first of a network)': { args: ['-f', '-'], input: () => pm.renderDeclareAndPublish(NET, ops, PM), undo: undoPm },
  'portmap DEL (add own value, delete), unchanged': { args: ['-f', '-'], input: () => pm.renderRemoveElements(ops, PM), before: redoPm, undo: () => {} },
  'create element only': { args: ['-f', '-'], input: () => pm.renderAddElements(ops, PM), undo: undoPm },
  'add element only': { args: ['-f', '-'], input: addOnly, undo: undoPm },
  'delete element only': { args: ['-f', '-'], input: () => lines(pm.renderRemoveElements(ops, PM).trim().split('\n').filter((l) => l.startsWith('delete'))), before: redoPm, undo: () => {} },
  'add element, -c (check only)': { args: ['-c', '-f', '-'], input: addOnly, undo: () => {} },
  'add element, --echo': { args: ['-e', '-f', '-'], input: addOnly, undo: undoPm },
  'add element, JSON (-j -f)': { args: ['-j', '-f', '-'], input: jsonAdd, undo: undoPm },
  'add element, one map, as arguments': { args: ['add', 'element', 'inet', PM, 'claims4', `{ ${claimKey} : 0x80000001 }`], input: () => undefined, undo: () => nftIn(['delete', 'element', 'inet', PM, 'claims4', `{ ${claimKey} }`]) },
  'add element, one map, -f': { args: ['-f', '-'], input: () => lines([`add element ${T} claims4 { ${claimKey} : 0x80000001 }`]), undo: () => nftIn(['delete', 'element', 'inet', PM, 'claims4', `{ ${claimKey} }`]) },
  'add table {comment} + elements': { args: ['-f', '-'], input: () => lines([skeletonLines[0], addOnly().trim()]), undo: undoPm },
  'add map/set declarations + elements': { args: ['-f', '-'], input: () => lines([...skeletonLines.filter((l) => /^add (map|set) /.test(l)), addOnly().trim()]), undo: undoPm },
  'add chain + flush chain + add rule + elements': { args: ['-f', '-'], input: () => lines([...skeletonLines.filter((l) => /^(add chain|flush chain|add rule) /.test(l)), addOnly().trim()]), undo: undoPm },
  'flush set (the 1-element mark set) + elements': { args: ['-f', '-'], input: () => lines([...skeletonLines.slice(-2), addOnly().trim()]), undo: undoPm },
  'list map claims4 (a listing)': { args: ['list', 'map', 'inet', PM, 'claims4'], input: () => undefined, undo: () => {} },
  'masquerade ADD before: base + chain re-declared + elements': { args: ['-f', '-'], input: oldMasqAdd, undo: undoMasq },
  'masquerade ADD steady: elements only (the chains checked over netlink before)': { args: ['-f', '-'], input: () => masq.renderMasqAdd(owner, mentries, MQ), undo: undoMasq },
  'masquerade DEL': { args: ['-f', '-'], input: () => masq.renderMasqDel([mip(NEW)], MQ), before: redoMasq, undo: () => {} },
};

function fill(n) {
  spawnSync('ip', ['netns', 'exec', NS, 'nft', 'flush', 'ruleset']);
  nftIn(['-f', '-'], pm.renderSkeleton(NET, PM) + masq.renderMasqDeclare(owner, mentries, MQ));
  const chunk = 2000;
  const mchain = masq.subnetChain(owner.network, SUBNET);
  for (let s = 0; s < n; s += chunk) {
    const ids = Array.from({ length: Math.min(chunk, n - s) }, (_, j) => s + j);
    const cm = (i) => `comment "${NET.name}/fill-${i}/eth0"`;
    nftIn(['-f', '-'], lines([
      `add element ${T} claims4 { ${ids.map((i) => `0.0.0.0 . tcp . ${port(i)} ${cm(i)} : 0x8${i.toString(16).padStart(7, '0')}`).join(', ')} }`,
      `add element ${T} ${P}_any4 { ${ids.map((i) => `tcp . ${port(i)} ${cm(i)} : ${ip(i)} . 80`).join(', ')} }`,
      `add element ${T} ${P}_targets4 { ${ids.map((i) => `${ip(i)} . tcp . 80`).join(', ')} }`,
      `add element ${T} ${P}_hairpin4 { ${ids.map((i) => `${ip(i)} . ${ip(i)}`).join(', ')} }`,
      `add element inet ${MQ} masq4 { ${ids.map((i) => `${mip(i)} comment "${masq.elementComment({ ...owner, containerId: `fill-${i}` })}" : jump ${mchain}`).join(', ')} }`,
    ]));
  }
}

/** One timed run: CPU (user+sys) and wall of the nft process, in ms. */
function timed(v) {
  const inputFile = path.join(DIR, 'in');
  const input = v.input();
  if (input !== undefined) fs.writeFileSync(inputFile, input);
  const args = v.args.map((a) => (a === '-' && input !== undefined ? inputFile : a));
  // bash's `time` keyword: wall, user and sys of the nft process alone (getrusage, ms resolution).
  const r = spawnSync('ip', ['netns', 'exec', NS, 'bash', '-c', 'TIMEFORMAT="TIME %3R %3U %3S"; time nft "$@" >/dev/null', '_', ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`nft ${args.join(' ')} failed: ${r.stderr}`);
  return { wall: Number(m[1]) * 1000, cpu: (Number(m[2]) + Number(m[3])) * 1000 };
}

/** Bytes nft read from netlink during one run (the cache it fetched + acks). */
function netlinkBytes(v) {
  const inputFile = path.join(DIR, 'in');
  const input = v.input();
  if (input !== undefined) fs.writeFileSync(inputFile, input);
  const args = v.args.map((a) => (a === '-' && input !== undefined ? inputFile : a));
  const trace = path.join(DIR, 'trace');
  spawnSync('ip', ['netns', 'exec', NS, 'strace', '-f', '-e', 'trace=recvmsg,recvfrom', '-o', trace, 'nft', ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  let bytes = 0;
  for (const l of fs.readFileSync(trace, 'utf8').split('\n')) {
    const m = /= (\d+)$/.exec(l);
    if (m) bytes += Number(m[1]);
  }
  return bytes;
}

function main() {
  sh('ip', ['netns', 'add', NS]);
  const names = Object.keys(VARIANTS).filter((n) => !ONLY || ONLY.some((o) => n.includes(o)));
  const results = {};
  for (const n of SIZES) {
    fill(n);
    for (const name of names) {
      const v = VARIANTS[name];
      const cpu = [], wall = [];
      (v.before ?? (() => {}))();
      const bytes = netlinkBytes(v);
      v.undo();
      for (let r = 0; r < RUNS; r++) {
        (v.before ?? (() => {}))();
        const t = timed(v);
        v.undo();
        cpu.push(t.cpu); wall.push(t.wall);
      }
      results[name] = results[name] ?? {};
      results[name][n] = { cpu: median(cpu), wall: median(wall), bytes };
      console.error(`N=${n} ${name}: cpu ${median(cpu).toFixed(0)} ms, wall ${median(wall).toFixed(0)} ms, netlink read ${(bytes / 1024).toFixed(0)} KiB`);
    }
  }
  console.log(`nft ${sh('nft', ['--version']).trim()}, kernel ${os.release()}, ${RUNS} runs per cell, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('');
  console.log(`| transaction | ${SIZES.map((n) => `N=${n} CPU ms (wall ms) [KiB read]`).join(' | ')} |`);
  console.log(`|---|${SIZES.map(() => '---:').join('|')}|`);
  for (const name of names) {
    console.log(`| ${name} | ${SIZES.map((n) => { const c = results[name][n]; return `${c.cpu.toFixed(0)} (${c.wall.toFixed(0)}) [${(c.bytes / 1024).toFixed(0)}]`; }).join(' | ')} |`);
  }
}

main();
