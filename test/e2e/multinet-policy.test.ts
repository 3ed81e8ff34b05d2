// Docker's `--internal` networks and ICC off
// (`com.docker.network.bridge.enable_icc=false` = the bridge's "portIsolation")
// with the built bridge and portmap plugins, real traffic:
// - internal: no default route, no masquerade element, nothing forwarded to
//   or from outside the network (even with a route added by hand), the
//   network's containers reach each other and the gateway, names resolve,
//   `-p` is refused with a clear error;
// - ICC off: two containers of the bridge cannot reach each other (not even
//   routed through the gateway), both reach the gateway, DNS and the
//   outside, and a published port answers the outside and the other container.
// The network's nft structure goes with its last container.
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { lookupUntil } from '../helpers/dns';
import { sh, shTry } from '../helpers/sandbox';
import { MultiNetEnv, SERVER, type ConfList } from './multinet-helpers';

jest.setTimeout(180000);
beforeAll(() => ensureBuilt('bridge', 'portmap'), 300000);

describe('internal networks and ICC off (bridge)', () => {
  let env: MultiNetEnv;
  beforeEach(() => { env = new MultiNetEnv(); });
  afterEach(() => env.sb.cleanup());

  /** Network 164 (I) or 165 (K) with name resolution and portmap; the outside routes it back to the host. */
  const list = (n: 164 | 165, extra: Record<string, unknown>): ConfList => {
    const dnsRun = env.sb.tmpdir('dns');
    fs.chmodSync(dnsRun, 0o755); // dnsmasq runs as nobody and reads its hosts files there
    sh('ip', ['-n', env.outside, 'route', 'replace', `10.${n}.0.0/24`, 'via', '10.160.0.1']);
    return {
      cniVersion: '1.1.0', name: `mnnet${n}`,
      plugins: [
        {
          type: 'bridge', bridge: `mnbr${n}`, isGateway: true, isDefaultGateway: true, ipMasq: true, stateDir: env.state,
          ipam: { type: 'host-local', dataDir: env.ipamDir, ranges: [[{ subnet: `10.${n}.0.0/24` }], [{ subnet: `fd00:${n}::/64` }]] },
          nameResolution: { runDir: dnsRun, upstream: ['10.160.0.2#5353'] },
          capabilities: { aliases: true },
          ...extra,
        },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true, dataDir: path.join(env.state, 'portmap') },
      ],
    };
  };
  const nftTables = (): string => sh('ip', ['netns', 'exec', env.host, 'nft', 'list', 'tables']);
  const addrOf = (r: any, family: 4 | 6 = 4): string => r.ips.map((i: any) => i.address.split('/')[0]).find((a: string) => a.includes(':') === (family === 6));

  it('--internal: no way out or in, the network itself works, names resolve, -p is refused, nothing is left', async () => {
    const I = list(164, { internal: true });
    const x = env.sb.netns('x');
    const y = env.sb.netns('y');
    const z = env.sb.netns('z');
    const rx = env.addList(I, 'ctr-x', x, 'eth0', { runtimeConfig: { aliases: { mnnet164: ['x'] } } });
    const ry = env.addList(I, 'ctr-y', y, 'eth0', { runtimeConfig: { aliases: { mnnet164: ['web'] } } });
    const rz = env.add(env.conf('A'), 'ctr-z', z, 'eth0');
    expect([rx.status, ry.status, rx.stderr + ry.stderr]).toEqual([0, 0, '']);
    const [ipx, ipy, ipz] = [addrOf(rx.json), addrOf(ry.json), addrOf(rz)];
    // No default route, of either family, and none reported; no masquerade element.
    expect(sh('ip', ['-n', x, 'route', 'show', 'default']).trim()).toBe('');
    expect(sh('ip', ['-n', x, '-6', 'route', 'show', 'default']).trim()).toBe('');
    expect(rx.json.routes ?? []).toEqual([]);
    expect(shTry('ip', ['netns', 'exec', env.host, 'nft', 'get', 'element', 'inet', 'node_cni_masq', 'masq4', `{ ${ipx} }`]).status).not.toBe(0);
    // The network itself: the other container, the gateway, the names.
    expect(env.ping(x, ipy)).toBe(true);
    expect(env.ping(x, '10.164.0.1')).toBe(true);
    expect(lookupUntil(env.sb, x, 'web', '10.164.0.1', (a) => !!a?.length)).toEqual([ipy]);
    // Nothing crosses, even with routes added by hand: to the outside, from it, to and from another network.
    sh('ip', ['-n', x, 'route', 'add', 'default', 'via', '10.164.0.1']);
    await env.startServer(7400);
    expect(env.probe(x, SERVER, 7400, 1000)).toBeUndefined();
    expect(env.ping(env.outside, ipx)).toBe(false);
    expect(env.ping(x, ipz)).toBe(false);
    expect(env.ping(z, ipx)).toBe(false);
    expect(env.probe(z, SERVER, 7400)).toBe(ipz); // the host forwards for the other network as before
    // CHECK passes; a published port is refused with a clear error and leaves nothing.
    const chk = env.run('CHECK', { cniVersion: '1.1.0', name: 'mnnet164', ...I.plugins[0], prevResult: rx.json }, { id: 'ctr-x', netns: env.sb.nsPath(x), ifname: 'eth0' });
    expect([chk.status, chk.stdout]).toEqual([0, '']);
    const w = env.sb.netns('w');
    const pub = env.addList(I, 'ctr-w', w, 'eth0', { runtimeConfig: { portMappings: [{ hostPort: 8090, containerPort: 80, protocol: 'tcp' }] } });
    expect(pub.status).not.toBe(0);
    expect(JSON.parse(pub.stdout)).toMatchObject({
      code: 7, msg: 'portmap: network "mnnet164" is internal (its bridge "mnbr164" forwards nothing to or from outside the network), so it cannot publish tcp port 8090; publish ports on a network of the container that is not internal',
    });
    env.delList(I, 'ctr-w', w, 'eth0', { runtimeConfig: { portMappings: [{ hostPort: 8090, containerPort: 80, protocol: 'tcp' }] }, prevResult: pub.json });
    expect(nftTables()).not.toMatch(/cni_portmap/);
    // The last container of the network takes its rules along.
    expect(nftTables()).toMatch(/node_cni_netpolicy/);
    env.delList(I, 'ctr-x', x, 'eth0', { prevResult: rx.json });
    env.delList(I, 'ctr-y', y, 'eth0', { prevResult: ry.json });
    expect(nftTables()).not.toMatch(/node_cni_netpolicy/);
    env.del(env.conf('A'), 'ctr-z', z, 'eth0');
  });

  // br_netfilter (bridge-nf-call-iptables, per namespace) decides whether a DNAT'd packet between two
  // ports of one bridge is bridged (1, this machine's default) or routed through the host (0).
  it.each([1, 0])('ICC off (portIsolation), bridge-nf-call-iptables=%i: containers cannot reach each other; the gateway, DNS, the outside and published ports work', async (brnf) => {
    const K = list(165, { portIsolation: true, ipMasq: false });
    sh('ip', ['netns', 'exec', env.host, 'sysctl', '-qw', `net.bridge.bridge-nf-call-iptables=${brnf}`, `net.bridge.bridge-nf-call-ip6tables=${brnf}`]);
    const p = env.sb.netns('p');
    const q = env.sb.netns('q');
    const ports = { portMappings: [{ hostPort: 8091, containerPort: 80, protocol: 'tcp' }] };
    const rp = env.addList(K, 'ctr-p', p, 'eth0', { runtimeConfig: { aliases: { mnnet165: ['p'] } } });
    const rq = env.addList(K, 'ctr-q', q, 'eth0', { runtimeConfig: { aliases: { mnnet165: ['q'] }, ...ports } });
    expect([rp.status, rq.status]).toEqual([0, 0]);
    const [ipp, ipq] = [addrOf(rp.json), addrOf(rq.json)];
    // The reference's flag: isolated bridge ports.
    expect(sh('ip', ['netns', 'exec', env.host, 'bridge', '-d', 'link', 'show', 'dev', rq.json.interfaces[1].name])).toMatch(/isolated on/);
    expect(env.ping(p, ipq)).toBe(false);
    expect(env.ping(q, ipp)).toBe(false);
    expect(env.ping(p, addrOf(rq.json, 6))).toBe(false);
    // Not even routed through the gateway (Docker's ICC rule: no forwarding bridge to bridge).
    sh('ip', ['-n', p, 'route', 'add', `${ipq}/32`, 'via', '10.165.0.1']);
    sh('ip', ['-n', q, 'route', 'add', `${ipp}/32`, 'via', '10.165.0.1']);
    expect(env.ping(p, ipq)).toBe(false);
    // Gateway, DNS, the outside.
    for (const ns of [p, q]) expect(env.ping(ns, '10.165.0.1')).toBe(true);
    expect(lookupUntil(env.sb, p, 'q', '10.165.0.1', (a) => !!a?.length)).toEqual([ipq]);
    await env.startServer(7401);
    expect(env.probe(p, SERVER, 7401)).toBe(ipp);
    expect(env.probe(q, SERVER, 7401)).toBe(ipq);
    // q's published port answers the outside. From p through the host: when the host routes it,
    // masqueraded to the gateway so that q's reply is routed back too; when br_netfilter bridges the
    // DNAT'd packet straight from p's port to q's, the isolated ports drop it (as they would without us).
    await env.startServer(80, q);
    expect(env.probe(env.outside, '10.160.0.1', 8091)).toBe('10.160.0.2');
    expect(env.probe(p, '10.160.0.1', 8091, 1000)).toBe(brnf ? undefined : '10.165.0.1');
    for (const [ns, r, id] of [[p, rp, 'ctr-p'], [q, rq, 'ctr-q']] as const) {
      const chk = env.run('CHECK', { cniVersion: '1.1.0', name: 'mnnet165', ...K.plugins[0], prevResult: r.json }, { id, netns: env.sb.nsPath(ns), ifname: 'eth0' });
      expect([chk.status, chk.stdout]).toEqual([0, '']);
    }
    sh('ip', ['netns', 'exec', env.host, 'nft', 'flush', 'chain', 'inet', 'node_cni_netpolicy', 'forward']);
    const broken = env.run('CHECK', { cniVersion: '1.1.0', name: 'mnnet165', ...K.plugins[0], prevResult: rp.json }, { id: 'ctr-p', netns: env.sb.nsPath(p), ifname: 'eth0' });
    expect(JSON.parse(broken.stdout).msg).toBe('bridge CHECK: the forwarding rules of network "mnnet165" (table inet node_cni_netpolicy) are missing');
    // The next ADD repairs it.
    const r = env.sb.netns('r');
    const rr = env.addList(K, 'ctr-r', r, 'eth0');
    expect(rr.status).toBe(0);
    expect(env.ping(p, ipq)).toBe(false);
    env.delList(K, 'ctr-r', r, 'eth0', { prevResult: rr.json });
    env.delList(K, 'ctr-p', p, 'eth0', { prevResult: rp.json });
    env.delList(K, 'ctr-q', q, 'eth0', { runtimeConfig: ports, prevResult: rq.json });
    expect(nftTables()).not.toMatch(/node_cni_netpolicy|cni_portmap/);
  });
});
