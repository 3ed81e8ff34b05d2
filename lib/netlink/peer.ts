// The host end of a container's veth, found from the container side: the
// interface's peer index (IFLA_LINK), looked up in the host namespace. Chained
// plugins (bandwidth, firewall) use it instead of trusting names in prevResult.
import type { Netns } from '../netns';
import { openRtnl, type OpenRtnl, type Rtnl } from './rtnl';
import type { Link } from './types';

export interface VethEnds {
  /** The interface in the container, if it exists. */
  inside?: Link;
  /** Its peer in `host`'s namespace, when it is a veth whose peer lives there. */
  peer?: Link;
}

/** `open` makes the socket in the container (the plugin's Kernel.openRtnl). */
export async function vethPeer(host: Rtnl, netns: Netns, ifname: string, open: OpenRtnl = openRtnl): Promise<VethEnds> {
  const container = open(netns);
  let inside: Link | undefined;
  try {
    inside = await container.getLink(ifname);
  } finally {
    container.close();
  }
  if (!inside || inside.kind !== 'veth' || !inside.peerIndex) return { inside };
  const peer = await host.getLink(inside.peerIndex);
  return { inside, peer: peer?.kind === 'veth' ? peer : undefined };
}
