// Pure decisions of macvlan ADD and CHECK: the MTU to use, which link is the
// default master, the addresses and routes to configure, the result, and
// what CHECK finds wrong. No I/O here.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { IpConfig, Result, Route } from '../../lib/cni/types';
import { canonicalCidr, familyOf, networkText } from '../../lib/ip';
import type { Route as KernelRoute } from '../../lib/netlink';
import { missingRoutes } from '../../lib/routes/check';
import type { MacvlanConfig, MacvlanMode } from './config';

/** The MTU to create the macvlan with: 0 means the parent's; more than the parent's is refused. */
export function effectiveMtu(conf: Pick<MacvlanConfig, 'mtu'>, parent: { name: string; mtu: number }): number {
  if (conf.mtu === 0) return parent.mtu;
  if (conf.mtu > parent.mtu) {
    throw new CniError(ErrorCode.InvalidConfig, `macvlan: mtu ${conf.mtu} is larger than the MTU ${parent.mtu} of master "${parent.name}"`, '"mtu" must be from 0 (the master\'s) to the master\'s MTU');
  }
  return conf.mtu;
}

/** The interface of the first default route (v4 or v6), like the reference plugin. */
export function defaultRouteInterface(routes: ReadonlyArray<{ dst: string; oif?: number; table?: number }>): number | undefined {
  const def = routes.find((r) => (r.dst === '0.0.0.0/0' || r.dst === '::/0') && r.oif && (r.table === undefined || r.table === 254));
  return def?.oif;
}

/** The canonical text of a route destination's network ("10.1.0.0/16"; "default" is 0.0.0.0/0), for comparisons. */
export function canonicalNetwork(cidr: string): string {
  return networkText(cidr === 'default' ? '0.0.0.0/0' : cidr);
}

export interface InterfacePlan {
  addresses: string[];
  /** Routes through the macvlan; gw defaulted to the gateway of the first address of the family (reference ConfigureIface). */
  routes: Route[];
  /** arp_notify always, ndisc_notify with an IPv6 address: how a moved address announces itself. */
  sysctls: Array<{ path: string; value: string }>;
}

export function planInterface(ifname: string, ipam: Result | undefined): InterfacePlan {
  const ips = ipam?.ips ?? [];
  const gw: Partial<Record<4 | 6, string>> = {};
  for (const ip of ips) {
    const fam = familyOf(ip.address);
    if (ip.gateway && gw[fam] === undefined) gw[fam] = ip.gateway;
  }
  const routes = (ipam?.routes ?? []).map((r) => {
    const fam = familyOf(r.dst === 'default' ? '0.0.0.0/0' : r.dst);
    return r.gw || !gw[fam] ? { ...r } : { ...r, gw: gw[fam] };
  });
  const sysctls = ips.length ? [{ path: `net/ipv4/conf/${ifname}/arp_notify`, value: '1' }] : [];
  if (ips.some((ip) => familyOf(ip.address) === 6)) sysctls.push({ path: `net/ipv6/conf/${ifname}/ndisc_notify`, value: '1' });
  return { addresses: ips.map((ip) => ip.address), routes, sysctls };
}

/**
 * The ADD result: one interface in the sandbox, IPAM's ips pointing at it,
 * its routes (as IPAM gave them, like the reference, with the metric each got
 * when `installed` says), and the config's DNS.
 */
export function buildResult(o: { cniVersion: string; ifname: string; mac: string; mtu?: number; netns: string; ipam?: Result; installed?: readonly Route[]; dns?: MacvlanConfig['dns'] }): Result {
  const result: Result = {
    cniVersion: o.cniVersion,
    interfaces: [{ name: o.ifname, mac: o.mac, ...(o.mtu ? { mtu: o.mtu } : {}), sandbox: o.netns }],
    ips: (o.ipam?.ips ?? []).map((ip): IpConfig => ({ ...ip, interface: 0 })),
  };
  if (o.ipam?.routes?.length) {
    result.routes = o.ipam.routes.map((r, i) => {
      const metric = o.installed?.[i]?.priority;
      return metric === undefined ? { ...r } : { ...r, priority: metric };
    });
  }
  // The reference replaces IPAM's DNS with the config's, always.
  if (o.dns) result.dns = o.dns;
  return result;
}

// ---- CHECK ------------------------------------------------------------------

export interface ObservedMacvlan {
  /** The interface's index in the container. */
  index: number;
  kind?: string;
  mode?: MacvlanMode | string;
  mac: string;
  mtu: number;
  /** The parent index, as the kernel reports it (IFLA_LINK). */
  parentIndex?: number;
  addresses: string[];
  /** The container's routes (every table). */
  routes: readonly KernelRoute[];
}

export interface ExpectedMacvlan {
  ifname: string;
  mode: MacvlanMode;
  mac?: string;
  parent: { name: string; index: number; mtu: number };
  configuredMtu: number;
  addresses: string[];
  /** prevResult's routes, gw defaulted like ADD does (planInterface). */
  routes: ReadonlyArray<Pick<Route, 'dst' | 'gw' | 'priority' | 'table'>>;
}

/** Everything CHECK finds wrong, as messages that name the interface and the value; [] = fine. */
export function checkProblems(e: ExpectedMacvlan, o: ObservedMacvlan): string[] {
  const p: string[] = [];
  const where = `interface "${e.ifname}"`;
  if (o.kind !== 'macvlan') p.push(`${where} is a ${o.kind ?? 'plain device'}, not a macvlan`);
  if (o.mode !== undefined && o.mode !== e.mode) p.push(`${where} is in mode ${o.mode}, expected ${e.mode}`);
  if (e.mac && o.mac.toLowerCase() !== e.mac.toLowerCase()) p.push(`${where} has MAC ${o.mac}, expected ${e.mac}`);
  if (o.parentIndex !== undefined && o.parentIndex !== e.parent.index) p.push(`${where} is not on master "${e.parent.name}" (parent #${o.parentIndex}, master is #${e.parent.index})`);
  if (e.configuredMtu > e.parent.mtu) p.push(`mtu ${e.configuredMtu} is larger than the MTU ${e.parent.mtu} of master "${e.parent.name}"`);
  const have = new Set(o.addresses.map(canonicalCidr));
  for (const a of e.addresses) if (!have.has(canonicalCidr(a))) p.push(`${where} lacks address ${a}`);
  const missing = missingRoutes(e.routes, o.routes, o.index);
  if (missing) p.push(`route ${missing} is missing on ${where}`);
  return p;
}
