// The conflist [bridge, portmap] as a runtime runs it: ADD in order (portmap
// gets bridge's result as prevResult), DEL in reverse with the final result.
import * as path from 'path';
import { DIST_BIN, Sandbox } from '../helpers/sandbox';
import { buildTopology, eventually, fetchFrom, HOST_ADDR4, nftTable, runPortmap, startHttpd, startUdpEcho, Topology, udpAsk } from './portmap-helpers';
import { ensureBuilt } from '../helpers/build';
import { cniEnv } from '../helpers/cni';
import { SUPPORTED_VERSIONS, versionAtLeast } from '../../lib/cni/version';


jest.setTimeout(180000);

beforeAll(() => ensureBuilt('bridge', 'portmap'));

describe('conflist [bridge, portmap]', () => {
  let sb: Sandbox;
  let topo: Topology;
  let dirs: { ipam: string; state: string; data: string };

  beforeEach(() => {
    sb = new Sandbox('pb');
    topo = buildTopology(sb);
    dirs = { ipam: sb.tmpdir('ipam'), state: sb.tmpdir('state'), data: sb.tmpdir('data') };
  });
  afterEach(() => sb.cleanup());

  const conflist = (cniVersion: string) => ({
    cniVersion,
    name: 'pbnet',
    plugins: [
      { type: 'bridge', bridge: 'pbr0', isDefaultGateway: true, ipMasq: true, hairpinMode: true, stateDir: dirs.state, ipam: { type: 'host-local', subnet: '10.89.0.0/24', dataDir: dirs.ipam } },
      { type: 'portmap', capabilities: { portMappings: true }, dataDir: dirs.data },
    ],
  });

  function run(bin: string, cmd: string, id: string, ns: string, conf: unknown): any {
    const env = cniEnv({ command: cmd, containerId: id, netns: sb.nsPath(ns), ifname: 'eth0' });
    const r = runPortmap(sb, topo.host, env, conf, path.join(DIST_BIN, bin));
    if (r.status !== 0) throw new Error(`${bin} ${cmd} ${id}: ${r.stdout} ${r.stderr}`);
    return r.json;
  }

  /** libcni's ADD of a conflist: returns the final result. */
  function addNetwork(id: string, ns: string, cniVersion: string, portMappings: unknown[]): any {
    const list = conflist(cniVersion);
    let prev: unknown;
    for (const p of list.plugins) {
      const conf: Record<string, unknown> = { cniVersion, name: list.name, ...p };
      if (prev) conf.prevResult = prev;
      if (p.type === 'portmap') conf.runtimeConfig = { portMappings };
      prev = run(p.type, 'ADD', id, ns, conf);
    }
    return prev;
  }

  function delNetwork(id: string, ns: string, cniVersion: string, result: unknown): void {
    const list = conflist(cniVersion);
    for (const p of [...list.plugins].reverse()) {
      const conf: Record<string, unknown> = { cniVersion, name: list.name, ...p };
      if (!cniVersion.startsWith('0.3')) conf.prevResult = result;
      run(p.type, 'DEL', id, ns, conf);
    }
  }

  it.each(SUPPORTED_VERSIONS.filter((v) => versionAtLeast(v, '0.3.1')))('cniVersion %s: published ports work from outside, the host, localhost and hairpin; DEL of one container leaves the other', async (v) => {
    const a = sb.netns('a');
    const b = sb.netns('b');
    startHttpd(sb, a, 'from a');
    startHttpd(sb, b, 'from b');
    startUdpEcho(sb, a, 7000);
    const ra = addNetwork('pb-ctr-a', a, v, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 7000, containerPort: 7000, protocol: 'udp' }]);
    const rb = addNetwork('pb-ctr-b', b, v, [{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }]);
    expect(ra.cniVersion).toBe(v);

    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8080))).toBe('from a');
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8081))).toBe('from b');
    expect(fetchFrom(sb, topo.host, HOST_ADDR4, 8080)).toBe('from a');
    expect(fetchFrom(sb, topo.host, '127.0.0.1', 8080)).toBe('from a');
    expect(fetchFrom(sb, a, HOST_ADDR4, 8080)).toBe('from a'); // hairpin
    expect(fetchFrom(sb, b, HOST_ADDR4, 8080)).toBe('from a'); // neighbour through the host port
    expect(await eventually(() => udpAsk(sb, topo.other, HOST_ADDR4, 7000))).toBe('echo:ping');

    // A third container asking for a taken port is refused, and its chain leaves nothing.
    const c = sb.netns('c');
    expect(() => addNetwork('pb-ctr-c', c, v, [{ hostPort: 8081, containerPort: 80 }])).toThrow(/already published by container "pb-ctr-b"/);

    if (!v.startsWith('0.3')) {
      const list = conflist(v);
      run('portmap', 'CHECK', 'pb-ctr-a', a, { cniVersion: v, name: list.name, ...list.plugins[1], prevResult: ra, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80 }, { hostPort: 7000, containerPort: 7000, protocol: 'udp' }] } });
    }

    delNetwork('pb-ctr-a', a, v, ra);
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8080)).toBeUndefined();
    expect(udpAsk(sb, topo.other, HOST_ADDR4, 7000)).toBeUndefined();
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8081)).toBe('from b');
    expect(nftTable(sb, topo.host)).not.toMatch(/pb-ctr-a|pb-ctr-c/);
    delNetwork('pb-ctr-b', b, v, rb);
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8081)).toBeUndefined();
    expect(nftTable(sb, topo.host)).toBe(''); // the last attachment took the network's structure and the table with it
  });
});
