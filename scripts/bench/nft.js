#!/usr/bin/env node
// Benchmark: what one nft transaction costs as a function of the elements
// already in the table, and which statements make nft 1.0.6 fetch them.
// Runs in one throwaway network namespace. For each size N it builds a
// portmap-like table (claim map, DNAT map, two sets, chains with rules using
// them) and a masquerade-like table (vmap of jump verdicts), N elements each,
// then times one transaction per variant: CPU (user+sys of the nft process,
// which includes the kernel's commit work done in its syscalls) and wall,
// median of --runs, plus the bytes nft read from netlink (strace), which
// shows whether it listed the sets' contents before the transaction.
// Every timed change is undone (untimed) so N stays constant.
// Usage: node scripts/bench/nft.js [--sizes 0,100,1000,10000] [--runs 15] [--only a,b]
'use strict';
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
const T = 'inet bench_pm';
const M = 'inet bench_masq';
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

const ip = (i) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const port = (i) => 1024 + i;
const NEW = 60000; // the key of the "new container" each variant adds

// ---- the structure (what portmap's/masquerade's skeleton declares) ----
const pmStructure = () => [
  `add table ${T} { comment "bench"; }`,
  `add map ${T} claims4 { type ipv4_addr . inet_proto . inet_service : mark; }`,
  `add map ${T} any4 { type inet_proto . inet_service : ipv4_addr . inet_service; }`,
  `add set ${T} targets4 { type ipv4_addr . inet_proto . inet_service; }`,
  `add set ${T} hairpin4 { type ipv4_addr . ipv4_addr; }`,
  `add chain ${T} pm_dnat`, `flush chain ${T} pm_dnat`,
  `add rule ${T} pm_dnat fib daddr type local dnat ip to meta l4proto . th dport map @any4`,
  `add chain ${T} prerouting { type nat hook prerouting priority dstnat; policy accept; }`, `flush chain ${T} prerouting`,
  `add rule ${T} prerouting jump pm_dnat`,
  `add chain ${T} postrouting { type nat hook postrouting priority srcnat; policy accept; }`, `flush chain ${T} postrouting`,
  `add rule ${T} postrouting ct status dnat ip saddr . ip daddr @hairpin4 masquerade`,
  `add rule ${T} postrouting ip saddr 127.0.0.0/8 ct status dnat ip daddr . meta l4proto . th dport @targets4 masquerade`,
];
const masqStructure = () => [
  `add table ${M}`,
  `add chain ${M} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
  `add map ${M} masq4 { type ipv4_addr : verdict; }`,
  `flush chain ${M} postrouting`,
  `add rule ${M} postrouting ip saddr vmap @masq4`,
  `add chain ${M} net1`, `flush chain ${M} net1`,
  `add rule ${M} net1 ip daddr 10.0.0.0/8 return`, `add rule ${M} net1 masquerade`,
  // the flat alternative: a plain set per network and one rule per network
  `add set ${M} net1_addrs4 { type ipv4_addr; }`,
  `add chain ${M} post2 { type nat hook postrouting priority srcnat; policy accept; }`, `flush chain ${M} post2`,
  `add rule ${M} post2 ip saddr @net1_addrs4 ip daddr != 10.0.0.0/8 masquerade`,
];

// ---- one container's elements ----
const k = NEW;
const pmCreate = () => [
  `create element ${T} claims4 { 0.0.0.0 . tcp . ${port(k)} comment "net/c${k}/eth0" : 0x80000001 }`,
  `create element ${T} any4 { tcp . ${port(k)} comment "net/c${k}/eth0" : ${ip(k)} . 80 }`,
  `add element ${T} targets4 { ${ip(k)} . tcp . 80 }`,
  `add element ${T} hairpin4 { ${ip(k)} . ${ip(k)} }`,
];
const pmAdd = () => pmCreate().map((l) => l.replace(/^create/, 'add'));
const pmDelete = () => [
  `delete element ${T} claims4 { 0.0.0.0 . tcp . ${port(k)} }`,
  `delete element ${T} any4 { tcp . ${port(k)} }`,
  `delete element ${T} targets4 { ${ip(k)} . tcp . 80 }`,
  `delete element ${T} hairpin4 { ${ip(k)} . ${ip(k)} }`,
];
const undoPm = () => nftIn(['-f', '-'], pmDelete().join('\n') + '\n');
const redoPm = () => nftIn(['-f', '-'], pmCreate().join('\n') + '\n');

const jsonAdd = () => JSON.stringify({ nftables: [
  { add: { element: { family: 'inet', table: 'bench_pm', name: 'claims4', elem: [[{ concat: ['0.0.0.0', 'tcp', port(k)] }, 0x80000001]] } } },
  { add: { element: { family: 'inet', table: 'bench_pm', name: 'any4', elem: [[{ concat: ['tcp', port(k)] }, { concat: [ip(k), 80] }]] } } },
  { add: { element: { family: 'inet', table: 'bench_pm', name: 'targets4', elem: [{ concat: [ip(k), 'tcp', 80] }] } } },
  { add: { element: { family: 'inet', table: 'bench_pm', name: 'hairpin4', elem: [{ concat: [ip(k), ip(k)] }] } } },
] });

/** Variants: name -> { args, input(), undo() (untimed, restores N), before() (untimed) } */
const lines = (ls) => ls.join('\n') + '\n';
const VARIANTS = {
  'pm: structure + elements (the old ADD)': { args: ['-f', '-'], input: () => lines([...pmStructure(), ...pmCreate()]), undo: undoPm },
  'pm: create element only': { args: ['-f', '-'], input: () => lines(pmCreate()), undo: undoPm },
  'pm: add element only': { args: ['-f', '-'], input: () => lines(pmAdd()), undo: undoPm },
  'pm: delete element only': { args: ['-f', '-'], input: () => lines(pmDelete()), before: redoPm, undo: () => {} },
  'pm: add+delete element (old idempotent DEL)': { args: ['-f', '-'], input: () => lines([...pmAdd(), ...pmDelete()]), before: redoPm, undo: () => {} },
  'pm: add element, -c (check only)': { args: ['-c', '-f', '-'], input: () => lines(pmAdd()), undo: () => {} },
  'pm: add element, JSON (-j -f -)': { args: ['-j', '-f', '-'], input: jsonAdd, undo: undoPm },
  'pm: add element, one map, as args': { args: ['add', 'element', 'inet', 'bench_pm', 'claims4', `{ 0.0.0.0 . tcp . ${port(k)} : 0x80000001 }`], input: () => undefined, undo: () => nftIn(['delete', 'element', 'inet', 'bench_pm', 'claims4', `{ 0.0.0.0 . tcp . ${port(k)} }`]) },
  'pm: add element, one map, -f': { args: ['-f', '-'], input: () => lines([`add element ${T} claims4 { 0.0.0.0 . tcp . ${port(k)} : 0x80000001 }`]), undo: () => nftIn(['delete', 'element', 'inet', 'bench_pm', 'claims4', `{ 0.0.0.0 . tcp . ${port(k)} }`]) },
  'pm: add table + elements': { args: ['-f', '-'], input: () => lines([`add table ${T}`, ...pmAdd()]), undo: undoPm },
  'pm: add table {comment} + elements': { args: ['-f', '-'], input: () => lines([`add table ${T} { comment "bench"; }`, ...pmAdd()]), undo: undoPm },
  'pm: add map decl + elements': { args: ['-f', '-'], input: () => lines([pmStructure()[1], pmStructure()[2], ...pmAdd()]), undo: undoPm },
  'pm: add chain + flush + rules + elements': { args: ['-f', '-'], input: () => lines([...pmStructure().slice(5), ...pmAdd()]), undo: undoPm },
  'pm: list map claims4 (a listing)': { args: ['list', 'map', 'inet', 'bench_pm', 'claims4'], input: () => undefined, undo: () => {} },
  'masq: structure + vmap jump element (the old ADD)': { args: ['-f', '-'], input: () => lines([...masqStructure(), `add element ${M} masq4 { ${ip(k)} : jump net1 }`]), undo: () => nftIn(['delete', 'element', 'inet', 'bench_masq', 'masq4', `{ ${ip(k)} }`]) },
  'masq: vmap jump element only': { args: ['-f', '-'], input: () => lines([`add element ${M} masq4 { ${ip(k)} : jump net1 }`]), undo: () => nftIn(['delete', 'element', 'inet', 'bench_masq', 'masq4', `{ ${ip(k)} }`]) },
  'masq: plain set element only': { args: ['-f', '-'], input: () => lines([`add element ${M} net1_addrs4 { ${ip(k)} }`]), undo: () => nftIn(['delete', 'element', 'inet', 'bench_masq', 'net1_addrs4', `{ ${ip(k)} }`]) },
  'masq: delete vmap element only': { args: ['-f', '-'], input: () => lines([`delete element ${M} masq4 { ${ip(k)} }`]), before: () => nftIn(['-f', '-'], `add element ${M} masq4 { ${ip(k)} : jump net1 }\n`), undo: () => {} },
  'masq: delete plain set element only': { args: ['-f', '-'], input: () => lines([`delete element ${M} net1_addrs4 { ${ip(k)} }`]), before: () => nftIn(['-f', '-'], `add element ${M} net1_addrs4 { ${ip(k)} }\n`), undo: () => {} },
};

function fill(n) {
  spawnSync('ip', ['netns', 'exec', NS, 'nft', 'flush', 'ruleset']);
  nftIn(['-f', '-'], lines([...pmStructure(), ...masqStructure()]));
  const chunk = 2000;
  for (let s = 0; s < n; s += chunk) {
    const ids = Array.from({ length: Math.min(chunk, n - s) }, (_, j) => s + j);
    nftIn(['-f', '-'], lines([
      `add element ${T} claims4 { ${ids.map((i) => `0.0.0.0 . tcp . ${port(i)} comment "net/c${i}/eth0" : 0x8${i.toString(16).padStart(7, '0')}`).join(', ')} }`,
      `add element ${T} any4 { ${ids.map((i) => `tcp . ${port(i)} comment "net/c${i}/eth0" : ${ip(i)} . 80`).join(', ')} }`,
      `add element ${T} targets4 { ${ids.map((i) => `${ip(i)} . tcp . 80`).join(', ')} }`,
      `add element ${T} hairpin4 { ${ids.map((i) => `${ip(i)} . ${ip(i)}`).join(', ')} }`,
      `add element ${M} masq4 { ${ids.map((i) => `${ip(i)} : jump net1`).join(', ')} }`,
      `add element ${M} net1_addrs4 { ${ids.map((i) => `${ip(i)}`).join(', ')} }`,
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
