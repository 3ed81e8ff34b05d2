#!/usr/bin/env node
// A container on several networks (Docker's `network connect`), ours vs the
// reference v1.1.1 side by side in one run, with `node -e 0` as the floor.
//
//   node scripts/bench/multinet.js [--reps 7] [--networks 3] [--failover-reps 5] [--every 10] [--json out.json]
//
// Attach cost: each network is a conflist bridge (isDefaultGateway, ipMasq,
// host-local) + portmap with the same `-p 18080:80` on every network, the way
// podman passes a container's mappings to each network it joins. Per rep a
// fresh container is attached to network 1, 2, ..., N (eth0, eth1, ...) and
// then detached in the same order: every DEL is of the network that answers
// the published port (ours hands it to the next; the last DEL is the
// container's last). An anchor container stays on every network, so the
// networks' structure exists and the timed attachments are the steady state.
// Ours and the reference alternate rep by rep, so load hits both alike.
//
// Failover: a container on networks 1 and 2 (both with a default route), a
// server outside the host, and a client in the container that opens a new
// connection every `--every` ms (scripts/tcp-failover.js probes). We DEL the
// network the container's traffic takes (`ip route get`) and measure from the
// DEL's start to the first connection that succeeds through the other one.
// Bounded: ~1-2 min with the defaults on a loaded 2-core machine.
'use strict';
// This machine exports NODE_EXTRA_CA_CERTS; runtimes do not pass it to plugins: no measured process gets it.
delete process.env.NODE_EXTRA_CA_CERTS;
const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const argv = process.argv.slice(2);
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const REPS = Number(opt('reps', '7'));
const NETWORKS = Number(opt('networks', '3'));
const FAILOVER_REPS = Number(opt('failover-reps', '5'));
const EVERY_MS = Number(opt('every', '10'));
const JSON_OUT = opt('json', '');
// The floor: `node -e 0` of the Node inside the release.
const NODE = path.join(root, 'node_modules', `node-linux-${process.arch}`, 'bin', 'node');
const FAILOVER = path.join(root, 'scripts', 'tcp-failover.js');
const SERVER = '10.160.0.2';
const PORT = 9000;
const tag = `mnb${crypto.randomBytes(2).toString('hex')}`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
const namespaces = [];
const children = [];

function sh(cmd, args, input) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}
function netns(name) { sh('ip', ['netns', 'add', name]); namespaces.push(name); sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']); return name; }
function dropNetns(name) { spawnSync('ip', ['netns', 'del', name]); namespaces.splice(namespaces.indexOf(name), 1); }
function cleanup() {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const n of namespaces.splice(0).reverse()) spawnSync('ip', ['netns', 'del', n]);
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });

const median = (xs) => { const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const msSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

const PERF = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', 'true'], { encoding: 'utf8' }).stderr?.includes('task-clock');
/** Runs argv in the namespace `host`; wall ms and, under perf, the CPU ms of the whole tree (ip, plugin, nft/iptables, exec'd IPAM). */
function timed(host, args, env, input) {
  const cmd = ['ip', 'netns', 'exec', host, ...args];
  const t0 = process.hrtime.bigint();
  const r = PERF
    ? spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', '--', ...cmd], { env, input, encoding: 'utf8' })
    : spawnSync(cmd[0], cmd.slice(1), { env, input, encoding: 'utf8' });
  const wall = msSince(t0);
  if (r.status !== 0) throw new Error(`${args.join(' ')} ${env.CNI_COMMAND ?? ''} ${env.CNI_CONTAINERID ?? ''}/${env.CNI_IFNAME ?? ''}: ${r.stdout} ${r.stderr}`);
  const m = PERF ? /^([\d.]+),msec,task-clock/m.exec(r.stderr) : null;
  return { wall, cpu: m ? Number(m[1]) : NaN, stdout: r.stdout };
}

/** One implementation: its own host namespace with N bridge networks and an outside namespace with a server. */
function impl(name, binDir, octet) {
  const host = netns(`${tag}-${name}`);
  const outside = netns(`${tag}-${name}-o`);
  sh('ip', ['-n', host, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'dn0', 'netns', outside]);
  sh('ip', ['-n', host, 'addr', 'add', '10.160.0.1/30', 'dev', 'up0']);
  sh('ip', ['-n', host, 'link', 'set', 'up0', 'up']);
  sh('ip', ['-n', outside, 'addr', 'add', `${SERVER}/30`, 'dev', 'dn0']);
  sh('ip', ['-n', outside, 'link', 'set', 'dn0', 'up']);
  const networks = [];
  for (let k = 1; k <= NETWORKS; k++) {
    const subnet = `10.${octet + k}.0.0/24`;
    networks.push({
      cniVersion: '1.0.0', name: `${tag}n${k}`, subnet,
      plugins: [
        {
          type: 'bridge', bridge: `mnb${k}`, isGateway: true, isDefaultGateway: true, ipMasq: true,
          stateDir: path.join(tmp, `${name}-bridge`),
          ipam: { type: 'host-local', subnet, dataDir: path.join(tmp, `${name}-ipam`) },
        },
        { type: 'portmap', capabilities: { portMappings: true }, dataDir: path.join(tmp, `${name}-portmap`) },
      ],
    });
  }
  return { name, binDir, host, outside, networks };
}

/** ADD or DEL of conflist `list` for container `id` (ifname): each plugin timed; returns {bridge, portmap} wall/cpu. */
function runList(im, cmd, list, id, nsPath, ifname, hostPort) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: nsPath, CNI_IFNAME: ifname, CNI_PATH: im.binDir };
  const plugins = cmd === 'ADD' ? list.plugins : [...list.plugins].reverse();
  const out = {};
  let prevResult = cmd === 'DEL' ? list.results?.[id] : undefined;
  for (const p of plugins) {
    const conf = { cniVersion: list.cniVersion, name: list.name, ...p, ...(prevResult ? { prevResult } : {}) };
    if (p.type === 'portmap') conf.runtimeConfig = { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] };
    const r = timed(im.host, [path.join(im.binDir, p.type)], env, JSON.stringify(conf));
    out[p.type] = r;
    if (cmd === 'ADD' && r.stdout) prevResult = JSON.parse(r.stdout);
  }
  if (cmd === 'ADD') (list.results ??= {})[id] = prevResult;
  else delete list.results?.[id];
  return out;
}

/** One rep: a fresh container attached to networks 1..N, then detached in the same order. */
function attachRep(im, rep, rows) {
  const c = netns(`${tag}-${im.name}-c${rep}`);
  const nsPath = `/run/netns/${c}`;
  const id = `${im.name}c${rep}`;
  const adds = im.networks.map((list, k) => runList(im, 'ADD', list, id, nsPath, `eth${k}`, 18080));
  const dels = im.networks.map((list, k) => runList(im, 'DEL', list, id, nsPath, `eth${k}`, 18080));
  dropNetns(c);
  if (!rows) return;
  adds.forEach((a, k) => rows.add[k].push(a));
  dels.forEach((d, k) => rows.del[k].push(d));
}

/** The server outside the host that the failover probes reach. */
function startServer(im) {
  const server = spawn('ip', ['netns', 'exec', im.outside, process.execPath, FAILOVER, 'server', String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(server);
  return new Promise((resolve) => server.stdout.once('data', () => resolve(server)));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Failover once: container on networks 1 and 2; DEL of the one its traffic takes; ms to the first new connection through the other. */
async function failoverRep(im, rep) {
  const c = netns(`${tag}-${im.name}-f${rep}`);
  const nsPath = `/run/netns/${c}`;
  const id = `${im.name}f${rep}`;
  const lists = im.networks.slice(0, 2);
  const results = lists.map((list, k) => { runList(im, 'ADD', list, id, nsPath, `eth${k}`, 18090 + rep); return list.results[id]; });
  const addrOf = (res) => res.ips.find((i) => !i.address.includes(':')).address.split('/')[0];
  const addrs = results.map(addrOf);
  const dev = /dev (\S+)/.exec(sh('ip', ['-n', c, 'route', 'get', SERVER]))[1];
  const leaving = Number(dev.replace('eth', ''));
  const probes = spawn('ip', ['netns', 'exec', c, process.execPath, FAILOVER, 'probes', SERVER, String(PORT), String(EVERY_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(probes);
  const events = [];
  let buf = '';
  probes.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) { events.push(JSON.parse(buf.slice(0, nl))); buf = buf.slice(nl + 1); }
  });
  for (let i = 0; i < 300 && events.filter((e) => e.ok === addrs[leaving]).length < 10; i++) await sleep(10);
  const t0 = Date.now();
  runList(im, 'DEL', lists[leaving], id, nsPath, `eth${leaving}`, 18090 + rep);
  const t1 = Date.now();
  const other = addrs[1 - leaving];
  for (let i = 0; i < 300 && !events.some((e) => e.t >= t0 && e.ok === other); i++) await sleep(10);
  probes.kill('SIGKILL');
  children.splice(children.indexOf(probes), 1);
  runList(im, 'DEL', lists[1 - leaving], id, nsPath, `eth${1 - leaving}`, 18090 + rep);
  dropNetns(c);
  const first = events.find((e) => e.t >= t0 && e.ok === other);
  // The outage a client sees: from the last connection through the leaving network to the first through the other.
  const lastBefore = events.filter((e) => e.ok === addrs[leaving] && (!first || e.t < first.t)).pop();
  // The prober's own longest pause while the DEL ran: a gap no longer than it is the prober waiting for a CPU, not an outage.
  const during = events.filter((e) => e.t >= t0 && e.t <= (first ? first.t : t1));
  const maxPauseMs = during.slice(1).reduce((m, e, i) => Math.max(m, e.t - during[i].t), 0);
  const failed = events.filter((e) => e.t >= t0 - 200 && e.fail && (!first || e.t < first.t)).length;
  return { leaving: leaving + 1, failoverMs: first ? first.t - t0 : NaN, gapMs: first && lastBefore ? first.t - lastBefore.t : NaN, maxPauseMs, afterDelMs: first ? first.t - t1 : NaN, delMs: t1 - t0, failedProbes: failed };
}

function floor(host) {
  const xs = [];
  for (let r = 0; r < REPS; r++) xs.push(timed(host, [NODE, '-e', '0'], { PATH: process.env.PATH }));
  return { wall: median(xs.map((x) => x.wall)), cpu: median(xs.map((x) => x.cpu)) };
}

const fmt = (x) => (Number.isNaN(x) ? '   -  ' : x.toFixed(1).padStart(6));
const agg = (xs, type, key) => median(xs.map((x) => x[type][key]));
const total = (xs, key) => median(xs.map((x) => x.bridge[key] + x.portmap[key]));

async function main() {
  const ours = impl('ours', path.join(root, 'dist', 'bin'), 170);
  const ref = impl('ref', '/usr/lib/cni', 180);
  const impls = [ours, ref];
  for (const im of impls) {
    // The anchor holds each network's structure (bridge, masquerade chain, portmap table) for the whole run.
    const anchor = `/run/netns/${netns(`${tag}-${im.name}-a`)}`;
    im.networks.forEach((list, k) => runList(im, 'ADD', list, `${im.name}anchor`, anchor, `eth${k}`, 18000));
  }
  for (const im of impls) attachRep(im, 'w', null); // warm-up, not counted
  const rows = Object.fromEntries(impls.map((im) => [im.name, { add: im.networks.map(() => []), del: im.networks.map(() => []) }]));
  for (let r = 0; r < REPS; r++) for (const im of impls) attachRep(im, r, rows[im.name]);
  const fl = floor(ours.host);

  console.log(`multinet: ${REPS} reps, ${NETWORKS} networks (bridge + portmap -p 18080:80 each), ms median${PERF ? ', CPU = task-clock of the whole process tree' : ''}`);
  console.log(`floor: node -e 0 wall ${fmt(fl.wall)}  cpu ${fmt(fl.cpu)}`);
  console.log('                 |        ours: bridge portmap  total    cpu |   reference: bridge portmap  total    cpu | total ours/ref  vs network 1 (ours, ref)');
  const report = { reps: REPS, networks: NETWORKS, floor: fl, attach: [], failover: {} };
  for (const cmd of ['add', 'del']) {
    for (let k = 0; k < NETWORKS; k++) {
      const o = rows.ours[cmd][k];
      const f = rows.ref[cmd][k];
      const line = {
        cmd, network: k + 1,
        ours: { bridge: agg(o, 'bridge', 'wall'), portmap: agg(o, 'portmap', 'wall'), total: total(o, 'wall'), cpu: total(o, 'cpu') },
        ref: { bridge: agg(f, 'bridge', 'wall'), portmap: agg(f, 'portmap', 'wall'), total: total(f, 'wall'), cpu: total(f, 'cpu') },
      };
      const first = report.attach.find((l) => l.cmd === cmd && l.network === 1) ?? line;
      report.attach.push(line);
      console.log(`${cmd.toUpperCase()} network ${k + 1}    |              ${fmt(line.ours.bridge)}  ${fmt(line.ours.portmap)} ${fmt(line.ours.total)} ${fmt(line.ours.cpu)} |                ${fmt(line.ref.bridge)}  ${fmt(line.ref.portmap)} ${fmt(line.ref.total)} ${fmt(line.ref.cpu)} | ${(line.ours.total / line.ref.total).toFixed(2).padStart(6)}          ${(line.ours.total / first.ours.total).toFixed(2)}, ${(line.ref.total / first.ref.total).toFixed(2)}`);
    }
  }

  for (const im of impls) {
    await startServer(im);
    const reps = [];
    for (let r = 0; r < FAILOVER_REPS; r++) reps.push(await failoverRep(im, r));
    report.failover[im.name] = reps;
    const ok = reps.filter((x) => !Number.isNaN(x.failoverMs));
    console.log(`failover ${im.name.padEnd(4)}: DEL of network ${[...new Set(reps.map((x) => x.leaving))].join('/')} (the one traffic took) → first new connection through the other: median ${fmt(median(ok.map((x) => x.failoverMs)))} ms from the DEL's start (DEL itself ${fmt(median(reps.map((x) => x.delMs)))} ms; ${fmt(median(ok.map((x) => x.afterDelMs)))} ms after it returned; last connection through the leaving network to the first through the other ${fmt(median(ok.map((x) => x.gapMs)))} ms, the prober's longest pause during the DEL ${fmt(median(reps.map((x) => x.maxPauseMs)))} ms), ${ok.length}/${reps.length} failed over, failed probes per rep ${reps.map((x) => x.failedProbes).join(',')} (a probe every ${EVERY_MS} ms)`);
  }
  console.log(`load: ${fs.readFileSync('/proc/loadavg', 'utf8').trim()}`);
  if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify(report, null, 2));
  // Leave nothing: the anchors go last, so each network's last DEL takes its structure along.
  for (const im of impls) im.networks.forEach((list, k) => runList(im, 'DEL', list, `${im.name}anchor`, `/run/netns/${tag}-${im.name}-a`, `eth${k}`, 18000));
}

main().then(() => cleanup(), (e) => { cleanup(); console.error(e.stack || e); process.exit(1); });
