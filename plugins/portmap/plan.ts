// Pure: which addresses of the container to publish, and the entries (one per
// mapping and family) that the firewall renderer turns into elements.

import { isIPv4, isIPv6 } from '../../lib/ip';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { Result } from '../../lib/cni/types';
import type { PortmapEntry } from '../../lib/firewall/portmap';
import { mappingFamilies, normalizeIP, specificHostIP, type PortMapping } from './config';

export interface ContainerAddresses {
  v4?: string;
  v6?: string;
}

/**
 * The first IPv4 and the first IPv6 address of the sandbox interface named
 * ifname (as the reference does: host-side interfaces are skipped). An
 * address without an interface index counts, as in the reference: results of
 * 0.1.0/0.2.0 (ip4/ip6) name no interfaces at all.
 */
export function containerAddresses(prev: Result | undefined, ifname: string): ContainerAddresses {
  const out: ContainerAddresses = {};
  const ifaces = prev?.interfaces ?? [];
  for (const ip of prev?.ips ?? []) {
    if (ip.interface !== undefined) {
      const iface = ifaces[ip.interface];
      if (!iface || !iface.sandbox || iface.name !== ifname) continue;
    }
    const addr = normalizeIP(ip.address.split('/')[0]);
    if (addr === undefined) continue;
    if (isIPv4(addr)) out.v4 ??= addr;
    else if (isIPv6(addr)) out.v6 ??= addr;
  }
  return out;
}

/** One entry per mapping and family the container has an address in (a mapping of a family it lacks is skipped). */
export function planEntries(mappings: readonly PortMapping[], addrs: ContainerAddresses, ifname: string): PortmapEntry[] {
  if (mappings.length > 0 && !addrs.v4 && !addrs.v6) {
    throw new CniError(ErrorCode.InvalidConfig, `portmap: prevResult has no IP address on the container interface "${ifname}" (is portmap chained after an interface plugin?)`);
  }
  const entries: PortmapEntry[] = [];
  for (const m of mappings) {
    for (const family of mappingFamilies(m)) {
      const containerIP = family === 4 ? addrs.v4 : addrs.v6;
      if (!containerIP) continue;
      entries.push({ family, hostIP: specificHostIP(m), protocol: m.protocol, hostPort: m.hostPort, containerIP, containerPort: m.containerPort });
    }
  }
  return entries;
}
