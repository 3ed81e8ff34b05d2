// The built bridge plugin, run inside a throwaway "host" namespace with
// `ip netns exec`, containers in other namespaces, an "outside" namespace
// behind a veth with a 10.x address. Real traffic: ping and TCP.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { execCni } from '../helpers/cni';
import { SUPPORTED_VERSIONS, versionAtLeast } from '../../lib/cni/version';

const BIN = path.join(DIST_BIN, 'bridge');
const VERSIONS = SUPPORTED_VERSIONS;

interface Run { status: number | null; stdout: string; stderr: string; json?: any }

class Env {
  readonly sb = new Sandbox('br');
  readonly host: string;
  readonly outside: string;
  readonly state: string;
  readonly ipamDir: string;
  /** A CNI_PATH dir where "host-local-ref" is the reference host-local binary (ours runs in-process as "host-local"). */
  readonly cniPath: string;
  /** 10.<n>.* addresses keep parallel runs of this file apart only by namespace, which is enough. */
  constructor() {
    this.host = this.sb.netns('h');
    this.outside = this.sb.netns('o');
    this.state = this.sb.tmpdir('state');
    this.ipamDir = this.sb.tmpdir('ipam');
    this.cniPath = this.sb.tmpdir('cnipath');
    fs.symlinkSync('/usr/lib/cni/host-local', path.join(this.cniPath, 'host-local-ref'));
    // host <-> outside: 10.250.0.1/30 - 10.250.0.2/30
    sh('ip', ['-n', this.host, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'dn0', 'netns', this.outside]);
    sh('ip', ['-n', this.host, 'addr', 'add', '10.250.0.1/30', 'dev', 'up0']);
    sh('ip', ['-n', this.outside, 'addr', 'add', '10.250.0.2/30', 'dev', 'dn0']);
    sh('ip', ['-n', this.host, 'link', 'set', 'up0', 'up']);
    sh('ip', ['-n', this.outside, 'link', 'set', 'dn0', 'up']);
  }

  container(suffix: string): string {
    return this.sb.netns(suffix);
  }

  conf(extra: Record<string, unknown> = {}, ipam: Record<string, unknown> = { subnet: '10.251.0.0/24' }, version = '1.1.0'): Record<string, unknown> {
    return {
      cniVersion: version, name: 'brnet', type: 'bridge', bridge: 'brt0', isDefaultGateway: true, ipMasq: true, stateDir: this.state,
      ipam: { type: 'host-local', dataDir: this.ipamDir, ...ipam },
      ...extra,
    };
  }

  run(cmd: string, conf: Record<string, unknown>, o: { id: string; netns?: string; ifname?: string; args?: string }): Run {
    return execCni(this.host, BIN, { command: cmd, containerId: o.id, netns: o.netns, ifname: o.ifname, path: `${this.cniPath}:/usr/lib/cni`, args: o.args ?? '' }, conf);
  }

  add(conf: Record<string, unknown>, id: string, ns: string, ifname = 'eth0', args?: string): any {
    const r = this.run('ADD', conf, { id, netns: this.sb.nsPath(ns), ifname, args });
    if (r.status !== 0) throw new Error(`ADD ${id} failed: ${r.stdout} ${r.stderr}`);
    return r.json;
  }

  nft(): string {
    return shTry('ip', ['netns', 'exec', this.host, 'nft', 'list', 'ruleset']).stdout;
  }

  hostLinks(): string {
    return sh('ip', ['-n', this.host, '-o', 'link']);
  }

  ping(ns: string, ip: string): boolean {
    return this.sb.inNs(ns, 'ping', ['-c', '1', '-W', '2', ip]).status === 0;
  }

  /** The peer address the outside namespace sees for a TCP connection from `ns`. */
  async peerSeenOutside(ns: string, port: number): Promise<string> {
    const server = spawn('ip', ['netns', 'exec', this.outside, process.execPath, '-e',
      `require('net').createServer((s)=>{console.log(s.remoteAddress);s.destroy();process.exit(0)}).listen(${port},()=>console.log('ready'))`]);
    let out = '';
    server.stdout.on('data', (d) => { out += d; });
    try {
      for (let i = 0; i < 100 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
      const c = this.sb.inNs(ns, process.execPath, ['-e', `require('net').connect(${port},'10.250.0.2').on('connect',function(){this.end()}).on('error',(e)=>{console.error(e.message);process.exit(1)})`], { timeout: 10000 });
      if (c.status !== 0) throw new Error(`connect failed: ${c.stderr}`);
      for (let i = 0; i < 100 && out.split('\n').filter(Boolean).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      return out.split('\n').filter(Boolean)[1] ?? '';
    } finally {
      server.kill();
    }
  }
}

jest.setTimeout(120000);
beforeAll(() => ensureBuilt('bridge'), 180000);

describe('bridge plugin (e2e)', () => {
  let env: Env;
  beforeEach(() => { env = new Env(); });
  afterEach(() => env.sb.cleanup());

  it('two containers ping each other and the gateway; CHECK; DEL cleans up; DEL twice', () => {
    const a = env.container('a');
    const b = env.container('b');
    const conf = env.conf();
    const ra = env.add(conf, 'ctr-a', a);
    const rb = env.add(conf, 'ctr-b', b);
    expect(ra.interfaces.map((i: any) => i.name)).toEqual(['brt0', expect.stringMatching(/^veth[0-9a-f]{8}$/), 'eth0']);
    expect(ra.interfaces[2].sandbox).toBe(env.sb.nsPath(a));
    for (const i of ra.interfaces) expect(i.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(ra.ips).toEqual([{ address: '10.251.0.2/24', gateway: '10.251.0.1', interface: 2 }]);
    expect(ra.interfaces[2].mac).toBe(sh('ip', ['-n', a, '-j', 'link', 'show', 'eth0']).match(/"address":"([^"]+)"/)![1]);
    const ipB = rb.ips[0].address.split('/')[0];
    expect(env.ping(a, ipB)).toBe(true);
    expect(env.ping(b, '10.251.0.1')).toBe(true);
    expect(sh('ip', ['-n', a, 'route'])).toMatch(/default via 10\.251\.0\.1 dev eth0/);
    expect(fs.readFileSync(`/proc/sys/net/ipv4/ip_forward`, 'utf8')).toBeDefined();
    expect(env.sb.inNs(env.host, 'cat', ['/proc/sys/net/ipv4/ip_forward']).stdout.trim()).toBe('1');

    const check = env.run('CHECK', { ...conf, prevResult: ra }, { id: 'ctr-a', netns: env.sb.nsPath(a) });
    expect(check.status).toBe(0);
    expect(check.stdout).toBe('');

    const hostVethA = ra.interfaces[1].name;
    for (let i = 0; i < 2; i++) {
      const d = env.run('DEL', { ...conf, prevResult: ra }, { id: 'ctr-a', netns: env.sb.nsPath(a) });
      expect(d.status).toBe(0);
      expect(d.stdout).toBe('');
    }
    expect(env.hostLinks()).not.toContain(hostVethA);
    expect(env.hostLinks()).toContain('brt0'); // the bridge stays
    expect(env.nft()).not.toContain('10.251.0.2 ');
    expect(env.nft()).toContain(ipB);
    expect(fs.existsSync(path.join(env.ipamDir, 'brnet', '10.251.0.2'))).toBe(false);
  });

  it('masquerades traffic leaving the subnet, and does not without ipMasq', async () => {
    const a = env.container('a');
    env.add(env.conf(), 'ctr-a', a);
    expect(env.ping(a, '10.250.0.2')).toBe(true);
    expect(await env.peerSeenOutside(a, 18080)).toMatch(/10\.250\.0\.1$/);

    const b = env.container('b');
    const plain = env.conf({ name: 'plain', bridge: 'brt1', ipMasq: false }, { subnet: '10.252.0.0/24' });
    env.add(plain, 'ctr-b', b);
    sh('ip', ['-n', env.outside, 'route', 'add', '10.252.0.0/24', 'via', '10.250.0.1']);
    expect(await env.peerSeenOutside(b, 18081)).toMatch(/10\.252\.0\.2$/);
  });

  it('IPv6 (fd00::/8) and dual-stack', () => {
    const a = env.container('a');
    const b = env.container('b');
    const conf = env.conf({}, { ranges: [[{ subnet: '10.253.0.0/24' }], [{ subnet: 'fd00:253::/64' }]] });
    const ra = env.add(conf, 'ctr-a', a);
    const rb = env.add(conf, 'ctr-b', b);
    expect(ra.ips.map((i: any) => i.address)).toEqual(['10.253.0.2/24', 'fd00:253::2/64']);
    expect(env.ping(a, rb.ips[0].address.split('/')[0])).toBe(true);
    expect(env.sb.inNs(a, 'ping', ['-6', '-c', '1', '-W', '2', rb.ips[1].address.split('/')[0]]).status).toBe(0);
    expect(env.sb.inNs(a, 'ping', ['-6', '-c', '1', '-W', '2', 'fd00:253::1']).status).toBe(0);
    expect(env.sb.inNs(env.host, 'cat', ['/proc/sys/net/ipv6/conf/all/forwarding']).stdout.trim()).toBe('1');
    expect(env.nft()).toMatch(/fd00:253::2 comment/);
    expect(env.run('CHECK', { ...conf, prevResult: ra }, { id: 'ctr-a', netns: env.sb.nsPath(a) }).status).toBe(0);
    expect(env.run('DEL', conf, { id: 'ctr-a', netns: env.sb.nsPath(a) }).status).toBe(0);
    expect(env.nft()).not.toMatch(/fd00:253::2 comment/);
  });

  it('does not make the host drop router advertisements when turning IPv6 forwarding on', () => {
    sh('ip', ['netns', 'exec', env.host, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/up0/accept_ra']);
    const a = env.container('a');
    env.add(env.conf({}, { subnet: 'fd00:254::/64' }), 'ctr-a', a);
    expect(env.sb.inNs(env.host, 'cat', ['/proc/sys/net/ipv6/conf/up0/accept_ra']).stdout.trim()).toBe('2');
  });

  it('applies the MTU on both veth ends and sets the hairpin flag', () => {
    const a = env.container('a');
    const r = env.add(env.conf({ mtu: 1400, hairpinMode: true }), 'ctr-a', a);
    const hostVeth = r.interfaces[1].name;
    expect(sh('ip', ['-n', a, 'link', 'show', 'eth0'])).toMatch(/mtu 1400/);
    expect(sh('ip', ['-n', env.host, 'link', 'show', hostVeth])).toMatch(/mtu 1400/);
    expect(sh('ip', ['-n', env.host, '-d', 'link', 'show', hostVeth])).toMatch(/hairpin on/);
  });

  it('CHECK fails after an address is removed by hand', () => {
    const a = env.container('a');
    const conf = env.conf();
    const r = env.add(conf, 'ctr-a', a);
    sh('ip', ['-n', a, 'addr', 'del', r.ips[0].address, 'dev', 'eth0']);
    const c = env.run('CHECK', { ...conf, prevResult: r }, { id: 'ctr-a', netns: env.sb.nsPath(a) });
    expect(c.status).not.toBe(0);
    expect(c.json.msg).toMatch(/address 10\.251\.0\.2\/24 is missing on "eth0"/);
  });

  it('DEL after the namespace was deleted, and with CNI_NETNS empty, leaves no masquerade element', () => {
    const a = env.container('a');
    const b = env.container('b');
    const conf = env.conf();
    const ra = env.add(conf, 'ctr-a', a);
    env.add(conf, 'ctr-b', b);
    expect(env.nft()).toContain('10.251.0.2 comment');
    sh('ip', ['netns', 'del', a]);
    expect(env.run('DEL', conf, { id: 'ctr-a', netns: env.sb.nsPath(a) }).status).toBe(0);
    expect(env.run('DEL', conf, { id: 'ctr-b', netns: '' }).status).toBe(0);
    expect(env.nft()).not.toMatch(/elements = /);
    expect(env.hostLinks()).not.toMatch(/veth[0-9a-f]{8}/);
    expect(fs.readdirSync(path.join(env.ipamDir, 'brnet')).filter((f) => /^\d/.test(f))).toEqual([]);
    expect(fs.existsSync(path.join(env.state, 'brnet'))).toBe(false); // the network's last attachment took its record directory along
    void ra;
  });

  it('rolls back everything when IPAM fails (exhausted range)', () => {
    const a = env.container('a');
    const b = env.container('b');
    const conf = env.conf({}, { subnet: '10.251.0.0/24', rangeStart: '10.251.0.10', rangeEnd: '10.251.0.10' });
    env.add(conf, 'ctr-a', a);
    const before = env.hostLinks().match(/veth[0-9a-f]{8}/g);
    const r = env.run('ADD', conf, { id: 'ctr-b', netns: env.sb.nsPath(b) });
    expect(r.status).not.toBe(0);
    expect(r.json.msg).toMatch(/no IP addresses available|range/i);
    expect(env.hostLinks().match(/veth[0-9a-f]{8}/g)).toEqual(before);
    expect(sh('ip', ['-n', b, '-o', 'link'])).not.toContain('eth0');
    expect((env.nft().match(/comment "[0-9a-f]{12} [0-9a-f]{16} /g) ?? []).length).toBe(1); // ctr-a's masquerade element only
  });

  it('rolls back the veth, address and IPAM reservation when a later step fails', () => {
    const a = env.container('a');
    // forceAddress off + a different address already on the bridge: fails after IPAM and the veth.
    const conf = env.conf({ bridge: 'brt2' });
    sh('ip', ['-n', env.host, 'link', 'add', 'brt2', 'type', 'bridge']);
    sh('ip', ['-n', env.host, 'addr', 'add', '10.99.99.1/24', 'dev', 'brt2']);
    const r = env.run('ADD', conf, { id: 'ctr-a', netns: env.sb.nsPath(a) });
    expect(r.status).not.toBe(0);
    expect(r.json.msg).toMatch(/already has an IP address different from 10\.251\.0\.1\/24/);
    expect(env.hostLinks()).not.toMatch(/veth[0-9a-f]{8}/);
    expect(sh('ip', ['-n', a, '-o', 'link'])).not.toContain('eth0');
    expect(fs.readdirSync(path.join(env.ipamDir, 'brnet')).filter((f) => /^\d/.test(f))).toEqual([]);
    expect(env.nft()).not.toMatch(/elements = /);
    // forceAddress replaces it
    env.add({ ...conf, forceAddress: true }, 'ctr-a', a);
    expect(sh('ip', ['-n', env.host, 'addr', 'show', 'brt2'])).not.toContain('10.99.99.1');
  });

  it('refuses a non-bridge device with the bridge name', () => {
    const a = env.container('a');
    const r = env.run('ADD', env.conf({ bridge: 'up0' }), { id: 'ctr-a', netns: env.sb.nsPath(a) });
    expect(r.status).not.toBe(0);
    expect(r.json.msg).toMatch(/"up0" already exists and is a veth, not a bridge/);
    expect(fs.readdirSync(path.join(env.ipamDir, 'brnet')).filter((f) => /^\d/.test(f))).toEqual([]);
  });

  it('runs two bridge networks side by side', () => {
    const a = env.container('a');
    const b = env.container('b');
    const n1 = env.conf({ name: 'n1', bridge: 'brt1' }, { subnet: '10.251.1.0/24' });
    const n2 = env.conf({ name: 'n2', bridge: 'brt2' }, { subnet: '10.251.2.0/24' });
    env.add(n1, 'ctr-a', a);
    env.add(n2, 'ctr-b', b);
    expect(env.ping(a, '10.251.1.1')).toBe(true);
    expect(env.ping(b, '10.251.2.1')).toBe(true);
    expect(env.ping(a, '10.250.0.2')).toBe(true);
    expect(env.ping(b, '10.250.0.2')).toBe(true);
    expect(env.run('DEL', n1, { id: 'ctr-a', netns: env.sb.nsPath(a) }).status).toBe(0);
    expect(env.nft()).toContain('10.251.2.2 comment');
    expect(env.nft()).not.toContain('10.251.1.2 comment');
  });

  it('GC removes masquerade state and reservations of attachments not in the valid list; STATUS is OK', () => {
    const a = env.container('a');
    const b = env.container('b');
    const conf = env.conf();
    env.add(conf, 'ctr-a', a);
    env.add(conf, 'ctr-b', b);
    const gc = env.run('GC', { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'ctr-a', ifname: 'eth0' }] }, { id: '' });
    expect(gc.status).toBe(0);
    expect(env.nft()).toContain('10.251.0.2 comment');
    expect(env.nft()).not.toContain('10.251.0.3 comment');
    expect(fs.existsSync(path.join(env.state, 'brnet', 'ctr-b.eth0.json'))).toBe(false);
    expect(env.run('STATUS', conf, { id: '' }).status).toBe(0);
  });

  it.each(VERSIONS)('ADD, CHECK, DEL with cniVersion %s', (v) => {
    const a = env.container('a');
    const conf = env.conf({}, undefined, v);
    const r = env.add(conf, 'ctr-a', a);
    expect(r.cniVersion).toBe(v);
    if (v.startsWith('0.1') || v.startsWith('0.2')) expect(r.ip4.ip).toBe('10.251.0.2/24');
    else expect(r.ips[0].address).toBe('10.251.0.2/24');
    if (versionAtLeast(v, '0.4.0')) {
      expect(env.run('CHECK', { ...conf, prevResult: r }, { id: 'ctr-a', netns: env.sb.nsPath(a) }).status).toBe(0);
    }
    expect(env.run('DEL', conf, { id: 'ctr-a', netns: env.sb.nsPath(a) }).status).toBe(0);
    expect(env.hostLinks()).not.toMatch(/veth[0-9a-f]{8}/);
    expect(env.nft()).not.toMatch(/elements = /);
  });

  it('takes the container MAC from CNI_ARGS / runtimeConfig', () => {
    const a = env.container('a');
    const r = env.add(env.conf({ runtimeConfig: { mac: '02:42:ac:11:00:09' } }), 'ctr-a', a, 'eth0', 'IgnoreUnknown=1;MAC=02:42:ac:11:00:08');
    expect(r.interfaces[2].mac).toBe('02:42:ac:11:00:09');
  });

  it('works with the reference host-local exec\'d from CNI_PATH', () => {
    const a = env.container('a');
    const b = env.container('b');
    const conf = env.conf({}, undefined, '1.0.0');
    (conf.ipam as any).type = 'host-local-ref';
    const ra = env.add(conf, 'ctr-a', a);
    env.add(conf, 'ctr-b', b);
    expect(ra.ips[0].address).toBe('10.251.0.2/24');
    expect(env.ping(a, '10.251.0.3')).toBe(true);
    expect(env.run('CHECK', { ...conf, prevResult: ra }, { id: 'ctr-a', netns: env.sb.nsPath(a) }).status).toBe(0);
    expect(env.run('DEL', conf, { id: 'ctr-a', netns: '' }).status).toBe(0);
    expect(fs.existsSync(path.join(env.ipamDir, 'brnet', '10.251.0.2'))).toBe(false);
    expect(env.nft()).not.toContain('10.251.0.2 comment');
  });

  // VLAN access and trunk ports, and the VLAN gateway interface: test/l2/bridge-vlan.test.ts (the l2 tier, user-mode-linux).
});
