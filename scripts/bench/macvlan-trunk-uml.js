#!/usr/bin/env node
// macvlan trunk mode ADD/DEL wall time inside user-mode-linux (this machine's
// kernel has no 802.1q), ours vs the reference, interleaved round by round:
//   ours, new VLAN     "master": "eth0", "vlan": 10 with no eth0.10: ADD creates it, DEL removes it
//   ours, VLAN in use  the same while another container keeps eth0.10
//   reference 1.1.1    /usr/lib/cni/macvlan with "master": "eth0.20", made beforehand (it cannot make it)
//   floors             our VERSION (start-up alone), `node -e 0`, `ip netns exec <host> true`, in the same guest
// Both with host-local IPAM (ours in-process, the reference's exec'd).
// The guest has one CPU and every syscall costs more there than on the host:
// compare the ratios, not the milliseconds, with the host's numbers.
//
// Usage: node scripts/bench/macvlan-trunk-uml.js [rounds=15]   (root; dist/bin built; about 2-4 minutes)
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const OURS = path.join(ROOT, 'dist', 'bin', 'macvlan');
const REFERENCE = '/usr/lib/cni/macvlan';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** In the guest: time each step, write bench.json. */
function inGuest() {
  const out = process.env.L2_OUT;
  const { rounds } = JSON.parse(fs.readFileSync(path.join(out, 'args.json'), 'utf8'));
  const host = 'bh';
  const ip = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'pipe', 'pipe'] });
  const env = (cmd, id, ns) => ({ PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: ns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' });
  // CPU of waited-for children (user+sys, clock ticks of 10 ms): steadier than wall time on a loaded host.
  const childCpuMs = () => {
    const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(f[13]) + Number(f[14])) * 10; // cutime, cstime (fields 16, 17)
  };
  const time = (argv, o = {}) => {
    const c0 = childCpuMs();
    const t0 = process.hrtime.bigint();
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', ...o });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stdout} ${r.stderr}`);
    cpu.push(childCpuMs() - c0);
    return ms;
  };
  const cpu = [];
  /** Wall and CPU of one step. */
  const both = (fn) => { const wall = fn(); return [wall, cpu[cpu.length - 1]]; };
  const cni = (bin, cmd, conf, id, ns) => time(['ip', 'netns', 'exec', host, bin], { input: JSON.stringify(conf), env: env(cmd, id, `/run/netns/${ns}`) });
  const ipam = (dir) => ({ type: 'host-local', subnet: '10.99.0.0/16', dataDir: `/tmp/bench/${dir}` });
  const ours = { cniVersion: '1.0.0', name: 'bench', type: 'macvlan', master: 'eth0', vlan: 10, dataDir: '/tmp/bench/data', ipam: ipam('ours') };
  const reference = { cniVersion: '1.0.0', name: 'benchref', type: 'macvlan', master: 'eth0.20', ipam: ipam('ref') };

  ip('netns', 'add', host);
  for (const ns of ['c', 'keeper']) ip('netns', 'add', ns);
  ip('-n', host, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'wire0');
  ip('-n', host, 'link', 'set', 'eth0', 'up');
  ip('-n', host, 'link', 'set', 'wire0', 'up');
  ip('-n', host, 'link', 'add', 'link', 'eth0', 'name', 'eth0.20', 'type', 'vlan', 'id', '20');
  ip('-n', host, 'link', 'set', 'eth0.20', 'up');
  // Warm-up: the first run of each unpacks native code and writes caches.
  cni(OURS, 'ADD', ours, 'w', 'c'); cni(OURS, 'DEL', ours, 'w', 'c');
  cni(REFERENCE, 'ADD', reference, 'w', 'c'); cni(REFERENCE, 'DEL', reference, 'w', 'c');

  const steps = ['ours, new VLAN', 'ours, VLAN in use', 'reference 1.1.1', 'ours VERSION', 'node -e 0', 'ip netns exec true'];
  const rows = Object.fromEntries(steps.map((k) => [k, { add: [], del: [], addCpu: [], delCpu: [] }]));
  const record = (row, verb, [wall, c]) => { rows[row][verb].push(wall); rows[row][`${verb}Cpu`].push(c); };
  for (let i = 0; i < rounds; i++) {
    record('ours, new VLAN', 'add', both(() => cni(OURS, 'ADD', ours, `n${i}`, 'c')));
    ip('-n', host, 'link', 'show', 'eth0.10'); // throws if ADD did not make it
    record('ours, new VLAN', 'del', both(() => cni(OURS, 'DEL', ours, `n${i}`, 'c')));
    cni(OURS, 'ADD', ours, `k${i}`, 'keeper'); // keeps eth0.10
    record('ours, VLAN in use', 'add', both(() => cni(OURS, 'ADD', ours, `u${i}`, 'c')));
    record('ours, VLAN in use', 'del', both(() => cni(OURS, 'DEL', ours, `u${i}`, 'c')));
    cni(OURS, 'DEL', ours, `k${i}`, 'keeper');
    record('reference 1.1.1', 'add', both(() => cni(REFERENCE, 'ADD', reference, `r${i}`, 'c')));
    record('reference 1.1.1', 'del', both(() => cni(REFERENCE, 'DEL', reference, `r${i}`, 'c')));
    record('ours VERSION', 'add', both(() => time([OURS], { input: '{}', env: { PATH: process.env.PATH, CNI_COMMAND: 'VERSION' } })));
    record('node -e 0', 'add', both(() => time([process.execPath, '-e', '0'])));
    record('ip netns exec true', 'add', both(() => time(['ip', 'netns', 'exec', host, 'true'])));
  }
  const left = ip('-n', host, '-o', 'link').toString();
  if (/eth0\.10/.test(left)) throw new Error(`eth0.10 left behind: ${left}`);
  const result = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([m, xs]) => [m, xs.length ? median(xs) : undefined]))]));
  fs.writeFileSync(path.join(out, 'bench.json'), JSON.stringify({ rounds, medians: result, kernel: fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim() }));
}

async function onHost() {
  const rounds = Number(process.argv[2] || 15);
  const { findUml, runInGuest } = require('../../test/l2/uml-guest.js');
  const kernel = findUml();
  if (!kernel) throw new Error('no user-mode-linux kernel (apt-get install user-mode-linux; scripts/setup.sh does)');
  if (!fs.existsSync(OURS)) throw new Error(`${OURS} is missing: npm run build`);
  const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();
  const before = uptime();
  const run = await runInGuest({ kernel, root: ROOT, main: __filename, args: { rounds }, timeoutMs: 20 * 60_000, keep: ['bench.json'] });
  if (!run.files['bench.json']) throw new Error(`the guest did not finish:\n${run.logTail}\n${run.consoleTail}`);
  const { medians, kernel: release } = JSON.parse(run.files['bench.json']);
  const ref = medians['reference 1.1.1'];
  const ms = (x) => (x === undefined ? '' : x.toFixed(0));
  console.log(`macvlan trunk mode in user-mode-linux ${release} (one CPU), medians of ${rounds} interleaved rounds, ms (wall / CPU of the process tree)`);
  console.log('| | ADD wall | DEL wall | ADD CPU | DEL CPU | ADD+DEL wall vs reference | ADD+DEL CPU vs reference |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [label, m] of Object.entries(medians)) {
    const pair = m.del !== undefined;
    const ratio = (a, d, ra, rd) => (pair ? `${((a + d) / (ra + rd)).toFixed(2)}x` : '');
    console.log(`| ${label} | ${ms(m.add)} | ${ms(m.del)} | ${ms(m.addCpu)} | ${ms(m.delCpu)} | ${ratio(m.add, m.del, ref.add, ref.del)} | ${ratio(m.addCpu, m.delCpu, ref.addCpu, ref.delCpu)} |`);
  }
  console.log(`guest wall time ${(run.wallMs / 1000).toFixed(0)} s, boot included`);
  console.log(`load before: ${before}`);
  console.log(`load after:  ${uptime()}`);
}

if (process.env.NODE_CNI_L2_INSIDE === '1') inGuest();
else onHost().catch((err) => { console.error(err.message); process.exit(1); });
