// Conflists as runtimes write them (conf-examples/generated), run by a real
// containerd 1.6 on our plugins in a throwaway "host" namespace:
// - nerdctl's default network (bridge + portmap + firewall same-bridge +
//   tuning) through `ctr run --cni`, on a host whose FORWARD policy is DROP;
// - a Kubernetes-style chain (bridge + portmap with externalSetMarkChain +
//   bandwidth) through containerd's CRI, with the kubelet's bandwidth
//   annotations on the pod.
// Only the network name (and, for the pods, the subnet) is the test's own.
import * as fs from 'fs';
import * as path from 'path';
import {
  Containerd, addOutsideClient, cachedResults, delFromLibcniCache, firewallStateDir, hostState, makeBusyboxImage,
  missingBinary, ok, randomSubnets, removeHostState, reservations,
} from '../helpers/clients';
import { CriNode, PodSpec, podAnswers } from '../helpers/cri';
import { ensureBuilt } from '../helpers/build';
import { ROOT, Sandbox, sh, shTry } from '../helpers/sandbox';

const missing = missingBinary(['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc', 'unshare', 'nsenter', 'nc']);
if (missing) console.warn(`clients-runtime-shapes: skipped, "${missing}" is not installed (scripts/setup.sh installs it)`);
const describeIfContainerd = missing ? describe.skip : describe;

const GENERATED = path.join(ROOT, 'conf-examples', 'generated');
const generated = (file: string): Record<string, any> => JSON.parse(fs.readFileSync(path.join(GENERATED, file), 'utf8'));

/** What our plugins leave in the host namespace: veths, nft lines and the firewall's iptables chain, isolation elements, firewall state. */
function ourState(hostns: string, id: string): Record<string, unknown> {
  const ruleset = sh('ip', ['netns', 'exec', hostns, 'nft', 'list', 'ruleset']);
  return {
    ...hostState(hostns, id),
    firewallTable: ruleset.includes('node_cni_firewall'),
    isolated: /set isolated \{[^}]*elements/.test(ruleset),
    iptables: sh('ip', ['netns', 'exec', hostns, 'iptables', '-S']).split('\n').filter((l) => /NODE-CNI-FORWARD|CNI-ADMIN/.test(l)),
    firewallState: fs.existsSync(firewallStateDir(hostns)),
  };
}
const CLEAN = { veths: [], nftMentions: [], firewallTable: false, isolated: false, iptables: [], firewallState: false };

describeIfContainerd('nerdctl\'s default network, as nerdctl writes it, through containerd 1.6 `ctr run --cni`', () => {
  const sb = new Sandbox('cfn');
  const net = `${sb.tag}-bridge`;
  const { uplink } = randomSubnets();
  let ctd: Containerd;
  let hostns: string;
  let image: string;
  let list: Record<string, any>;

  beforeAll(() => {
    ensureBuilt('bridge', 'portmap', 'host-local', 'loopback', 'firewall', 'tuning');
    hostns = sb.netns('h');
    addOutsideClient(sb, hostns, uplink);
    sh('ip', ['netns', 'exec', hostns, 'iptables', '-P', 'FORWARD', 'DROP']);
    ctd = new Containerd(sb, hostns);
    sb.onCleanup(() => removeHostState(net));
    list = { ...generated('nerdctl-bridge.conflist'), name: net };
    ctd.writeConflist('nerdctl-bridge.conflist', list);
    ctd.start();
    const img = makeBusyboxImage(sb.tmpdir('-img'));
    ok(ctd.ctr(['images', 'import', img.oci]), 'ctr images import');
    image = img.name;
  }, 180000);
  afterAll(() => sb.cleanup(), 180000);

  it('is the file nerdctl writes: bridge nerdctl0, portmap, firewall same-bridge, tuning', () => {
    expect(list.plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    expect(list.plugins[2]).toEqual({ ingressPolicy: 'same-bridge', type: 'firewall' });
    expect(list.nerdctlLabels).toEqual({ 'nerdctl/default-network': 'true' });
  });

  it('run --rm: the container reaches the gateway and, through FORWARD DROP, the outside; DEL (no netns) leaves nothing', () => {
    const out = ok(ctd.ctr(['run', '--cni', '--rm', image, 'c1', 'sh', '-c',
      `ip -4 -o addr show eth0; ping -c 1 -W 5 10.4.0.1 >/dev/null && echo gateway-ok; ping -c 1 -W 5 ${uplink}.2 >/dev/null && echo outside-ok`]), 'ctr run --cni --rm');
    expect(out).toMatch(/inet 10\.4\.0\.\d+\/24/);
    expect(out).toContain('gateway-ok');
    expect(out).toContain('outside-ok');
    expect(ourState(hostns, ctd.fullId('c1'))).toEqual(CLEAN);
    expect(reservations('/var/lib/cni/networks', net)).toEqual([]);
    expect(cachedResults(net)).toEqual([]);
  });

  it('run -d: isolated bridge and firewall elements while it runs; a libcni-style DEL from the cache removes them', () => {
    ok(ctd.ctr(['run', '--cni', '-d', image, 'c2', 'sleep', '600']), 'ctr run --cni -d');
    const id = ctd.fullId('c2');
    const running = ourState(hostns, id);
    expect(running).toMatchObject({ firewallTable: true, isolated: true, firewallState: true });
    expect(sh('ip', ['netns', 'exec', hostns, 'nft', 'list', 'set', 'inet', 'node_cni_isolation', 'isolated'])).toContain('"nerdctl0"');
    ok(ctd.ctr(['task', 'kill', '--signal', 'SIGKILL', 'c2']), 'ctr task kill');
    for (let i = 0; i < 100 && !/STOPPED/.test(ctd.ctr(['task', 'ls']).stdout); i++) shTry('sleep', ['0.1']);
    ok(ctd.ctr(['task', 'rm', 'c2']), 'ctr task rm');
    ok(ctd.ctr(['container', 'rm', 'c2']), 'ctr container rm');
    delFromLibcniCache({ hostns, network: net, containerId: id }); // ctr 1.6 never DELs a detached container (docs/clients.md)
    expect(ourState(hostns, id)).toEqual(CLEAN);
    expect(reservations('/var/lib/cni/networks', net)).toEqual([]);
  });
});

describeIfContainerd('a Kubernetes-style chain with portmap + bandwidth through containerd 1.6 CRI (the kubelet\'s bandwidth annotations)', () => {
  const sb = new Sandbox('cfk');
  const net = `${sb.tag}-pods`;
  const { net: v4, uplink } = randomSubnets();
  let node: CriNode;
  let hostns: string;
  let outside: string;
  let hostAddr: string;

  beforeAll(async () => {
    ensureBuilt('bridge', 'portmap', 'host-local', 'loopback', 'bandwidth');
    hostns = sb.netns('h');
    ({ client: outside, hostAddr } = addOutsideClient(sb, hostns, uplink));
    sb.onCleanup(() => removeHostState(net));
    node = new CriNode(sb, hostns, () => [net]);
    await node.start();
    const list = generated('k8s-portmap-bandwidth.conflist');
    list.name = net;
    list.plugins[0].ipam.ranges = [[{ subnet: `${v4}.0/24` }]];
    node.writeConflist('10-pods.conflist', list);
    const deadline = Date.now() + 20000;
    while (!(await node.cri.networkReady())?.status && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  }, 240000);
  afterAll(async () => {
    await node?.cleanup().catch(() => undefined);
    sb.cleanup();
  }, 180000);

  const qdiscs = (dev: string): Array<{ kind: string; options?: { rate?: number } }> => JSON.parse(sh('tc', ['-n', hostns, '-j', 'qdisc', 'show', 'dev', dev]) || '[]');
  const ifbs = (): string[] => JSON.parse(sh('ip', ['-n', hostns, '-j', 'link', 'show', 'type', 'ifb']) || '[]').map((l: { ifname: string }) => l.ifname);

  it('shapes the pod as annotated (10M in, 20M out), publishes its hostPort, and StopPodSandbox leaves no IFB or qdisc', async () => {
    const pod: PodSpec = {
      name: 'shaped', namespace: 'default', uid: `${sb.tag}-shaped`,
      annotations: { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '20M' },
      portMappings: [{ containerPort: 80, hostPort: 30081, protocol: 'TCP' }],
    };
    const id = await node.cri.runPodSandbox(pod);
    const status = await node.cri.podSandboxStatus(id);
    const ifaces = Object.entries(status.cniResult?.Interfaces ?? {});
    const hostVeth = ifaces.find(([n, i]) => !i.Sandbox && n.startsWith('veth'))?.[0];
    const ifb = ifaces.find(([n]) => n.startsWith('bwp'))?.[0];
    expect([hostVeth, ifb]).toEqual([expect.any(String), expect.any(String)]);
    // containerd sends {"IngressRate": 10000000, "IngressBurst": 4294967295, ...}: rates in bytes/s in the tbfs.
    expect(qdiscs(hostVeth!).find((q) => q.kind === 'tbf')?.options?.rate).toBe(1_250_000);
    expect(qdiscs(ifb!).find((q) => q.kind === 'tbf')?.options?.rate).toBe(2_500_000);
    expect(podAnswers({ ns: outside }, hostAddr, 30081)).toBeDefined();
    await node.cri.stopPodSandbox(id);
    await node.cri.removePodSandbox(id);
    expect(ifbs()).toEqual([]);
    expect(hostState(hostns, id).veths).toEqual([]);
    expect(cachedResults(net)).toEqual([]);
  });
});
