// Parse the bandwidth configuration (pure): the reference's fields
// (reference-plugins.md §10) unchanged. Rates in bits per second, bursts in
// bits. The four keys at the top level win; otherwise the `bandwidth`
// capability (runtimeConfig.bandwidth, where kubelet puts a pod's
// kubernetes.io/ingress-bandwidth and egress-bandwidth annotations; containerd's
// go-cni sends its keys capitalized, "IngressRate", which Go's decoder matches).

import { invalidConfig } from '../../lib/cni/errors';
import { goFields } from '../../lib/cni/go-json';
import type { NetConf, Result } from '../../lib/cni/types';
import { isObject } from '../../lib/util/is-object';

export interface Shaping {
  /** bits per second */
  rate: number;
  /** bits */
  burst: number;
}

export interface BandwidthConfig {
  cniVersion: string;
  network: string;
  /** Traffic to the container: a tbf on the host end of its veth. */
  ingress?: Shaping;
  /** Traffic from the container: redirected to an IFB with a tbf. */
  egress?: Shaping;
  prevResult?: Result;
}

const KEYS = ['ingressRate', 'ingressBurst', 'egressRate', 'egressBurst'] as const;
/** The reference refuses a burst whose bytes do not fit tbf's 32-bit fields. */
const MAX_BURST_BYTES = 0xffffffff;

function amount(src: Record<string, unknown>, key: string, where: string): number {
  const v = src[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalidConfig(`bandwidth: ${where}${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

function shaping(src: Record<string, unknown>, dir: 'ingress' | 'egress', where: string): Shaping | undefined {
  const rate = amount(src, `${dir}Rate`, where);
  const burst = amount(src, `${dir}Burst`, where);
  if (rate === 0 && burst === 0) return undefined;
  if (burst === 0) throw invalidConfig(`bandwidth: ${where}${dir}Rate is set, so ${dir}Burst must be set too`);
  if (rate === 0) throw invalidConfig(`bandwidth: ${where}${dir}Burst is set, so ${dir}Rate must be set too`);
  if (rate < 8) throw invalidConfig(`bandwidth: ${where}${dir}Rate is in bits per second and must be at least 8, got ${rate}`);
  if (Math.floor(burst / 8) >= MAX_BURST_BYTES) throw invalidConfig(`bandwidth: ${where}${dir}Burst cannot be more than 4GB (it is in bits), got ${burst}`);
  return { rate, burst };
}

export function parseBandwidthConfig(conf: NetConf): BandwidthConfig {
  const topLevel = KEYS.some((k) => k in conf);
  const rc = conf.runtimeConfig?.bandwidth;
  let src: Record<string, unknown> = {};
  let where = '';
  if (topLevel) src = conf;
  else if (rc !== undefined && rc !== null) {
    if (!isObject(rc)) throw invalidConfig(`bandwidth: runtimeConfig.bandwidth must be an object, got ${JSON.stringify(rc)}`);
    src = goFields(rc, KEYS);
    where = 'runtimeConfig.bandwidth.';
  }
  return {
    cniVersion: conf.cniVersion,
    network: conf.name,
    ingress: shaping(src, 'ingress', where),
    egress: shaping(src, 'egress', where),
    prevResult: conf.prevResult,
  };
}
