// Route metrics of a container on several networks (Docker's `network
// connect`): every attachment may carry a default route (and routes to the
// same destinations), and the kernel uses the one with the lowest metric. So
// each route an attachment installs gets a metric of its own, derived from
// the attachment's gateway priority (Docker's --gw-priority: higher wins) and,
// among equal priorities, from the attach order (the first attached keeps
// the route, as Docker's default bridge does). When the preferred attachment
// goes, the next route is already there: traffic fails over with no ADD.
//
//   metric = (10000 - gwPriority) * 100 + slot
//
// gwPriority is -9999..9999 (0 by default: metric 1000000); slot is 0 for the
// first attachment of that priority routing the destination, 1 for the
// next... (at most 100 per priority and destination). No metric is 0: IPv6
// reads 0 as 1024. Pure: parsing and arithmetic; ./install.ts talks to the kernel.

import { CniError, ErrorCode } from '../cni/errors';
import type { NetConf } from '../cni/types';
import { show } from '../util/show';

export const GW_PRIORITY_MIN = -9999;
export const GW_PRIORITY_MAX = 9999;
/** Attachments of one priority that may route one destination in one container. */
export const ROUTE_SLOTS = 100;
/** The CNI_ARGS key (CNI_ARGS keys are upper case by convention: IP, MAC). */
export const GW_PRIORITY_ARG = 'GW_PRIORITY';

/** The lowest metric of a priority; its slots follow. */
export function metricBand(gwPriority: number): number {
  return (GW_PRIORITY_MAX + 1 - gwPriority) * ROUTE_SLOTS;
}

/** The priority a metric of ours stands for, or undefined when it is not one of ours. */
export function priorityOfMetric(metric: number): number | undefined {
  const p = GW_PRIORITY_MAX + 1 - Math.floor(metric / ROUTE_SLOTS);
  return p >= GW_PRIORITY_MIN && p <= GW_PRIORITY_MAX ? p : undefined;
}

/**
 * The metric for the next attachment of this priority routing a destination
 * that already has routes with `taken` metrics: the slot after the last one
 * used in the band (so the earlier attachment keeps precedence), or
 * undefined when the band is full.
 */
export function nextMetric(gwPriority: number, taken: readonly number[]): number | undefined {
  const band = metricBand(gwPriority);
  const inBand = taken.filter((m) => m >= band && m < band + ROUTE_SLOTS);
  const slot = inBand.length ? Math.max(...inBand) - band + 1 : 0;
  return slot < ROUTE_SLOTS ? band + slot : undefined;
}

function invalid(plugin: string, where: string, v: unknown): CniError {
  return new CniError(ErrorCode.InvalidConfig, `${plugin}: ${where} must be a whole number from ${GW_PRIORITY_MIN} to ${GW_PRIORITY_MAX} (higher wins, like Docker's --gw-priority), got ${show(v)}`);
}

function checked(v: unknown, plugin: string, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < GW_PRIORITY_MIN || v > GW_PRIORITY_MAX) throw invalid(plugin, where, v);
  return v;
}

/**
 * The attachment's gateway priority, highest precedence first: the runtime's
 * `gwPriority` capability (runtimeConfig.gwPriority, per container), CNI_ARGS
 * GW_PRIORITY, the network config's "gwPriority", else 0. Code 7 for a value
 * that is not a whole number in range.
 */
export function gwPriorityOf(conf: NetConf, cniArgs: Readonly<Record<string, string>>, plugin: string): number {
  const rc = conf.runtimeConfig?.gwPriority;
  if (rc !== undefined && rc !== null) return checked(rc, plugin, 'runtimeConfig.gwPriority');
  const arg = cniArgs[GW_PRIORITY_ARG];
  if (arg !== undefined && arg !== '') {
    if (!/^[+-]?\d{1,5}$/.test(arg)) throw invalid(plugin, `CNI_ARGS ${GW_PRIORITY_ARG}`, arg);
    return checked(Number(arg), plugin, `CNI_ARGS ${GW_PRIORITY_ARG}`);
  }
  const v = conf.gwPriority;
  if (v !== undefined && v !== null) return checked(v, plugin, '"gwPriority"');
  return 0;
}
