// macspoofchk end to end: the built bridge plugin in a throwaway "host"
// namespace (`ip netns exec`), containers in their own namespaces, real pings.
// A container that changes its MAC loses the bridge; with its own MAC back it
// has it again. Elements go with DEL (also with CNI_NETNS empty) and GC.
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { execCni } from '../helpers/cni';

const BIN = path.join(DIST_BIN, 'bridge');
const TABLE = 'node_cni_macspoof';

jest.setTimeout(120000);
// Always rebuild: the executable must contain lib/firewall/macspoof.ts.
beforeAll(() => ensureBuilt('bridge'), 180000);

describe('bridge macspoofchk (e2e)', () => {
  let sb: Sandbox;
  let host: string;
  let state: string;
  let ipamDir: string;
  beforeEach(() => {
    sb = new Sandbox('msp');
    host = sb.netns('h');
    state = sb.tmpdir('state');
    ipamDir = sb.tmpdir('ipam');
  });
  afterEach(() => sb.cleanup());

  const conf = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    cniVersion: '1.1.0', name: 'mspnet', type: 'bridge', bridge: 'brm0', isGateway: true, macspoofchk: true, stateDir: state,
    ipam: { type: 'host-local', dataDir: ipamDir, subnet: '10.241.0.0/24' }, ...extra,
  });

  function run(cmd: string, c: Record<string, unknown>, id: string, netns: string): { status: number | null; stdout: string; stderr: string } {
    const r = execCni(host, BIN, { command: cmd, containerId: id, netns, path: '/usr/lib/cni', args: '' }, c);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  function add(c: Record<string, unknown>, id: string, ns: string): any {
    const r = run('ADD', c, id, sb.nsPath(ns));
    if (r.status !== 0) throw new Error(`ADD ${id} failed: ${r.stdout} ${r.stderr}`);
    return JSON.parse(r.stdout);
  }
  const ping = (ns: string, ip: string): boolean => sb.inNs(ns, 'ping', ['-c', '1', '-W', '1', ip]).status === 0;
  const table = (): string => shTry('ip', ['netns', 'exec', host, 'nft', 'list', 'table', 'bridge', TABLE]).stdout;
  const setMac = (ns: string, mac: string): void => { sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', mac]); };

  it('drops frames with a changed source MAC; the own MAC works; CHECK; DEL removes the elements', () => {
    const a = sb.netns('a');
    const b = sb.netns('b');
    const c = conf();
    const ra = add(c, 'ctr-a', a);
    const rb = add(c, 'ctr-b', b);
    const [vethA, macA] = [ra.interfaces[1].name, ra.interfaces[2].mac];
    const ipB = rb.ips[0].address.split('/')[0];
    expect(table()).toContain(`"${vethA}" . ${macA}`);
    expect(ping(a, '10.241.0.1')).toBe(true);
    expect(ping(a, ipB)).toBe(true);
    expect(run('CHECK', { ...c, prevResult: ra }, 'ctr-a', sb.nsPath(a)).status).toBe(0);

    setMac(a, '02:42:de:ad:be:ef');
    sh('ip', ['-n', a, 'neigh', 'flush', 'all']);
    expect(ping(a, '10.241.0.1')).toBe(false);
    expect(ping(a, ipB)).toBe(false);
    setMac(a, macA);
    expect(ping(a, '10.241.0.1')).toBe(true);
    expect(ping(a, ipB)).toBe(true);

    // CHECK notices a missing element.
    sh('ip', ['netns', 'exec', host, 'nft', 'delete', 'element', 'bridge', TABLE, 'guarded', `{ "${vethA}" }`]);
    const chk = run('CHECK', { ...c, prevResult: ra }, 'ctr-a', sb.nsPath(a));
    expect(chk.status).not.toBe(0);
    expect(chk.stdout).toContain(`guarded ${vethA}`);

    // DEL twice; the second time finds nothing left and still succeeds.
    for (let i = 0; i < 2; i++) expect(run('DEL', c, 'ctr-a', sb.nsPath(a)).status).toBe(0);
    expect(table()).not.toContain(vethA);
    expect(table()).toContain(rb.interfaces[1].name);
    // With CNI_NETNS empty: found from the attachment record.
    expect(run('DEL', c, 'ctr-b', '').status).toBe(0);
    expect(table()).not.toContain(rb.interfaces[1].name);
    expect(table()).not.toMatch(/elements = /);
  });

  it('without macspoofchk a changed MAC still reaches the gateway', () => {
    const a = sb.netns('a');
    const c = conf({ macspoofchk: false });
    add(c, 'ctr-a', a);
    setMac(a, '02:42:de:ad:be:ef');
    expect(ping(a, '10.241.0.1')).toBe(true);
    expect(table()).toBe('');
  });

  it('GC removes the elements of attachments no longer valid', () => {
    const a = sb.netns('a');
    const b = sb.netns('b');
    const c = conf();
    const ra = add(c, 'ctr-a', a);
    const rb = add(c, 'ctr-b', b);
    const gc = run('GC', { ...c, 'cni.dev/valid-attachments': [{ containerID: 'ctr-b', ifname: 'eth0' }] }, '', '');
    expect(gc.status).toBe(0);
    expect(table()).not.toContain(ra.interfaces[1].name);
    expect(table()).toContain(`"${rb.interfaces[1].name}" . ${rb.interfaces[2].mac}`);
  });
});
