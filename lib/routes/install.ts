// Installing an attachment's routes in the container with metrics of their
// own (./priority.ts), so the routes of several attachments to the same
// destination coexist. Returns what was installed, each route with the
// metric it got: that is what the result reports and CHECK looks for.

import { CniError, ErrorCode } from '../cni/errors';
import type { Route } from '../cni/types';
import { familyOf, networkText, type Family } from '../ip';
import { isExists, type Route as KernelRoute, type Rtnl } from '../netlink';
import { GW_PRIORITY_MAX, ROUTE_SLOTS, nextMetric } from './priority';

const MAIN_TABLE = 254;
/** A concurrent ADD into the same container may take the metric we picked: pick again this often. */
const RACE_RETRIES = 5;

/** A route's destination network as the kernel reports it ("default" is the family's /0). */
export function routeDst(r: Pick<Route, 'dst' | 'gw'>): string {
  if (r.dst === 'default') return r.gw && familyOf(r.gw) === 6 ? '::/0' : '0.0.0.0/0';
  return networkText(r.dst);
}

function describe(r: Route, metric?: number): string {
  return `${r.dst}${r.gw ? ` via ${r.gw}` : ''}${metric !== undefined ? ` metric ${metric}` : ''}`;
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface InstallRoutes {
  plugin: string;
  /** The container interface the routes go out of. */
  ifname: string;
  index: number;
  routes: readonly Route[];
  /** ./priority.ts gwPriorityOf. */
  gwPriority: number;
}

/** A route with the metric planned for it; `pinned`: IPAM or the config gave that metric, so a clash is an error, not a reason to pick again. */
export interface PlannedRoute extends Route {
  priority: number;
  pinned: boolean;
}

/** IPv6 stores a metric of 0 as 1024 (IP6_RT_PRIO_USER): plan and report what the kernel has. */
function storedMetric(family: Family, metric: number): number {
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

/**
 * Add each planned route through the container's socket with its metric. A
 * concurrent ADD into the same container may have taken an unpinned metric
 * meanwhile (EEXIST): then the next free one is picked again, up to
 * RACE_RETRIES times. Returns the routes as installed (what the result reports).
 */
export async function installPlannedRoutes(rtnl: Rtnl, o: { plugin: string; ifname: string; index: number; gwPriority: number }, planned: readonly PlannedRoute[]): Promise<Route[]> {
  const installed: Route[] = [];
  for (const p of planned) {
    const { pinned, ...r } = p;
    const dst = routeDst(r);
    const family = familyOf(dst);
    let metric = p.priority;
    for (let attempt = 0; ; attempt++) {
      try {
        await rtnl.addRoute({ dst, gw: r.gw, dev: o.index, metric, table: r.table, scope: r.scope, mtu: r.mtu, advmss: r.advmss });
        installed.push({ ...r, priority: storedMetric(family, metric) });
        break;
      } catch (err) {
        if (isExists(err) && pinned) {
          throw new CniError(ErrorCode.Internal, `${o.plugin}: cannot add route ${describe(r, metric)} on "${o.ifname}": the container already has a route to ${dst} with metric ${metric} (another network of this container?); leave "priority" out and the plugin picks a metric of its own`);
        }
        if (isExists(err) && attempt < RACE_RETRIES) {
          const again = planRouteMetrics({ plugin: o.plugin, routes: [{ ...r, priority: undefined }], gwPriority: o.gwPriority }, await rtnl.listRoutes({ family, table: r.table ?? MAIN_TABLE }));
          metric = again[0].priority;
          continue;
        }
        throw new CniError(ErrorCode.Internal, `${o.plugin}: failed to add route ${describe(r, metric)} in the container: ${errMsg(err)}`);
      }
    }
  }
  return installed;
}

/** Plan the metrics against the container's routes now, then install (macvlan; bridge-family plans first, ../bridge/plan.ts). */
export async function installRoutes(rtnl: Rtnl, o: InstallRoutes): Promise<Route[]> {
  const present = o.routes.length ? await rtnl.listRoutes({ table: 0 }) : [];
  return installPlannedRoutes(rtnl, o, planRouteMetrics(o, present));
}
