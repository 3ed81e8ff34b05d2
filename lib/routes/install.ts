// Installing an attachment's routes in the container with the metrics
// ./plan.ts picked for them (from ./priority.ts), so the routes of several attachments to the same
// destination coexist. Returns what was installed, each route with the
// metric it got: that is what the result reports and CHECK looks for.

import { CniError, ErrorCode } from '../cni/errors';
import type { Route } from '../cni/types';
import { familyOf } from '../ip';
import { isExists, type Rtnl } from '../netlink';
import { MAIN_TABLE, planRouteMetrics, routeDst, storedMetric, type PlannedRoute } from './plan';

/** A concurrent ADD into the same container may take the metric we picked: pick again this often. */
const RACE_RETRIES = 5;

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
