// The kubelet's path: pods through containerd 1.6's CRI plugin over gRPC
// (test/helpers/cri.ts), on the node pod network of conf-examples/60-k8s-bridge.conflist
// (dual-stack bridge + portmap + host-local). containerd runs in a throwaway
// "host" namespace and execs our installed plugins there; an "outside"
// namespace stands for another machine on the node's LAN.
import * as fs from 'fs';
import * as path from 'path';
import {
  addOutsideClient, hostState, LIBCNI_RESULTS, missingBinary, randomSubnets, removeHostState, reservations, waitFor,
} from '../helpers/clients';
import { CriNode, PodSpec, PodStatus, filesMentioning, nftMentions, podAnswers } from '../helpers/cri';
import { dnsmasqPids, lookupUntil } from '../helpers/dns';
import { ensureBuilt } from '../helpers/build';
import { DIST_BIN, ROOT, Sandbox, shTry } from '../helpers/sandbox';

const missing = missingBinary(['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc', 'nsenter', 'unshare', 'nc']);
if (missing) console.warn(`clients-cri: skipped, "${missing}" is not installed (scripts/setup.sh installs it)`);
const describeIfContainerd = missing ? describe.skip : describe;

const EXAMPLE = path.join(ROOT, 'conf-examples', '60-k8s-bridge.conflist');
const HOST_PORT = 30080;

describeIfContainerd('kubelet path: pods through containerd 1.6 CRI on our bridge network', () => {
  const sb = new Sandbox('cr');
  const net = `${sb.tag}-pods`;
  const { net: v4, uplink } = randomSubnets();
  const v6 = `fd00:${(1 + Math.floor(Math.random() * 0xfffe)).toString(16)}:${parseInt(sb.tag.slice(-4), 16).toString(16)}:1`; // canonical: no leading zeros
  let node: CriNode;
  let hostns: string;
  let outside: string;
  let hostAddr: string;
  let dataDir: string;
  let dnsDir: string;

  /** The example, with this test's names, subnets and private state dirs, plus nameResolution: K8S_POD_NAME becomes a DNS name. */
  function podNetwork(cniVersion?: string): Record<string, any> {
    const list = JSON.parse(fs.readFileSync(EXAMPLE, 'utf8'));
    const [bridge, portmap] = list.plugins;
    expect([bridge.type, bridge.ipam.type, portmap.type]).toEqual(['bridge', 'host-local', 'portmap']);
    list.name = net;
    if (cniVersion) { list.cniVersion = cniVersion; delete list.cniVersions; }
    Object.assign(bridge, { bridge: `${sb.tag}b`, stateDir: path.join(dataDir, 'bridge'), nameResolution: { runDir: dnsDir } });
    Object.assign(bridge.ipam, { ranges: [[{ subnet: `${v4}.0/24` }], [{ subnet: `${v6}::/64` }]], dataDir: path.join(dataDir, 'ipam') });
    portmap.dataDir = path.join(dataDir, 'portmap');
    return list;
  }

  const pod = (name: string, hostPort: number): PodSpec => ({
    name, namespace: 'default', uid: `${sb.tag}-${name}`, labels: { app: name.split('-')[0] },
    portMappings: [{ containerPort: 80, hostPort, protocol: 'TCP' }],
    dns: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] },
  });

  /** Container veths on the host side (hostState lists every veth but the outside client's). */
  const hostVeths = (): string[] => hostState(hostns, '-').veths;
  const reserved = (): string[] => reservations(path.join(dataDir, 'ipam'), net).sort();
  const cacheFile = (id: string): string => path.join(LIBCNI_RESULTS, `${net}-${id}-eth0`);
  const hostPortOpen = (port: number): boolean => shTry('ip', ['netns', 'exec', hostns, 'nc', '-z', '-w', '3', '127.0.0.1', String(port)]).status === 0;
  const gatewayLookup = (name: string, want: (a: string[] | null) => boolean): string[] | null => lookupUntil(sb, hostns, name, `${v4}.1`, want);

  interface RunningPod { spec: PodSpec; id: string; status: PodStatus; hostVeth: string }

  async function runPod(spec: PodSpec): Promise<RunningPod> {
    const id = await node.cri.runPodSandbox(spec);
    const status = await node.cri.podSandboxStatus(id);
    const hostVeth = Object.entries(status.cniResult?.Interfaces ?? {}).find(([n, i]) => !i.Sandbox && n !== `${sb.tag}b`)?.[0] ?? '';
    return { spec, id, status, hostVeth };
  }

  /** After StopPodSandbox: the address, the port, the name, the veth, the nft state and libcni's cache entry are gone. */
  function expectReleased(p: RunningPod): void {
    const addrs = [p.status.ip, ...p.status.additionalIps];
    expect(reserved().filter((a) => addrs.includes(a))).toEqual([]);
    expect(fs.existsSync(cacheFile(p.id))).toBe(false);
    expect(hostVeths()).not.toContain(p.hostVeth);
    expect(nftMentions(hostns, p.id, addrs)).toEqual([]);
    // The name is gone: NXDOMAIN, or the network's last DEL stopped its name server (a lookup would only time out).
    expect(dnsmasqPids(dnsDir).length === 0 || gatewayLookup(p.spec.name, (a) => a === null) === null).toBe(true);
  }

  /** After RemovePodSandbox: no netns, no file, no mount, no cgroup of the pod anywhere we or containerd keep them. */
  function expectNoTrace(p: RunningPod): void {
    expectReleased(p);
    expect(fs.existsSync(p.status.netns!)).toBe(false);
    expect(fs.readFileSync('/proc/self/mounts', 'utf8')).not.toContain(p.id);
    // containerd's own: task bundles, pod netns mounts, CRI's per-sandbox dirs, runc state (not its log or bolt databases, which keep freed pages).
    const ctd = (...p: string[]): string => path.join(node.ctd.dir, ...p);
    expect(filesMentioning([dataDir, dnsDir, LIBCNI_RESULTS, ctd('state'), ctd('root', 'io.containerd.grpc.v1.cri'), ctd('runc')], p.id)).toEqual([]);
    expect(fs.existsSync(path.join('/sys/fs/cgroup/memory', node.ctd.namespace, 'kubepods', 'besteffort', `pod${p.spec.uid}`, p.id))).toBe(false);
  }

  beforeAll(async () => {
    ensureBuilt('bridge', 'portmap', 'host-local', 'loopback', 'cnictl');
    hostns = sb.netns('h');
    ({ client: outside, hostAddr } = addOutsideClient(sb, hostns, uplink));
    dataDir = sb.tmpdir('-cni');
    dnsDir = sb.tmpdir('-dns');
    fs.chmodSync(dnsDir, 0o755); // dnsmasq runs as nobody and reads hosts.d below it
    sb.onCleanup(() => dnsmasqPids(dnsDir).forEach((pid) => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }));
    sb.onCleanup(() => removeHostState(net));
    node = new CriNode(sb, hostns, () => [net]);
    await node.start();
  }, 180000);

  afterAll(async () => {
    await node?.cleanup().catch(() => undefined);
    sb.cleanup();
  }, 180000);

  it('runtime Status: NetworkReady false while conf_dir is empty, true once the conflist is there; cnictl status (CNI STATUS) answers 0', async () => {
    const before = await node.cri.networkReady();
    expect(before).toMatchObject({ status: false, reason: 'NetworkPluginNotReady' });
    expect(before!.message).toMatch(/cni plugin not initialized/);

    node.writeConflist('10-pods.conflist', podNetwork());
    const deadline = Date.now() + 20000;
    while (!(await node.cri.networkReady())?.status && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await node.cri.networkReady()).toMatchObject({ status: true });
    // libcni 1.1 ignores "cniVersions": containerd 1.6 runs the list at its "cniVersion".
    expect(await node.cri.loadedNetworks()).toContainEqual({ name: net, cniVersion: '1.0.0' });

    // containerd >= 2.0.1 and cri-o derive NetworkReady from CNI STATUS (libcni >= 1.2: the highest of cniVersions, 1.1.0).
    const status = shTry('ip', ['netns', 'exec', hostns, path.join(DIST_BIN, 'cnictl'), 'status', net],
      { env: { ...process.env, NETCONFPATH: node.confDir, CNI_PATH: DIST_BIN } });
    expect([status.status, status.stderr]).toEqual([0, '']);
  });

  it('CNI STATUS is correct, not just cheap: 50 while a range set is full, 0 again after the DEL', () => {
    const full = podNetwork();
    full.name = `${net}-full`;
    full.plugins[0].bridge = `${sb.tag}f`;
    // Subnets of its own: a second bridge with the pods' subnets would take their routes.
    const [p4, p6] = [`${v4.split('.').slice(0, 2).join('.')}.255`, `${v6.slice(0, -1)}2`];
    full.plugins[0].ipam.ranges = [[{ subnet: `${p4}.0/24`, rangeStart: `${p4}.200`, rangeEnd: `${p4}.200` }], [{ subnet: `${p6}::/64`, rangeStart: `${p6}::200`, rangeEnd: `${p6}::200` }]];
    const confDir = sb.tmpdir('-full');
    fs.writeFileSync(path.join(confDir, '10-full.conflist'), JSON.stringify(full));
    sb.onCleanup(() => removeHostState(full.name));
    const cnictl = (...args: string[]): { status: number | null; stdout: string; stderr: string } => shTry('ip', ['netns', 'exec', hostns, path.join(DIST_BIN, 'cnictl'), ...args],
      { env: { ...process.env, NETCONFPATH: confDir, CNI_PATH: DIST_BIN, CNI_CACHE_DIR: path.join(confDir, 'cache') } });
    const ns = sb.nsPath(sb.netns('full'));

    expect(cnictl('status', full.name).status).toBe(0);
    expect(cnictl('add', full.name, ns).status).toBe(0);
    const busy = cnictl('status', full.name);
    expect(busy.status).not.toBe(0);
    expect(busy.stderr).toMatch(/no IP addresses available in range set 0.*\(CNI error code 50\)/);
    expect(cnictl('del', full.name, ns).status).toBe(0);
    expect(cnictl('status', full.name).status).toBe(0);
  });

  it('three pods in a row: addresses from the ranges, pod to pod, hostPort from the host and from outside, K8S_POD_* in CNI_ARGS; stop releases, remove leaves nothing', async () => {
    const pods: RunningPod[] = [];
    for (let i = 0; i < 3; i++) pods.push(await runPod(pod(`web-${i}`, HOST_PORT + i)));

    for (const [i, p] of pods.entries()) {
      expect(p.status.state).toBe('SANDBOX_READY');
      expect(p.status.ip).toMatch(new RegExp(`^${v4.replace(/\./g, '\\.')}\\.\\d+$`));
      expect(p.status.additionalIps).toHaveLength(1);
      expect(p.status.additionalIps[0].startsWith(`${v6}:`)).toBe(true);
      // CRI's pod IP is our result's first address, the additional IP its second (libcni's cache holds our result).
      const cached = JSON.parse(fs.readFileSync(cacheFile(p.id), 'utf8'));
      // What libcni ran the plugins with: the pod's identity in CNI_ARGS, the hostPort with Go's field names (lib/cni/go-json.ts).
      expect(Object.fromEntries(cached.cniArgs)).toEqual({
        IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'default', K8S_POD_NAME: p.spec.name, K8S_POD_INFRA_CONTAINER_ID: p.id, K8S_POD_UID: p.spec.uid,
      });
      expect(cached.capabilityArgs.portMappings).toEqual([{ HostPort: HOST_PORT + i, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }]);
      expect(cached.result.cniVersion).toBe('1.0.0');
      expect(cached.result.ips.map((a: { address: string }) => a.address.split('/')[0])).toEqual([p.status.ip, ...p.status.additionalIps]);
      // CNI_CONTAINERID = K8S_POD_INFRA_CONTAINER_ID = the sandbox ID owns the reservations...
      for (const a of [p.status.ip, ...p.status.additionalIps]) {
        expect(fs.readFileSync(path.join(dataDir, 'ipam', net, a), 'utf8').split(/\r?\n/)[0]).toBe(p.id);
      }
      // ...and K8S_POD_NAME is the pod's DNS name at the node's gateway.
      expect(gatewayLookup(p.spec.name, (a) => a !== null)).toEqual([p.status.ip]);
      expect(p.hostVeth).not.toBe('');
      // The pod answers with its hostname: on its address, on the host's ports, from the host and from outside.
      expect(podAnswers({ ns: hostns }, p.status.ip)).toBe(p.spec.name);
      expect(podAnswers({ ns: hostns }, '127.0.0.1', HOST_PORT + i)).toBe(p.spec.name);
      expect(podAnswers({ ns: outside }, hostAddr, HOST_PORT + i)).toBe(p.spec.name);
    }
    expect(reserved()).toHaveLength(6);
    // Every pod reaches the others, over IPv4 and IPv6, and the others' hostPorts (hairpin through the host).
    for (const a of pods) {
      for (const b of pods.filter((x) => x !== a)) {
        expect(podAnswers({ netns: a.status.netns }, b.status.ip)).toBe(b.spec.name);
        expect(podAnswers({ netns: a.status.netns }, b.status.additionalIps[0])).toBe(b.spec.name);
      }
      expect(podAnswers({ netns: a.status.netns }, hostAddr, HOST_PORT)).toBe(pods[0].spec.name);
    }

    // StopPodSandbox (what the kubelet does first when a pod goes) releases the address, the port and the name.
    await node.cri.stopPodSandbox(pods[0].id);
    expect(hostPortOpen(HOST_PORT)).toBe(false);
    expectReleased(pods[0]);
    expect(reserved()).toHaveLength(4);
    // The port is free again: a new pod publishes it.
    const next = await runPod(pod('web-3', HOST_PORT));
    expect(podAnswers({ ns: outside }, hostAddr, HOST_PORT)).toBe('web-3');
    pods.push(next);

    await node.cri.removePodSandbox(pods[0].id);
    expectNoTrace(pods[0]);
    for (const p of pods.slice(1)) {
      await node.cri.stopPodSandbox(p.id);
      await node.cri.removePodSandbox(p.id);
      expectNoTrace(p);
    }
    expect(await node.cri.listPodSandbox()).toEqual([]);
    expect(reserved()).toEqual([]);
    expect(hostVeths()).toEqual([]);
    expect(node.cachedFiles()).toEqual([]);
    // The last pod's DEL stopped the network's name server.
    expect(waitFor(() => dnsmasqPids(dnsDir).length === 0, 10000)).toBe(true);
  }, 300000);

  it('containerd killed while a pod runs: after a restart the pod is still served, and StopPodSandbox cleans up (DEL from the cached result)', async () => {
    const p = await runPod(pod('db-0', HOST_PORT));
    expect(podAnswers({ ns: outside }, hostAddr, HOST_PORT)).toBe('db-0');

    node.restartAfterCrash();
    const after = await node.cri.podSandboxStatus(p.id);
    expect([after.state, after.ip, after.additionalIps]).toEqual(['SANDBOX_READY', p.status.ip, p.status.additionalIps]);
    expect(podAnswers({ ns: outside }, hostAddr, HOST_PORT)).toBe('db-0');
    expect(fs.existsSync(cacheFile(p.id))).toBe(true);

    await node.cri.stopPodSandbox(p.id);
    expect(hostPortOpen(HOST_PORT)).toBe(false);
    expectReleased(p);
    await node.cri.removePodSandbox(p.id);
    expectNoTrace(p);
    expect(reserved()).toEqual([]);
  }, 180000);

  it('"cniVersion": "1.1.0" alone: containerd 1.6 (libcni 1.1) cannot read our result, fails the pod, and its DEL leaves nothing', async () => {
    node.writeConflist('10-pods.conflist', podNetwork('1.1.0'));
    const deadline = Date.now() + 20000;
    while (!(await node.cri.loadedNetworks()).some((n) => n.cniVersion === '1.1.0') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await node.cri.loadedNetworks()).toContainEqual({ name: net, cniVersion: '1.1.0' });

    await expect(node.cri.runPodSandbox(pod('old-0', HOST_PORT))).rejects.toThrow(/unsupported CNI result version "1\.1\.0"/);
    expect(reserved()).toEqual([]);
    expect(hostVeths()).toEqual([]);
    expect(hostPortOpen(HOST_PORT)).toBe(false);
    expect(node.cachedFiles()).toEqual([]);
    expect(await node.cri.listPodSandbox()).toEqual([]);
  }, 120000);
});
