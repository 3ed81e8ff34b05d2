// The overlay schema on top of any KvStore. Under /node-cni/overlay/<network>/:
//   config                     the network config (JSON), created once, never silently changed
//                              (one change is allowed: an IPv4 network becomes dual-stack)
//   subnets/<10.244.3.0_24>    sticky assignment: the hostID that leased it (no lease: survives restarts)
//   hosts/<hostID>             the live record of a running agent (JSON), attached to its lease
// Every allocation is a compare-and-swap txn, never a read-then-write race.
// Dual-stack: the IPv6 subnet of a host is the one at its IPv4 subnet's
// position in the IPv6 cluster CIDR, so one key leases and releases both, and
// two keys per host is all the store holds at any cluster size.

import { CniError, ErrorCode } from '../../../lib/cni/errors';
import { createIfAbsent, KvStore, LeaseId, WatchHandle } from './types';
import {
  cidrContains, decodeHostId, decodeSubnetKey, encodeHostId, encodeSubnetKey, enumerateSubnets, formatCidr, isIpv6Cidr, nthIpv6Subnet,
  parseIpv4Cidr, parseIpv6Cidr, subnetCount, subnetIndex,
} from './subnets';
import { familyOfText } from '../../../lib/ip';
import { parseColonMac } from '../../../lib/util/mac';

export const OVERLAY_ROOT = '/node-cni/overlay/';

export interface OverlayNetworkConfig {
  /** Cluster CIDR every host subnet comes from, e.g. "10.244.0.0/16". */
  cidr: string;
  /** Prefix length of one host's subnet (default 24). */
  subnetLength: number;
  /** VXLAN network identifier. */
  vni: number;
  /** VXLAN UDP port. */
  port: number;
  /** Dual-stack: the IPv6 cluster CIDR, e.g. "fd00:10:244::/56" (absent: IPv4 only, as every config before it). */
  ipv6Cidr?: string;
  /** Prefix length of one host's IPv6 subnet (default 64); set with ipv6Cidr. */
  ipv6SubnetLength?: number;
}

/** The keys compared when a config meets the one in the store; the IPv6 pair only when both name it. */
const BASE_CONFIG_KEYS = ['cidr', 'subnetLength', 'vni', 'port'] as const;
const IPV6_CONFIG_KEYS = ['ipv6Cidr', 'ipv6SubnetLength'] as const;

/** What every other host needs to reach this one. */
export interface HostRecord {
  hostID: string;
  /** Underlay (physical) address the VXLAN packets are sent to. */
  underlayIP: string;
  /** MAC of this host's VXLAN device (neighbour + FDB entries on peers). */
  vtepMAC: string;
  vni: number;
  port: number;
  mtu: number;
  /** This host's subnet, e.g. "10.244.3.0/24". */
  subnet: string;
  /** Dual-stack: this host's IPv6 subnet, e.g. "fd00:10:244:3::/64" (records of IPv4 networks and older agents have none). */
  subnet6?: string;
}

export type OverlayErrorReason = 'config-conflict' | 'config-missing' | 'cidr-full' | 'contention' | 'not-assigned' | 'invalid';

/** A CniError that also says why, so the agent and tests can tell the cases apart. */
export class OverlayStoreError extends CniError {
  constructor(readonly reason: OverlayErrorReason, code: number, msg: string) {
    super(code, msg);
    this.name = 'OverlayStoreError';
  }
}

export type HostChange = { type: 'put'; host: HostRecord; modRevision: number } | { type: 'delete'; hostID: string; modRevision: number };

export interface HostWatchListener {
  onChanges(changes: HostChange[]): void;
  /** History is gone: list again (listHosts) and watch from its revision + 1. */
  onCompacted(): void;
  onError?(err: Error): void;
}

export interface ClaimResult {
  subnet: string;
  /** Dual-stack: the IPv6 subnet paired with it. */
  subnet6?: string;
  /** false when the host already had this subnet (a restart). */
  created: boolean;
}

const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const MAX_CLAIM_ATTEMPTS = 20;

export function networkPrefix(network: string): string {
  if (!NETWORK_NAME.test(network)) {
    throw new OverlayStoreError('invalid', ErrorCode.InvalidConfig, `overlay network name "${network}" must be letters, digits, "_", "." or "-"`);
  }
  return `${OVERLAY_ROOT}${network}/`;
}

/** Check and default a network config; throws OverlayStoreError (code 7) naming the bad field. */
export function normalizeNetworkConfig(network: string, cfg: Partial<OverlayNetworkConfig> & { cidr: string }): OverlayNetworkConfig {
  const bad = (msg: string): never => {
    throw new OverlayStoreError('invalid', ErrorCode.InvalidConfig, `overlay network "${network}": ${msg}`);
  };
  let cidr;
  try { cidr = parseIpv4Cidr(cfg.cidr); } catch (e) { return bad(`cidr: ${(e as Error).message}`); }
  const subnetLength = cfg.subnetLength ?? 24;
  if (!Number.isInteger(subnetLength) || subnetLength < cidr.prefixLength || subnetLength > 30) {
    bad(`subnetLength /${subnetLength} must be between /${cidr.prefixLength} (the cidr) and /30`);
  }
  const vni = cfg.vni ?? 1;
  if (!Number.isInteger(vni) || vni < 1 || vni > 0xffffff) bad(`vni ${vni} must be 1..16777215`);
  const port = cfg.port ?? 4789;
  if (!Number.isInteger(port) || port < 1 || port > 65535) bad(`port ${port} must be 1..65535`);
  const out: OverlayNetworkConfig = { cidr: formatCidr(cidr), subnetLength, vni, port };
  if (cfg.ipv6Cidr === undefined) {
    if (cfg.ipv6SubnetLength !== undefined) bad('ipv6SubnetLength needs ipv6Cidr');
    return out;
  }
  let cidr6;
  try { cidr6 = parseIpv6Cidr(cfg.ipv6Cidr); } catch (e) { return bad(`ipv6Cidr: ${(e as Error).message}`); }
  const len6 = cfg.ipv6SubnetLength ?? 64;
  // ::1 is the gateway, and the containers need addresses after it.
  if (!Number.isInteger(len6) || len6 < cidr6.prefixLength || len6 > 126) bad(`ipv6SubnetLength /${len6} must be between /${cidr6.prefixLength} (the ipv6Cidr) and /126`);
  // Every IPv4 subnet needs its IPv6 partner at the same position.
  if (len6 - cidr6.prefixLength < subnetLength - cidr.prefixLength) {
    bad(`ipv6Cidr ${cidr6.text} holds ${2 ** (len6 - cidr6.prefixLength)} /${len6} subnets, fewer than the ${subnetCount(cidr, subnetLength)} /${subnetLength} of ${formatCidr(cidr)}: use a shorter IPv6 prefix or a longer ipv6SubnetLength`);
  }
  return { ...out, ipv6Cidr: cidr6.text, ipv6SubnetLength: len6 };
}

/** The IPv6 subnet paired with a host's IPv4 subnet (same position in the cluster CIDRs), or undefined for an IPv4 network. */
export function pairedIpv6Subnet(cfg: OverlayNetworkConfig, subnet: string): string | undefined {
  if (!cfg.ipv6Cidr) return undefined;
  const index = subnetIndex(parseIpv4Cidr(cfg.cidr), cfg.subnetLength, parseIpv4Cidr(subnet));
  return nthIpv6Subnet(cfg.ipv6Cidr, cfg.ipv6SubnetLength ?? 64, index);
}

export class OverlayStore {
  readonly prefix: string;

  constructor(readonly kv: KvStore, readonly network: string) {
    this.prefix = networkPrefix(network);
  }

  get configKey(): string { return `${this.prefix}config`; }
  get subnetsPrefix(): string { return `${this.prefix}subnets/`; }
  get hostsPrefix(): string { return `${this.prefix}hosts/`; }
  subnetKey(subnet: string): string { return this.subnetsPrefix + encodeSubnetKey(subnet); }
  hostKey(hostID: string): string { return this.hostsPrefix + encodeHostId(hostID); }

  /**
   * Create the config if absent; an existing equal config is fine, a different
   * one is an error. Two cases are not conflicts: a config without IPv6 joins
   * a dual-stack network as it is (the store's config rules, as for the VNI),
   * and a config with IPv6 makes an IPv4 network dual-stack (every host's
   * IPv6 subnet follows from its IPv4 one; agents started before keep IPv4).
   */
  async ensureNetworkConfig(desired: Partial<OverlayNetworkConfig> & { cidr: string }): Promise<OverlayNetworkConfig> {
    const want = normalizeNetworkConfig(this.network, desired);
    for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
      if (await createIfAbsent(this.kv, this.configKey, JSON.stringify(want))) return want;
      const entry = await this.kv.get(this.configKey);
      if (!entry) continue; // deleted in between: try again
      const have = JSON.parse(entry.value) as OverlayNetworkConfig;
      const keys = [...BASE_CONFIG_KEYS, ...(want.ipv6Cidr && have.ipv6Cidr ? IPV6_CONFIG_KEYS : [])];
      const diffs = keys.filter((k) => want[k] !== have[k]).map((k) => `${k} is ${have[k]} in the store, ${want[k]} in this config`);
      if (diffs.length > 0) {
        throw new OverlayStoreError('config-conflict', ErrorCode.InvalidConfig, `overlay network "${this.network}" already exists with another config: ${diffs.join('; ')}`);
      }
      if (!want.ipv6Cidr || have.ipv6Cidr) return have;
      const upgraded = { ...have, ipv6Cidr: want.ipv6Cidr, ipv6SubnetLength: want.ipv6SubnetLength };
      const res = await this.kv.txn({
        compare: [{ key: this.configKey, target: 'modRevision', equals: entry.modRevision }],
        success: [{ type: 'put', key: this.configKey, value: JSON.stringify(upgraded) }],
      });
      if (res.succeeded) return upgraded;
    }
    throw new OverlayStoreError('contention', ErrorCode.TryAgainLater, `overlay network "${this.network}": its config kept changing while this host read it`);
  }

  async getConfig(): Promise<OverlayNetworkConfig | undefined> {
    const kv = await this.kv.get(this.configKey);
    return kv ? (JSON.parse(kv.value) as OverlayNetworkConfig) : undefined;
  }

  /** Every assignment: subnet → hostID. */
  async listSubnets(): Promise<Map<string, { hostID: string; modRevision: number }>> {
    const { kvs } = await this.kv.list(this.subnetsPrefix);
    return new Map(kvs.map((kv) => [decodeSubnetKey(kv.key.slice(this.subnetsPrefix.length)), { hostID: kv.value, modRevision: kv.modRevision }]));
  }

  /**
   * The host's subnet: the one it already has (sticky across restarts), else
   * the first free one, claimed by create-if-absent (a lost race retries).
   */
  async claimSubnet(hostID: string): Promise<ClaimResult> {
    checkHostId(hostID);
    const cfg = await this.requireConfig();
    const cidr = parseIpv4Cidr(cfg.cidr);
    for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
      const taken = await this.listSubnets();
      const held = [...taken].filter(([subnet, o]) => o.hostID === hostID && cidrContains(cidr, parseIpv4Cidr(subnet)));
      const claimed = (subnet: string, created: boolean): ClaimResult => ({ subnet, subnet6: pairedIpv6Subnet(cfg, subnet), created });
      if (held.length === 1) return claimed(held[0][0], false);
      if (held.length > 1) return claimed((await this.dropExtraSubnets(hostID, cidr)) ?? held[0][0], false);
      const free = pickFreeSubnet(cfg, new Set(taken.keys()));
      if (!free) {
        throw new OverlayStoreError('cidr-full', ErrorCode.Internal,
          `overlay network "${this.network}": no free /${cfg.subnetLength} subnet left in ${cfg.cidr} for host "${hostID}" (${taken.size} assigned)`);
      }
      if (await createIfAbsent(this.kv, this.subnetKey(free), hostID)) {
        const kept = await this.dropExtraSubnets(hostID, cidr);
        return claimed(kept ?? free, kept === free);
      }
    }
    throw new OverlayStoreError('contention', ErrorCode.TryAgainLater,
      `overlay network "${this.network}": could not claim a subnet for host "${hostID}" after ${MAX_CLAIM_ATTEMPTS} attempts (others kept taking the free ones)`);
  }

  /**
   * Two claims for the same host racing each other (with a release by a third
   * host in between) can both win a subnet: keep
   * the lowest, give the others back (each only if unchanged), return the kept one.
   */
  private async dropExtraSubnets(hostID: string, cidr: ReturnType<typeof parseIpv4Cidr>): Promise<string | undefined> {
    const mine = [...(await this.listSubnets())]
      .filter(([subnet, o]) => o.hostID === hostID && cidrContains(cidr, parseIpv4Cidr(subnet)))
      .sort(([a], [b]) => parseIpv4Cidr(a).base - parseIpv4Cidr(b).base);
    for (const [subnet, o] of mine.slice(1)) {
      await this.kv.txn({
        compare: [{ key: this.subnetKey(subnet), target: 'modRevision', equals: o.modRevision }],
        success: [{ type: 'delete', key: this.subnetKey(subnet) }],
      });
    }
    return mine[0]?.[0];
  }

  /** Give the host's subnet back and drop its live record (the `leave` verb). Returns what was released. */
  async releaseSubnet(hostID: string): Promise<string[]> {
    checkHostId(hostID);
    for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
      const mine = [...(await this.listSubnets())].filter(([, o]) => o.hostID === hostID);
      const res = await this.kv.txn({
        // Only if still ours: a subnet released and re-claimed by another host in between stays theirs.
        compare: mine.map(([subnet, o]) => ({ key: this.subnetKey(subnet), target: 'modRevision' as const, equals: o.modRevision })),
        success: [...mine.map(([subnet]) => ({ type: 'delete' as const, key: this.subnetKey(subnet) })), { type: 'delete', key: this.hostKey(hostID) }],
      });
      if (res.succeeded) return mine.map(([subnet]) => subnet);
    }
    throw new OverlayStoreError('contention', ErrorCode.TryAgainLater, `overlay network "${this.network}": could not release the subnet of host "${hostID}"`);
  }

  /** Publish (or refresh) the live record, attached to the lease; only for a subnet this host holds. */
  async publishHost(record: HostRecord, leaseId: LeaseId): Promise<void> {
    checkHostId(record.hostID);
    const res = await this.kv.txn({
      compare: [{ key: this.subnetKey(record.subnet), target: 'value', equals: record.hostID }],
      success: [{ type: 'put', key: this.hostKey(record.hostID), value: JSON.stringify(record), lease: leaseId }],
    });
    if (!res.succeeded) {
      throw new OverlayStoreError('not-assigned', ErrorCode.Internal,
        `overlay network "${this.network}": subnet ${record.subnet} is not assigned to host "${record.hostID}" (claim it first)`);
    }
  }

  async listHosts(): Promise<{ hosts: HostRecord[]; revision: number }> {
    const { kvs, revision } = await this.kv.list(this.hostsPrefix);
    const hosts: HostRecord[] = [];
    for (const kv of kvs) {
      const host = parseHostRecord(kv.value);
      if (host) hosts.push(host);
    }
    return { hosts, revision };
  }

  /** Host records appearing, changing and disappearing (lease expiry, revoke, leave) from fromRevision on. */
  watchHosts(fromRevision: number, listener: HostWatchListener): WatchHandle {
    return this.kv.watch(this.hostsPrefix, fromRevision, {
      onEvents: (events) => {
        const changes: HostChange[] = [];
        for (const e of events) {
          if (e.type === 'delete') {
            changes.push({ type: 'delete', hostID: decodeHostId(e.key.slice(this.hostsPrefix.length)), modRevision: e.modRevision });
          } else {
            const host = parseHostRecord(e.value);
            if (host) changes.push({ type: 'put', host, modRevision: e.modRevision });
          }
        }
        if (changes.length > 0) listener.onChanges(changes);
      },
      onCompacted: () => listener.onCompacted(),
      onError: (err) => listener.onError?.(err),
    });
  }

  private async requireConfig(): Promise<OverlayNetworkConfig> {
    const cfg = await this.getConfig();
    if (!cfg) {
      throw new OverlayStoreError('config-missing', ErrorCode.InvalidConfig, `overlay network "${this.network}" has no config in the store (ensureNetworkConfig first)`);
    }
    return cfg;
  }
}

/** The first subnet of the cluster CIDR that nobody holds, or undefined when it is full. */
export function pickFreeSubnet(cfg: Pick<OverlayNetworkConfig, 'cidr' | 'subnetLength'>, taken: ReadonlySet<string>): string | undefined {
  for (const s of enumerateSubnets(parseIpv4Cidr(cfg.cidr), cfg.subnetLength)) {
    const text = formatCidr(s);
    if (!taken.has(text)) return text;
  }
  return undefined;
}

/**
 * A malformed record (another version, a hand edit) is skipped rather than
 * breaking every agent; a bad IPv6 subnet only costs that host its IPv6.
 */
export function parseHostRecord(json: string): HostRecord | undefined {
  let r: HostRecord;
  try {
    r = JSON.parse(json) as HostRecord;
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null || typeof r.hostID !== 'string' || familyOfText(r.underlayIP) === undefined) return undefined;
  if (typeof r.vtepMAC !== 'string' || !parseColonMac(r.vtepMAC)) return undefined;
  try {
    if (typeof r.subnet !== 'string' || formatCidr(parseIpv4Cidr(r.subnet)) !== r.subnet) return undefined;
  } catch {
    return undefined;
  }
  if (r.subnet6 !== undefined && !isIpv6Cidr(r.subnet6)) {
    const { subnet6: _dropped, ...v4 } = r;
    return v4;
  }
  return r;
}

function checkHostId(hostID: string): void {
  if (typeof hostID !== 'string' || hostID.length === 0 || hostID.length > 253) {
    throw new OverlayStoreError('invalid', ErrorCode.InvalidConfig, `overlay host ID "${hostID}" must be 1..253 characters`);
  }
}
