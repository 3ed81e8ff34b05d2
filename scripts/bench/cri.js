#!/usr/bin/env node
// Benchmark: the kubelet's pod calls through containerd 1.6's CRI plugin, with
// our plugins vs the reference plugins (/usr/lib/cni, Debian 1.1.1), through
// the SAME containerd and the SAME conflist (bridge + host-local + portmap, one
// hostPort per pod). The CNI bin_dir is a symlink swapped between pods
// (libcni looks the plugins up at every call), so the two take turns, paired
// round by round, in alternating order. A hostNetwork pod (no CNI call at all)
// gives the runtime's own cost. Wall time of each gRPC call as the kubelet sees
// it, medians. Also CNI STATUS of our bridge (what containerd >= 2.0.1 polls),
// next to `node -e 0`. containerd runs in a throwaway network namespace without
// NODE_EXTRA_CA_CERTS (every plugin inherits its environment).
// Usage: node scripts/bench/cri.js [--rounds 10]      (bounded: ~4 s per round on an idle 2-core VM)
'use strict';
const { execFileSync, spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const ROOT = path.resolve(__dirname, '..', '..');
const OURS = path.join(ROOT, 'dist', 'bin');
const REF = '/usr/lib/cni';
const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const ROUNDS = Number(arg('--rounds', '10'));
const TAG = `crb${crypto.randomBytes(2).toString('hex')}`;
const HOSTNS = `${TAG}-h`;
const NET = `${TAG}-net`;
const IMAGE = 'localhost/cni-bench-pause:1';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${TAG}-`));
const env = { ...process.env }; delete env.NODE_EXTRA_CA_CERTS;

const sh = (cmd, args, o = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...o });
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let daemon;
const sandboxIds = new Set();

function cleanup() {
  if (daemon && daemon.exitCode === null) { try { process.kill(daemon.pid, 'SIGKILL'); } catch { /* gone */ } }
  // Shims (and the pods' processes, which outlive a killed shim) of this daemon only.
  const sock = path.join(tmp, 'containerd.sock');
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try { if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(sock)) process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
  }
  for (const h of ['', ...fs.readdirSync('/sys/fs/cgroup')]) {
    const top = path.join('/sys/fs/cgroup', h, TAG);
    if (!fs.existsSync(top)) continue;
    const dirs = (d) => [...fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => dirs(path.join(d, e.name))), d];
    for (const d of dirs(top)) {
      try { for (const pid of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
    spawnSync('sleep', ['0.5']);
    for (const d of dirs(top)) { try { fs.rmdirSync(d); } catch { /* busy */ } }
  }
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(tmp));
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  for (const f of fs.existsSync('/var/lib/cni/results') ? fs.readdirSync('/var/lib/cni/results') : []) {
    if (f.startsWith(`${NET}-`) || [...sandboxIds].some((id) => f.includes(id))) fs.rmSync(path.join('/var/lib/cni/results', f), { force: true });
  }
  spawnSync('ip', ['netns', 'del', HOSTNS]);
  for (const d of ['/run/containerd/s', '/run/containerd']) { try { fs.rmdirSync(d); } catch { /* in use or gone */ } }
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

/** Point the CNI bin_dir at one implementation (atomic rename of a symlink). */
function useBins(dir) {
  fs.symlinkSync(dir, path.join(tmp, 'bin.new'));
  fs.renameSync(path.join(tmp, 'bin.new'), path.join(tmp, 'bin'));
}

function startContainerd() {
  for (const d of ['root', 'state', 'runc', 'net.d']) fs.mkdirSync(path.join(tmp, d));
  fs.writeFileSync(path.join(tmp, 'config.toml'), `version = 2
root = "${tmp}/root"
state = "${tmp}/state"
[grpc]
  address = "${tmp}/containerd.sock"
[ttrpc]
  address = "${tmp}/containerd.sock.ttrpc"
[debug]
  address = "${tmp}/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "${tmp}/bin"
  conf_dir = "${tmp}/net.d"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  Root = "${tmp}/runc"
`);
  fs.writeFileSync(path.join(tmp, 'net.d', '10-bench.conflist'), JSON.stringify({
    cniVersion: '1.0.0', name: NET,
    plugins: [
      { type: 'bridge', bridge: `${TAG}b`, isGateway: true, ipMasq: true, hairpinMode: true, stateDir: path.join(tmp, 'cni', 'bridge'),
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.211.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(tmp, 'cni', 'ipam') } },
      { type: 'portmap', capabilities: { portMappings: true }, dataDir: path.join(tmp, 'cni', 'portmap') },
    ],
  }));
  const log = fs.openSync(path.join(tmp, 'containerd.log'), 'a');
  daemon = spawn('nsenter', [`--net=/run/netns/${HOSTNS}`, 'containerd', '--config', path.join(tmp, 'config.toml')], { stdio: ['ignore', log, log], env });
}

function client() {
  const def = protoLoader.loadSync(path.join(ROOT, 'test', 'helpers', 'cri.proto'), { longs: Number, enums: String, defaults: true });
  const v1 = grpc.loadPackageDefinition(def).runtime.v1;
  const rt = new v1.RuntimeService(`unix://${tmp}/containerd.sock`, grpc.credentials.createInsecure());
  return (method, req) => new Promise((resolve, reject) => rt[method](req, { deadline: Date.now() + 60000 }, (e, r) => (e ? reject(new Error(`${method}: ${e.details}`)) : resolve(r))));
}

function podConfig(name, network) {
  return {
    metadata: { name, namespace: 'bench', uid: `${TAG}-${name}`, attempt: 0 }, hostname: network === 'NODE' ? '' : name, // the kubelet sends none for hostNetwork pods
    portMappings: network === 'NODE' ? [] : [{ protocol: 'TCP', containerPort: 80, hostPort: 30080 }],
    linux: { cgroupParent: `/${TAG}/pod-${name}`, securityContext: { namespaceOptions: { network, pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

/** CPU ms (user+sys) of containerd's waited-for children so far: the plugins it execs (and what they wait for, nft) and `shim start`. */
function childCpuMs() {
  const f = fs.readFileSync(`/proc/${daemon.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[13]) + Number(f[14])) * 1000 / 100; // cutime + cstime, USER_HZ = 100
}

/** One pod's Run/Stop/Remove: wall ms of each call and the CPU ms containerd's children spent in it. */
async function timedPod(call, name, network) {
  const t = async (fn) => { const c0 = childCpuMs(); const t0 = process.hrtime.bigint(); await fn(); return [Number(process.hrtime.bigint() - t0) / 1e6, childCpuMs() - c0]; };
  let id;
  const [run, runCpu] = await t(async () => { id = (await call('RunPodSandbox', { config: podConfig(name, network) })).podSandboxId; sandboxIds.add(id); });
  const [stop, stopCpu] = await t(() => call('StopPodSandbox', { podSandboxId: id }));
  const [remove, removeCpu] = await t(() => call('RemovePodSandbox', { podSandboxId: id }));
  return { run, stop, remove, runCpu, stopCpu, removeCpu };
}

/** Wall ms of one process start, median of n (STATUS of our bridge, `node -e 0`). */
function processMs(cmd, args, input, n, extraEnv = {}) {
  const xs = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('ip', ['netns', 'exec', HOSTNS, cmd, ...args], { input, env: { ...env, ...extraEnv }, encoding: 'utf8' });
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  return median(xs);
}

(async () => {
  sh('ip', ['netns', 'add', HOSTNS]);
  sh('ip', ['-n', HOSTNS, 'link', 'set', 'lo', 'up']);
  fs.mkdirSync(path.join(tmp, 'img'));
  sh(path.join(ROOT, 'scripts', 'clients', 'make-busybox-image.sh'), [path.join(tmp, 'img'), IMAGE, '/bin/httpd', '-f', '-p', '80', '-h', '/www']);
  useBins(OURS);
  startContainerd();
  const call = client();
  for (let i = 0; ; i++) {
    try { await call('Version', { version: 'v1' }); break; } catch (e) { if (i > 100) throw e; await sleep(100); }
  }
  sh('ctr', ['--address', path.join(tmp, 'containerd.sock'), '-n', 'k8s.io', 'images', 'import', path.join(tmp, 'img', 'oci.tar')]);
  for (let i = 0; !(await call('Status', {})).status.conditions.find((c) => c.type === 'NetworkReady').status; i++) {
    if (i > 100) throw new Error('NetworkReady never came');
    await sleep(100);
  }

  const impls = { ours: OURS, reference: REF };
  const times = { ours: [], reference: [], hostNetwork: [] };
  // One warm-up pod each (first exec of a binary, first bridge/nft table), not counted.
  for (const [k, dir] of Object.entries(impls)) { useBins(dir); await timedPod(call, `warm-${k}`, 'POD'); }
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['ours', 'reference'] : ['reference', 'ours'];
    for (const k of order) { useBins(impls[k]); times[k].push(await timedPod(call, `${k}-${r}`, 'POD')); }
    times.hostNetwork.push(await timedPod(call, `host-${r}`, 'NODE'));
  }

  const statusConf = JSON.stringify({ cniVersion: '1.1.0', name: NET, type: 'bridge', bridge: `${TAG}b`, isGateway: true, ipMasq: true, stateDir: path.join(tmp, 'cni', 'bridge'),
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.211.0.0/16' }]], dataDir: path.join(tmp, 'cni', 'ipam') } });
  const statusEnv = { CNI_COMMAND: 'STATUS', CNI_PATH: OURS };
  const nodeFloor = processMs(process.execPath, ['-e', '0'], '', 21);
  const bridgeStatus = processMs(path.join(OURS, 'bridge'), [], statusConf, 21, statusEnv);

  const col = (k, f) => median(times[k].map((x) => x[f]));
  const fmt = (k, f) => `${col(k, f).toFixed(0)} / ${col(k, `${f}Cpu`).toFixed(0)}`.padStart(16);
  console.log(`CRI pod calls through containerd ${sh('containerd', ['--version']).split(' ')[2]}, ${ROUNDS} paired rounds, medians, ms:`);
  console.log('wall as the kubelet sees the call / CPU of the processes containerd ran for it (plugins, nft; shim start)');
  console.log(`${''.padEnd(26)}${'RunPodSandbox'.padStart(16)}${'StopPodSandbox'.padStart(16)}${'RemovePodSandbox'.padStart(18)}`);
  for (const k of ['ours', 'reference', 'hostNetwork']) {
    const label = { ours: 'ours (dist/bin)', reference: 'reference (/usr/lib/cni)', hostNetwork: 'hostNetwork (no CNI)' }[k];
    console.log(`${label.padEnd(26)}${fmt(k, 'run')}${fmt(k, 'stop')}${fmt(k, 'remove').padStart(18)}`);
  }
  const cni = (k, f) => col(k, f) - col('hostNetwork', f);
  const pair = (f) => `ours ${cni('ours', f).toFixed(0)} vs reference ${cni('reference', f).toFixed(0)} (×${(cni('ours', f) / cni('reference', f)).toFixed(2)})`;
  console.log(`CNI share (pod − hostNetwork), wall: Run ${pair('run')}, Stop ${pair('stop')}, Remove ${pair('remove')}`);
  console.log(`CNI share, CPU:                   Run ${pair('runCpu')}, Stop ${pair('stopCpu')}, Remove ${pair('removeCpu')}`);
  console.log(`whole call ours/reference, wall: Run ×${(col('ours', 'run') / col('reference', 'run')).toFixed(2)}, Stop ×${(col('ours', 'stop') / col('reference', 'stop')).toFixed(2)}`);
  console.log(`CNI STATUS of our bridge (what containerd >= 2.0.1 polls): ${bridgeStatus.toFixed(1)} ms wall; node -e 0: ${nodeFloor.toFixed(1)} ms (×${(bridgeStatus / nodeFloor).toFixed(2)})`);
  console.log(`load: ${sh('uptime', []).trim()}`);
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
