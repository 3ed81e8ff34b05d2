// Bridge ports: a veth pair with a random `veth` + 8 hex end, and the VLANs
// of a port. Shared by a container's attachment (./apply.ts) and the VLAN
// gateway interface (./vlan-gateway.ts).

import { randomBytes } from '../util/random';
import { CniError, ErrorCode } from '../cni/errors';
import { isExists, type Link, type NetnsRef, type Rtnl } from '../netlink';
import type { BridgeVlan } from '../netlink';
import type { PortVlans } from './plan';

/** One VLAN change on a port (`bridge vlan add|del dev <port> vid ... master`). */
export interface BridgeVlanOp extends BridgeVlan {
  op: 'add' | 'del';
}

const VETH_NAME_TRIES = 10;

export function randomVethName(): string {
  return `veth${randomBytes(4).toString('hex')}`;
}

export function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Create `name` through `rtnl` with a random peer name (sent to `peerNetns`,
 * or left beside it); a clash of the random name is retried.
 */
export async function createVethWithRandomPeer(rtnl: Rtnl, o: { name: string; peerNetns?: NetnsRef; mtu?: number; mac?: string; plugin: string }): Promise<{ link: Link; peerName: string }> {
  for (let i = 0; ; i++) {
    const peerName = randomVethName();
    try {
      const link = await rtnl.createVeth({ name: o.name, peerName, peerNetns: o.peerNetns, mtu: o.mtu || undefined, mac: o.mac });
      return { link, peerName };
    } catch (err) {
      // The caller checked `name` free, so EEXIST is a clash of the random name.
      if (isExists(err) && i + 1 < VETH_NAME_TRIES) continue;
      throw new CniError(ErrorCode.Internal, `${o.plugin}: failed to create veth pair "${o.name}" <-> "${peerName}": ${errMsg(err)}`);
    }
  }
}

/** The ops of planned port VLANs, given the VIDs the port has now (the bridge's default PVID 1): drops first, then adds. */
export function portVlanOps(vlans: PortVlans, existing: readonly number[]): BridgeVlanOp[] {
  const drops: BridgeVlanOp[] = vlans.dropExisting ? existing.map((vid) => ({ op: 'del', vid, pvid: false, untagged: false })) : [];
  return [...drops, ...vlans.add.map((v): BridgeVlanOp => ({ ...v, op: 'add' }))];
}

/** Give a port its planned VLANs. */
export async function applyPortVlans(host: Rtnl, port: Link, vlans: PortVlans, plugin: string): Promise<void> {
  const existing = vlans.dropExisting ? (await host.listBridgeVlans(port.index)).map((v) => v.vid) : [];
  for (const op of portVlanOps(vlans, existing)) {
    try {
      if (op.op === 'add') await host.addBridgeVlan(port.index, op);
      else await host.deleteBridgeVlan(port.index, op);
    } catch (err) {
      throw new CniError(ErrorCode.Internal, `${plugin}: failed to ${op.op} VLAN ${op.vid} on "${port.name}": ${errMsg(err)}`);
    }
  }
}
