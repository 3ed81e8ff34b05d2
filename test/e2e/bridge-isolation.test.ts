// Network isolation ("isolation": true) with the built bridge plugin in a
// throwaway "host" namespace: three networks, two isolated and one not,
// a ping matrix between their containers, the outside reachable from all,
// the nft elements gone after the last DEL or after GC.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { execCni } from '../helpers/cni';

const BIN = path.join(DIST_BIN, 'bridge');

interface Net { name: string; bridge: string; subnet: string; isolation: boolean; extra?: Record<string, unknown> }

class Env {
  readonly sb = new Sandbox('bi');
  readonly host = this.sb.netns('h');
  readonly outside = this.sb.netns('o');
  readonly state = this.sb.tmpdir('state');
  readonly ipamDir = this.sb.tmpdir('ipam');

  constructor() {
    // host <-> outside: 10.250.0.1/30 - 10.250.0.2/30
    sh('ip', ['-n', this.host, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'dn0', 'netns', this.outside]);
    sh('ip', ['-n', this.host, 'addr', 'add', '10.250.0.1/30', 'dev', 'up0']);
    sh('ip', ['-n', this.outside, 'addr', 'add', '10.250.0.2/30', 'dev', 'dn0']);
    sh('ip', ['-n', this.host, 'link', 'set', 'up0', 'up']);
    sh('ip', ['-n', this.outside, 'link', 'set', 'dn0', 'up']);
  }

  conf(n: Net): Record<string, unknown> {
    return {
      cniVersion: '1.1.0', name: n.name, type: 'bridge', bridge: n.bridge, isDefaultGateway: true, ipMasq: true,
      stateDir: this.state, ...(n.isolation ? { isolation: true } : {}), ...n.extra,
      ipam: { type: 'host-local', dataDir: this.ipamDir, subnet: n.subnet },
    };
  }

  run(cmd: string, conf: Record<string, unknown>, id: string, netns = ''): { status: number | null; stdout: string; stderr: string } {
    return execCni(this.host, BIN, { command: cmd, containerId: id, netns, path: '/usr/lib/cni' }, conf);
  }

  /** ADD a container in a new namespace; returns its namespace and address. */
  add(n: Net, id: string): { ns: string; ip: string } {
    const ns = this.sb.netns(id);
    const r = this.run('ADD', this.conf(n), id, this.sb.nsPath(ns));
    if (r.status !== 0) throw new Error(`ADD ${id} failed: ${r.stdout} ${r.stderr}`);
    return { ns, ip: JSON.parse(r.stdout).ips[0].address.split('/')[0] };
  }

  del(n: Net, id: string, ns?: string): void {
    const r = this.run('DEL', this.conf(n), id, ns ? this.sb.nsPath(ns) : '');
    if (r.status !== 0) throw new Error(`DEL ${id} failed: ${r.stdout} ${r.stderr}`);
  }

  ping(ns: string, ip: string): boolean {
    return this.sb.inNs(ns, 'ping', ['-c', '1', '-W', '1', ip]).status === 0;
  }

  ruleset(): string {
    return shTry('ip', ['netns', 'exec', this.host, 'nft', 'list', 'ruleset']).stdout;
  }

  isolatedBridges(): string[] {
    const r = shTry('ip', ['netns', 'exec', this.host, 'nft', '-j', 'list', 'set', 'inet', 'node_cni_isolation', 'isolated']);
    if (r.status !== 0) return [];
    const set = JSON.parse(r.stdout).nftables.find((o: any) => o.set)?.set;
    return (set?.elem ?? []).map((e: any) => (typeof e === 'string' ? e : e.elem.val)).sort();
  }
}

jest.setTimeout(120000);
beforeAll(() => ensureBuilt('bridge'), 180000);

describe('bridge isolation (e2e)', () => {
  let env: Env;
  beforeEach(() => { env = new Env(); });
  afterEach(() => env.sb.cleanup());

  const A: Net = { name: 'iso-a', bridge: 'bia0', subnet: '10.252.1.0/24', isolation: true };
  const B: Net = { name: 'iso-b', bridge: 'bib0', subnet: '10.252.2.0/24', isolation: true };
  const C: Net = { name: 'open-c', bridge: 'bic0', subnet: '10.252.3.0/24', isolation: false };

  it('ping matrix: same network and to/from the non-isolated network pass, between isolated networks drops; outside from all', () => {
    const a1 = env.add(A, 'a1');
    const a2 = env.add(A, 'a2');
    const b1 = env.add(B, 'b1');
    const c1 = env.add(C, 'c1');
    expect(env.isolatedBridges()).toEqual(['bia0', 'bib0']);

    const matrix: Array<[string, { ns: string; ip: string }, { ns: string; ip: string }, boolean]> = [
      ['a1 -> a2 (same isolated network)', a1, a2, true],
      ['a2 -> a1', a2, a1, true],
      ['a1 -> b1 (isolated -> isolated)', a1, b1, false],
      ['b1 -> a1', b1, a1, false],
      ['a2 -> b1', a2, b1, false],
      ['a1 -> c1 (isolated -> open)', a1, c1, true],
      ['c1 -> a1 (open -> isolated)', c1, a1, true],
      ['b1 -> c1', b1, c1, true],
      ['c1 -> b1', c1, b1, true],
    ];
    const got = matrix.map(([what, from, to]) => [what, env.ping(from.ns, to.ip)]);
    expect(got).toEqual(matrix.map(([what, , , want]) => [what, want]));
    for (const [id, c] of Object.entries({ a1, a2, b1, c1 })) expect([id, env.ping(c.ns, '10.250.0.2')]).toEqual([id, true]);
  });

  it('the network stays isolated until its last container leaves; then the rules are gone', () => {
    const a1 = env.add(A, 'a1');
    const a2 = env.add(A, 'a2');
    const b1 = env.add(B, 'b1');
    env.del(A, 'a1', a1.ns);
    expect(env.isolatedBridges()).toEqual(['bia0', 'bib0']);
    expect(env.ping(a2.ns, b1.ip)).toBe(false);
    env.del(A, 'a2', a2.ns);
    expect(env.isolatedBridges()).toEqual(['bib0']);
    env.del(A, 'a2', a2.ns); // DEL again: idempotent
    env.del(B, 'b1', b1.ns);
    expect(env.isolatedBridges()).toEqual([]);
    const rules = env.ruleset();
    expect(rules).not.toMatch(/iso-[0-9a-f]{16}/);
    expect(rules).not.toContain('"bia0"');
    expect(rules).not.toContain('"bib0"');
  });

  it('GC removes the element of a network whose containers vanished without DEL', () => {
    const a1 = env.add(A, 'a1');
    env.add(B, 'b1');
    shTry('ip', ['netns', 'del', a1.ns]); // the kernel deletes the veth pair with the namespace (asynchronously)
    for (let i = 0; i < 100 && sh('ip', ['-n', env.host, '-o', 'link', 'show', 'master', 'bia0']).trim(); i++) spawnSync('sleep', ['0.05']);
    expect(env.isolatedBridges()).toEqual(['bia0', 'bib0']);
    const gc = env.run('GC', { ...env.conf(A), 'cni.dev/valid-attachments': [] }, '');
    expect(gc.status).toBe(0);
    expect(env.isolatedBridges()).toEqual(['bib0']);
  });

  it('portIsolation keeps its meaning inside an isolated network; outside still reachable', () => {
    const P: Net = { ...A, extra: { portIsolation: true } };
    const p1 = env.add(P, 'p1');
    const p2 = env.add(P, 'p2');
    expect(env.ping(p1.ns, p2.ip)).toBe(false);
    expect(env.ping(p1.ns, '10.250.0.2')).toBe(true);
  });

  it('without "isolation" nothing is installed (reference behaviour)', () => {
    const c1 = env.add(C, 'c1');
    const b1 = env.add({ ...B, isolation: false }, 'b1');
    expect(env.ruleset()).not.toContain('node_cni_isolation');
    expect(env.ping(c1.ns, b1.ip)).toBe(true);
    expect(env.ping(b1.ns, c1.ip)).toBe(true);
    expect(env.ping(c1.ns, '10.250.0.2')).toBe(true);
  });
});
