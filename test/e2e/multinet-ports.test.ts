// Published ports and several networks:
// - a container on isolated network A reaches a port published by a
//   container on isolated network B through the host's address, as in Docker
//   (containers/netavark#709), while the direct path stays closed;
// - a container on networks A and B with the same -p on both (podman passes a
//   container's mappings to every network it joins): one network answers
//   (the one of the default route: gwPriority, then the first attached), the
//   next takes over when it leaves, another container is still refused.
import * as fs from 'fs';
import * as path from 'path';
import { sh } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { MultiNetEnv, type ConfList } from './multinet-helpers';

jest.setTimeout(180000);
beforeAll(() => ensureBuilt('bridge', 'portmap'), 300000);

const HOST = '10.160.0.1';

describe('published ports across networks', () => {
  let env: MultiNetEnv;
  beforeEach(() => { env = new MultiNetEnv(); });
  afterEach(() => env.sb.cleanup());

  const list = (net: 'A' | 'B', extra: Record<string, unknown> = {}): ConfList => {
    const { cniVersion, name, ...bridge } = env.conf(net, extra);
    return {
      cniVersion: cniVersion as string, name: name as string,
      plugins: [bridge, { type: 'portmap', capabilities: { portMappings: true }, snat: true, dataDir: path.join(env.state, 'portmap') }],
    };
  };

  it('a container of isolated network A reaches a port published on isolated network B through the host, not directly', async () => {
    const a = env.sb.netns('a');
    const b = env.sb.netns('b');
    const A = list('A', { isolation: true });
    const B = list('B', { isolation: true });
    const ports = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };
    const ra = env.addList(A, 'ctr-a', a, 'eth0');
    const rb = env.addList(B, 'ctr-b', b, 'eth0', { runtimeConfig: ports });
    expect([ra.status, rb.status, rb.stderr]).toEqual([0, 0, '']);
    const ipA = ra.json.ips[0].address.split('/')[0];
    const ipB = rb.json.ips[0].address.split('/')[0];
    await env.startServer(80, b);
    // Published: through the host's address and through A's own gateway address (both the host's).
    expect(env.probe(a, HOST, 8080)).toBe(ipA);
    expect(env.probe(a, '10.161.0.1', 8080)).toBe(ipA);
    // Isolation still holds for everything else.
    expect(env.probe(a, ipB, 80, 1000)).toBeUndefined();
    expect(env.ping(a, ipB)).toBe(false);
    // And from the outside, as ever.
    expect(env.probe(env.outside, HOST, 8080)).toBe('10.160.0.2');
    env.delList(B, 'ctr-b', b, 'eth0', { runtimeConfig: ports, prevResult: rb.json });
    env.delList(A, 'ctr-a', a, 'eth0', { prevResult: ra.json });
  });

  it('one container publishes the same port on A and B: the preferred network answers, the next takes over, others are refused', async () => {
    const c = env.sb.netns('c');
    const d = env.sb.netns('d');
    const A = list('A');
    const B = list('B');
    const ports = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };
    const add = (l: ConfList, ifname: string, args?: string) => {
      const r = env.addList(l, 'ctr-c', c, ifname, { runtimeConfig: ports, args });
      expect([r.status, r.stderr]).toEqual([0, '']);
      return r.json;
    };
    const ipOf = (r: any) => r.ips[0].address.split('/')[0];
    const answeredBy = () => env.probe(env.outside, HOST, 8080)?.split(' to ')[1];
    const checkAll = (pairs: Array<[ConfList, string, any]>) => {
      for (const [l, ifname, prev] of pairs) {
        for (const p of l.plugins) {
          const r = env.run('CHECK', { cniVersion: l.cniVersion, name: l.name, ...p, runtimeConfig: ports, prevResult: prev }, { id: 'ctr-c', netns: env.sb.nsPath(c), ifname });
          expect({ net: l.name, type: p.type, status: r.status, out: r.stdout }).toEqual({ net: l.name, type: p.type, status: 0, out: '' });
        }
      }
    };
    const ra = add(A, 'eth0');
    const rb = add(B, 'eth1');
    await env.startServer(80, c, { tellLocal: true });
    expect(answeredBy()).toBe(ipOf(ra));
    checkAll([[A, 'eth0', ra], [B, 'eth1', rb]]);
    // Another container asking for the port is refused, whatever its network.
    const taken = env.addList(A, 'ctr-d', d, 'eth0', { runtimeConfig: ports });
    // Both families' claims are held (A is dual-stack): the first is named, the other counted.
    expect(JSON.parse(taken.stdout).msg).toBe('portmap: host tcp port 8080 on every IPv4 address is already published by container "ctr-c" (network "mnnetA", interface "eth0") (and 1 more of the requested ports)');
    env.delList(A, 'ctr-d', d, 'eth0', { runtimeConfig: ports, prevResult: taken.json });
    // A leaves (network disconnect): B answers, with no ADD.
    env.delList(A, 'ctr-c', c, 'eth0', { runtimeConfig: ports, prevResult: ra });
    expect(answeredBy()).toBe(ipOf(rb));
    checkAll([[B, 'eth1', rb]]);
    // A comes back (network connect): attached after B, so B keeps the port...
    const ra2 = add(A, 'eth0');
    expect(answeredBy()).toBe(ipOf(rb));
    // ...unless it has the higher gateway priority, like its default route.
    env.delList(A, 'ctr-c', c, 'eth0', { runtimeConfig: ports, prevResult: ra2 });
    const ra3 = add(A, 'eth0', 'IgnoreUnknown=1;GW_PRIORITY=10');
    expect(env.via(c)).toBe('10.161.0.1');
    expect(answeredBy()).toBe(ipOf(ra3));
    checkAll([[A, 'eth0', ra3], [B, 'eth1', rb]]);
    env.delList(A, 'ctr-c', c, 'eth0', { runtimeConfig: ports, prevResult: ra3 });
    expect(answeredBy()).toBe(ipOf(rb));
    env.delList(B, 'ctr-c', c, 'eth1', { runtimeConfig: ports, prevResult: rb });
    expect(env.probe(env.outside, HOST, 8080, 1000)).toBeUndefined();
    // Nothing of the publications is left.
    expect(sh('ip', ['netns', 'exec', env.host, 'nft', 'list', 'tables'])).not.toMatch(/cni_portmap/);
    expect(fs.readdirSync(path.join(env.state, 'portmap'))).toEqual([]);
  });
});
