// A host with several networks for one container (Docker's `network
// connect`): bridge networks A and B, macvlan network C, each dual-stack, and
// an "outside" namespace with a server. Everything runs in namespaces of
// the test's own:
//
//   container ── eth? ── bridge mnbrA (10.161.0.1, fd00:161::1) ┐
//             ── eth? ── bridge mnbrB (10.162.0.1, fd00:162::1) ┴ host ── up0 10.160.0.1 ═ dn0 10.160.0.2  outside
//             ── eth? ── macvlan on m0 ══════════════ m0p (10.163.0.1, fd00:163::1, the gateway of C)  outside
//
// No masquerade: the outside routes the container networks back to the
// host, so the server sees which network a connection came through.
import { spawn, type ChildProcess } from 'child_process';
import * as path from 'path';
import { DIST_BIN, ROOT, Sandbox, sh } from '../helpers/sandbox';
import { execCni } from '../helpers/cni';

export interface Run { status: number | null; stdout: string; stderr: string; json?: any }
export interface ConfList { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> }

export type NetName = 'A' | 'B' | 'C';
export const SERVER = '10.160.0.2';
export const SERVER6 = 'fd00:160::2';
export const GATEWAY: Record<NetName, { v4: string; v6: string }> = {
  A: { v4: '10.161.0.1', v6: 'fd00:161::1' },
  B: { v4: '10.162.0.1', v6: 'fd00:162::1' },
  C: { v4: '10.163.0.1', v6: 'fd00:163::1' },
};
const FAILOVER = path.join(ROOT, 'scripts', 'tcp-failover.js');

export class MultiNetEnv {
  readonly sb: Sandbox;
  readonly host: string;
  readonly outside: string;
  readonly state: string;
  readonly ipamDir: string;
  private children: ChildProcess[] = [];

  constructor(prefix = 'mn') {
    this.sb = new Sandbox(prefix);
    this.host = this.sb.netns('h');
    this.outside = this.sb.netns('o');
    this.state = this.sb.tmpdir('state');
    this.ipamDir = this.sb.tmpdir('ipam');
    const h = (...a: string[]) => sh('ip', ['-n', this.host, ...a]);
    const o = (...a: string[]) => sh('ip', ['-n', this.outside, ...a]);
    h('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'dn0', 'netns', this.outside);
    h('addr', 'add', '10.160.0.1/30', 'dev', 'up0');
    h('-6', 'addr', 'add', 'fd00:160::1/64', 'dev', 'up0', 'nodad');
    o('addr', 'add', '10.160.0.2/30', 'dev', 'dn0');
    o('-6', 'addr', 'add', 'fd00:160::2/64', 'dev', 'dn0', 'nodad');
    h('link', 'set', 'up0', 'up');
    o('link', 'set', 'dn0', 'up');
    for (const n of ['161', '162']) {
      o('route', 'add', `10.${n}.0.0/24`, 'via', '10.160.0.1');
      o('-6', 'route', 'add', `fd00:${n}::/64`, 'via', 'fd00:160::1');
    }
    // The macvlan network's L2 segment: its master m0 on the host, the outside is its gateway.
    h('link', 'add', 'm0', 'type', 'veth', 'peer', 'name', 'm0p', 'netns', this.outside);
    h('link', 'set', 'm0', 'up');
    o('addr', 'add', '10.163.0.1/24', 'dev', 'm0p');
    o('-6', 'addr', 'add', 'fd00:163::1/64', 'dev', 'm0p', 'nodad');
    o('link', 'set', 'm0p', 'up');
    this.sb.onCleanup(() => { for (const c of this.children) c.kill('SIGKILL'); });
  }

  /** The network config of A, B (bridge) or C (macvlan), dual-stack, routes to everywhere via its gateway. */
  conf(net: NetName, extra: Record<string, unknown> = {}, version = '1.1.0'): Record<string, unknown> {
    const n = { A: 161, B: 162, C: 163 }[net];
    const ipam = {
      type: 'host-local', dataDir: this.ipamDir,
      ranges: [[{ subnet: `10.${n}.0.0/24`, gateway: `10.${n}.0.1` }], [{ subnet: `fd00:${n}::/64`, gateway: `fd00:${n}::1` }]],
    };
    if (net === 'C') {
      return { cniVersion: version, name: 'mnnetC', type: 'macvlan', master: 'm0', mode: 'bridge', dataDir: this.state, ipam: { ...ipam, routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] }, ...extra };
    }
    return { cniVersion: version, name: `mnnet${net}`, type: 'bridge', bridge: `mnbr${net}`, isGateway: true, isDefaultGateway: true, ipMasq: false, stateDir: this.state, ipam, ...extra };
  }

  run(cmd: string, conf: Record<string, unknown>, o: { id: string; netns?: string; ifname: string; args?: string }): Run {
    return execCni(this.host, path.join(DIST_BIN, String(conf.type)), { command: cmd, containerId: o.id, netns: o.netns, ifname: o.ifname, args: o.args ?? '' }, conf);
  }

  add(conf: Record<string, unknown>, id: string, ns: string, ifname: string, args?: string): any {
    const r = this.run('ADD', conf, { id, netns: this.sb.nsPath(ns), ifname, args });
    if (r.status !== 0) throw new Error(`ADD ${conf.name} ${id}/${ifname} failed: ${r.stdout} ${r.stderr}`);
    return r.json;
  }

  check(conf: Record<string, unknown>, prevResult: unknown, id: string, ns: string, ifname: string): Run {
    return this.run('CHECK', { ...conf, prevResult }, { id, netns: this.sb.nsPath(ns), ifname });
  }

  del(conf: Record<string, unknown>, id: string, ns: string | undefined, ifname: string): void {
    const r = this.run('DEL', conf, { id, netns: ns === undefined ? '' : this.sb.nsPath(ns), ifname });
    if (r.status !== 0) throw new Error(`DEL ${conf.name} ${id}/${ifname} failed: ${r.stdout} ${r.stderr}`);
  }

  /**
   * A conflist as a runtime runs it: each plugin in order with the previous
   * result, `runtimeConfig` keys for the capabilities it declares. Returns the last result.
   */
  addList(list: ConfList, id: string, ns: string, ifname: string, o: { runtimeConfig?: Record<string, unknown>; args?: string } = {}): Run {
    let prev: unknown;
    let last: Run = { status: 0, stdout: '', stderr: '' };
    for (const p of list.plugins) {
      last = this.run('ADD', this.pluginConf(list, p, o.runtimeConfig, prev), { id, netns: this.sb.nsPath(ns), ifname, args: o.args });
      if (last.status !== 0) return last;
      prev = last.json;
    }
    return last;
  }

  /** DEL of a conflist (plugins in reverse, each with the cached result as prevResult). */
  delList(list: ConfList, id: string, ns: string | undefined, ifname: string, o: { runtimeConfig?: Record<string, unknown>; prevResult?: unknown } = {}): void {
    for (const p of [...list.plugins].reverse()) {
      const r = this.run('DEL', this.pluginConf(list, p, o.runtimeConfig, o.prevResult), { id, netns: ns === undefined ? '' : this.sb.nsPath(ns), ifname });
      if (r.status !== 0) throw new Error(`DEL ${list.name}/${p.type} ${id}/${ifname} failed: ${r.stdout} ${r.stderr}`);
    }
  }

  private pluginConf(list: ConfList, p: Record<string, unknown>, runtimeConfig: Record<string, unknown> | undefined, prevResult: unknown): Record<string, unknown> {
    const caps = (p.capabilities ?? {}) as Record<string, boolean>;
    const rc = Object.fromEntries(Object.entries(runtimeConfig ?? {}).filter(([k]) => caps[k]));
    return { cniVersion: list.cniVersion, name: list.name, ...p, ...(Object.keys(rc).length ? { runtimeConfig: rc } : {}), ...(prevResult ? { prevResult } : {}) };
  }

  /** The gateway the container's traffic to the server takes, per `ip route get`. */
  via(ns: string, family: 4 | 6 = 4): string {
    const out = sh('ip', ['-n', ns, `-${family}`, 'route', 'get', family === 4 ? SERVER : SERVER6]);
    return /via (\S+)/.exec(out)?.[1] ?? out.trim();
  }

  ping(ns: string, ip: string): boolean {
    return this.sb.inNs(ns, 'ping', ['-c', '1', '-W', '2', ip]).status === 0;
  }

  /** A server (in the outside namespace unless `ns` says) that tells each client where it came from (test/helpers/tcp-failover.js). */
  async startServer(port: number, ns = this.outside, o: { tellLocal?: boolean } = {}): Promise<void> {
    const env = { ...process.env, ...(o.tellLocal ? { TELL_LOCAL: '1' } : {}) };
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, FAILOVER, 'server', String(port)], { env });
    this.children.push(p);
    await lines(p, (l) => 'listening' in l);
  }

  /** One connection from `ns`: the address the server saw, or undefined when nothing answered. */
  probe(ns: string, host: string, port: number, ms = 2000): string | undefined {
    const r = this.sb.inNs(ns, process.execPath, [FAILOVER, 'probe', host, String(port), String(ms)], { timeout: ms + 5000 });
    return r.status === 0 ? r.stdout.trim() : undefined;
  }

  /** A client in `ns` streaming to the server, reconnecting when it stalls; `events` collects what it prints. */
  startClient(ns: string, port: number, host = SERVER): { events: Array<{ t: number; up?: string; down?: string }>; stop(): void } {
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, FAILOVER, 'client', host, String(port)]);
    this.children.push(p);
    const events: Array<{ t: number; up?: string; down?: string }> = [];
    void lines(p, (l) => { events.push(l as { t: number }); return false; }).catch(() => {});
    return { events, stop: () => p.kill('SIGKILL') };
  }
}

/** Resolve when a JSON line of the process's stdout satisfies `until`. */
function lines(p: ChildProcess, until: (l: Record<string, unknown>) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    p.stdout!.on('data', (d) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try { if (until(JSON.parse(line))) resolve(); } catch { /* not ours */ }
      }
    });
    p.on('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
}

/** Wait until `cond` holds (polling), or fail naming `what`. */
export async function waitFor<T>(what: string, cond: () => T | undefined | false, timeoutMs = 10000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
