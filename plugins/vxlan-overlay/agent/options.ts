// Command line of `vxlan-overlay agent|leave`: flags, optionally on top of a
// network config file (--conf, the same .conflist the runtime uses). Pure.

import * as os from 'os';
import { parseArgs } from 'util';
import { overlayEntryOf, parseOverlayConfig } from '../config';
import type { AgentOptions } from './agent';

export const AGENT_VERBS = ['agent', 'leave'] as const;
export type AgentVerb = (typeof AGENT_VERBS)[number];

export function isAgentVerb(arg: string | undefined): arg is AgentVerb {
  return (AGENT_VERBS as readonly string[]).includes(arg ?? '');
}

export const USAGE = `usage: vxlan-overlay agent --network NAME [options]   run the overlay agent of this host (until SIGTERM; SIGHUP reconciles now)
       vxlan-overlay leave --network NAME [options]   stop the agent and give this host's subnet back now
options:
  --conf FILE            read the network from a .conf/.conflist (flags override it)
  --network NAME         the network name (the config's "name")
  --cidr CIDR            cluster CIDR, e.g. 10.244.0.0/16 (needed by the first agent of a network)
  --subnet-length N      prefix length of one host's subnet (default 24)
  --ipv6-cidr CIDR       dual-stack: IPv6 cluster CIDR, e.g. fd00:10:244::/56 (with --cidr; also makes an IPv4 network dual-stack)
  --ipv6-subnet-length N prefix length of one host's IPv6 subnet (default 64)
  --vni N --port N       VXLAN id (default 1) and UDP port (default 4789)
  --mtu N                overlay MTU (default: underlay MTU - 50, or - 70 over IPv6)
  --bridge NAME --vxlan-device NAME   device names (default ovbr<vni>, ovx<vni>)
  --underlay-ip IP       this host's underlay address, IPv4 or IPv6 (default: of --underlay-dev, or of the default route's
                         device in the default route's family, IPv4's first)
  --underlay-dev NAME
  --store-dir DIR        file store shared by every agent (default /var/lib/cni/vxlan-overlay/store)
  --etcd URL[,URL]       etcd v3 endpoints instead of the file store
  --host-id ID           this host's identity in the store (default <hostname>-<underlay ip>)
  --lease-ttl S          live record lease TTL in seconds (default 10)
  --run-dir DIR          readiness state dir (default /run/node-cni/overlay)
  --ipam-data-dir DIR    leave: the containers' address reservations (default /var/lib/cni/networks, or the conf's ipam.dataDir)
  --reconcile-ms N       full reconcile period (default 5000; beyond 100 peers it stretches in proportion)
  --heartbeat-ms N       readiness heartbeat period (default 1000)
  --log-file FILE        also append log lines here`;

/** The agent's options as the command line gives them: the host ID may be left to the agent, the logger is a file. */
export interface CliOptions extends Omit<AgentOptions, 'hostID' | 'log'> {
  verb: AgentVerb;
  /** leave: host-local's data dir of the network's containers. */
  ipamDataDir: string;
  /** Undefined: <hostname>-<underlay ip>, decided once the underlay is known. */
  hostID?: string;
  logFile?: string;
}

export class UsageError extends Error {}

function int(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

/** argv after the executable (first element is the verb). readFile is injected so this stays pure. */
export function parseCli(argv: readonly string[], readFile: (path: string) => string): CliOptions {
  const [verb, ...rest] = argv;
  if (!isAgentVerb(verb)) throw new UsageError(`unknown verb "${verb ?? ''}"`);
  const s = { type: 'string' } as const;
  let values;
  try {
    ({ values } = parseArgs({
      args: [...rest], strict: true, allowPositionals: false,
      options: {
        conf: s, network: s, cidr: s, 'subnet-length': s, 'ipv6-cidr': s, 'ipv6-subnet-length': s, 'ipam-data-dir': s, vni: s, port: s, mtu: s, bridge: s, 'vxlan-device': s,
        'underlay-ip': s, 'underlay-dev': s, 'store-dir': s, etcd: s, 'host-id': s, 'lease-ttl': s, 'run-dir': s,
        'reconcile-ms': s, 'heartbeat-ms': s, 'log-file': s,
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let base: Record<string, unknown> = {};
  if (values.conf) {
    try {
      base = overlayEntryOf(JSON.parse(readFile(values.conf)) as Record<string, unknown>);
    } catch (err) {
      throw new UsageError(`--conf ${values.conf}: ${(err as Error).message}`);
    }
  }
  const merged: Record<string, unknown> = { ...base };
  if (values.network) merged.name = values.network;
  if (!merged.name) throw new UsageError('--network (or --conf) is required');
  if (values.cidr) merged.cidr = values.cidr;
  if (values['ipv6-cidr']) merged.ipv6Cidr = values['ipv6-cidr'];
  if (values['ipam-data-dir']) merged.ipam = { ...(merged.ipam as object | undefined), dataDir: values['ipam-data-dir'] };
  if (values['store-dir'] && values.etcd) throw new UsageError('--store-dir and --etcd exclude each other');
  if (values['store-dir']) merged.store = { type: 'file', dir: values['store-dir'] };
  if (values.etcd) merged.store = { type: 'etcd', endpoints: values.etcd.split(',') };
  if (values['run-dir']) merged.runDir = values['run-dir'];
  let conf;
  try {
    conf = parseOverlayConfig(merged);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    verb,
    network: conf.name,
    cidr: conf.cidr,
    subnetLength: int('subnet-length', values['subnet-length'], 1, 30) ?? conf.subnetLength,
    ipv6Cidr: conf.ipv6Cidr,
    ipv6SubnetLength: int('ipv6-subnet-length', values['ipv6-subnet-length'], 1, 126) ?? conf.ipv6SubnetLength,
    ipamDataDir: conf.ipamDataDir,
    vni: int('vni', values.vni, 1, 0xffffff) ?? conf.vni,
    port: int('port', values.port, 1, 65535) ?? conf.port,
    mtu: int('mtu', values.mtu, 0, 65535) ?? conf.mtu,
    bridge: values.bridge ?? conf.bridge,
    vxlan: values['vxlan-device'] ?? conf.vxlanDevice,
    underlayIp: values['underlay-ip'],
    underlayDev: values['underlay-dev'] ?? conf.underlayInterface,
    store: conf.store,
    hostID: values['host-id'],
    leaseTtl: int('lease-ttl', values['lease-ttl'], 1, 3600) ?? conf.leaseTTL ?? 10,
    runDir: conf.runDir,
    reconcileMs: int('reconcile-ms', values['reconcile-ms'], 100, 3600000) ?? 5000,
    heartbeatMs: int('heartbeat-ms', values['heartbeat-ms'], 100, 60000) ?? 1000,
    logFile: values['log-file'],
  };
}

export function defaultHostId(underlayIp: string): string {
  return `${os.hostname()}-${underlayIp}`;
}
