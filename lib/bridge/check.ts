// CHECK of a container attached by ./apply.ts: the veth in the
// container with its addresses and routes, its host end on the bridge. The
// plugin adds its own checks (bridge MAC, promiscuous mode, overlay MTU...).

import { CniError, ErrorCode } from '../cni/errors';
import { sameIP } from '../ip';
import { missingRoutes } from '../routes/check';
import type { Kernel } from '../kernel';
import type { Link } from '../netlink';
import { openContainerNetns } from '../netns';

export interface AttachmentCheck {
  /** For messages: "<plugin> CHECK: ...". */
  plugin: string;
  netnsPath: string | undefined;
  ifname: string;
  bridge: string;
  /** prevResult's addresses of this interface (CIDR). */
  addresses: readonly string[];
  /** prevResult's routes: each must be there through this interface (with its metric, when the result gave one). */
  routes: ReadonlyArray<{ dst: string; gw?: string; priority?: number; table?: number }>;
  /** Expected container MTU, when the plugin fixes one. */
  mtu?: number;
  /** Expected MACs from prevResult, when it has them: the container end, and the host end by name. */
  containerMac?: string;
  hostMacOf?: (hostVeth: string) => string | undefined;
}

/** Throws a CniError (code 999) naming the first thing that is not as applyAttachPlan left it. */
export async function checkAttachment(kernel: Kernel, o: AttachmentCheck): Promise<{ container: Link; hostVeth: Link }> {
  const fail = (msg: string): CniError => new CniError(ErrorCode.Internal, `${o.plugin} CHECK: ${msg}`);
  const netns = openContainerNetns(o.netnsPath, o.plugin, (p) => kernel.openNetns(p));
  const ctr = kernel.openRtnl(netns);
  let container: Link;
  try {
    const link = await ctr.getLink(o.ifname);
    if (!link) throw fail(`interface "${o.ifname}" not found in ${o.netnsPath}`);
    if (link.kind !== 'veth') throw fail(`"${o.ifname}" is a ${link.kind ?? 'device'}, not a veth`);
    if (o.containerMac && o.containerMac.toLowerCase() !== link.mac) throw fail(`"${o.ifname}" has MAC ${link.mac}, prevResult says ${o.containerMac}`);
    if (o.mtu !== undefined && link.mtu !== o.mtu) throw fail(`"${o.ifname}" has MTU ${link.mtu}, expected ${o.mtu}`);
    const have = await ctr.listAddresses(link.index);
    for (const cidr of o.addresses) {
      const [a, len] = cidr.split('/');
      if (!have.some((x) => sameIP(x.ip, a) && String(x.prefix) === len)) throw fail(`address ${cidr} is missing on "${o.ifname}"`);
    }
    const missing = missingRoutes(o.routes, await ctr.listRoutes({ table: 0 }), link.index);
    if (missing) throw fail(`route ${missing} is missing in the container`);
    container = link;
  } finally {
    ctr.close();
    netns.close();
  }

  const host = kernel.openRtnl();
  try {
    const br = await host.getLink(o.bridge);
    if (!br) throw fail(`bridge "${o.bridge}" does not exist`);
    const peer = container.peerIndex !== undefined ? await host.getLink(container.peerIndex) : undefined;
    if (!peer || peer.kind !== 'veth') throw fail(`the host end of "${o.ifname}" was not found`);
    if (peer.master !== br.index) throw fail(`host veth "${peer.name}" is not attached to bridge "${o.bridge}"`);
    const mac = o.hostMacOf?.(peer.name);
    if (mac && mac.toLowerCase() !== peer.mac) throw fail(`host veth "${peer.name}" has MAC ${peer.mac}, prevResult says ${mac}`);
    return { container, hostVeth: peer };
  } finally {
    host.close();
  }
}
