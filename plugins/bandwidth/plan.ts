// Pure: the token buckets (the reference's arithmetic, so CHECK of either
// plugin accepts the other's), and the IFB's name and owner tag.

import { sha256Hex, sha512Hex } from '../../lib/util/hash';
import type { Result } from '../../lib/cni/types';
import type { TbfParams } from '../../lib/netlink';
import type { Shaping } from './config';

/** The queue may hold what arrives in 25 ms at the rate, plus the burst (reference: latencyInMillis). */
const LATENCY_USEC = 25_000;
const U32_MAX = 0xffffffff;

/**
 * tc's tbf parameters: rate and burst in bytes, buffer = the time the
 * burst lasts at the rate, in scheduler ticks (capped at what 32 bits hold),
 * limit = 25 ms at the rate + the burst.
 */
export function tbfFor(s: Shaping, ticksPerUsec: number): TbfParams {
  const rate = Math.floor(s.rate / 8);
  const burst = Math.floor(s.burst / 8);
  const burstUsec = Math.min(Math.floor((burst * 1e6) / rate), U32_MAX);
  return {
    rate,
    buffer: Math.min(Math.floor(burstUsec * ticksPerUsec), U32_MAX),
    limit: Math.min(Math.floor((rate * LATENCY_USEC) / 1e6) + burst, U32_MAX),
  };
}

export interface Attachment {
  network: string;
  containerID: string;
  ifname: string;
}

function sha256(s: string): string {
  return sha256Hex(s);
}

/** "bwp" + 12 hex of the attachment: 15 bytes, one per (network, container, interface). */
export function ifbName(a: Attachment): string {
  return `bwp${sha256(`${a.network}\0${a.containerID}\0${a.ifname}`).slice(0, 12)}`;
}

/**
 * The reference's name for the same IFB ("bwp" + sha512(network + containerID)),
 * so that a DEL after an upgrade from the reference removes the IFB it made.
 */
export function referenceIfbName(a: Attachment): string {
  return `bwp${sha512Hex(a.network + a.containerID)}`.slice(0, 15);
}

const ALIAS_PREFIX = 'cni-bandwidth';

function networkTag(network: string): string {
  return sha256(`net\0${network}`).slice(0, 12);
}

function attachmentTag(containerID: string, ifname: string): string {
  return sha256(`att\0${containerID}\0${ifname}`).slice(0, 16);
}

/**
 * The IFB's alias: whose it is, exactly (hashes) and for people (names,
 * shortened to the 255 bytes an alias holds). DEL and GC act only on IFBs whose
 * alias says they belong to the attachment, resp. the network.
 */
export function ifbAlias(a: Attachment): string {
  const text = `${ALIAS_PREFIX} ${networkTag(a.network)} ${attachmentTag(a.containerID, a.ifname)} ${a.network}/${a.containerID}/${a.ifname}`;
  return Buffer.from(text).subarray(0, 255).toString('utf8').replace(/\uFFFD$/, '');
}

export function isAliasOf(alias: string | undefined, a: Attachment): boolean {
  const [prefix, net, att] = (alias ?? '').split(' ');
  return prefix === ALIAS_PREFIX && net === networkTag(a.network) && att === attachmentTag(a.containerID, a.ifname);
}

/** GC: whether an alias marks an IFB of `network` whose attachment is not among `valid`. */
export function isStaleAlias(alias: string | undefined, network: string, valid: ReadonlyArray<{ containerID: string; ifname: string }>): boolean {
  const [prefix, net, att] = (alias ?? '').split(' ');
  if (prefix !== ALIAS_PREFIX || net !== networkTag(network)) return false;
  return !valid.some((v) => attachmentTag(v.containerID, v.ifname) === att);
}

/** prevResult plus the IFB, as the reference reports it (a host-side interface, no sandbox). */
export function resultWithIfb(prev: Result, ifb: { name: string; mac: string } | undefined): Result {
  if (!ifb) return prev;
  return { ...prev, interfaces: [...(prev.interfaces ?? []), { name: ifb.name, mac: ifb.mac }] };
}
