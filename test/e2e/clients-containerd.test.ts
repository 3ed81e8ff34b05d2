// containerd 1.6: a private daemon (own root/state/socket, CRI CNI dirs set to
// ours) and `ctr run --cni`, which reads /etc/cni/net.d and /opt/cni/bin: ctr
// runs in a private mount namespace where those are our conf dir and dist/bin
// (scripts/clients/ctr-cni.sh) and in a throwaway host network namespace.
// Checks the address, the gateway, and that deleting the container leaves no
// veth, reservation, nft element or cached result behind.
import * as fs from 'fs';
import * as path from 'path';
import {
  Containerd, bridgeConflist, cachedResults, hostState, makeBusyboxImage, missingBinary, ok,
  delFromLibcniCache, randomSubnets, removeHostState, reservations, waitFor,
} from '../helpers/clients';
import { ensureBuilt } from '../helpers/build';
import { Sandbox } from '../helpers/sandbox';

const missing = missingBinary(['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc', 'unshare', 'nsenter']);
if (missing) console.warn(`clients-containerd: skipped, "${missing}" is not installed (scripts/setup.sh installs it)`);
const describeIfContainerd = missing ? describe.skip : describe;

describeIfContainerd('containerd 1.6 `ctr run --cni` on our plugins', () => {
  const sb = new Sandbox('clc');
  const net = `${sb.tag}-net`;
  const { net: prefix } = randomSubnets();
  const inRange = new RegExp(`inet (${prefix.replace(/\./g, '\\.')}\\.\\d+)/24`);
  let ctd: Containerd;
  let hostns: string;
  let dataDir: string;
  let image: string;

  beforeAll(() => {
    ensureBuilt('bridge', 'portmap', 'host-local', 'loopback');
    hostns = sb.netns('h');
    dataDir = sb.tmpdir('-cni');
    ctd = new Containerd(sb, hostns);
    sb.onCleanup(() => removeHostState(net));
    ctd.writeConflist('10-ours.conflist', bridgeConflist({ name: net, bridge: `${sb.tag}b`, prefix, dataDir }));
    ctd.start();
    const img = makeBusyboxImage(sb.tmpdir('-img'));
    ok(ctd.ctr(['images', 'import', img.oci]), 'ctr images import');
    image = img.name;
  }, 120000);

  afterAll(() => sb.cleanup(), 120000);

  function expectClean(id: string): void {
    const state = hostState(hostns, ctd.fullId(id));
    expect(state.veths).toEqual([]);
    expect(state.nftMentions).toEqual([]);
    expect(reservations(path.join(dataDir, 'ipam'), net)).toEqual([]);
    expect(cachedResults(net)).toEqual([]);
  }

  it('run --rm: an address in the range, the gateway answers, and DEL (sent without a netns) cleans up', () => {
    const out = ok(ctd.ctr(['run', '--cni', '--rm', image, 'c1', 'sh', '-c',
      `ip -4 -o addr show eth0; ping -c 1 -W 5 ${prefix}.1 >/dev/null && echo gateway-ok`]), 'ctr run --cni --rm');
    expect(out).toMatch(inRange);
    expect(out).toContain('gateway-ok');
    expectClean('c1');
  });

  it('run -d: address, gateway and state while running; ctr 1.6 never DELs it, a libcni-style DEL cleans up', () => {
    ok(ctd.ctr(['run', '--cni', '-d', image, 'c2', 'sleep', '600']), 'ctr run --cni -d');
    const id = ctd.fullId('c2');
    const addr = ok(ctd.ctr(['task', 'exec', '--exec-id', 'a1', 'c2', 'ip', '-4', '-o', 'addr', 'show', 'eth0']), 'ctr task exec ip');
    const ip = inRange.exec(addr)?.[1];
    expect(ip).toBeDefined();
    ok(ctd.ctr(['task', 'exec', '--exec-id', 'a2', 'c2', 'ping', '-c', '1', '-W', '5', `${prefix}.1`]), 'ping the gateway');

    // What is there while it runs, keyed by libcni's "<namespace>-<id>".
    const reserved = (): string[] => reservations(path.join(dataDir, 'ipam'), net);
    expect(reserved()).toEqual([ip]);
    expect(fs.readFileSync(path.join(dataDir, 'ipam', net, ip!), 'utf8')).toContain(id);
    const running = hostState(hostns, id);
    expect(running.veths).toHaveLength(1);
    expect(running.nftMentions.length).toBeGreaterThan(0);
    expect(cachedResults(net)).toEqual([`${net}-${id}-eth0`]);

    ok(ctd.ctr(['task', 'kill', '--signal', 'SIGKILL', 'c2']), 'ctr task kill');
    expect(waitFor(() => /STOPPED/.test(ctd.ctr(['task', 'ls']).stdout))).toBe(true);
    ok(ctd.ctr(['task', 'rm', 'c2']), 'ctr task rm');
    ok(ctd.ctr(['container', 'rm', 'c2']), 'ctr container rm');
    // ctr 1.6 has no CNI teardown for detached containers (only `run --rm` DELs): the veth died
    // with the namespace, but the reservation, masquerade element and cached result remain...
    expect(waitFor(() => hostState(hostns, id).veths.length === 0)).toBe(true);
    expect(reserved()).toEqual([ip]);
    expect(hostState(hostns, id).nftMentions.length).toBeGreaterThan(0);
    // ...until a runtime DELs from libcni's cache, without the namespace.
    delFromLibcniCache({ hostns, network: net, containerId: id });
    expectClean('c2');
  });
});
