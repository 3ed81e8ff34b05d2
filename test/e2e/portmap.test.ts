// portmap e2e: the built dist/bin/portmap in a throwaway host namespace,
// containers wired by hand (a hand-written prevResult), real TCP/UDP traffic
// from another namespace ("another host"), from the host, and hairpin.
import * as fs from 'fs';
import { Sandbox } from '../helpers/sandbox';
import {
  addContainer, buildTopology, eventually, fetchFrom, HOST_ADDR4, HOST_ADDR4_B, HOST_ADDR6, nftTable, recordedAttachments, runPortmap, startHttpd, startUdpEcho, Topology, udpAsk,
} from './portmap-helpers';
import { SUPPORTED_VERSIONS, versionAtLeast } from '../../lib/cni/version';
import { cniEnv } from '../helpers/cni';


jest.setTimeout(120000);

const VERSIONS_WITH_RUNTIME_CONFIG = SUPPORTED_VERSIONS.filter((v) => versionAtLeast(v, '0.3.0'));

describe('portmap (hand-wired containers)', () => {
  let sb: Sandbox;
  let topo: Topology;
  let dataDir: string;

  beforeEach(() => {
    sb = new Sandbox('pm');
    topo = buildTopology(sb);
    dataDir = sb.tmpdir('data');
  });
  afterEach(() => sb.cleanup());

  const conf = (cniVersion: string, prevResult: unknown, portMappings?: unknown[], extra: Record<string, unknown> = {}) => ({
    cniVersion, name: 'pmnet', type: 'portmap', capabilities: { portMappings: true }, dataDir,
    ...(portMappings ? { runtimeConfig: { portMappings } } : {}), prevResult, ...extra,
  });
  const env = (cmd: string, id: string, ns: string) => cniEnv({ command: cmd, containerId: id, netns: sb.nsPath(ns), ifname: 'eth0' });

  it('publishes a TCP port to other hosts, the host, 127.0.0.1, IPv6 and hairpin; DEL removes exactly it', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.1.0');
    startHttpd(sb, c1.ns, 'hello from c1');
    const maps = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
    const add = runPortmap(sb, topo.host, env('ADD', 'ctr-one', c1.ns), conf('1.1.0', c1.prevResult, maps));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    expect(add.json).toEqual(c1.prevResult); // chained: prevResult passes through unchanged

    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8080))).toBe('hello from c1');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4_B, 8080)).toBe('hello from c1'); // any local address
    expect(fetchFrom(sb, topo.other, HOST_ADDR6, 8080)).toBe('hello from c1');
    expect(fetchFrom(sb, topo.host, HOST_ADDR4, 8080)).toBe('hello from c1');
    expect(fetchFrom(sb, topo.host, '127.0.0.1', 8080)).toBe('hello from c1');
    expect(fetchFrom(sb, c1.ns, HOST_ADDR4, 8080)).toBe('hello from c1'); // hairpin
    expect(fetchFrom(sb, c1.ns, HOST_ADDR6, 8080)).toBe('hello from c1'); // hairpin, IPv6

    const check = runPortmap(sb, topo.host, env('CHECK', 'ctr-one', c1.ns), conf('1.1.0', c1.prevResult, maps));
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);

    // DEL without runtimeConfig and without prevResult still finds the mappings.
    const del = runPortmap(sb, topo.host, env('DEL', 'ctr-one', c1.ns), conf('1.1.0', undefined));
    expect(del.stdout + del.stderr).toBe('');
    expect(del.status).toBe(0);
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8080)).toBeUndefined();
    expect(fetchFrom(sb, topo.host, '127.0.0.1', 8080)).toBeUndefined();
    const table = nftTable(sb, topo.host);
    expect(table).not.toMatch(/ctr-one|10\.88\.0\.5|fd88::5/);
    expect(table).toBe(''); // the network's last attachment: its chains and maps, and the table, are gone
    expect(fs.existsSync(`${dataDir}/pmnet`)).toBe(false);
    // CHECK after DEL fails; DEL again is fine.
    expect(runPortmap(sb, topo.host, env('CHECK', 'ctr-one', c1.ns), conf('1.1.0', c1.prevResult, maps)).status).not.toBe(0);
    expect(runPortmap(sb, topo.host, env('DEL', 'ctr-one', c1.ns), conf('1.1.0', undefined)).status).toBe(0);
  });

  it('publishes UDP (echo through the mapping), and hostIP limits a mapping to that address', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.0.0');
    startHttpd(sb, c1.ns, 'hello');
    startUdpEcho(sb, c1.ns, 5353);
    const maps = [
      { hostPort: 5300, containerPort: 5353, protocol: 'udp' },
      { hostPort: 9090, containerPort: 80, protocol: 'tcp', hostIP: HOST_ADDR4_B },
    ];
    const add = runPortmap(sb, topo.host, env('ADD', 'ctr-udp', c1.ns), conf('1.0.0', c1.prevResult, maps));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    expect(await eventually(() => udpAsk(sb, topo.other, HOST_ADDR4, 5300))).toBe('echo:ping');
    expect(await eventually(() => udpAsk(sb, topo.other, HOST_ADDR6, 5300), 5)).toBe('echo:ping'); // one datagram: it may be lost while IPv6 neighbour discovery runs
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4_B, 9090))).toBe('hello');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 9090)).toBeUndefined();
    expect(fetchFrom(sb, topo.other, HOST_ADDR6, 9090)).toBeUndefined(); // an IPv4 hostIP publishes no IPv6
    expect(runPortmap(sb, topo.host, env('DEL', 'ctr-udp', c1.ns), conf('1.0.0', c1.prevResult, maps)).status).toBe(0);
    expect(udpAsk(sb, topo.other, HOST_ADDR4, 5300)).toBeUndefined();
    expect(fetchFrom(sb, topo.other, HOST_ADDR4_B, 9090)).toBeUndefined();
  });

  it('ADD flushes the stale conntrack entry of a UDP flow that reached the host before the port was published', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.0.0');
    const c2 = addContainer(sb, topo, 'c2', 6, '1.0.0');
    startUdpEcho(sb, c2.ns, 5353);
    // Another publication makes conntrack track the host namespace's traffic.
    expect(runPortmap(sb, topo.host, env('ADD', 'ctr-first', c1.ns), conf('1.0.0', c1.prevResult, [{ hostPort: 8080, containerPort: 80 }])).status).toBe(0);
    // A flow from a fixed source port to 5300 before it is published: tracked as host-bound, no DNAT.
    expect(udpAsk(sb, topo.other, HOST_ADDR4, 5300, 40123, 300)).toBeUndefined();
    expect(sb.inNs(topo.host, 'conntrack', ['-L', '-p', 'udp', '--orig-port-dst', '5300']).stdout).toMatch(/sport=40123/);
    expect(runPortmap(sb, topo.host, env('ADD', 'ctr-udp', c2.ns), conf('1.0.0', c2.prevResult, [{ hostPort: 5300, containerPort: 5353, protocol: 'udp' }])).status).toBe(0);
    // The same flow now reaches the container: the stale entry is gone, the next datagram is NATed.
    expect(await eventually(() => udpAsk(sb, topo.other, HOST_ADDR4, 5300, 40123))).toBe('echo:ping');
    for (const id of ['ctr-udp', 'ctr-first']) expect(runPortmap(sb, topo.host, env('DEL', id, c1.ns), conf('1.0.0', undefined)).status).toBe(0);
    expect(nftTable(sb, topo.host)).toBe('');
  });

  it('10 000 mappings: ADD and DEL are one transaction each; a refused ADD leaves nothing', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.0.0');
    const c2 = addContainer(sb, topo, 'c2', 6, '1.0.0');
    startHttpd(sb, c1.ns, 'many');
    startUdpEcho(sb, c1.ns, 5353);
    const many = Array.from({ length: 10000 }, (_, i) => (i % 2 ? { hostPort: 20000 + i, containerPort: 5353, protocol: 'udp' } : { hostPort: 20000 + i, containerPort: 80, protocol: 'tcp' }));
    // Someone holds the last port: the whole ADD is refused, nothing of it stays.
    expect(runPortmap(sb, topo.host, env('ADD', 'ctr-holder', c2.ns), conf('1.0.0', c2.prevResult, [{ hostPort: 29999, containerPort: 53, protocol: 'udp' }])).status).toBe(0);
    const before = nftTable(sb, topo.host);
    const refused = runPortmap(sb, topo.host, env('ADD', 'ctr-many', c1.ns), conf('1.0.0', c1.prevResult, many));
    expect(refused.json).toMatchObject({ code: 7, msg: expect.stringMatching(/udp port 29999 .*already published by container "ctr-holder"/) });
    expect(refused.stdout.length).toBeLessThan(4096);
    expect(nftTable(sb, topo.host)).toBe(before);
    expect(recordedAttachments(`${dataDir}/pmnet`)).toEqual(['ctr-holder:eth0']);
    expect(runPortmap(sb, topo.host, env('DEL', 'ctr-holder', c2.ns), conf('1.0.0', undefined)).status).toBe(0);
    expect(nftTable(sb, topo.host)).toBe('');

    const add = runPortmap(sb, topo.host, env('ADD', 'ctr-many', c1.ns), conf('1.0.0', c1.prevResult, many));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 20000))).toBe('many');
    expect(fetchFrom(sb, topo.other, HOST_ADDR6, 29998)).toBe('many');
    expect(await eventually(() => udpAsk(sb, topo.other, HOST_ADDR4, 29999))).toBe('echo:ping');
    const del = runPortmap(sb, topo.host, env('DEL', 'ctr-many', c1.ns), conf('1.0.0', undefined));
    expect(del.stdout + del.stderr).toBe('');
    expect(del.status).toBe(0);
    expect(nftTable(sb, topo.host)).toBe('');
    expect(fs.existsSync(`${dataDir}/pmnet`)).toBe(false);
  });

  it('refuses a host port another container already publishes, and DEL of one container leaves the other working', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.1.0');
    const c2 = addContainer(sb, topo, 'c2', 6, '1.1.0');
    startHttpd(sb, c1.ns, 'one');
    startHttpd(sb, c2.ns, 'two');
    expect(runPortmap(sb, topo.host, env('ADD', 'ctr-a', c1.ns), conf('1.1.0', c1.prevResult, [{ hostPort: 8080, containerPort: 80 }])).status).toBe(0);

    const clash = runPortmap(sb, topo.host, env('ADD', 'ctr-b', c2.ns), conf('1.1.0', c2.prevResult, [{ hostPort: 8081, containerPort: 80 }, { hostPort: 8080, containerPort: 80 }]));
    expect(clash.status).not.toBe(0);
    expect(clash.json.msg).toMatch(/host tcp port 8080 on every IPv4 address is already published by container "ctr-a" \(network "pmnet", interface "eth0"\)/);
    // Atomic: nothing of the refused ADD stays (8081 is not published either), c1 is untouched.
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8080))).toBe('one');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8081)).toBeUndefined();
    expect(nftTable(sb, topo.host)).not.toMatch(/ctr-b|10\.88\.0\.6/);
    // A DEL for the refused container (the runtime always sends one) must not touch c1.
    expect(runPortmap(sb, topo.host, env('DEL', 'ctr-b', c2.ns), conf('1.1.0', undefined)).status).toBe(0);
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8080)).toBe('one');

    expect(runPortmap(sb, topo.host, env('ADD', 'ctr-b', c2.ns), conf('1.1.0', c2.prevResult, [{ hostPort: 8081, containerPort: 80 }])).status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8081))).toBe('two');
    expect(runPortmap(sb, topo.host, env('DEL', 'ctr-a', c1.ns), conf('1.1.0', undefined)).status).toBe(0);
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8080)).toBeUndefined();
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8081)).toBe('two');
    expect(fetchFrom(sb, topo.host, '127.0.0.1', 8081)).toBe('two');
    expect(nftTable(sb, topo.host)).not.toMatch(/ctr-a|10\.88\.0\.5/);
  });

  it('GC removes the mappings of attachments that are not valid any more', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.1.0');
    const c2 = addContainer(sb, topo, 'c2', 6, '1.1.0');
    startHttpd(sb, c1.ns, 'one');
    startHttpd(sb, c2.ns, 'two');
    expect(runPortmap(sb, topo.host, env('ADD', 'ctr-a', c1.ns), conf('1.1.0', c1.prevResult, [{ hostPort: 8080, containerPort: 80 }])).status).toBe(0);
    expect(runPortmap(sb, topo.host, env('ADD', 'ctr-b', c2.ns), conf('1.1.0', c2.prevResult, [{ hostPort: 8081, containerPort: 80 }])).status).toBe(0);
    const gc = runPortmap(sb, topo.host, { CNI_COMMAND: 'GC' }, {
      cniVersion: '1.1.0', name: 'pmnet', type: 'portmap', dataDir, 'cni.dev/valid-attachments': [{ containerID: 'ctr-b', ifname: 'eth0' }],
    });
    expect(gc.stdout + gc.stderr).toMatch(/^(portmap GC: removing port mappings of stale attachment ctr-a\/eth0\n)?$/);
    expect(gc.status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8081))).toBe('two');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8080)).toBeUndefined();
    expect(nftTable(sb, topo.host)).not.toMatch(/ctr-a/);
  });

  it('with no portMappings, ADD passes prevResult through and creates nothing', () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.1.0');
    const add = runPortmap(sb, topo.host, env('ADD', 'ctr-none', c1.ns), conf('1.1.0', c1.prevResult));
    expect(add.status).toBe(0);
    expect(add.json).toEqual(c1.prevResult);
    expect(nftTable(sb, topo.host)).toBe('');
    expect(fs.existsSync(`${dataDir}/pmnet`)).toBe(false);
  });

  it.each(VERSIONS_WITH_RUNTIME_CONFIG)('cniVersion %s: ADD, traffic, CHECK, DEL, nothing left', async (v) => {
    const c1 = addContainer(sb, topo, 'c1', 5, v);
    startHttpd(sb, c1.ns, `v${v}`);
    const maps = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
    const add = runPortmap(sb, topo.host, env('ADD', 'ctr-v', c1.ns), conf(v, c1.prevResult, maps));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    expect(add.json).toEqual(c1.prevResult);
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8080))).toBe(`v${v}`);
    const check = runPortmap(sb, topo.host, env('CHECK', 'ctr-v', c1.ns), conf(v, c1.prevResult, maps));
    if (v.startsWith('0.3')) expect(check.json.code).toBe(1); // CHECK does not exist before 0.4.0
    else expect(check.status).toBe(0);
    expect(runPortmap(sb, topo.host, env('DEL', 'ctr-v', c1.ns), conf(v, undefined, maps)).status).toBe(0);
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8080)).toBeUndefined();
    expect(nftTable(sb, topo.host)).not.toMatch(/ctr-v/);
  });

  it('backend "iptables" with iptables-syntax conditions (the reference\'s default shape) works: translated to nft', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.1.0');
    startHttpd(sb, c1.ns, 'ipt');
    const maps = [{ hostPort: 8080, containerPort: 80 }];
    const extra = { backend: 'iptables', markMasqBit: 13, conditionsV4: ['!', '-s', '192.168.77.2'], conditionsV6: ['!', '-s', 'fd77::2'] };
    const add = runPortmap(sb, topo.host, env('ADD', 'ctr-i', c1.ns), conf('1.1.0', c1.prevResult, maps, extra));
    expect(add.stderr).toBe('');
    expect(add.status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.host, HOST_ADDR4, 8080))).toBe('ipt');
    expect(fetchFrom(sb, topo.host, HOST_ADDR6, 8080)).toBe('ipt');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8080)).toBeUndefined();
    expect(fetchFrom(sb, topo.other, HOST_ADDR6, 8080)).toBeUndefined();
    expect(nftTable(sb, topo.host)).toContain('ip saddr != 192.168.77.2');
  });

  it('refuses iptables conditions it cannot translate, with a clear message and nothing made', () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.1.0');
    const maps = [{ hostPort: 8080, containerPort: 80 }];
    const r1 = runPortmap(sb, topo.host, env('ADD', 'x', c1.ns), conf('1.1.0', c1.prevResult, maps, { conditionsV4: ['-m', 'conntrack', '--ctstate', 'NEW'] }));
    expect(r1.status).not.toBe(0);
    expect(r1.json).toMatchObject({ code: 7, msg: expect.stringMatching(/"-m conntrack" has no nftables translation/) });
    expect(nftTable(sb, topo.host)).toBe('');
  });

  it('conditionsV4 (nft syntax) restrict who reaches the port', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.1.0');
    startHttpd(sb, c1.ns, 'cond');
    const maps = [{ hostPort: 8080, containerPort: 80 }];
    expect(runPortmap(sb, topo.host, env('ADD', 'ctr-c', c1.ns), conf('1.1.0', c1.prevResult, maps, { conditionsV4: ['ip saddr != 192.168.77.2'] })).status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.host, HOST_ADDR4, 8080))).toBe('cond');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8080)).toBeUndefined();
    expect(fetchFrom(sb, topo.other, HOST_ADDR6, 8080)).toBe('cond'); // conditionsV6 is empty
  });

  it('declares the structure once, and again when it is missing or the network config changed', async () => {
    const c1 = addContainer(sb, topo, 'c1', 5, '1.1.0');
    const c2 = addContainer(sb, topo, 'c2', 6, '1.1.0');
    const c3 = addContainer(sb, topo, 'c3', 7, '1.1.0');
    startHttpd(sb, c1.ns, 'one');
    startHttpd(sb, c2.ns, 'two');
    startHttpd(sb, c3.ns, 'three');
    const add = (id: string, c: { ns: string; prevResult: unknown }, port: number, extra: Record<string, unknown> = {}) =>
      runPortmap(sb, topo.host, env('ADD', id, c.ns), conf('1.1.0', c.prevResult, [{ hostPort: port, containerPort: 80 }], extra));
    // First ADD declares with a condition that shuts out the other host.
    expect(add('sd-1', c1, 8081, { conditionsV4: ['ip saddr != 192.168.77.2'] }).status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.host, HOST_ADDR4, 8081))).toBe('one');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8081)).toBeUndefined();
    // Same config: elements only; the rules are still those of the first declaration, once.
    expect(add('sd-2', c2, 8082, { conditionsV4: ['ip saddr != 192.168.77.2'] }).status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.host, HOST_ADDR4, 8082))).toBe('two');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8082)).toBeUndefined();
    expect(nftTable(sb, topo.host).match(/ip saddr != 192\.168\.77\.2/g)).toHaveLength(4); // the two IPv4 lookups (each marks, then DNATs), not one set per ADD
    // Changed config (no condition): the next ADD re-declares, for everyone on the network.
    expect(add('sd-3', c3, 8083).status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8083))).toBe('three');
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8081)).toBe('one');
    expect(nftTable(sb, topo.host)).not.toMatch(/192\.168\.77\.2/);
    // Ruleset flushed behind our back: the next ADD declares again (and DEL of the lost ones is still fine).
    sb.inNs(topo.host, 'nft', ['flush', 'ruleset']);
    expect(runPortmap(sb, topo.host, env('DEL', 'sd-3', c3.ns), conf('1.1.0', undefined)).status).toBe(0);
    expect(add('sd-3', c3, 8083).status).toBe(0);
    expect(await eventually(() => fetchFrom(sb, topo.other, HOST_ADDR4, 8083))).toBe('three');
    // A conflicting claim is still refused atomically on the steady path, naming the holder.
    const clash = add('sd-4', c2, 8083);
    expect(clash.json).toMatchObject({ code: 7, msg: expect.stringMatching(/tcp port 8083 .*already published by container "sd-3"/) });
    expect(fetchFrom(sb, topo.other, HOST_ADDR4, 8083)).toBe('three');
    for (const [id, c] of [['sd-1', c1], ['sd-2', c2], ['sd-3', c3]] as const) {
      expect(runPortmap(sb, topo.host, env('DEL', id, c.ns), conf('1.1.0', undefined)).status).toBe(0);
    }
    expect(nftTable(sb, topo.host)).toBe(''); // the last attachment took the network's structure and the table with it
  });
});
