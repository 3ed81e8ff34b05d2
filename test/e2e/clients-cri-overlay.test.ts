// The kubelet's path on the multi-node pod network of
// conf-examples/61-k8s-overlay-etcd.conflist: two "nodes" (host namespaces on
// one underlay bridge, a real etcd on the underlay, one vxlan-overlay agent
// per node). Node A runs pods through containerd 1.6's CRI; node B's pod is
// added with cnictl (a libcni >= 1.2 style runner: it picks the highest of
// "cniVersions"). Also: what the runtime's network readiness says while the
// agent is down (containerd 1.6: the conf dir only; CNI STATUS: the agent).
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { LIBCNI_RESULTS, missingBinary, reservations, waitFor } from '../helpers/clients';
import { CriNode, PodSpec, inPodNetns, podAnswers } from '../helpers/cri';
import { EtcdServer, etcdAvailable, startEtcd } from '../helpers/etcd';
import { ensureBuilt } from '../helpers/build';
import { DIST_BIN, ROOT, Sandbox, sh, shTry } from '../helpers/sandbox';

const missing = missingBinary(['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc', 'nsenter', 'unshare', 'nc']) ?? (etcdAvailable() ? undefined : 'etcd');
if (missing) console.warn(`clients-cri-overlay: skipped, "${missing}" is not installed (scripts/setup.sh installs it)`);
const describeIfReady = missing ? describe.skip : describe;

const EXAMPLE = path.join(ROOT, 'conf-examples', '61-k8s-overlay-etcd.conflist');
const HOST_PORT = 30090;

interface Node { name: string; ns: string; ip: string; confDir: string; agent?: ChildProcess; log: string }

describeIfReady('kubelet path: a CRI pod on the vxlan-overlay network reaches a pod of another node', () => {
  const sb = new Sandbox('cr');
  const net = `${sb.tag}-ov`;
  const underlay = `10.${100 + Math.floor(Math.random() * 150)}.${Math.floor(Math.random() * 250)}`;
  let sw: string;
  let etcd: EtcdServer;
  let runDir: string;
  let cacheB: string;
  let cri: CriNode;
  const nodes: Node[] = [];

  /** The example with this test's etcd, names and private state; each node has its own IPAM dir (one filesystem here). */
  function overlayNetwork(n: Node): Record<string, any> {
    const list = JSON.parse(fs.readFileSync(EXAMPLE, 'utf8'));
    const [overlay, portmap] = list.plugins;
    expect([overlay.type, overlay.store.type, portmap.type]).toEqual(['vxlan-overlay', 'etcd', 'portmap']);
    list.name = net;
    Object.assign(overlay, { store: { type: 'etcd', endpoints: [etcd.endpoint] }, runDir, ipam: { dataDir: path.join(runDir, `ipam-${n.name}`) } });
    portmap.dataDir = path.join(runDir, `portmap-${n.name}`);
    return list;
  }

  /** A node: its host namespace on the underlay bridge, at <underlay>.<i>. */
  function wireNode(name: string, ns: string, i: number, confDir: string): Node {
    sh('ip', ['-n', sw, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'u0', 'netns', ns]);
    sh('ip', ['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${underlay}.${i}/24`, 'dev', 'u0']);
    sh('ip', ['-n', ns, 'link', 'set', 'u0', 'up']);
    const n: Node = { name, ns, ip: `${underlay}.${i}`, confDir, log: '' };
    nodes.push(n);
    return n;
  }

  function startAgent(n: Node): void {
    const p = spawn('ip', ['netns', 'exec', n.ns, path.join(DIST_BIN, 'vxlan-overlay'), 'agent', '--conf', path.join(n.confDir, '10-overlay.conflist'),
      '--underlay-ip', n.ip, '--host-id', n.name, '--reconcile-ms', '1000', '--heartbeat-ms', '250'], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (c: Buffer) => { n.log += c.toString(); });
    n.agent = p;
  }

  /** SIGTERM (the agent leaves the live set), SIGKILL if it has not exited within 5 s. */
  async function stopAgent(n: Node): Promise<void> {
    const p = n.agent;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** `cnictl <args>` on node n, as the node's runtime would run the network (private result cache). */
  function cnictl(n: Node, args: string[]): { status: number | null; stdout: string; stderr: string } {
    return shTry('ip', ['netns', 'exec', n.ns, path.join(DIST_BIN, 'cnictl'), ...args],
      { env: { ...process.env, NETCONFPATH: n.confDir, CNI_PATH: DIST_BIN, CNI_CACHE_DIR: cacheB }, timeout: 60000 });
  }

  const pod = (name: string): PodSpec => ({ name, namespace: 'default', uid: `${sb.tag}-${name}`, portMappings: [{ containerPort: 80, hostPort: HOST_PORT }] });

  beforeAll(async () => {
    ensureBuilt('vxlan-overlay', 'portmap', 'loopback', 'cnictl');
    sw = sb.netns('sw');
    sh('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', sw, 'addr', 'add', `${underlay}.254/24`, 'dev', 'br0']);
    sh('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    etcd = await startEtcd({ netns: sw, listenIp: `${underlay}.254` });
    runDir = sb.tmpdir('-ovrun');
    cacheB = sb.tmpdir('-cacheB');
    sb.onCleanup(() => { for (const n of nodes) n.agent?.kill('SIGKILL'); });
    const hostA = sb.netns('a');
    cri = new CriNode(sb, hostA, () => [net]);
    wireNode('node-a', hostA, 1, cri.confDir);
    wireNode('node-b', sb.netns('b'), 2, sb.tmpdir('-netdB'));
    for (const n of nodes) fs.writeFileSync(path.join(n.confDir, '10-overlay.conflist'), JSON.stringify(overlayNetwork(n), null, 2));
    await cri.start();
  }, 180000);

  afterAll(async () => {
    await cri?.cleanup().catch(() => undefined);
    await Promise.all(nodes.map((n) => stopAgent(n)));
    await etcd?.stop().catch(() => undefined);
    sb.cleanup();
  }, 180000);

  it('agent down: containerd 1.6 still says NetworkReady (it reads the conf dir), CNI STATUS says 50, ADD asks to try again, nothing is left', async () => {
    const [a] = nodes;
    const deadline = Date.now() + 20000;
    while (!(await cri.cri.networkReady())?.status && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await cri.cri.networkReady()).toMatchObject({ status: true });

    const status = cnictl(a, ['status', net]);
    expect(status.status).not.toBe(0);
    expect(status.stderr).toMatch(/agent .*not running.*\(CNI error code 50\)/);

    await expect(cri.cri.runPodSandbox(pod('early-0'))).rejects.toThrow(/vxlan-overlay: .*agent .*not running/);
    expect(await cri.cri.listPodSandbox()).toEqual([]);
    expect(cri.cachedFiles()).toEqual([]);
  }, 120000);

  it('with both agents up: STATUS 0, a CRI pod on node A and a cnictl pod on node B reach each other across the overlay; teardown leaves nothing', async () => {
    const [a, b] = nodes;
    for (const n of nodes) startAgent(n);
    for (const n of nodes) {
      expect(waitFor(() => cnictl(n, ['status', net]).status === 0, 30000)).toBe(true);
    }

    const id = await cri.cri.runPodSandbox(pod('web-a'));
    const podA = await cri.cri.podSandboxStatus(id);
    expect(podA.state).toBe('SANDBOX_READY');
    expect(podA.ip).toMatch(/^10\.244\.\d+\.\d+$/);
    // libcni 1.1 (containerd 1.6) ran the list at "cniVersion"...
    expect(JSON.parse(fs.readFileSync(path.join(LIBCNI_RESULTS, `${net}-${id}-eth0`), 'utf8')).result.cniVersion).toBe('1.0.0');

    const nsB = sb.netns('podb');
    const add = cnictl(b, ['add', net, sb.nsPath(nsB)]);
    expect([add.status, add.stderr]).toEqual([0, '']);
    const resultB = JSON.parse(add.stdout);
    // ...and cnictl, like libcni >= 1.2, at the highest of "cniVersions".
    expect(resultB.cniVersion).toBe('1.1.0');
    const ipB = resultB.ips[0].address.split('/')[0];
    // One /24 of the cluster CIDR per node.
    expect(ipB.split('.').slice(0, 3)).not.toEqual(podA.ip.split('.').slice(0, 3));

    expect(podAnswers({ ns: nsB }, podA.ip)).toBe('web-a');
    expect(inPodNetns(podA.netns!, 'ping', ['-c', '1', '-W', '5', ipB]).status).toBe(0);
    // Node A's hostPort, from node B (the underlay).
    expect(podAnswers({ ns: b.ns }, a.ip, HOST_PORT)).toBe('web-a');

    await cri.cri.stopPodSandbox(id);
    await cri.cri.removePodSandbox(id);
    const del = cnictl(b, ['del', net, sb.nsPath(nsB)]);
    expect([del.status, del.stderr]).toEqual([0, '']);
    for (const n of nodes) expect(reservations(path.join(runDir, `ipam-${n.name}`), net)).toEqual([]);
    expect(cri.cachedFiles()).toEqual([]);
    expect(fs.readdirSync(path.join(cacheB, 'results'))).toEqual([]);
    expect(fs.existsSync(podA.netns!)).toBe(false);
    expect(shTry('ip', ['-n', a.ns, '-o', 'link', 'show', 'type', 'veth']).stdout.split('\n').filter((l) => l && !/ u0@/.test(l))).toEqual([]);
  }, 180000);
});
