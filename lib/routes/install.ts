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

/**
 * Add each route through the container's socket. A route with a `priority`
 * (from IPAM or the config) gets exactly that metric, and a clash is an error;
 * the others get the next free metric of the attachment's gateway priority
 * for their destination.
 */
export async function installRoutes(rtnl: Rtnl, o: InstallRoutes): Promise<Route[]> {
  const present = new Map<string, KernelRoute[]>();
  const routesOf = async (family: Family, table: number): Promise<KernelRoute[]> => {
    const key = `${family}/${table}`;
    let list = present.get(key);
    if (!list) {
      list = await rtnl.listRoutes({ family, table });
      present.set(key, list);
    }
    return list;
  };
  const installed: Route[] = [];
  for (const r of o.routes) {
    const dst = routeDst(r);
    const family = familyOf(dst);
    const table = r.table ?? MAIN_TABLE;
    const add = async (metric: number): Promise<void> => {
      await rtnl.addRoute({ dst, gw: r.gw, dev: o.index, metric, table: r.table, scope: r.scope, mtu: r.mtu, advmss: r.advmss });
      // IPv6 stores a metric of 0 as 1024 (IP6_RT_PRIO_USER): report what the kernel has.
      const stored = family === 6 && metric === 0 ? 1024 : metric;
      (await routesOf(family, table)).push({ dst, family, table, metric: stored, oif: o.index, gw: r.gw, scope: 0, flags: 0, protocol: 0, type: 0 });
      installed.push({ ...r, priority: stored });
    };
    if (r.priority !== undefined) {
      try {
        await add(r.priority);
      } catch (err) {
        if (isExists(err)) {
          throw new CniError(ErrorCode.Internal, `${o.plugin}: cannot add route ${describe(r, r.priority)} on "${o.ifname}": the container already has a route to ${dst} with metric ${r.priority} (another network of this container?); leave "priority" out and the plugin picks a metric of its own`);
        }
        throw new CniError(ErrorCode.Internal, `${o.plugin}: failed to add route ${describe(r, r.priority)} in the container: ${errMsg(err)}`);
      }
      continue;
    }
    for (let attempt = 0; ; attempt++) {
      const taken = (await routesOf(family, table)).filter((x) => x.dst === dst || networkText(x.dst) === dst).map((x) => x.metric ?? 0);
      const metric = nextMetric(o.gwPriority, taken);
      if (metric === undefined) {
        throw new CniError(ErrorCode.Internal, `${o.plugin}: the container already has ${ROUTE_SLOTS} routes to ${dst} with gateway priority ${o.gwPriority}; give this network another "gwPriority" (at most ${GW_PRIORITY_MAX})`);
      }
      try {
        await add(metric);
        break;
      } catch (err) {
        if (isExists(err) && attempt < RACE_RETRIES) {
          present.delete(`${family}/${table}`); // someone else took it meanwhile: look again
          continue;
        }
        throw new CniError(ErrorCode.Internal, `${o.plugin}: failed to add route ${describe(r, metric)} in the container: ${errMsg(err)}`);
      }
    }
  }
  return installed;
}
