// A container on several networks publishing the same host port on each
// (podman passes a container's -p mappings to every network it joins): one
// claim per host port for the whole container, and one network answers it,
// chosen by the rule of the default route (lib/routes/priority.ts): the
// lowest metric of the attachment's default route of the port's family,
// then the earliest attached. When it leaves, the next one takes over. Pure:
// which publication answers which host port, and what changes hands.

import type { PortmapEntry } from '../../lib/firewall/portmap';

export type Family = 4 | 6;

export interface Publication {
  network: string;
  ifname: string;
  /** Attach order among the container's publications (1, 2, ...). */
  order: number;
  /** The metric of the attachment's default route per family, when it has one. */
  metrics: Partial<Record<Family, number>>;
  entries: readonly PortmapEntry[];
}

/** The host port an entry claims: one per container, whatever the network. */
export function claimKey(e: PortmapEntry): string {
  return `${e.family} ${e.hostIP ?? '*'} ${e.protocol} ${e.hostPort}`;
}

export function samePublication(a: Pick<Publication, 'network' | 'ifname'>, b: Pick<Publication, 'network' | 'ifname'>): boolean {
  return a.network === b.network && a.ifname === b.ifname;
}

/** Whether `a` answers before `b` for a port of `family`: lower default-route metric (none counts as last), then earlier. */
function before(a: Publication, b: Publication, family: Family): boolean {
  const ma = a.metrics[family] ?? Infinity;
  const mb = b.metrics[family] ?? Infinity;
  return ma !== mb ? ma < mb : a.order < b.order;
}

/** For each claimed host port, the publication that answers it. */
export function answering(pubs: readonly Publication[]): Map<string, Publication> {
  const out = new Map<string, Publication>();
  for (const p of pubs) {
    for (const e of p.entries) {
      const k = claimKey(e);
      const cur = out.get(k);
      if (!cur || before(p, cur, e.family)) out.set(k, p);
    }
  }
  return out;
}

/** The order for a new publication of the container. */
export function nextOrder(pubs: readonly Pick<Publication, 'order'>[]): number {
  return pubs.reduce((m, p) => Math.max(m, p.order), 0) + 1;
}

export interface Handover {
  key: string;
  /** Answered it until now (undefined: nobody). */
  from?: Publication;
  /** Answers it from now on (undefined: nobody, the claim goes). */
  to?: Publication;
}

/** Every host port whose answering publication changes from `beforePubs` to `afterPubs`. */
export function handovers(beforePubs: readonly Publication[], afterPubs: readonly Publication[]): Handover[] {
  const a = answering(beforePubs);
  const b = answering(afterPubs);
  const out: Handover[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const from = a.get(key);
    const to = b.get(key);
    if (from && to && samePublication(from, to)) continue;
    out.push({ key, from, to });
  }
  return out;
}
