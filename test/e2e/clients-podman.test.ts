// podman 4.3 with its CNI backend, configured to use ONLY our dist/bin
// (containers.conf: cni_plugin_dirs = [dist/bin]), drives bridge + host-local
// + portmap: addresses, container-to-container traffic, a published port from
// the host and from outside, and a clean host after `podman rm`.
// podman runs with `nsenter --net` in a throwaway host namespace, so its
// bridge, nft tables and published ports live there (see test/helpers/clients.ts).
import * as fs from 'fs';
import * as path from 'path';
import {
  PODMAN_RUN_FLAGS, Podman, addOutsideClient, adaptPodmanConflist, bridgeConflist, cachedResults,
  hostState, httpGet, makeBusyboxImage, missingBinary, ok, randomSubnets, removeHostState, reservations,
} from '../helpers/clients';
import { ensureBuilt } from '../helpers/build';
import { DIST_BIN, Sandbox } from '../helpers/sandbox';

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
    ensureBuilt('bridge', 'portmap', 'host-local', 'loopback');
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
    expect(fs.readdirSync(path.join(dataDir, 'portmap', net))).toEqual([]);
    expect(cachedResults(net)).toEqual([]);
    expect(fs.existsSync(webSandboxKey)).toBe(false);
    // The host port's claim went with it: another container can publish it again.
    ok(podman.run(['run', '--rm', ...PODMAN_RUN_FLAGS, '--network', net, '-p', '18080:80', 'localhost/bb:latest', 'true']),
      'podman run -p 18080:80 after rm');
  });

  it('refuses a `podman network create` network (firewall + tuning) instead of falling back to /usr/lib/cni; the documented edit works', () => {
    podman.must(['network', 'create', '--subnet', `${made}.0/24`, created]);
    const file = path.join(podman.netConfDir, `${created}.conflist`);
    const conf = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(conf.plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);

    const refused = podman.run(['run', '--rm', ...PODMAN_RUN_FLAGS, '--network', created, 'localhost/bb:latest', 'true']);
    expect(refused.status).not.toBe(0);
    // (podman logs it through logrus, which escapes the quotes)
    expect(refused.stderr.replace(/\\"/g, '"')).toContain(`failed to find plugin "firewall" in path [${DIST_BIN}]`);

    // docs/clients.md: drop firewall and tuning (and give host-local a dataDir of your choice).
    const ipamDir = sb.tmpdir('-made');
    fs.writeFileSync(file, JSON.stringify(adaptPodmanConflist(conf, ipamDir), null, 2));
    const out = podman.must(['run', '--rm', ...PODMAN_RUN_FLAGS, '--network', created, 'localhost/bb:latest',
      'sh', '-c', `ip -4 -o addr show eth0; ping -c 1 -W 5 ${made}.1 >/dev/null && echo gateway-ok`]);
    expect(out).toMatch(new RegExp(`inet ${made.replace(/\./g, '\\.')}\\.\\d+/24`));
    expect(out).toContain('gateway-ok');
    expect(reservations(ipamDir, created)).toEqual([]);
    expect(hostState(hostns, 'none-expected').veths).toEqual([]);
  });
});
