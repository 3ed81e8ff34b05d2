// The ADD result: [0] bridge, [1] host veth, [2] container veth (sandbox),
// [3] the VLAN gateway interface when there is one (as the reference), the
// container's addresses pointing at interface 2, routes, DNS.

import type { Dns, IpConfig, Result, Route } from '../../lib/cni/types';
import type { AttachResult } from '../../lib/bridge/apply';

export const CONTAINER_IF_INDEX = 2;

export function buildResult(o: { cniVersion: string; netnsPath: string; att: AttachResult; ips: readonly IpConfig[]; dns?: Dns; ipamDns?: Dns }): Result {
  const { att } = o;
  const res: Result = {
    cniVersion: o.cniVersion,
    interfaces: [
      { name: att.bridge.name, mac: att.bridge.mac },
      { name: att.hostVeth.name, mac: att.hostVeth.mac },
      { name: att.containerVeth.name, mac: att.containerVeth.mac, sandbox: o.netnsPath },
    ],
    ips: o.ips.map((ip) => ({ ...ip, interface: CONTAINER_IF_INDEX })),
  };
  if (att.vlanGateway) res.interfaces!.push({ name: att.vlanGateway.name, mac: att.vlanGateway.mac });
  // As installed, with their metrics: CHECK looks for exactly these.
  const routes: Route[] = att.routes;
  if (routes.length) res.routes = routes;
  // The config's dns replaces IPAM's when any field is set (reference behaviour).
  const dns = o.dns ?? o.ipamDns;
  if (dns && Object.keys(dns).length) res.dns = dns;
  return res;
}
