// The VLAN gateway interface of a bridge network with `vlan` and isGateway
// (the reference bridge plugin, ADD step 7): the gateway addresses go on a
// veth `<bridge>.<vlan>` in the host namespace whose peer is a bridge port
// with that VLAN as PVID, untagged. One per bridge and VLAN, shared by every
// container in that VLAN.
//
// Lifecycle (ours; the reference never removes it): the first ADD that needs
// it creates it and marks it with an alias; it is deleted when no other port
// of the bridge carries its VLAN any more (DEL, rollback, GC), like other
// per-network state. Both run under a per-bridge lock, and ADD puts its own
// port into the VLAN before it ensures the gateway, so a DEL that counts
// ports either sees that port or ran before the ensure. A `<bridge>.<vlan>`
// without our alias (made by someone else) is used as it is and never deleted.

import * as path from 'path';
import { HOST_KERNEL, type Sysctls } from '../kernel';
import { isNotFound, withRtnl, type BridgePortVlans, type Link, type Rtnl } from '../netlink';
import { withFileLock } from '../sys/lock';
import type { VlanGatewayTarget } from './plan';
import { applyPortVlans, createVethWithRandomPeer } from './port';

export const VLAN_GATEWAY_ALIAS = 'node-cni-plugins bridge VLAN gateway';

/** `<bridge>.<vlan>` (the host end, which carries the gateway addresses), its VLAN, its port's VLANs and the lock directory: ./plan.ts. */
export type VlanGatewaySpec = VlanGatewayTarget;

export interface VlanGatewayRelease {
  bridge: string;
  name: string;
  vlan: number;
  lockDir: string;
  /** Ports not to count (a port being rolled back). */
  ignorePorts?: readonly string[];
}

function lockFile(lockDir: string, bridge: string): string {
  return path.join(lockDir, 'vlan-gateway', `${bridge}.lock`);
}

const OPTIONAL = { ignoreMissing: true };

/** Ports of the bridge in `vlan` (tagged or not), other than the gateway's own port and `ignore`. */
export function vlanUsers(ports: readonly BridgePortVlans[], o: { vlan: number; gatewayPort?: number; ignore?: readonly string[] }): number {
  return ports.filter((p) => p.index !== o.gatewayPort && !o.ignore?.includes(p.name) && p.vlans.some((v) => v.vid === o.vlan)).length;
}

/** Put our gateway's peer (back) on the bridge, in its VLAN, up: the bridge may have been re-created. */
async function repair(host: Rtnl, br: Link, gw: Link, g: VlanGatewaySpec, plugin: string): Promise<void> {
  const peer = gw.peerIndex === undefined ? undefined : await host.getLink(gw.peerIndex);
  if (peer && peer.master !== br.index) {
    await host.setMaster(peer.index, br.index);
    await applyPortVlans(host, peer, g.portVlans, plugin);
  }
  if (peer && !peer.up) await host.setLinkUp(peer.index);
  if (!gw.up) await host.setLinkUp(gw.index);
}

async function create(host: Rtnl, br: Link, g: VlanGatewaySpec, plugin: string, sysctl: Sysctls): Promise<void> {
  const { link, peerName } = await createVethWithRandomPeer(host, { name: g.name, mtu: br.mtu, plugin });
  try {
    await host.setAlias(link.index, VLAN_GATEWAY_ALIAS);
    // Like the bridge itself: no autoconfiguration from RAs seen on container ports.
    sysctl.ensure(`net/ipv6/conf/${g.name}/accept_ra`, '0', undefined, OPTIONAL);
    sysctl.ensure(`net/ipv6/conf/${peerName}/accept_ra`, '0', undefined, OPTIONAL);
    const peer = await host.requireLink(peerName);
    await host.setMaster(peer.index, br.index);
    await applyPortVlans(host, peer, g.portVlans, plugin);
    await host.setLinkUp(peer.index);
    await host.setLinkUp(link.index);
  } catch (err) {
    await host.deleteLink(link.index).catch(() => undefined);
    throw err;
  }
}

/** Create or reuse (and repair) the gateway interface of `g.vlan` on `br`; returns it. */
export async function ensureVlanGateway(host: Rtnl, br: Link, g: VlanGatewaySpec, plugin: string, sysctl: Sysctls = HOST_KERNEL.sysctl): Promise<Link> {
  return withFileLock(lockFile(g.lockDir, br.name), async () => {
    const found = await host.getLink(g.name);
    if (found && found.alias !== VLAN_GATEWAY_ALIAS) return found;
    if (found) await repair(host, br, found, g, plugin);
    else await create(host, br, g, plugin, sysctl);
    return host.requireLink(g.name);
  });
}

/**
 * Delete our gateway interface when no other port of the bridge is in its
 * VLAN (in this namespace). Returns whether it did. Once there is nothing of
 * ours to guard, the lock file goes too (the next ADD makes it again).
 */
export async function releaseVlanGatewayIfUnused(o: VlanGatewayRelease, through?: Rtnl): Promise<boolean> {
  const inHost = <T>(fn: (host: Rtnl) => Promise<T>): Promise<T> => (through ? fn(through) : withRtnl(undefined, fn));
  return withFileLock(lockFile(o.lockDir, o.bridge), (lock) => inHost(async (host) => {
    const gw = await host.getLink(o.name);
    if (!gw || gw.alias !== VLAN_GATEWAY_ALIAS) {
      lock.removeOnRelease({ dir: true });
      return false;
    }
    const br = await host.getLink(o.bridge);
    const ports = br?.kind === 'bridge' ? await host.listBridgePorts(br.index) : [];
    if (vlanUsers(ports, { vlan: o.vlan, gatewayPort: gw.peerIndex, ignore: o.ignorePorts }) > 0) return false;
    try {
      await host.deleteLink(gw.index);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    lock.removeOnRelease({ dir: true });
    return true;
  }));
}
