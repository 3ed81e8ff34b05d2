// The kubelet's side of CRI, for tests: a gRPC client of containerd's CRI
// plugin (our own minimal cri.proto, runtime.v1) that runs, inspects, stops and
// removes pod sandboxes the way the kubelet asks for them, and a private
// containerd with that plugin on (Containerd in clients.ts) whose CNI dirs are
// ours and whose sandbox image is a local busybox "pause" image.
// Since Kubernetes 1.24 this is the only way a kubelet's pods reach CNI.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { spawnSync, SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Containerd, ContainerdOptions, LIBCNI_RESULTS, delFromLibcniCache, makeBusyboxImage, ok } from './clients';
import { Sandbox, sh, shTry } from './sandbox';

const PROTO = path.join(__dirname, 'cri.proto');
/** containerd's CRI plugin keeps everything in this containerd namespace (not configurable in 1.6). */
export const K8S_NAMESPACE = 'k8s.io';
/** containerd's built-in loopback network (go-cni WithLoNetwork): its results are cached too. */
export const LOOPBACK_NETWORK = 'cni-loopback';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface PortMappingSpec {
  containerPort: number;
  hostPort: number;
  protocol?: Protocol;
  hostIp?: string;
}

/** What the kubelet knows of a pod when it asks for its sandbox. */
export interface PodSpec {
  name: string;
  namespace: string;
  uid: string;
  attempt?: number;
  /** Default: the pod name (the kubelet's default too). */
  hostname?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  portMappings?: PortMappingSpec[];
  dns?: { servers: string[]; searches: string[]; options: string[] };
}

export interface PodStatus {
  id: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
  /** CRI's pod IP: containerd takes the first IPv4 of the CNI result's eth0 (ip_pref ""), then the rest as additionalIps. */
  ip: string;
  additionalIps: string[];
  /** From the verbose info: the sandbox's network namespace and containerd's view of the CNI result. */
  netns?: string;
  cniResult?: { Interfaces?: Record<string, { IPConfigs?: Array<{ IP: string }> | null; Sandbox?: string }> };
}

export interface RuntimeCondition { type: string; status: boolean; reason: string; message: string }

/**
 * The PodSandboxConfig the kubelet builds (pkg/kubelet/kuberuntime
 * generatePodSandboxConfig): metadata, hostname, log directory, DNS, the
 * ports that have a hostPort, the pod's labels plus the kubelet's own, a
 * cgroup parent per pod (cgroupfs driver: <root>/kubepods/besteffort/pod<uid>)
 * and the pod's network namespace (POD: its own).
 */
export function sandboxConfig(pod: PodSpec, o: { cgroupRoot: string; logRoot: string }): Record<string, unknown> {
  return {
    metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid, attempt: pod.attempt ?? 0 },
    hostname: pod.hostname ?? pod.name,
    logDirectory: path.join(o.logRoot, `${pod.namespace}_${pod.name}_${pod.uid}`),
    dnsConfig: pod.dns,
    portMappings: (pod.portMappings ?? []).filter((p) => p.hostPort > 0)
      .map((p) => ({ protocol: p.protocol ?? 'TCP', containerPort: p.containerPort, hostPort: p.hostPort, hostIp: p.hostIp ?? '' })),
    labels: {
      ...pod.labels,
      'io.kubernetes.pod.name': pod.name, 'io.kubernetes.pod.namespace': pod.namespace, 'io.kubernetes.pod.uid': pod.uid,
    },
    annotations: { 'kubernetes.io/config.source': 'api', ...pod.annotations },
    linux: {
      cgroupParent: `/${o.cgroupRoot}/kubepods/besteffort/pod${pod.uid}`,
      securityContext: { namespaceOptions: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } },
    },
  };
}

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => void;

/** runtime.v1 RuntimeService and ImageService over a unix socket. Every call has a deadline. */
export class CriClient {
  private readonly runtime: grpc.Client;
  private readonly images: grpc.Client;
  /** Every sandbox ID this client was given, for cleanup. */
  readonly sandboxIds = new Set<string>();

  constructor(readonly socket: string, private readonly o: { cgroupRoot: string; logRoot: string }) {
    const def = protoLoader.loadSync(PROTO, { longs: Number, enums: String, defaults: true });
    const v1 = (grpc.loadPackageDefinition(def).runtime as grpc.GrpcObject).v1 as grpc.GrpcObject;
    const make = (svc: string): grpc.Client => new (v1[svc] as grpc.ServiceClientConstructor)(`unix://${socket}`, grpc.credentials.createInsecure());
    this.runtime = make('RuntimeService');
    this.images = make('ImageService');
  }

  private call<T>(client: grpc.Client, method: string, req: unknown, timeoutMs = 120000): Promise<T> {
    const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
    return new Promise((resolve, reject) => {
      fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new Error(`CRI ${method}: ${err.details || err.message}`));
        else resolve(res as T);
      });
    });
  }

  version(): Promise<{ runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call(this.runtime, 'Version', { version: 'v1' });
  }

  /** The runtime's conditions (RuntimeReady, NetworkReady), as the kubelet polls them every few seconds. */
  async status(): Promise<RuntimeCondition[]> {
    const r = await this.call<{ status?: { conditions: RuntimeCondition[] } }>(this.runtime, 'Status', { verbose: false });
    return r.status?.conditions ?? [];
  }

  async networkReady(): Promise<RuntimeCondition | undefined> {
    return (await this.status()).find((c) => c.type === 'NetworkReady');
  }

  /** containerd's verbose Status: the networks its CNI plugin has loaded from conf_dir, with the cniVersion libcni took. */
  async loadedNetworks(): Promise<Array<{ name: string; cniVersion: string }>> {
    const r = await this.call<{ info: Record<string, string> }>(this.runtime, 'Status', { verbose: true });
    const conf = r.info?.cniconfig ? JSON.parse(r.info.cniconfig) : {};
    return (conf.Networks ?? []).map((n: { Config: { Name: string; CNIVersion: string } }) => ({ name: n.Config.Name, cniVersion: n.Config.CNIVersion }));
  }

  async runPodSandbox(pod: PodSpec): Promise<string> {
    const r = await this.call<{ podSandboxId: string }>(this.runtime, 'RunPodSandbox', { config: sandboxConfig(pod, this.o) });
    this.sandboxIds.add(r.podSandboxId);
    return r.podSandboxId;
  }

  async podSandboxStatus(id: string): Promise<PodStatus> {
    const r = await this.call<{ status: any; info: Record<string, string> }>(this.runtime, 'PodSandboxStatus', { podSandboxId: id, verbose: true });
    const info = r.info?.info ? JSON.parse(r.info.info) : {};
    const netns = (info.runtimeSpec?.linux?.namespaces ?? []).find((n: { type: string }) => n.type === 'network')?.path;
    return {
      id: r.status.id,
      state: r.status.state,
      ip: r.status.network?.ip ?? '',
      additionalIps: (r.status.network?.additionalIps ?? []).map((a: { ip: string }) => a.ip),
      netns,
      cniResult: info.cniResult,
    };
  }

  async stopPodSandbox(id: string): Promise<void> {
    await this.call(this.runtime, 'StopPodSandbox', { podSandboxId: id });
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call(this.runtime, 'RemovePodSandbox', { podSandboxId: id });
  }

  async listPodSandbox(): Promise<Array<{ id: string; name: string; state: string }>> {
    const r = await this.call<{ items: Array<{ id: string; metadata: { name: string }; state: string }> }>(this.runtime, 'ListPodSandbox', {});
    return r.items.map((i) => ({ id: i.id, name: i.metadata?.name, state: i.state }));
  }

  /** The image as CRI sees it (undefined: CRI does not know it, RunPodSandbox would try to pull it). */
  async imageStatus(image: string): Promise<{ id: string; repoTags: string[] } | undefined> {
    const r = await this.call<{ image?: { id: string; repoTags: string[] } }>(this.images, 'ImageStatus', { image: { image } });
    return r.image ?? undefined;
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }
}

export const PAUSE_IMAGE = 'localhost/cni-test-pause:1';
/** The sandbox process: serves /www on port 80 (GET /cgi-bin/hostname answers with the pod's hostname) and never exits. */
export const PAUSE_COMMAND = ['/bin/httpd', '-f', '-p', '80', '-h', '/www'];

/**
 * A private containerd with its CRI plugin on, in `hostns`: CNI bin_dir = the
 * installed plugins, conf_dir = a temp dir, sandbox_image = a busybox "pause"
 * image built here and imported into k8s.io. cleanup() (async, call it in
 * afterAll before sb.cleanup()) stops and removes every pod through CRI; the
 * sync fallback (in sb.cleanup(), also after a failed test or a dead daemon)
 * DELs what libcni still has cached for our networks, then kills the daemon,
 * its shims and the pods' processes and unmounts their namespaces.
 */
export class CriNode {
  readonly ctd: Containerd;
  cri!: CriClient;
  readonly logRoot: string;

  constructor(private readonly sb: Sandbox, readonly hostns: string, readonly networks: () => string[], opts: ContainerdOptions = {}) {
    this.logRoot = sb.tmpdir('-pods');
    // Registered before Containerd's own cleanup, so it runs after it: the daemon is gone, nothing races the DELs.
    sb.onCleanup(() => this.delCachedAttachments());
    this.ctd = new Containerd(sb, hostns, { sandboxImage: PAUSE_IMAGE, ...opts });
  }

  get confDir(): string { return this.ctd.confDir; }

  /** Start containerd, import the pause image into k8s.io and connect the CRI client. */
  async start(): Promise<void> {
    this.ctd.start();
    const img = makeBusyboxImage(this.sb.tmpdir('-img'), PAUSE_IMAGE, PAUSE_COMMAND);
    ok(this.ctd.ctr(['images', 'import', img.oci], 90000, K8S_NAMESPACE), 'ctr -n k8s.io images import');
    this.connect();
    if (!(await this.cri.imageStatus(PAUSE_IMAGE))) throw new Error(`CRI does not see the imported sandbox image ${PAUSE_IMAGE}`);
  }

  /** (Re)connect after a daemon restart. */
  connect(): void {
    this.cri?.close();
    const ids = this.cri?.sandboxIds ?? new Set<string>();
    this.cri = new CriClient(this.ctd.socket, { cgroupRoot: this.ctd.namespace, logRoot: this.logRoot });
    for (const id of ids) this.cri.sandboxIds.add(id);
  }

  /** SIGKILL containerd (pods, shims and namespaces stay), start it again, reconnect. */
  restartAfterCrash(): void {
    this.ctd.kill();
    this.ctd.start();
    this.connect();
  }

  writeConflist(file: string, conf: Record<string, unknown>): void {
    this.ctd.writeConflist(file, conf);
  }

  /** What the kubelet does when a pod is deleted: stop, then remove, every sandbox. */
  async cleanup(): Promise<void> {
    if (!this.cri) return;
    try {
      for (const p of await this.cri.listPodSandbox()) this.cri.sandboxIds.add(p.id);
      for (const id of this.cri.sandboxIds) {
        await this.cri.stopPodSandbox(id).catch(() => undefined);
        await this.cri.removePodSandbox(id).catch(() => undefined);
      }
    } finally {
      this.cri.close();
    }
  }

  /** libcni's cache files of our networks and of our sandboxes' loopback. */
  cachedFiles(): string[] {
    if (!fs.existsSync(LIBCNI_RESULTS)) return [];
    const ids = [...(this.cri?.sandboxIds ?? [])];
    return fs.readdirSync(LIBCNI_RESULTS).filter((f) =>
      this.networks().some((n) => f.startsWith(`${n}-`)) || ids.some((id) => f === `${LOOPBACK_NETWORK}-${id}-lo`));
  }

  /** Fallback: a libcni-style DEL (no netns) of every attachment still cached, then drop the cache entries. */
  private delCachedAttachments(): void {
    for (const f of this.cachedFiles()) {
      const m = /^(.*)-([0-9a-f]{64})-(\w+)$/.exec(f);
      try {
        if (m) delFromLibcniCache({ hostns: this.hostns, network: m[1], containerId: m[2], ifname: m[3] });
      } catch { /* best effort */ }
      fs.rmSync(path.join(LIBCNI_RESULTS, f), { force: true });
    }
  }
}

/** Run a command in a pod's network namespace (a bind mount under containerd's state dir, not in /run/netns). */
export function inPodNetns(netns: string, cmd: string, args: string[], timeout = 20000): SpawnSyncReturns<string> {
  return shTry('nsenter', [`--net=${netns}`, cmd, ...args], { timeout });
}

/** HTTP/1.0 GET of `urlPath` from inside `netns` (a pod's netns path or a named namespace); the body, or undefined. */
export function httpBody(o: { netns?: string; ns?: string }, host: string, port: number, urlPath = '/cgi-bin/hostname'): string | undefined {
  const nc = ['nc', '-w', '5', host, String(port)];
  const input = `GET ${urlPath} HTTP/1.0\r\n\r\n`;
  const r = o.netns ? shTry('nsenter', [`--net=${o.netns}`, ...nc], { input, timeout: 15000 })
    : shTry('ip', ['netns', 'exec', o.ns!, ...nc], { input, timeout: 15000 });
  if (r.status !== 0 || !/^HTTP\/1\.[01] 200/.test(r.stdout)) return undefined;
  return r.stdout.split(/\r?\n\r?\n/).slice(1).join('\n\n').trim();
}

/** The pod answers with its hostname on port 80 (PAUSE_COMMAND); retried: the first packets may wait for neighbour discovery. */
export function podAnswers(o: { netns?: string; ns?: string }, host: string, port = 80, tries = 5): string | undefined {
  for (let i = 0; i < tries; i++) {
    const body = httpBody(o, host, port);
    if (body !== undefined) return body;
    spawnSync('sleep', ['0.5']);
  }
  return undefined;
}

/** nft lines in `hostns` that name the sandbox (ID or its 12-character prefix) or one of its addresses. */
export function nftMentions(hostns: string, id: string, addresses: string[]): string[] {
  const ruleset = sh('ip', ['netns', 'exec', hostns, 'nft', 'list', 'ruleset']);
  const addr = addresses.map((a) => new RegExp(`(^|[^0-9a-f:.])${a.replace(/\./g, '\\.')}([^0-9a-f:.]|$)`, 'i'));
  return ruleset.split('\n').filter((l) => l.includes(id.slice(0, 12)) || addr.some((re) => re.test(l)));
}

/** Files under `dirs` whose name or (small) content carries `needle`. */
export function filesMentioning(dirs: string[], needle: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) { walk(p); continue; }
      if (e.name.includes(needle)) { found.push(p); continue; }
      try {
        if (e.isFile() && fs.statSync(p).size < 1 << 20 && fs.readFileSync(p, 'utf8').includes(needle)) found.push(p);
      } catch { /* gone */ }
    }
  };
  dirs.forEach(walk);
  return found;
}
