// podman 4.3 with its CNI backend, configured to use ONLY our dist/bin
// (containers.conf: cni_plugin_dirs = [dist/bin]), drives bridge + host-local
// + portmap: addresses, container-to-container traffic, a published port from
// the host and from outside, and a clean host after `podman rm`. Then the
// networks `podman network create` writes (bridge + portmap + firewall +
// tuning), used as written, on a host whose FORWARD policy is DROP (as Docker
// leaves it): published ports, two networks' reachability compared with the
// reference plugins, and nothing left after `podman rm` + `podman network rm`.
// podman runs with `nsenter --net` in a throwaway host namespace, so its
// bridge, nft tables and published ports live there (see test/helpers/clients.ts).
import * as fs from 'fs';
import * as path from 'path';
import {
  PODMAN_RUN_FLAGS, Podman, addOutsideClient, bridgeConflist, cachedResults, firewallStateDir,
  hostState, httpGet, makeBusyboxImage, missingBinary, ok, randomSubnets, removeHostState, reservations,
} from '../helpers/clients';
import { ensureBuilt } from '../helpers/build';
import { DIST_BIN, REFERENCE_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';

const missing = missingBinary(['podman', 'runc', 'conmon', 'nsenter', 'nc']);
if (missing) console.warn(`clients-podman: skipped, "${missing}" is not installed (scripts/setup.sh installs it)`);
const describeIfPodman = missing ? describe.skip : describe;

describeIfPodman('podman 4.3 (CNI backend) on our plugins', () => {
  const sb = new Sandbox('clp');
  const net = `${sb.tag}-net`;
  const created = `${sb.tag}-made`;
  const { net: prefix, uplink } = randomSubnets();
  const made = randomSubnets().net;
  let podman: Podman;
  let hostns: string;
  let client: string;
  let hostAddr: string;
  let dataDir: string;
  let webId = '';
  let webIp = '';
  let webSandboxKey = '';

  beforeAll(() => {
    ensureBuilt('bridge', 'portmap', 'host-local', 'loopback', 'firewall', 'tuning');
    hostns = sb.netns('h');
    ({ client, hostAddr } = addOutsideClient(sb, hostns, uplink));
    podman = new Podman(sb, hostns);
    dataDir = sb.tmpdir('-cni');
    // libcni caches results on the host; a podman-created network uses our plugins' default dirs.
    sb.onCleanup(() => {
      removeHostState(net);
      removeHostState(created);
    });
    podman.writeConflist(bridgeConflist({ name: net, bridge: `${sb.tag}b`, prefix, dataDir }));
    const image = makeBusyboxImage(sb.tmpdir('-img'));
    podman.must(['import', image.rootfs, image.name]);
  }, 120000);

  afterAll(() => sb.cleanup(), 120000);

  it('sees our network, with only dist/bin as plugin dir', () => {
    expect(podman.must(['network', 'ls', '--format', '{{.Name}}']).split('\n')).toContain(net);
    expect(podman.must(['info', '--format', '{{.Host.NetworkBackend}}'])).toBe('cni');
  });

  it('gives a container an address in the range and publishes its port', () => {
    webId = podman.must(['run', '-d', ...PODMAN_RUN_FLAGS, '--network', net, '-p', '18080:80',
      'localhost/bb:latest', 'httpd', '-f', '-p', '80', '-h', '/www']);
    webIp = podman.must(['inspect', webId, '--format', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`]);
    webSandboxKey = podman.must(['inspect', webId, '--format', '{{.NetworkSettings.SandboxKey}}']);
    expect(webIp).toMatch(new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.\\d+$`));
    expect(webIp).not.toBe(`${prefix}.1`);
    // The reservation is ours (private dataDir) and names the container.
    expect(reservations(path.join(dataDir, 'ipam'), net)).toEqual([webIp]);
    expect(fs.readFileSync(path.join(dataDir, 'ipam', net, webIp), 'utf8')).toContain(webId);
    expect(cachedResults(net)).toEqual([`${net}-${webId}-eth0`]);
  });

  it('lets another container reach it by address', () => {
    const out = podman.must(['run', '--rm', ...PODMAN_RUN_FLAGS, '--network', net, 'localhost/bb:latest', 'sh', '-c',
      `ip -4 -o addr show eth0; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${webIp} 80`]);
    expect(out).toMatch(new RegExp(`inet ${prefix.replace(/\./g, '\\.')}\\.\\d+/24`));
    expect(out).toContain('200 OK');
    expect(out).toContain('hello from busybox');
  });

  it('answers on the published port from the host (localhost, gateway) and from outside', () => {
    expect(httpGet(hostns, '127.0.0.1', 18080)).toContain('hello from busybox');
    expect(httpGet(hostns, `${prefix}.1`, 18080)).toContain('hello from busybox');
    expect(httpGet(client, hostAddr, 18080)).toContain('hello from busybox');
  });

  it('leaves nothing behind after podman rm: no veth, reservation, nft element, cache or netns', () => {
    expect(hostState(hostns, webId).veths).toHaveLength(1);
    expect(hostState(hostns, webId).nftMentions.length).toBeGreaterThan(0);
    podman.must(['rm', '--force', '--time', '0', webId]);
    const after = hostState(hostns, webId);
    expect(after.veths).toEqual([]);
    expect(after.nftMentions).toEqual([]);
    expect(reservations(path.join(dataDir, 'ipam'), net)).toEqual([]);
    expect(fs.existsSync(path.join(dataDir, 'portmap', net))).toBe(false); // the network's records dir goes with its last attachment
    expect(cachedResults(net)).toEqual([]);
    expect(fs.existsSync(webSandboxKey)).toBe(false);
    // The host port's claim went with it: another container can publish it again.
    ok(podman.run(['run', '--rm', ...PODMAN_RUN_FLAGS, '--network', net, '-p', '18080:80', 'localhost/bb:latest', 'true']),
      'podman run -p 18080:80 after rm');
  });

  it('runs a `podman network create` network as written (firewall + tuning), with FORWARD DROP: out, in through -p, nothing left', () => {
    for (const bin of ['iptables', 'ip6tables']) sh('ip', ['netns', 'exec', hostns, bin, '-P', 'FORWARD', 'DROP']);
    podman.must(['network', 'create', '--subnet', `${made}.0/24`, created]);
    const file = path.join(podman.netConfDir, `${created}.conflist`);
    const written = fs.readFileSync(file, 'utf8');
    expect(JSON.parse(written).plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    const id = podman.must(['run', '-d', ...PODMAN_RUN_FLAGS, '--network', created, '-p', '18090:80', 'localhost/bb:latest', 'httpd', '-f', '-p', '80', '-h', '/www']);
    const out = podman.must(['exec', id, 'sh', '-c', `ip -4 -o addr show eth0; ping -c 1 -W 5 ${uplink}.2 >/dev/null && echo outside-ok`]);
    expect(out).toMatch(new RegExp(`inet ${made.replace(/\./g, '\\.')}\\.\\d+/24`));
    expect(out).toContain('outside-ok');
    expect(httpGet(client, hostAddr, 18090)).toContain('hello from busybox');
    expect(httpGet(hostns, '127.0.0.1', 18090)).toContain('hello from busybox');
    expect(fs.readFileSync(file, 'utf8')).toBe(written); // used as written, never edited
    podman.must(['rm', '--force', '--time', '0', id]);
    podman.must(['network', 'rm', created]);
    expect(fs.existsSync(file)).toBe(false);
    expectHostClean(created, id);
  });

  /** No veth, no element or rule of ours, no record of the network in any default dir, no firewall state of this host. */
  function expectHostClean(network: string, id: string): void {
    const state = hostState(hostns, id);
    expect(state.veths).toEqual([]);
    expect(state.nftMentions).toEqual([]);
    const ruleset = sh('ip', ['netns', 'exec', hostns, 'nft', 'list', 'ruleset']);
    expect(ruleset).not.toContain('node_cni_firewall');
    expect(ruleset).not.toMatch(/set isolated \{[^}]*elements/);
    for (const bin of ['iptables', 'ip6tables']) expect(sh('ip', ['netns', 'exec', hostns, bin, '-S'])).not.toMatch(/NODE-CNI-FORWARD|CNI-ADMIN/);
    expect(reservations('/var/lib/cni/networks', network)).toEqual([]);
    for (const dir of ['/var/lib/cni/portmap', '/run/cni/bridge']) {
      const d = path.join(dir, network);
      expect([d, fs.existsSync(d) ? fs.readdirSync(d).filter((f) => !f.endsWith('lock')) : []]).toEqual([d, []]);
    }
    expect(fs.existsSync(firewallStateDir(hostns))).toBe(false);
    expect(cachedResults(network)).toEqual([]);
  }
});

/**
 * Two pairs of `podman network create` networks, plain and `--opt isolate=true`, one container
 * each, on a host with FORWARD DROP; who reaches whom. Run once on our plugins and once on the
 * reference (cni_plugin_dirs = /usr/lib/cni): the answers must be the same.
 */
describeIfPodman('podman networks see each other as with the reference plugins', () => {
  const sb = new Sandbox('clq');
  const nets = ['a', 'b', 'i', 'j'].map((n) => `${sb.tag}-${n}`);
  const runs: Sandbox[] = [];
  let image: { rootfs: string; name: string };

  beforeAll(() => {
    ensureBuilt('bridge', 'portmap', 'host-local', 'loopback', 'firewall', 'tuning');
    image = makeBusyboxImage(sb.tmpdir('-img'));
    sb.onCleanup(() => nets.forEach(removeHostState));
  }, 120000);
  afterAll(() => {
    for (const r of runs) r.cleanup();
    sb.cleanup();
    for (const d of ['/run/cni/firewall/isolation', '/run/cni/firewall']) { try { fs.rmdirSync(d); } catch { /* not empty or gone */ } }
  }, 180000);

  /** One "host" (its own sandbox: namespaces, podman dirs) whose podman uses only `pluginDir`. */
  function reachability(pluginDir: string): Record<string, boolean> {
    const run = new Sandbox('clq');
    runs.push(run);
    const hostns = run.netns('h');
    const { client } = addOutsideClient(run, hostns, randomSubnets().uplink);
    for (const bin of ['iptables', 'ip6tables']) sh('ip', ['netns', 'exec', hostns, bin, '-P', 'FORWARD', 'DROP']);
    const podman = new Podman(run, hostns, pluginDir);
    podman.must(['import', image.rootfs, image.name]);
    const base = randomSubnets().net.split('.').slice(0, 2).join('.');
    nets.forEach((n, k) => podman.must(['network', 'create', '--subnet', `${base}.${10 + k}.0/24`, ...(k >= 2 ? ['--opt', 'isolate=true'] : []), n]));
    // Until lib/bridge/isolation.ts removes its lock with the last leave: the isolated bridges' locks in the default state dir.
    for (const n of nets) {
      const bridge = JSON.parse(fs.readFileSync(path.join(podman.netConfDir, `${n}.conflist`), 'utf8')).plugins[0].bridge as string;
      sb.onCleanup(() => fs.rmSync(path.join('/run/cni/firewall/isolation', `${bridge}.lock`), { force: true }));
    }
    const ids = nets.map((n) => podman.must(['run', '-d', ...PODMAN_RUN_FLAGS, '--network', n, 'localhost/bb:latest', 'sleep', '300']));
    const ip = (id: string, n: string): string => podman.must(['inspect', id, '--format', `{{(index .NetworkSettings.Networks "${n}").IPAddress}}`]);
    const addr = ids.map((id, k) => ip(id, nets[k]));
    const ping = (from: number, to: string): boolean => podman.run(['exec', ids[from], 'ping', '-c', '1', '-W', '2', to]).status === 0;
    const out = {
      'plain a -> plain b': ping(0, addr[1]), 'plain b -> plain a': ping(1, addr[0]),
      'isolated i -> isolated j': ping(2, addr[3]), 'isolated j -> isolated i': ping(3, addr[2]),
      'isolated i -> plain a': ping(2, addr[0]), 'plain a -> isolated i': ping(0, addr[2]),
      'isolated i -> outside': ping(2, `${shTry('ip', ['-n', client, '-4', '-o', 'addr', 'show', 'eth0']).stdout.split(/\s+/)[3].split('/')[0]}`),
    };
    podman.must(['rm', '--all', '--force', '--time', '0'], 120000);
    for (const n of nets) podman.must(['network', 'rm', n]);
    nets.forEach(removeHostState);
    return out;
  }

  it('same answers on ours and on /usr/lib/cni', () => {
    const ours = reachability(DIST_BIN);
    const reference = reachability(REFERENCE_BIN);
    expect(ours).toEqual({
      'plain a -> plain b': true, 'plain b -> plain a': true,
      'isolated i -> isolated j': false, 'isolated j -> isolated i': false,
      'isolated i -> plain a': true, 'plain a -> isolated i': true, 'isolated i -> outside': true,
    });
    expect(reference).toEqual(ours);
  });
});
