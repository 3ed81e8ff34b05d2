// CHECK of the routes an ADD reported: each is in the container, out of the
// attachment's interface, via its gateway, with its metric when the result
// carried one (1.1.0 results do; older versions have no route priority).

import type { Route } from '../cni/types';
import { familyOf, networkText, sameIP } from '../ip';
import type { Route as KernelRoute } from '../netlink';
import { routeDst } from './plan';

const MAIN_TABLE = 254;

/** The first reported route the kernel does not have (as text for a message), or undefined. */
export function missingRoutes(reported: ReadonlyArray<Pick<Route, 'dst' | 'gw' | 'priority' | 'table'>>, present: readonly KernelRoute[], oif: number): string | undefined {
  for (const r of reported) {
    const dst = routeDst(r);
    const family = familyOf(dst);
    const found = present.some((x) =>
      x.family === family && x.table === (r.table ?? MAIN_TABLE) && networkText(x.dst) === dst && x.oif === oif &&
      (!r.gw || (x.gw !== undefined && sameIP(x.gw, r.gw))) &&
      (r.priority === undefined || (x.metric ?? 0) === r.priority));
    if (!found) return `${r.dst}${r.gw ? ` via ${r.gw}` : ''}${r.priority !== undefined ? ` metric ${r.priority}` : ''}`;
  }
  return undefined;
}
