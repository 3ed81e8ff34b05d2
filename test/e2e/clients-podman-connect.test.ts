// podman 4.3's own system test "podman network connect/disconnect with port
// forwarding" (test/system/500-networking.bats), step by step, through real
// podman with its CNI backend: a container with -p on one network, then
// disconnected, connected again, connected to a second network (podman
// passes the container's -p mappings to every network it joins) and
// disconnected from the first; the published port answers whenever the
// container is on a network, and from the host's localhost. Run on our
// plugins and on the reference's (/usr/lib/cni): both pass. Then the default
// route: it moves to the second network when the first is disconnected.
import { ensureBuilt } from '../helpers/build';
import {
  PODMAN_RUN_FLAGS, Podman, hostState, makeBusyboxImage, missingBinary, randomSubnets, removeHostState,
} from '../helpers/clients';
import { DIST_BIN, REFERENCE_BIN, Sandbox, shTry } from '../helpers/sandbox';

const missing = missingBinary(['podman', 'runc', 'conmon', 'nsenter', 'nc']);
if (missing) console.warn(`clients-podman-connect: skipped, "${missing}" is not installed (scripts/setup.sh installs it)`);
const describeIfPodman = missing ? describe.skip : describe;

jest.setTimeout(300000);

describeIfPodman('podman network connect/disconnect with port forwarding (podman 4.3 system test)', () => {
  let image: { rootfs: string; name: string };
  const runs: Sandbox[] = [];
  const nets: string[] = [];
  const imageBox = new Sandbox('mnpi');

  beforeAll(() => {
    ensureBuilt('bridge', 'portmap', 'host-local', 'loopback', 'firewall', 'tuning');
    image = makeBusyboxImage(imageBox.tmpdir('-img'));
  }, 120000);
  afterAll(() => {
    for (const r of runs) r.cleanup();
    nets.forEach(removeHostState);
    imageBox.cleanup();
  }, 180000);

  /** The system test's steps on one "host" whose podman uses only `pluginDir`: what each curl got. */
  function scenario(pluginDir: string): Record<string, unknown> {
    const sb = new Sandbox('mnpc');
    runs.push(sb);
    const hostns = sb.netns('h');
    const podman = new Podman(sb, hostns, pluginDir);
    podman.must(['import', image.rootfs, image.name]);
    const [n1, n2] = [`${sb.tag}-1`, `${sb.tag}-2`];
    nets.push(n1, n2);
    podman.must(['network', 'create', '--subnet', `${randomSubnets().net}.0/24`, n1]);
    podman.must(['network', 'create', '--subnet', `${randomSubnets().net}.0/24`, n2]);
    const port = 18000 + Math.floor(Math.random() * 1000);
    const cid = podman.must(['run', '-d', ...PODMAN_RUN_FLAGS, '--network', n1, '-p', `${port}:80`, image.name, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const curl = (): boolean => {
      const r = shTry('ip', ['netns', 'exec', hostns, 'nc', '-w', '3', '127.0.0.1', String(port)], { input: 'GET / HTTP/1.0\r\n\r\n', timeout: 10000 });
      return r.status === 0 && r.stdout.includes('hello from busybox');
    };
    // busybox ip: every route, spaced its own way
    const defaults = (): string[] => podman.must(['exec', cid, 'ip', 'route']).split('\n').map((l) => l.trim().replace(/\s+/g, ' ')).filter((l) => l.startsWith('default'));
    const steps: Record<string, unknown> = {};
    const step = (name: string, args: string[] | undefined): void => {
      const r = args ? podman.run(args) : undefined;
      steps[name] = { ok: r ? r.status === 0 : true, curl: curl(), ...(r && r.status !== 0 ? { error: r.stderr.trim().split('\n').pop() } : {}) };
    };
    step('run -p', undefined);
    step('disconnect n1', ['network', 'disconnect', n1, cid]);
    step('connect n1', ['network', 'connect', n1, cid]);
    step('connect n2', ['network', 'connect', n2, cid]);
    steps['default routes on n1 and n2'] = defaults().length;
    step('disconnect n1 again', ['network', 'disconnect', n1, cid]);
    steps['default route after'] = defaults().join('; ');
    step('disconnect n2', ['network', 'disconnect', n2, cid]);
    podman.must(['rm', '--force', '--time', '0', cid]);
    podman.must(['network', 'rm', n1, n2]);
    steps['left on the host'] = hostState(hostns, cid);
    return steps;
  }

  it('passes on ours and on the reference; ours keeps a default route per network and moves to the next', () => {
    const ours = scenario(DIST_BIN);
    const reference = scenario(REFERENCE_BIN);
    const want = {
      'run -p': { ok: true, curl: true },
      'disconnect n1': { ok: true, curl: false },
      'connect n1': { ok: true, curl: true },
      'connect n2': { ok: true, curl: true },
      'disconnect n1 again': { ok: true, curl: true },
      'disconnect n2': { ok: true, curl: false },
      'left on the host': { veths: [], nftMentions: [] },
    };
    expect(ours).toMatchObject(want);
    expect(reference).toMatchObject(want);
    // Ours: both default routes while on both networks, the second one's left after the first goes.
    expect(ours['default routes on n1 and n2']).toBe(2);
    expect(ours['default route after']).toMatch(/^default via \S+ dev eth1 metric 1000001$/);
  });
});
