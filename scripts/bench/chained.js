#!/usr/bin/env node
// Benchmark: ADD and DEL of the chained plugins firewall, tuning and
// bandwidth, ours (dist/bin) vs the reference (/usr/lib/cni), paired: each
// run does ours and the reference back to back, each in its own throwaway
// "host" namespace built the same way, next to the floor `node -e 0`.
// firewall and bandwidth also run with 1000 containers' state already in
// place (--sizes): for ours the records and set elements (firewall) or the
// IFBs with their qdiscs (bandwidth) that 999 ADDs leave; for the reference
// its per-container iptables rules (CNI-FORWARD) or IFBs. Every measured
// process runs without NODE_EXTRA_CA_CERTS (runtimes do not pass it).
// Wall and CPU (user+sys of the plugin and what it waited for: bash's
// `time`), medians over --runs.
// Usage: node scripts/bench/chained.js [--runs 11] [--sizes 1,1000] [--plugins firewall,tuning,bandwidth]
// (run as root after `npm run build`; ~5 min with the defaults on 2 idle cores)
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const OURS = path.join(ROOT, 'dist', 'bin');
const REF = '/usr/lib/cni';
const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const RUNS = Number(arg('--runs', '11'));
const SIZES = arg('--sizes', '1,1000').split(',').filter(Boolean).map(Number);
const PLUGINS = arg('--plugins', 'firewall,tuning,bandwidth').split(',').filter(Boolean);
const TAG = `cfb${crypto.randomBytes(2).toString('hex')}`;
const NET = 'benchnet';
const CLEAN_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));

const sh = (cmd, args, input) => execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], env: CLEAN_ENV, maxBuffer: 1 << 30 });
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const sha = (alg, s) => crypto.createHash(alg).update(s).digest('hex');

const namespaces = [];
const dirs = [];
function netns(name) { sh('ip', ['netns', 'add', name]); namespaces.push(name); sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']); return name; }
function dropNetns(name) { spawnSync('ip', ['netns', 'del', name]); namespaces.splice(namespaces.indexOf(name), 1); }
function tmpdir(s) { const d = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-${s}-`)); dirs.push(d); return d; }
function cleanup() {
  for (const n of [...namespaces].reverse()) spawnSync('ip', ['netns', 'del', n]);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

/** One process under bash's `time` in `ns`: { wall, cpu } in ms. */
function timed(ns, argv, env, input) {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'bash', '-c', 'TIMEFORMAT="TIME %3R %3U %3S"; time "$@"', 'bash', ...argv], {
    input, encoding: 'utf8', maxBuffer: 1 << 30, env: { ...env, PATH: process.env.PATH },
  });
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(' ')} ${env.CNI_COMMAND ?? ''}: ${r.stdout} ${r.stderr}`);
  return { wall: Number(m[1]) * 1000, cpu: (Number(m[2]) + Number(m[3])) * 1000, stdout: r.stdout };
}

/** A host namespace with a container: eth0 (10.88.0.2/16) in C, its peer hv0 in H (on br0 for firewall). */
function topology(kind, plugin) {
  const h = netns(`${TAG}-${kind[0]}${plugin[0]}h`);
  const c = netns(`${TAG}-${kind[0]}${plugin[0]}c`);
  sh('ip', ['-n', h, 'link', 'add', 'hv0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c]);
  sh('ip', ['-n', c, 'addr', 'add', '10.88.0.2/16', 'dev', 'eth0']);
  sh('ip', ['-n', c, 'link', 'set', 'eth0', 'up']);
  if (plugin === 'firewall') {
    sh('ip', ['-n', h, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', h, 'addr', 'add', '10.88.0.1/16', 'dev', 'br0']);
    sh('ip', ['-n', h, 'link', 'set', 'br0', 'up']);
    sh('ip', ['-n', h, 'link', 'set', 'hv0', 'master', 'br0']);
    sh('ip', ['netns', 'exec', h, 'iptables', '-P', 'FORWARD', 'DROP']);
  }
  sh('ip', ['-n', h, 'link', 'set', 'hv0', 'up']);
  return { h, c, state: tmpdir('state') };
}

const prevResult = (topo) => ({
  cniVersion: '1.0.0',
  interfaces: [{ name: 'br0' }, { name: 'hv0' }, { name: 'eth0', sandbox: `/run/netns/${topo.c}` }],
  ips: [{ address: '10.88.0.2/16', gateway: '10.88.0.1', interface: 2 }],
});

function confOf(plugin, kind, topo) {
  const base = { cniVersion: '1.0.0', name: NET, type: plugin, prevResult: prevResult(topo) };
  if (plugin === 'firewall') return { ...base, ...(kind === 'ours' ? { stateDir: topo.state } : { backend: 'iptables' }) };
  if (plugin === 'tuning') return { ...base, dataDir: topo.state, mtu: 1400, sysctl: { 'net.ipv4.conf.IFNAME.arp_ignore': '1' } };
  return { ...base, ingressRate: 100_000_000, ingressBurst: 1_000_000, egressRate: 100_000_000, egressBurst: 1_000_000 };
}

function runVerb(plugin, kind, topo, verb, id) {
  const env = { ...CLEAN_ENV, CNI_COMMAND: verb, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${topo.c}`, CNI_IFNAME: 'eth0', CNI_PATH: kind === 'ours' ? OURS : REF };
  return timed(topo.h, [path.join(kind === 'ours' ? OURS : REF, plugin)], env, JSON.stringify(confOf(plugin, kind, topo)));
}

const fakeIP = (i) => `10.88.${1 + (i >> 8)}.${i & 255}`;

/** The state `n` other containers' ADDs leave, in bulk. */
function prefill(plugin, kind, topo, n) {
  if (n === 0) return;
  if (plugin === 'firewall') {
    if (kind === 'ours') {
      runVerb(plugin, kind, topo, 'ADD', 'fill-0'); // the table, the chains, the iptables jump
      const dir = path.join(topo.state, `netns-${fs.statSync(`/run/netns/${topo.h}`).ino}`);
      const lines = [];
      for (let i = 1; i < n; i++) {
        const cid = `fill-${i}`;
        const comment = `${sha('sha256', `net\0${NET}`).slice(0, 12)} ${sha('sha256', `att\0${cid}\0eth0`).slice(0, 16)} ${cid}/eth0`;
        lines.push(`add element inet node_cni_firewall allowed4 { ${fakeIP(i)} comment "${comment}" }`);
        fs.writeFileSync(path.join(dir, `${sha('sha256', NET).slice(0, 12)}.${cid}.eth0.json`),
          JSON.stringify({ network: NET, containerID: cid, ifname: 'eth0', addresses: [fakeIP(i)], policy: 'open' }));
      }
      sh('ip', ['netns', 'exec', topo.h, 'nft', '-f', '-'], lines.join('\n') + '\n');
    } else {
      runVerb(plugin, kind, topo, 'ADD', 'fill-0'); // CNI-FORWARD, CNI-ADMIN, the FORWARD jump
      const rules = ['*filter'];
      for (let i = 1; i < n; i++) {
        rules.push(`-A CNI-FORWARD -d ${fakeIP(i)}/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`, `-A CNI-FORWARD -s ${fakeIP(i)}/32 -j ACCEPT`);
      }
      rules.push('COMMIT', '');
      sh('ip', ['netns', 'exec', topo.h, 'iptables-restore', '--noflush'], rules.join('\n'));
    }
  } else if (plugin === 'bandwidth') {
    // n veth pairs, each with its ingress tbf, ingress qdisc and redirect filter, and an IFB with its tbf.
    const links = [];
    const tc = [];
    for (let i = 1; i < n; i++) {
      links.push(`link add pv${i} type veth peer name pc${i}`, `link add pb${i} type ifb`, `link set pv${i} up`, `link set pb${i} up`);
      tc.push(`qdisc add dev pv${i} root handle 1: tbf rate 100mbit burst 125000 latency 25ms`, `qdisc add dev pv${i} handle ffff: ingress`,
        `filter add dev pv${i} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev pb${i}`,
        `qdisc add dev pb${i} root handle 1: tbf rate 100mbit burst 125000 latency 25ms`);
    }
    sh('ip', ['-n', topo.h, '-batch', '-'], links.join('\n') + '\n');
    sh('tc', ['-n', topo.h, '-batch', '-'], tc.join('\n') + '\n');
  }
}

function measure(plugin, n) {
  const topos = { ours: topology('ours', plugin), ref: topology('ref', plugin) };
  try {
    for (const k of ['ours', 'ref']) prefill(plugin, k, topos[k], n - 1);
    const out = { ours: { add: [], del: [] }, ref: { add: [], del: [] } };
    for (let r = 0; r < RUNS; r++) {
      for (const k of r % 2 ? ['ref', 'ours'] : ['ours', 'ref']) out[k].add.push(runVerb(plugin, k, topos[k], 'ADD', 'bench'));
      for (const k of r % 2 ? ['ours', 'ref'] : ['ref', 'ours']) out[k].del.push(runVerb(plugin, k, topos[k], 'DEL', 'bench'));
      // In a chain the interface plugin's DEL removes the veth next (and the reference's tbf on it): a fresh start, unmeasured.
      if (plugin === 'bandwidth') for (const k of ['ours', 'ref']) for (const q of ['root', 'ingress']) spawnSync('tc', ['-n', topos[k].h, 'qdisc', 'del', 'dev', 'hv0', q]);
    }
    const med = (xs, f) => Math.round(median(xs.map((x) => x[f])));
    const row = (k) => ({ addWall: med(out[k].add, 'wall'), addCpu: med(out[k].add, 'cpu'), delWall: med(out[k].del, 'wall'), delCpu: med(out[k].del, 'cpu') });
    return { ours: row('ours'), ref: row('ref') };
  } finally {
    for (const t of Object.values(topos)) { dropNetns(t.c); dropNetns(t.h); }
  }
}

/** `node -e 0` (any Node program's floor) and our executable answering VERSION (its start-up, no work). */
function floors() {
  const ns = netns(`${TAG}-floor`);
  const node = [];
  const ours = [];
  for (let r = 0; r < RUNS; r++) {
    node.push(timed(ns, [process.execPath, '-e', '0'], CLEAN_ENV));
    ours.push(timed(ns, [path.join(OURS, 'firewall')], { ...CLEAN_ENV, CNI_COMMAND: 'VERSION' }, ''));
  }
  dropNetns(ns);
  const m = (xs) => `wall ${Math.round(median(xs.map((x) => x.wall)))}, cpu ${Math.round(median(xs.map((x) => x.cpu)))}`;
  return { node: m(node), ours: m(ours) };
}

const f = floors();
console.log(`load: ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}; ${os.cpus().length} CPUs; runs ${RUNS}; medians, ms`);
console.log(`floors: node -e 0: ${f.node}; ours, VERSION (start-up only): ${f.ours}`);
console.log('| plugin | containers | ADD ours wall/cpu | ADD ref wall/cpu | ADD cpu ours/ref | DEL ours wall/cpu | DEL ref wall/cpu | DEL cpu ours/ref |');
console.log('|---|---|---|---|---|---|---|---|');
for (const p of PLUGINS) {
  for (const n of p === 'tuning' ? [1] : SIZES) {
    const m = measure(p, n);
    const ratio = (a, b) => (a / b).toFixed(2);
    console.log(`| ${p} | ${n} | ${m.ours.addWall}/${m.ours.addCpu} | ${m.ref.addWall}/${m.ref.addCpu} | ${ratio(m.ours.addCpu, m.ref.addCpu)} | ${m.ours.delWall}/${m.ours.delCpu} | ${m.ref.delWall}/${m.ref.delCpu} | ${ratio(m.ours.delCpu, m.ref.delCpu)} |`);
  }
}
console.log(`load after: ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
