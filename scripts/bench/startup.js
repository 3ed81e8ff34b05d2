#!/usr/bin/env node
// Start-up cost of every dist/bin plugin: CNI_COMMAND=VERSION (and a loopback
// ADD in a throwaway namespace) vs `node -e 0` vs the reference Go binary of
// the same name in /usr/lib/cni. The machine is shared and loaded, so the
// main measure is CPU time (task-clock from `perf stat`, i.e. user+sys of the
// process tree), runs are interleaved (every command once per round) and the
// median is reported; wall time is shown for reference.
// --instructions adds one valgrind/callgrind instruction count per command of
// ours and node: slow (seconds per run) but nearly independent of load
// (callgrind does not count the Go reference binaries usefully).
//
//   node scripts/bench/startup.js [--runs 21] [--bin-dir dist/bin] [--instructions] [--json out.json]
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const RUNS = Number(opt('runs', '21'));
const BIN_DIR = path.resolve(opt('bin-dir', path.join(root, 'dist', 'bin')));
const REF_DIR = '/usr/lib/cni';
const INSTRUCTIONS = argv.includes('--instructions');
const JSON_OUT = opt('json', '');
const NOT_PLUGINS = new Set(['cnictl']);

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

function havePerf() {
  const r = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', 'true'], { encoding: 'utf8' });
  return r.status === 0 && /task-clock/.test(r.stderr);
}
const PERF = havePerf();

/** One run: wall ms and CPU ms (task-clock of the whole process tree). */
function runOnce(cmd, env, input = '') {
  const full = { ...process.env, ...env };
  const t0 = process.hrtime.bigint();
  let r;
  if (PERF) r = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', ...cmd], { env: full, input, encoding: 'utf8' });
  else r = spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', ...cmd], { env: full, input, encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} (${env.CNI_COMMAND || ''}) failed: ${r.stdout} ${r.stderr}`);
  let cpu;
  if (PERF) cpu = Number(/^([\d.]+),msec,task-clock/m.exec(r.stderr)[1]);
  else { const m = /CPU ([\d.]+) ([\d.]+)/.exec(r.stderr); cpu = (Number(m[1]) + Number(m[2])) * 1000; }
  return { wall, cpu, stdout: r.stdout };
}

/** Instructions of one run under callgrind (scripts are run as `node file`: valgrind does not follow env's exec). */
function instructions(cmd, env, input = '') {
  const argv0 = fs.readFileSync(cmd[0], { encoding: 'latin1' }).startsWith('#!') ? [process.execPath, ...cmd] : cmd;
  const r = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', ...argv0], { env: { ...process.env, ...env }, input, encoding: 'utf8' });
  const m = /Collected : (\d+)/.exec(r.stderr);
  return m ? Number(m[1]) : NaN;
}

/** Interleaved rounds over all cases; one unmeasured warm-up each (it writes the code cache). */
function measure(cases) {
  const res = cases.map(() => ({ wall: [], cpu: [] }));
  for (const c of cases) { c.before?.(); runOnce(c.cmd, c.env, c.input); c.after?.(); }
  for (let r = 0; r < RUNS; r++) {
    cases.forEach((c, i) => {
      c.before?.();
      const m = runOnce(c.cmd, c.env, c.input);
      c.after?.();
      res[i].wall.push(m.wall);
      res[i].cpu.push(m.cpu);
    });
  }
  return cases.map((c, i) => {
    let ir = NaN;
    if (INSTRUCTIONS && !c.label.startsWith('ref')) { c.before?.(); ir = instructions(c.cmd, c.env, c.input); c.after?.(); }
    return { label: c.label, wall: median(res[i].wall), cpu: median(res[i].cpu), instructions: ir };
  });
}

function loopbackCases(nodeCase) {
  const ns = `sb${process.pid.toString(36)}lo`;
  spawnSync('ip', ['netns', 'add', ns]);
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'startup', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'lo', CNI_PATH: REF_DIR };
  const input = JSON.stringify({ cniVersion: '1.0.0', name: 'startup', type: 'loopback' });
  // DEL brings lo down again so every ADD does the same work.
  const del = (bin) => () => spawnSync(bin, [], { env: { ...process.env, ...env, CNI_COMMAND: 'DEL' }, input });
  const cases = [nodeCase];
  const ours = path.join(BIN_DIR, 'loopback');
  if (fs.existsSync(ours)) cases.push({ label: 'ours', cmd: [ours], env, input, after: del(ours) });
  if (fs.existsSync(path.join(REF_DIR, 'loopback'))) cases.push({ label: 'ref', cmd: [path.join(REF_DIR, 'loopback')], env, input, after: del(path.join(REF_DIR, 'loopback')) });
  return { cases, cleanup: () => spawnSync('ip', ['netns', 'del', ns]) };
}

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const mi = (x) => (Number.isFinite(x) ? (x / 1e6).toFixed(0) : '—');

function main() {
  const plugins = fs.readdirSync(BIN_DIR).filter((f) => !NOT_PLUGINS.has(f) && !f.endsWith('.tmp')).sort();
  const nodeCase = { label: 'node', cmd: [process.execPath, '-e', '0'], env: {} };
  const cases = [nodeCase];
  for (const p of plugins) {
    cases.push({ label: `ours:${p}`, cmd: [path.join(BIN_DIR, p)], env: { CNI_COMMAND: 'VERSION' } });
    if (fs.existsSync(path.join(REF_DIR, p))) cases.push({ label: `ref:${p}`, cmd: [path.join(REF_DIR, p)], env: { CNI_COMMAND: 'VERSION' } });
  }
  console.error(`VERSION: ${cases.length} commands x ${RUNS} interleaved runs (${PERF ? 'perf task-clock' : '/usr/bin/time'})...`);
  const v = measure(cases);
  const by = new Map(v.map((r) => [r.label, r]));
  const node = by.get('node');
  const rows = plugins.map((p) => ({ plugin: p, verb: 'VERSION', ours: by.get(`ours:${p}`), ref: by.get(`ref:${p}`) || null }));

  console.error(`loopback ADD: ${RUNS} interleaved runs...`);
  const lo = loopbackCases({ ...nodeCase, label: 'node' });
  let loNode = node;
  try {
    const l = measure(lo.cases);
    const lb = new Map(l.map((r) => [r.label, r]));
    loNode = lb.get('node');
    if (lb.get('ours')) rows.push({ plugin: 'loopback', verb: 'ADD', ours: lb.get('ours'), ref: lb.get('ref') || null, node: loNode });
  } finally {
    lo.cleanup();
  }

  const lines = [];
  lines.push(`node -e 0: CPU ${f1(node.cpu)} ms, wall ${f1(node.wall)} ms${INSTRUCTIONS ? `, ${mi(node.instructions)} M instructions` : ''}`);
  lines.push('');
  lines.push('| plugin | verb | ours CPU ms | ours − node CPU ms | reference CPU ms | (ours − node) / reference | ours wall ms | node wall ms | reference wall ms |' + (INSTRUCTIONS ? ' ours − node M instr |' : ''));
  lines.push('|---|---|---|---|---|---|---|---|---|' + (INSTRUCTIONS ? '---|' : ''));
  for (const r of rows) {
    const n = r.node || node;
    const over = r.ours.cpu - n.cpu;
    lines.push(`| ${r.plugin} | ${r.verb} | ${f1(r.ours.cpu)} | ${f1(over)} | ${f1(r.ref?.cpu)} | ${r.ref ? f2(over / r.ref.cpu) : '—'} | ${f1(r.ours.wall)} | ${f1(n.wall)} | ${f1(r.ref?.wall)} |`
      + (INSTRUCTIONS ? ` ${mi(r.ours.instructions - n.instructions)} |` : ''));
  }
  console.log(lines.join('\n'));
  const out = { runs: RUNS, binDir: BIN_DIR, cpuSource: PERF ? 'perf task-clock' : '/usr/bin/time', node, loopbackNode: loNode, rows, load: os.loadavg() };
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify(out, null, 2));
}

main();
