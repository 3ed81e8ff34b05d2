// Shared wiring for the portmap e2e tests: a throwaway "host" namespace with a
// bridge, containers wired by hand (veth + addresses), and an "other host"
// namespace connected by a veth. The plugin runs inside the host namespace.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, Sandbox, sh } from '../helpers/sandbox';
import { execCni } from '../helpers/cni';

export const HOST_ADDR4 = '192.168.77.1';
export const HOST_ADDR4_B = '192.168.77.10'; // second host address, for hostIP tests
export const HOST_ADDR6 = 'fd77::1';
export const OTHER_ADDR4 = '192.168.77.2';

export interface Topology {
  host: string;
  other: string;
}

export function buildTopology(sb: Sandbox): Topology {
  const host = sb.netns('h');
  const other = sb.netns('o');
  const ip = (ns: string, ...args: string[]): string => sh('ip', ['-n', ns, ...args]);
  ip(host, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', other);
  ip(host, 'addr', 'add', `${HOST_ADDR4}/24`, 'dev', 'ext0');
  ip(host, 'addr', 'add', `${HOST_ADDR4_B}/24`, 'dev', 'ext0');
  ip(host, 'addr', 'add', `${HOST_ADDR6}/64`, 'dev', 'ext0', 'nodad');
  ip(host, 'link', 'set', 'ext0', 'up');
  ip(other, 'addr', 'add', `${OTHER_ADDR4}/24`, 'dev', 'eth0');
  ip(other, 'addr', 'add', 'fd77::2/64', 'dev', 'eth0', 'nodad');
  ip(other, 'link', 'set', 'eth0', 'up');
  ip(host, 'link', 'add', 'br0', 'type', 'bridge');
  ip(host, 'addr', 'add', '10.88.0.1/24', 'dev', 'br0');
  ip(host, 'addr', 'add', 'fd88::1/64', 'dev', 'br0', 'nodad');
  ip(host, 'link', 'set', 'br0', 'up');
  sb.inNs(host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  return { host, other };
}

/** A container wired by hand: eth0 in its own namespace, the peer on br0. Returns the hand-written prevResult. */
export function addContainer(sb: Sandbox, topo: Topology, name: string, n: number, cniVersion: string): { ns: string; prevResult: Record<string, unknown> } {
  const ns = sb.netns(name);
  const hostVeth = `v${name}`.slice(0, 15);
  sh('ip', ['-n', topo.host, 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  sh('ip', ['-n', topo.host, 'link', 'set', hostVeth, 'master', 'br0', 'up']);
  // This kernel has br_netfilter on (bridge-nf-call-iptables=1): a hairpin DNAT
  // is bridged back out of the port it came in, which needs hairpin mode (the
  // bridge plugin's hairpinMode; the reference needs it too).
  sh('ip', ['-n', topo.host, 'link', 'set', hostVeth, 'type', 'bridge_slave', 'hairpin', 'on']);
  sh('ip', ['-n', ns, 'addr', 'add', `10.88.0.${n}/24`, 'dev', 'eth0']);
  sh('ip', ['-n', ns, 'addr', 'add', `fd88::${n}/64`, 'dev', 'eth0', 'nodad']);
  sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', '10.88.0.1']);
  sh('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', 'fd88::1']);
  const v = cniVersion.startsWith('0.') ? (fam: string) => ({ version: fam }) : () => ({});
  const prevResult = {
    cniVersion,
    interfaces: [{ name: 'br0' }, { name: hostVeth }, { name: 'eth0', sandbox: sb.nsPath(ns) }],
    ips: [
      { ...v('4'), address: `10.88.0.${n}/24`, gateway: '10.88.0.1', interface: 2 },
      { ...v('6'), address: `fd88::${n}/64`, gateway: 'fd88::1', interface: 2 },
    ],
  };
  return { ns, prevResult };
}

/** Start a long-running process; it is killed (by its pid) at cleanup. */
export function startDaemon(sb: Sandbox, ns: string, cmd: string, args: string[]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'ignore' });
  sb.onCleanup(() => child.kill('SIGKILL'));
  return child;
}

/** busybox httpd serving "<text>" on port 80 of the container. */
export function startHttpd(sb: Sandbox, ns: string, text: string): void {
  const dir = sb.tmpdir('www');
  fs.writeFileSync(path.join(dir, 'index.html'), `${text}\n`);
  startDaemon(sb, ns, '/bin/busybox', ['httpd', '-f', '-p', '80', '-h', dir]);
}

const UDP_ECHO = `const s=require('dgram').createSocket('udp6');s.on('message',(m,r)=>s.send('echo:'+m,r.port,r.address));s.bind(PORT);`;

export function startUdpEcho(sb: Sandbox, ns: string, port: number): void {
  startDaemon(sb, ns, process.execPath, ['-e', UDP_ECHO.replace('PORT', String(port))]);
}

/** Body of http://addr:port/ fetched from inside ns, or undefined when it does not answer. */
export function fetchFrom(sb: Sandbox, ns: string, addr: string, port: number): string | undefined {
  const host = addr.includes(':') ? `[${addr}]` : addr;
  // curl, not busybox wget: busybox-static 1.35 wget segfaults with -T.
  const r = sb.inNs(ns, 'curl', ['-sf', '-g', '--max-time', '3', `http://${host}:${port}/index.html`], { timeout: 8000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const UDP_CLIENT = `const s=require('dgram').createSocket(process.argv[1].includes(':')?'udp6':'udp4');
s.on('message',m=>{process.stdout.write(String(m));process.exit(0)});
setTimeout(()=>process.exit(1),Number(process.argv[4]||2000));
s.bind(Number(process.argv[3]||0),()=>s.send('ping',Number(process.argv[2]),process.argv[1]));`;

/** One datagram to addr:port (from `srcPort`, default any), the answer or undefined. */
export function udpAsk(sb: Sandbox, ns: string, addr: string, port: number, srcPort = 0, waitMs = 2000): string | undefined {
  const r = sb.inNs(ns, process.execPath, ['-e', UDP_CLIENT, addr, String(port), String(srcPort), String(waitMs)], { timeout: 8000 });
  return r.status === 0 ? r.stdout : undefined;
}

/** Wait until fn returns something (servers need a moment to bind). */
export async function eventually<T>(fn: () => T | undefined, tries = 30): Promise<T | undefined> {
  for (let i = 0; i < tries; i++) {
    const v = fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

export interface PluginRun {
  status: number | null;
  stdout: string;
  stderr: string;
  json?: any;
}

/** `env`: the CNI_* variables as the test gives them (some leave CNI_NETNS or CNI_IFNAME out); CNI_PATH is dist/bin. */
export function runPortmap(_sb: Sandbox, hostNs: string, env: Record<string, string | undefined>, conf: unknown, bin = path.join(DIST_BIN, 'portmap')): PluginRun {
  return execCni(hostNs, bin, { command: env.CNI_COMMAND ?? '' }, conf, { rawEnv: { CNI_PATH: DIST_BIN, ...env }, timeout: 30000 });
}

export function nftTable(sb: Sandbox, hostNs: string): string {
  const r = sb.inNs(hostNs, 'nft', ['list', 'table', 'inet', 'cni_portmap']);
  return r.status === 0 ? r.stdout : '';
}

/** "<containerID>:<ifname>" of every record in a network's record directory (each file holds its attachment). */
export function recordedAttachments(networkDir: string): string[] {
  return fs.readdirSync(networkDir).filter((n) => !n.startsWith('.') && n.endsWith('.json')).map((n) => {
    const rec = JSON.parse(fs.readFileSync(path.join(networkDir, n), 'utf8')) as { containerID: string; ifname: string };
    return `${rec.containerID}:${rec.ifname}`;
  }).sort();
}
