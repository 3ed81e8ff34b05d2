// Real container runtimes (podman 4.3 with its CNI backend, containerd 1.6's
// `ctr run --cni`) driving our dist/bin plugins. Everything a runtime makes
// lives in a throwaway "host" network namespace and in temp dirs; the few
// host paths the runtimes insist on (/var/lib/cni/results, /run/containerd)
// are tracked and removed in cleanup, also on failure.
import { ChildProcess, spawn, spawnSync, SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, ROOT, Sandbox, sh, shTry } from './sandbox';
import { cniEnv } from './cni';

export const CLIENT_SCRIPTS = path.join(ROOT, 'scripts', 'clients');
/** libcni's result cache: podman and ctr both use the default, on the real host. */
export const LIBCNI_RESULTS = '/var/lib/cni/results';

/** Absolute path of an executable on PATH, or undefined. */
export function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir, bin);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  return undefined;
}

/** The first of `bins` that is not installed, for a skip message. */
export function missingBinary(bins: string[]): string | undefined {
  return bins.find((b) => !which(b));
}


export interface BusyboxImage { rootfs: string; oci: string; name: string }

/** rootfs.tar (for `podman import`) and oci.tar (for `ctr images import`) of a busybox root; `cmd`: the image's command (default /bin/sh). */
export function makeBusyboxImage(dir: string, name = 'localhost/bb:latest', cmd: string[] = []): BusyboxImage {
  sh(path.join(CLIENT_SCRIPTS, 'make-busybox-image.sh'), [dir, name, ...cmd]);
  return { rootfs: path.join(dir, 'rootfs.tar'), oci: path.join(dir, 'oci.tar'), name };
}

/** A random 10.x.y.0/24 (y even) and its neighbour 10.x.y+1.0/24, as prefixes "10.x.y". */
export function randomSubnets(): { net: string; uplink: string } {
  const x = 100 + Math.floor(Math.random() * 150);
  const y = 2 * Math.floor(Math.random() * 127);
  return { net: `10.${x}.${y}`, uplink: `10.${x}.${y + 1}` };
}

/** Poll a synchronous condition (the runtimes settle asynchronously) until it holds or the time is up. */
export function waitFor(cond: () => boolean, timeoutMs = 20000): boolean {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    spawnSync('sleep', ['0.2']);
  }
}

export function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) {
    throw new Error(`${what} failed (status ${r.status}${r.signal ? `, signal ${r.signal}` : ''}${r.error ? `, ${r.error.message}` : ''}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/**
 * DEL an attachment the way libcni does, from its result cache: every plugin
 * of the cached conflist in reverse order, prevResult = the cached result,
 * CNI_NETNS empty, the plugins run in `hostns`; then drop the cache file.
 * For runtimes that never DEL (ctr 1.6 with `run -d`, see docs/clients.md).
 */
export function delFromLibcniCache(o: { hostns: string; network: string; containerId: string; ifname?: string }): void {
  const ifname = o.ifname ?? 'eth0';
  const file = path.join(LIBCNI_RESULTS, `${o.network}-${o.containerId}-${ifname}`);
  const cached = JSON.parse(fs.readFileSync(file, 'utf8'));
  const list = JSON.parse(Buffer.from(cached.config, 'base64').toString('utf8'));
  for (const plugin of [...list.plugins].reverse()) {
    const conf = { ...plugin, name: list.name, cniVersion: list.cniVersion, prevResult: cached.result };
    const env = { ...process.env, ...cniEnv({ command: 'DEL', containerId: o.containerId, ifname }) };
    ok(shTry('ip', ['netns', 'exec', o.hostns, path.join(DIST_BIN, plugin.type)], { env, input: JSON.stringify(conf) }), `DEL ${plugin.type}`);
  }
  fs.rmSync(file);
}

/** The host side of addOutsideClient's veth. */
const UPLINK = 'up0';

/** What a user would look at in the host namespace after a container is gone. */
export interface HostState { veths: string[]; nftMentions: string[] }

/** Container veths (not the uplink of addOutsideClient) and nft lines naming the container, in the host namespace. */
export function hostState(hostns: string, containerId: string): HostState {
  const links = sh('ip', ['-n', hostns, '-o', 'link', 'show', 'type', 'veth']);
  const veths = links.split('\n').filter(Boolean).map((l) => l.split(': ')[1].split('@')[0]).filter((n) => n !== UPLINK);
  const ruleset = sh('ip', ['netns', 'exec', hostns, 'nft', 'list', 'ruleset']);
  const nftMentions = ruleset.split('\n').filter((l) => l.includes(containerId.slice(0, 12)) || l.includes(containerId));
  return { veths, nftMentions };
}

/** host-local reservations (files named by IP) in <dataDir>/<network>. */
export function reservations(dataDir: string, network: string): string[] {
  const dir = path.join(dataDir, network);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f) || (f.includes(':') && /^[0-9a-f:]+$/i.test(f)));
}

export function cachedResults(network: string): string[] {
  if (!fs.existsSync(LIBCNI_RESULTS)) return [];
  return fs.readdirSync(LIBCNI_RESULTS).filter((f) => f.startsWith(`${network}-`));
}

/**
 * Remove what the runtimes and our plugins keep on the real host for `network`
 * when a conflist does not name private dirs (podman-created networks) or a
 * test failed half-way: libcni's result cache and the plugins' default dirs.
 */
export function removeHostState(network: string): void {
  for (const f of cachedResults(network)) fs.rmSync(path.join(LIBCNI_RESULTS, f), { force: true });
  for (const dir of ['/var/lib/cni/networks', '/var/lib/cni/portmap', '/run/cni/bridge']) {
    fs.rmSync(path.join(dir, network), { recursive: true, force: true });
  }
}

/** The firewall plugin's default state of one "host" namespace: /run/cni/firewall/netns-<inode> (plugins/firewall/state.ts). */
export function firewallStateDir(hostns: string): string {
  return path.join('/run/cni/firewall', `netns-${fs.statSync(`/run/netns/${hostns}`).ino}`);
}

/**
 * A conflist of ours: bridge (+ host-local) + portmap, every state dir private (under dataDir).
 * Versions as in conf-examples (conf-examples/README.md): "cniVersion" 1.0.0 for libcni 1.1, "cniVersions" for newer runtimes.
 */
export function bridgeConflist(o: { name: string; bridge: string; prefix: string; dataDir: string; cniVersion?: string }): Record<string, unknown> {
  return {
    cniVersion: o.cniVersion ?? '1.0.0',
    ...(o.cniVersion ? {} : { cniVersions: ['1.0.0', '1.1.0'] }),
    name: o.name,
    plugins: [
      {
        type: 'bridge', bridge: o.bridge, isGateway: true, ipMasq: true, hairpinMode: true,
        stateDir: path.join(o.dataDir, 'bridge'),
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: `${o.prefix}.0/24`, gateway: `${o.prefix}.1` }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: path.join(o.dataDir, 'ipam'),
        },
      },
      { type: 'portmap', capabilities: { portMappings: true }, dataDir: path.join(o.dataDir, 'portmap') },
    ],
  };
}

/** Connect `hostns` to a fresh "outside client" namespace over a veth: host .1, client .2 of `prefix`.0/24. */
export function addOutsideClient(sb: Sandbox, hostns: string, prefix: string): { client: string; hostAddr: string } {
  const client = sb.netns('x');
  sh('ip', ['-n', hostns, 'link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client]);
  sh('ip', ['-n', hostns, 'addr', 'add', `${prefix}.1/24`, 'dev', UPLINK]);
  sh('ip', ['-n', hostns, 'link', 'set', UPLINK, 'up']);
  sh('ip', ['-n', client, 'addr', 'add', `${prefix}.2/24`, 'dev', 'eth0']);
  sh('ip', ['-n', client, 'link', 'set', 'eth0', 'up']);
  return { client, hostAddr: `${prefix}.1` };
}

/** HTTP/1.0 GET with nc from inside a namespace; the whole response, or throws with nc's error. */
export function httpGet(ns: string, host: string, port: number): string {
  return ok(shTry('ip', ['netns', 'exec', ns, 'nc', '-w', '10', host, String(port)],
    { input: 'GET / HTTP/1.0\r\n\r\n', timeout: 15000 }), `GET ${host}:${port} in ${ns}`);
}

// ---------------------------------------------------------------- podman

export const PODMAN_RUN_FLAGS = ['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

/**
 * podman with a private containers.conf (CNI backend, cni_plugin_dirs = dist/bin
 * only, network_config_dir = a temp dir) and a private vfs storage, run with
 * `nsenter --net` in a throwaway host namespace: podman execs the plugins in
 * its own network namespace, so bridges and nft tables land there.
 */
export class Podman {
  readonly dir: string;
  readonly netConfDir: string;
  readonly env: NodeJS.ProcessEnv;

  /** `pluginDir`: the only directory podman looks for plugins in (default dist/bin; /usr/lib/cni runs the reference). */
  constructor(sb: Sandbox, readonly hostns: string, readonly pluginDir = DIST_BIN) {
    this.dir = sb.tmpdir('-podman');
    this.netConfDir = path.join(this.dir, 'net.d');
    fs.mkdirSync(this.netConfDir);
    const conf = path.join(this.dir, 'containers.conf');
    const storage = path.join(this.dir, 'storage.conf');
    fs.writeFileSync(conf, podmanContainersConf(this.dir, this.netConfDir, pluginDir));
    fs.writeFileSync(storage, podmanStorageConf(this.dir));
    this.env = { ...process.env, CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage };
    sb.onCleanup(() => this.removeEverything());
  }

  run(args: string[], timeoutMs = 90000): SpawnSyncReturns<string> {
    return shTry('nsenter', [`--net=/run/netns/${this.hostns}`, 'podman', ...args], { env: this.env, timeout: timeoutMs });
  }

  must(args: string[], timeoutMs?: number): string {
    return ok(this.run(args, timeoutMs), `podman ${args.join(' ')}`).trim();
  }

  writeConflist(conf: Record<string, unknown>): void {
    fs.writeFileSync(path.join(this.netConfDir, `${conf.name}.conflist`), JSON.stringify(conf, null, 2));
  }

  /** Containers first (their DEL runs our plugins in the host namespace), then the sandbox removes the rest. */
  private removeEverything(): void {
    this.run(['rm', '--all', '--force', '--time', '0'], 60000);
  }
}

export function podmanContainersConf(dir: string, netConfDir: string, pluginDir = DIST_BIN): string {
  return `# podman 4.3 on node-cni-plugins only (see docs/clients.md)
[network]
network_backend = "cni"
cni_plugin_dirs = ["${pluginDir}"]
network_config_dir = "${netConfDir}"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${dir}/events.log"
tmp_dir = "${dir}/tmp"
static_dir = "${dir}/storage/libpod"
volume_path = "${dir}/storage/volumes"
lock_type = "file"
`;
}

export function podmanStorageConf(dir: string): string {
  return `[storage]
driver = "vfs"
graphroot = "${dir}/storage"
runroot = "${dir}/run"
`;
}

// ---------------------------------------------------------------- containerd

export interface ContainerdOptions {
  /** CRI: the sandbox ("pause") image, imported into the k8s.io namespace before the first pod. */
  sandboxImage?: string;
  /** CRI: the CNI bin_dir (default DIST_BIN: the plugins as installed). */
  binDir?: string;
}

/**
 * A private containerd 1.6 (own root, state, socket; the CRI plugin's CNI bin_dir
 * and conf_dir point at ours), running in a throwaway host network namespace,
 * and a ctr that runs `--cni` through scripts/clients/ctr-cni.sh in the same
 * namespace, in a containerd namespace of its own. The CRI plugin execs the
 * plugins in the daemon's network namespace, so they wire `hostns`, not the host.
 */
export class Containerd {
  readonly dir: string;
  readonly socket: string;
  readonly confDir: string;
  readonly namespace: string;
  private daemon?: ChildProcess;
  private hostDirsBefore: Set<string>;

  constructor(sb: Sandbox, readonly hostns: string, readonly opts: ContainerdOptions = {}) {
    this.dir = sb.tmpdir('-ctd');
    this.socket = path.join(this.dir, 'run', 'containerd.sock');
    this.confDir = path.join(this.dir, 'net.d');
    this.namespace = sb.tag;
    for (const d of ['root', 'state', 'run', 'net.d', 'fifo', 'runc']) fs.mkdirSync(path.join(this.dir, d));
    fs.writeFileSync(path.join(this.dir, 'config.toml'), containerdConfig(this.dir, this.confDir, opts));
    this.hostDirsBefore = new Set(CONTAINERD_HOST_DIRS.filter((d) => fs.existsSync(d)));
    sb.onCleanup(() => this.stop());
  }

  /** Start the daemon (again, after kill()) in `hostns`, without the test's NODE_EXTRA_CA_CERTS (runtimes do not pass it on). */
  start(): void {
    const log = fs.openSync(path.join(this.dir, 'containerd.log'), 'a');
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    this.daemon = spawn('nsenter', [`--net=/run/netns/${this.hostns}`, 'containerd', '--config', path.join(this.dir, 'config.toml')],
      { stdio: ['ignore', log, log], detached: true, env });
    fs.closeSync(log);
    const up = waitFor(() => this.ctr(['version'], 5000).status === 0, 30000);
    if (!up) throw new Error(`private containerd did not come up:\n${this.log()}`);
  }

  /** SIGKILL the daemon only, as a crash would: shims, tasks and pod namespaces stay. */
  kill(): void {
    const pid = this.daemon?.pid;
    if (!pid || !processAlive(pid)) return;
    process.kill(pid, 'SIGKILL');
    if (!waitFor(() => !processAlive(pid) || isZombie(pid), 10000)) throw new Error(`containerd ${pid} survived SIGKILL`);
  }

  log(): string {
    try { return fs.readFileSync(path.join(this.dir, 'containerd.log'), 'utf8').split('\n').slice(-30).join('\n'); } catch { return ''; }
  }

  /**
   * ctr against our daemon and namespace, always through scripts/clients/ctr-cni.sh:
   * besides `run --cni`, `task kill` and `task rm` run CNI DEL too (ctr 1.6 calls
   * RemoveCniNetworkIfExist there), and without the wrapper they would read the
   * host's /etc/cni/net.d and /opt/cni/bin in the host's network namespace.
   */
  ctr(args: string[], timeoutMs = 90000, namespace = this.namespace): SpawnSyncReturns<string> {
    return shTry(path.join(CLIENT_SCRIPTS, 'ctr-cni.sh'), [this.hostns, this.confDir, DIST_BIN,
      'ctr', '--address', this.socket, '--namespace', namespace, ...args], { timeout: timeoutMs });
  }

  /** libcni's container ID for a ctr container: "<namespace>-<id>". */
  fullId(id: string): string {
    return `${this.namespace}-${id}`;
  }

  writeConflist(file: string, conf: Record<string, unknown>): void {
    fs.writeFileSync(path.join(this.confDir, file), JSON.stringify(conf, null, 2));
  }

  stop(): void {
    // Tasks first: their CNI DEL runs against our plugins in the host namespace.
    const tasks = this.ctr(['task', 'ls', '-q'], 10000).stdout?.split('\n').filter(Boolean) ?? [];
    for (const t of tasks) this.ctr(['task', 'rm', '-f', t], 30000);
    const containers = this.ctr(['container', 'ls', '-q'], 10000).stdout?.split('\n').filter(Boolean) ?? [];
    for (const c of containers) this.ctr(['container', 'rm', c], 30000);
    if (this.daemon?.pid && processAlive(this.daemon.pid)) {
      try { process.kill(this.daemon.pid, 'SIGTERM'); } catch { /* gone */ }
      if (!waitFor(() => !processAlive(this.daemon!.pid!) || isZombie(this.daemon!.pid!), 15000)) {
        try { process.kill(this.daemon.pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    // Shims started for our socket outlive the daemon if a task was left behind; a killed shim leaves its socket.
    const shimSockets = shimSocketsUnder(path.join(this.dir, 'state'));
    for (const pid of pidsWithArgument(this.socket)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    waitFor(() => pidsWithArgument(this.socket).length === 0, 10000);
    for (const sock of shimSockets) fs.rmSync(sock, { force: true });
    for (const m of mountsUnder(this.dir).reverse()) shTry('umount', ['-l', m]);
    // runc puts every container in <cgroup root>/<containerd namespace>/<id> (ctr) or under the pod's cgroup_parent (CRI).
    removeCgroupTrees(this.namespace);
    // containerd 1.6 puts shim sockets (and ctr's runc state) under /run/containerd whatever its config says.
    try { fs.rmdirSync(`/run/containerd/runc/${this.namespace}`); } catch { /* never made or not empty */ }
    for (const d of [...CONTAINERD_HOST_DIRS].reverse()) {
      if (!this.hostDirsBefore.has(d)) { try { fs.rmdirSync(d); } catch { /* not empty or gone */ } }
    }
  }
}

const CONTAINERD_HOST_DIRS = ['/run/containerd', '/run/containerd/fifo', '/run/containerd/s', '/run/containerd/runc'];

/**
 * The config of the private daemon. Besides the private dirs, three settings make
 * the CRI plugin run pods on this machine (docs/clients.md):
 * restrict_oom_score_adj (no CAP_SYS_RESOURCE here: runc cannot set the sandbox's
 * oom_score_adj -998), netns_mounts_under_state_dir (pod namespaces under our
 * state dir instead of /var/run/netns) and a runc runtime with its own Root.
 */
export function containerdConfig(dir: string, confDir: string, opts: ContainerdOptions = {}): string {
  return `# A private containerd 1.6 for node-cni-plugins (see docs/clients.md)
version = 2
root = "${dir}/root"
state = "${dir}/state"

[grpc]
  address = "${dir}/run/containerd.sock"
[ttrpc]
  address = "${dir}/run/containerd.sock.ttrpc"
[debug]
  address = "${dir}/run/debug.sock"

[plugins."io.containerd.grpc.v1.cri"]
${opts.sandboxImage ? `  sandbox_image = "${opts.sandboxImage}"\n` : ''}  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "${opts.binDir ?? DIST_BIN}"
  conf_dir = "${confDir}"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  Root = "${dir}/runc"
`;
}

/** The shims' socket paths, from the "address" file each writes into its bundle (unix:///run/containerd/s/<hash>). */
function shimSocketsUnder(stateDir: string): string[] {
  const tasks = path.join(stateDir, 'io.containerd.runtime.v2.task');
  const out: string[] = [];
  if (!fs.existsSync(tasks)) return out;
  for (const ns of fs.readdirSync(tasks)) {
    for (const id of fs.readdirSync(path.join(tasks, ns))) {
      try {
        const addr = fs.readFileSync(path.join(tasks, ns, id, 'address'), 'utf8').trim().replace(/^unix:\/\//, '');
        if (addr.startsWith('/run/containerd/s/')) out.push(addr);
      } catch { /* no address file */ }
    }
  }
  return out;
}

/**
 * Kill every process left in /sys/fs/cgroup/<each hierarchy>/<top>/** (container
 * processes of a killed shim keep running), then rmdir the cgroups, deepest first.
 */
export function removeCgroupTrees(top: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(top)) throw new Error(`removeCgroupTrees: ${JSON.stringify(top)} is not one cgroup name`);
  const roots = ['/sys/fs/cgroup', ...fs.readdirSync('/sys/fs/cgroup').map((h) => path.join('/sys/fs/cgroup', h))];
  const trees = roots.map((r) => path.join(r, top)).filter((d) => fs.existsSync(path.join(d, 'cgroup.procs')));
  const cgroups = (d: string): string[] => [
    ...fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => cgroups(path.join(d, e.name))), d];
  const procs = (): number[] => trees.flatMap(cgroups).flatMap((d) => {
    try { return fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number); } catch { return []; }
  });
  for (const pid of procs()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  waitFor(() => procs().length === 0, 10000);
  for (const d of trees.flatMap(cgroups)) { try { fs.rmdirSync(d); } catch { /* still busy */ } }
}

function isZombie(pid: number): boolean {
  try { return /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

function processAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function pidsWithArgument(arg: string): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(arg)) pids.push(Number(p));
    } catch { /* exited */ }
  }
  return pids;
}

function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => l.split(' ')[1]).filter((m) => m && (m === dir || m.startsWith(`${dir}/`)));
}
