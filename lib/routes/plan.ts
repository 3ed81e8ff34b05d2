// Pure: the metric each route of an attachment gets (./priority.ts), given
// the routes the container has now (other networks of the same container).
// ./install.ts adds them through the container's socket.

import { CniError, ErrorCode } from '../cni/errors';
import type { Route } from '../cni/types';
import { familyOf, networkText, type Family } from '../ip';
import type { Route as KernelRoute } from '../netlink';
import { GW_PRIORITY_MAX, ROUTE_SLOTS, nextMetric } from './priority';

export const MAIN_TABLE = 254;

/** A route's destination network as the kernel reports it ("default" is the family's /0). */
export function routeDst(r: Pick<Route, 'dst' | 'gw'>): string {
  if (r.dst === 'default') return r.gw && familyOf(r.gw) === 6 ? '::/0' : '0.0.0.0/0';
  return networkText(r.dst);
}

/** A route with the metric planned for it; `pinned`: IPAM or the config gave that metric, so a clash is an error, not a reason to pick again. */
export interface PlannedRoute extends Route {
  priority: number;
  pinned: boolean;
}

/** IPv6 stores a metric of 0 as 1024 (IP6_RT_PRIO_USER): plan and report what the kernel has. */
export function storedMetric(family: Family, metric: number): number {
  return family === 6 && metric === 0 ? 1024 : metric;
}

function takenMetrics(present: readonly KernelRoute[], family: Family, table: number, dst: string): number[] {
  return present.filter((x) => x.family === family && x.table === table && (x.dst === dst || networkText(x.dst) === dst)).map((x) => x.metric ?? 0);
}

/**
 * Pure: the metric of each route, given the container's routes now (every
 * table). A route with a `priority` keeps it; the others get the next free
 * metric of the attachment's gateway priority for their destination.
 */
export function planRouteMetrics(o: { plugin: string; routes: readonly Route[]; gwPriority: number }, present: readonly KernelRoute[]): PlannedRoute[] {
  const seen: KernelRoute[] = [...present];
  return o.routes.map((r) => {
    const dst = routeDst(r);
    const family = familyOf(dst);
    const table = r.table ?? MAIN_TABLE;
    let metric = r.priority;
    if (metric === undefined) {
      metric = nextMetric(o.gwPriority, takenMetrics(seen, family, table, dst));
      if (metric === undefined) {
        throw new CniError(ErrorCode.Internal, `${o.plugin}: the container already has ${ROUTE_SLOTS} routes to ${dst} with gateway priority ${o.gwPriority}; give this network another "gwPriority" (at most ${GW_PRIORITY_MAX})`);
      }
    }
    const stored = storedMetric(family, metric);
    seen.push({ dst, family, table, metric: stored, gw: r.gw, scope: 0, flags: 0, protocol: 0, type: 0 });
    return { ...r, priority: r.priority === undefined ? metric : r.priority, pinned: r.priority !== undefined };
  });
}

