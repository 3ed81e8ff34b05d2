// Published ports and several networks: a container on isolated network A
// reaches a port published by a container on isolated network B through the
// host's address, as in Docker (containers/netavark#709), while the direct
// path between the networks stays closed.
import * as path from 'path';
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
});
