// Property test (issue #12): random and hostile strings in every path-like and
// name-like field of every plugin, and in the CNI_* environment. For each
// input, ADD then DEL twice, against the built executables in a throwaway
// host namespace. Whatever the input:
//   - every answer is a clean CNI answer: exit 0 with a result (ADD) or
//     nothing (DEL), or exit 1 with exactly one error object of a code from
//     the table (docs/security.md), no stack trace;
//   - no file appears outside the test's own directory (every path the input
//     names is checked, and a few places a hostile value would aim at);
//   - no program runs that the plugin does not own (an evil.sh any input may
//     name leaves a marker; no dnsmasq is left after DEL);
//   - nothing is left after DEL: records, reservations, hosts files, links,
//     nft elements of the container.
// Seeded and bounded (SX_FUZZ_SEED, SX_FUZZ_ITERATIONS) so it runs in CI every time.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh, shTry } from '../helpers/sandbox';
import { ensureBuilt } from '../helpers/build';
import { dnsmasqPids } from '../helpers/dns';
import { stateDirProblem } from '../../lib/util/paths';

const SEED = Number(process.env.SX_FUZZ_SEED ?? 20240612);
const ITERATIONS = Number(process.env.SX_FUZZ_ITERATIONS ?? 60);
const CODES = new Set([1, 3, 4, 5, 6, 7, 8, 11, 999]);
const PLUGINS = ['bridge', 'macvlan', 'vxlan-overlay', 'loopback', 'portmap', 'host-local', 'tuning', 'bandwidth', 'firewall'] as const;
type PluginName = (typeof PLUGINS)[number];

/** mulberry32: small, seeded, good enough to pick inputs. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Ctx { root: string; evil: string; fifo: string; etcLink: string }

/** A hostile or random string, sometimes a plausible path under the test root. */
function hostileString(r: () => number, c: Ctx): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const fragments = [
    '\n', '\r', '\t', ' ', '\0', '\u0085', '\u2028', '\ud800', '"', "'", '\\', ',', '#', ';', '$(touch x)', '`id`', '..', '../', '//', '/./',
    'conf-file=/etc/shadow', `dhcp-script=${c.evil}`, 'dhcp-range=10.251.8.50,10.251.8.60', '=', ':', '*', '%s', 'é', '☃', '\u200b',
  ];
  const bases = [
    // The issue's own injections, whole.
    `/etc/resolv.conf\ndhcp-range=10.251.8.50,10.251.8.60\nleasefile-ro\ndhcp-script=${c.evil}`, '/x\nconf-file=/etc/shadow', `${c.root}/dns\nconf-file=/etc/shadow`,
    c.evil, c.fifo, c.etcLink, '/dev/zero', '/proc/self/ns/mnt', '/etc/shadow', '/etc/cron.d/x', '/', '', 'relative/x', '.', '..',
    path.join(c.root, 'ok'), path.join(c.root, 'a', 'b'), '/var/log/cni/x.log', '/tmp', '/run', `${c.root}/../escape`,
    'a', 'eth0', 'net1', 'x'.repeat(1 + Math.floor(r() * 1100)), `${c.root}/${'d'.repeat(300)}`,
  ];
  let s = pick(bases);
  const edits = Math.floor(r() * 3);
  for (let i = 0; i < edits; i++) {
    const f = pick(fragments);
    const at = Math.floor(r() * (s.length + 1));
    s = s.slice(0, at) + f + s.slice(at);
  }
  if (r() < 0.15) s = Array.from({ length: 1 + Math.floor(r() * 40) }, () => String.fromCharCode(32 + Math.floor(r() * 95))).join('');
  return s;
}

interface Field { where: 'conf' | 'env'; key: string }

/** Every path-like and name-like field, per plugin; "a.b" is a nested config key. */
const FIELDS: Record<PluginName, string[]> = {
  bridge: ['name', 'bridge', 'stateDir', 'logFile', 'ipam.type', 'ipam.dataDir', 'ipam.resolvConf', 'nameResolution.runDir', 'nameResolution.resolvConf', 'nameResolution.dnsmasq', 'nameResolution.domain', 'runtimeConfig.aliases.0', 'runtimeConfig.mac'],
  macvlan: ['name', 'master', 'dataDir', 'logFile', 'mode', 'ipam.type', 'ipam.dataDir'],
  'vxlan-overlay': ['name', 'runDir', 'bridge', 'vxlanDevice', 'logFile', 'ipam.dataDir', 'store.dir', 'nameResolution.runDir', 'nameResolution.resolvConf', 'nameResolution.dnsmasq'],
  loopback: ['name', 'logFile', 'type'],
  portmap: ['name', 'dataDir', 'logFile', 'conditionsV4.0', 'runtimeConfig.portMappings.0.hostIP', 'runtimeConfig.portMappings.0.protocol'],
  'host-local': ['name', 'logFile', 'ipam.dataDir', 'ipam.resolvConf', 'ipam.subnet', 'ipam.gateway'],
  tuning: ['name', 'dataDir', 'logFile', 'mac', 'sysctl.net/core/somaxconn', 'runtimeConfig.mac'],
  bandwidth: ['name', 'logFile'],
  firewall: ['name', 'logFile', 'ingressPolicy', 'iptablesAdminChainName'],
};
const STATE_FIELDS = new Set(['stateDir', 'dataDir', 'runDir', 'ipam.dataDir', 'store.dir', 'nameResolution.runDir']);
const ENV_FIELDS = ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_NETNS', 'CNI_ARGS', 'CNI_PATH', 'NODE_CNI_LOG_FILE', 'NODE_CNI_LOG_DIR'];

function setPath(o: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let cur: any = o;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = parts[i + 1];
    if (cur[parts[i]] === undefined || typeof cur[parts[i]] !== 'object') cur[parts[i]] = /^\d+$/.test(next) ? [] : {};
    cur = cur[parts[i]];
  }
  cur[parts[parts.length - 1]] = value;
}

interface Answer { status: number | null; stdout: string; stderr: string; json?: any }

function cleanAnswer(a: Answer, verb: string): string | undefined {
  if (a.status === null) return 'killed (hung?)';
  if (a.stdout.includes('\n    at ')) return 'stack trace on stdout';
  if (a.status === 0) {
    if (verb === 'ADD') return a.json && typeof a.json === 'object' && typeof a.json.cniVersion === 'string' ? undefined : `ADD exit 0 without a result: ${a.stdout.slice(0, 200)}`;
    return a.stdout === '' ? undefined : `${verb} exit 0 with stdout ${a.stdout.slice(0, 200)}`;
  }
  if (a.status !== 1) return `exit ${a.status}`;
  if (!a.json || typeof a.json.msg !== 'string' || !a.json.msg) return `not one error object: ${a.stdout.slice(0, 200)}`;
  if (!CODES.has(a.json.code)) return `code ${a.json.code} is not in the table`;
  if (a.stdout.trim().split('\n').length !== 1) return 'more than one line on stdout';
  return undefined;
}

beforeAll(() => ensureBuilt(...PLUGINS), 600_000);

describe(`hostile fields (seed ${SEED}, ${ITERATIONS} inputs)`, () => {
  const sb = new Sandbox('sx');
  let host: string;
  let ctx: Ctx;
  let marker: string;
  let cwd: string;
  beforeAll(() => {
    host = sb.netns('h');
    const root = sb.tmpdir('fz');
    fs.chmodSync(root, 0o755); // dnsmasq (nobody) reads hosts.d below it
    const x = path.join(root, 'x');
    fs.mkdirSync(x);
    marker = path.join(x, 'ran');
    const evil = path.join(x, 'evil.sh');
    fs.writeFileSync(evil, `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const fifo = path.join(x, 'fifo');
    spawnSync('mkfifo', [fifo]);
    const etcLink = path.join(x, 'etc');
    fs.symlinkSync('/etc', etcLink);
    ctx = { root, evil, fifo, etcLink };
    cwd = sb.tmpdir('cwd');
    sh('ip', ['-n', host, 'link', 'add', 'sxfz0', 'type', 'veth', 'peer', 'name', 'sxfz1']); // a macvlan master
    sh('ip', ['-n', host, 'link', 'set', 'sxfz0', 'up']);
    sb.onCleanup(() => {
      for (const pid of dnsmasqPids(root)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    });
  });
  afterAll(() => sb.cleanup());

  function baseConf(plugin: PluginName, n: number): Record<string, unknown> {
    const dir = (s: string) => path.join(ctx.root, `${s}`);
    const ipam = { type: 'host-local', subnet: `10.253.${n % 200}.0/24`, dataDir: dir('ipam') };
    switch (plugin) {
      case 'bridge': return { cniVersion: '1.1.0', name: 'sxfz', type: 'bridge', bridge: 'sxfzbr', isGateway: true, ipMasq: true, stateDir: dir('bridge'), ipam, nameResolution: { runDir: dir('dns'), upstream: ['10.78.0.99'] } };
      case 'macvlan': return { cniVersion: '1.1.0', name: 'sxfz', type: 'macvlan', master: 'sxfz0', dataDir: dir('macvlan'), ipam };
      case 'vxlan-overlay': return { cniVersion: '1.1.0', name: 'sxfz', type: 'vxlan-overlay', runDir: dir('run'), ipam: { dataDir: dir('ipam') }, store: { type: 'file', dir: dir('store') } };
      case 'loopback': return { cniVersion: '1.1.0', name: 'sxfz', type: 'loopback' };
      case 'portmap': return {
        cniVersion: '1.1.0', name: 'sxfz', type: 'portmap', dataDir: dir('portmap'), runtimeConfig: { portMappings: [{ hostPort: 8000 + n, containerPort: 80, protocol: 'tcp' }] },
        prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: [{ address: `10.253.${n % 200}.7/24`, interface: 0 }] },
      };
      case 'host-local': return { cniVersion: '1.1.0', name: 'sxfz', type: 'bridge', ipam };
      case 'tuning': return { cniVersion: '1.1.0', name: 'sxfz', type: 'tuning', dataDir: dir('tuning'), sysctl: { 'net.core.somaxconn': '500' }, prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/x' }] } };
      case 'firewall': return { cniVersion: '1.1.0', name: 'sxfz', type: 'firewall', prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/x' }], ips: [{ address: `10.253.${n % 200}.9/24`, interface: 0 }] } };
      case 'bandwidth': return { cniVersion: '1.1.0', name: 'sxfz', type: 'bandwidth', ingressRate: 1000000, ingressBurst: 100000, prevResult: { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', sandbox: '/x' }] } };
    }
  }

  /** What a hostile path would have created, if anything escaped: every absolute path in the input outside the test root. */
  function escapeTargets(value: string): string[] {
    const out = new Set<string>();
    for (const part of value.split(/[\n\r\t\0 ,;=]/)) {
      if (!part.startsWith('/') || part.includes('\ud800')) continue;
      const p = path.resolve(part);
      if (p.startsWith(`${ctx.root}/`) || p === ctx.root) continue;
      out.add(p);
    }
    return [...out];
  }

  /** The highest directory of `p` that does not exist yet (what a creation of p would add), or undefined. */
  function firstMissing(p: string): string | undefined {
    if (fs.existsSync(p)) return undefined;
    let top = p;
    while (!fs.existsSync(path.dirname(top))) top = path.dirname(top);
    return top;
  }

  function leftovers(plugin: PluginName, ns: string, ip?: string): string[] {
    const found: string[] = [];
    const walk = (d: string): void => {
      let entries: fs.Dirent[];
      try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
      for (const e of entries) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/^\d+\.\d+\.\d+\.\d+$/.test(e.name) || e.name.endsWith('.json') || d.endsWith('hosts.d')) found.push(path.relative(ctx.root, p));
      }
    };
    // The whole test directory (a valid hostile path may have moved the state anywhere in it), but the evil kit.
    for (const e of fs.readdirSync(ctx.root)) if (e !== 'x') walk(path.join(ctx.root, e));
    const agentFiles = found.filter((f) => /\/agent-\d+\.json$/.test(f));
    const links = sh('ip', ['-n', ns, '-o', 'link']).split('\n').filter((l) => l && !/: lo[:@]/.test(l));
    const hostVeths = shTry('ip', ['-n', host, '-o', 'link', 'show', 'type', 'veth']).stdout.split('\n').filter((l) => l && !/sxfz[01]/.test(l));
    const nft = ip ? shTry('ip', ['netns', 'exec', host, 'nft', 'list', 'ruleset']).stdout.includes(` ${ip} `) : false;
    return [
      ...found.filter((f) => !agentFiles.includes(f)),
      ...links.map((l) => `container link ${l.split(':')[1]}`),
      ...hostVeths.map((l) => `host veth ${l.split(':')[1]}`),
      ...(nft ? [`nft still has ${ip}`] : []),
      ...(plugin === 'bridge' && dnsmasqPids(ctx.root).length ? ['a dnsmasq is still running'] : []),
    ];
  }

  it('every answer is clean, nothing escapes, nothing runs, nothing is left', () => {
    const r = rng(SEED);
    const problems: string[] = [];
    const before = { etc: fs.readdirSync('/etc').sort(), cwd: fs.readdirSync(cwd) };
    for (let n = 0; n < ITERATIONS; n++) {
      const plugin = PLUGINS[n % PLUGINS.length];
      const fields: Field[] = [...FIELDS[plugin].map((key) => ({ where: 'conf' as const, key })), ...ENV_FIELDS.map((key) => ({ where: 'env' as const, key }))];
      const field = fields[Math.floor(r() * fields.length)];
      const value = hostileString(r, ctx);
      const ns = sb.netns(`c${n}`);
      const conf = baseConf(plugin, n);
      const env: Record<string, string> = {
        PATH: process.env.PATH!, CNI_CONTAINERID: `${sb.tag}-${n}`, CNI_NETNS: sb.nsPath(ns), CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', CNI_ARGS: 'IgnoreUnknown=1',
      };
      if (field.where === 'conf') setPath(conf, field.key, value);
      else env[field.key] = value;
      const created = new Map(escapeTargets(value).map((p) => [p, firstMissing(p)]));
      // A state directory may be any valid place (docs/security.md): the plugin creating it there is right; the test removes it.
      const mayCreate = field.where === 'conf' && STATE_FIELDS.has(field.key) && stateDirProblem(value) === undefined;
      const label = `#${n} ${plugin} ${field.where}:${field.key}=${JSON.stringify(value).slice(0, 120)}`;

      const call = (verb: string): Answer => {
        const e: Record<string, string> = { ...env, CNI_COMMAND: verb };
        for (const k of Object.keys(e)) e[k] = e[k].replace(/\0/g, ''); // execve cannot pass a NUL
        const res = spawnSync('ip', ['netns', 'exec', host, path.join(DIST_BIN, plugin)], { input: JSON.stringify(conf), env: e, encoding: 'utf8', cwd, timeout: 20_000 });
        const a: Answer = { status: res.status, stdout: res.stdout ?? '', stderr: res.stderr ?? '' };
        try { a.json = a.stdout ? JSON.parse(a.stdout) : undefined; } catch { /* not JSON */ }
        const bad = cleanAnswer(a, verb);
        if (bad) problems.push(`${label}: ${verb}: ${bad} (stderr: ${a.stderr.slice(0, 300)})`);
        return a;
      };
      const add = call('ADD');
      const del1 = call('DEL');
      call('DEL');
      if (add.status === 0 && del1.status !== 0) problems.push(`${label}: DEL failed after a good ADD: ${del1.stdout}`);

      for (const [p, top] of created) {
        if (!top || !fs.existsSync(top)) continue;
        if (!mayCreate) problems.push(`${label}: created ${p} outside the test directory`);
        fs.rmSync(top, { recursive: true, force: true });
      }
      if (fs.existsSync(marker)) problems.push(`${label}: evil.sh ran`);
      const ip = add.json?.ips?.[0]?.address?.split('/')[0] ?? (plugin === 'portmap' ? `10.253.${n % 200}.7` : undefined);
      const left = leftovers(plugin, ns, ip);
      if (left.length) problems.push(`${label}: left after DEL: ${left.join(', ')}`);
      shTry('ip', ['netns', 'del', ns]);
      if (problems.length > 5) break;
    }
    expect(fs.readdirSync('/etc').sort()).toEqual(before.etc);
    expect(fs.readdirSync(cwd)).toEqual(before.cwd);
    expect(fs.existsSync(path.join(path.dirname(ctx.root), 'escape'))).toBe(false);
    expect(problems).toEqual([]);
  }, 600_000);
});
