// Pure parsing of the bridge configuration: every field of the reference
// bridge plugin, unchanged, into a readonly typed object. Bad values throw
// CniError code 7 naming the field and the value.

import { parseCniArgs, type CniArgs } from '../../lib/cni/args';
import { pickContainerMac } from '../../lib/cni/mac';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { parseConfigDns } from '../../lib/cni/dns';
import type { Dns, NetConf } from '../../lib/cni/types';
import { parseNameResolution, type NameResolutionConfig } from '../../lib/dns/config';
import { parseStateDir } from '../../lib/util/paths';
import { show } from '../../lib/util/show';
import { GW_PRIORITY_ARG, gwPriorityOf } from '../../lib/routes/priority';
import { isObject } from '../../lib/util/is-object';
import { isValidIfname } from '../../lib/util/ifname';

export type MasqBackend = 'nftables' | 'iptables';

export interface BridgeConfig {
  readonly cniVersion: string;
  readonly name: string;
  readonly bridge: string;
  readonly isGateway: boolean;
  readonly isDefaultGateway: boolean;
  readonly forceAddress: boolean;
  readonly ipMasq: boolean;
  /** Both values give the same nftables rules in our own table; see docs/benchmarks/bridge.md. */
  readonly ipMasqBackend: MasqBackend;
  /** 0 = leave the kernel default. */
  readonly mtu: number;
  readonly hairpinMode: boolean;
  readonly promiscMode: boolean;
  /** 0 = no access VLAN. */
  readonly vlan: number;
  /** Every tagged VID, expanded from {id} and {minID,maxID}, sorted, unique. */
  readonly vlanTrunk: readonly number[];
  readonly preserveDefaultVlan: boolean;
  readonly macspoofchk: boolean;
  readonly enabledad: boolean;
  readonly disableContainerInterface: boolean;
  readonly portIsolation: boolean;
  /** Empty string: no IPAM (L2 only). */
  readonly ipamType: string;
  readonly dns?: Dns;
  /** Container veth MAC: runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC. */
  readonly mac?: string;
  /** Our extension: where per-attachment records live (default /run/cni/bridge). */
  readonly stateDir: string;
  /** Our extension: no forwarding between this bridge and other isolated bridges (lib/bridge/isolation.ts). */
  readonly isolation: boolean;
  /** Our extension: container-name DNS on the gateway address (lib/dns/, docs/dns.md); undefined = off. */
  readonly nameResolution?: NameResolutionConfig;
  /** Our extension: the attachment's gateway priority (Docker's --gw-priority), lib/routes/priority.ts. */
  readonly gwPriority: number;
  /**
   * Our extension, Docker's `--internal`: no default route, no masquerade,
   * nothing forwarded between the bridge and anything else
   * (lib/firewall/netpolicy.ts); published ports are refused.
   */
  readonly internal: boolean;
}

export const DEFAULT_BRIDGE = 'cni0';
/** CNI_ARGS the bridge reads: MAC for the container veth, IP for host-local (in-process), the gateway priority. */
export const BRIDGE_ARGS: readonly string[] = ['MAC', 'IP', GW_PRIORITY_ARG];
export const DEFAULT_STATE_DIR = '/run/cni/bridge';

function bad(msg: string, details?: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, msg, details);
}

function bool(conf: Record<string, unknown>, key: string): boolean {
  const v = conf[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw bad(`bridge: "${key}" must be true or false, got ${show(v)}`);
  return v;
}

function int(conf: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = conf[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw bad(`bridge: "${key}" must be an integer from ${min} to ${max}, got ${show(v)}`);
  }
  return v;
}

function parseTrunk(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`bridge: "vlanTrunk" must be a list of {"id"} or {"minID","maxID"}, got ${show(v)}`);
  const vids = new Set<number>();
  const vid = (x: unknown, what: string): number => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 4094) throw bad(`bridge: vlanTrunk ${what} must be a VLAN id from 1 to 4094, got ${show(x)}`);
    return x;
  };
  for (const [i, entry] of v.entries()) {
    if (typeof entry !== 'object' || entry === null) throw bad(`bridge: vlanTrunk[${i}] must be an object, got ${show(entry)}`);
    const e = entry as Record<string, unknown>;
    if (e.id !== undefined) {
      vids.add(vid(e.id, `[${i}].id`));
      continue;
    }
    if (e.minID === undefined || e.maxID === undefined) throw bad(`bridge: vlanTrunk[${i}] needs "id" or both "minID" and "maxID"`);
    const lo = vid(e.minID, `[${i}].minID`);
    const hi = vid(e.maxID, `[${i}].maxID`);
    if (lo > hi) throw bad(`bridge: vlanTrunk[${i}] has minID ${lo} greater than maxID ${hi}`);
    for (let x = lo; x <= hi; x++) vids.add(x);
  }
  return [...vids].sort((a, b) => a - b);
}

/** The reference replaces IPAM's DNS only when some field is set. */
function parseDns(v: unknown): Dns | undefined {
  const out = parseConfigDns(v, 'bridge');
  return out && Object.keys(out).length ? out : undefined;
}

/**
 * `cniArgs`: CNI_ARGS as the skel parsed them (inv.cniArgs, lib/cni/args.ts
 * cniArgsOf); a raw "K=V;..." string is parsed by the same lib/cni/args rules.
 */
export function parseBridgeConfig(conf: NetConf, cniArgs: CniArgs | string = {}): BridgeConfig {
  const args = typeof cniArgs === 'string' ? parseCniArgs(cniArgs, BRIDGE_ARGS) : cniArgs;
  const c = conf as Record<string, unknown>;
  const bridge = c.bridge === undefined || c.bridge === '' ? DEFAULT_BRIDGE : c.bridge;
  if (typeof bridge !== 'string' || !isValidIfname(bridge)) throw bad(`bridge: invalid bridge name ${show(c.bridge)} (at most 15 bytes, no "/", ":" or spaces)`);

  const backend = c.ipMasqBackend ?? 'nftables';
  if (backend !== 'nftables' && backend !== 'iptables') throw bad(`bridge: "ipMasqBackend" must be "nftables" or "iptables", got ${show(backend)}`);

  const isDefaultGateway = bool(c, 'isDefaultGateway');
  const hairpinMode = bool(c, 'hairpinMode');
  const promiscMode = bool(c, 'promiscMode');
  if (hairpinMode && promiscMode) throw bad('bridge: cannot set both "hairpinMode" and "promiscMode" (a promiscuous bridge already reflects frames)');

  const ipam = c.ipam;
  if (ipam !== undefined && ipam !== null && !isObject(ipam)) throw bad(`bridge: "ipam" must be an object, got ${show(ipam)}`);
  const ipamType = (ipam as { type?: unknown } | undefined)?.type ?? '';
  if (typeof ipamType !== 'string') throw bad(`bridge: "ipam.type" must be a string, got ${show(ipamType)}`);
  if (ipamType.includes('/')) throw bad(`bridge: "ipam.type" must be a plugin name, not a path: "${ipamType}"`);

  const disableContainerInterface = bool(c, 'disableContainerInterface');
  if (disableContainerInterface && ipamType) throw bad(`bridge: "disableContainerInterface" cannot be used with IPAM ("ipam.type" is "${ipamType}"): a down interface cannot use addresses`);

  const stateDir = parseStateDir(c.stateDir ?? DEFAULT_STATE_DIR, { plugin: 'bridge', field: 'stateDir' });

  const nameResolution = parseNameResolution(c.nameResolution, conf.name);
  const isGateway = bool(c, 'isGateway') || isDefaultGateway;
  if (nameResolution && !isGateway) throw bad('bridge: "nameResolution" needs "isGateway": the DNS service listens on the gateway address of the bridge');
  if (nameResolution && !ipamType) throw bad('bridge: "nameResolution" needs IPAM: names resolve to the addresses IPAM hands out');
  const vlan = int(c, 'vlan', 0, 4094);
  // Isolation rules match the bridge as in/out interface; a VLAN's routed traffic uses <bridge>.<vlan>.
  if (bool(c, 'isolation') && isGateway && vlan) throw bad(`bridge: "isolation" cannot be combined with "vlan" and "isGateway": the gateway of VLAN ${vlan} is on "${bridge}.${vlan}", which the isolation rules do not cover`);

  return Object.freeze({
    cniVersion: conf.cniVersion,
    name: conf.name,
    bridge,
    isGateway,
    isDefaultGateway,
    forceAddress: bool(c, 'forceAddress'),
    ipMasq: bool(c, 'ipMasq'),
    ipMasqBackend: backend,
    mtu: int(c, 'mtu', 0, 65535),
    hairpinMode,
    promiscMode,
    vlan,
    vlanTrunk: Object.freeze(parseTrunk(c.vlanTrunk)),
    preserveDefaultVlan: bool(c, 'preserveDefaultVlan'),
    macspoofchk: bool(c, 'macspoofchk'),
    enabledad: bool(c, 'enabledad'),
    disableContainerInterface,
    portIsolation: bool(c, 'portIsolation'),
    ipamType,
    dns: parseDns(c.dns),
    mac: pickContainerMac(conf, args, 'bridge'),
    stateDir,
    isolation: bool(c, 'isolation'),
    nameResolution,
    gwPriority: gwPriorityOf(conf, args, 'bridge'),
    internal: bool(c, 'internal'),
  });
}
