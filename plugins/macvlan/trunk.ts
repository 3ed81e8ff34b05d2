// Pure decisions of Docker's trunk mode: which 802.1q sub-interface is the
// parent, the netlink request that creates it, and whether DEL/GC may delete
// it. No I/O here; trunk-state.ts keeps the records, link.ts talks to the kernel.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { Attachment } from '../../lib/cni/types';
import { buildVlanRequest } from '../../lib/netlink/requests';
import type { NlRequest } from '../../lib/netlink/wire';
import { isValidIfname } from '../../lib/util/ifname';

/** `<master>.<vlan>`, as Docker names it; it must still be a valid interface name. */
export function subInterfaceName(master: string, vlan: number): string {
  const name = `${master}.${vlan}`;
  if (!isValidIfname(name)) {
    throw new CniError(ErrorCode.InvalidConfig, `macvlan: the 802.1q sub-interface name "${name}" is longer than 15 bytes`, `master "${master}" is too long for vlan ${vlan}`);
  }
  return name;
}

export interface SubInterfaceSpec {
  name: string;
  parentIndex: number;
  vlanId: number;
  /** The master's MTU, so the macvlans on top can use all of it. */
  mtu: number;
}

export function planSubInterface(master: { name: string; index: number; mtu: number }, vlan: number): SubInterfaceSpec {
  return { name: subInterfaceName(master.name, vlan), parentIndex: master.index, vlanId: vlan, mtu: master.mtu };
}

/** The RTM_NEWLINK request for the sub-interface (what `ip link add link eth0 name eth0.10 type vlan id 10` sends). */
export function subInterfaceRequest(spec: SubInterfaceSpec): NlRequest {
  return buildVlanRequest(spec);
}

/** What the plugin recorded when it created a sub-interface. */
export interface CreatedMarker {
  ifindex: number;
  master: string;
  vlan: number;
}

export interface SubInterfaceState {
  /** The link now in the kernel under that name, if any. */
  link?: { index: number; kind?: string };
  /** Our record that we created it, if any. */
  marker?: CreatedMarker;
  /** Attachments (any network) whose macvlan sits on it, per our records. */
  users: number;
  /** macvlans visible in the host namespace whose parent is this link (linkInContainer-less, normally 0). */
  hostChildren?: number;
}

export type SubInterfaceDecision =
  | { action: 'keep'; reason: string }
  | { action: 'delete' }
  /** The link is gone (or not ours any more): only our records go. */
  | { action: 'forget'; reason: string };

/**
 * Delete the sub-interface only when we created it (the marker names the
 * same ifindex: a link someone re-created under that name is not ours) and
 * nothing uses it any more. Deleting a parent deletes its macvlans, so any
 * doubt means keep.
 */
export function decideSubInterface(s: SubInterfaceState): SubInterfaceDecision {
  if (!s.link) return s.marker || s.users === 0 ? { action: 'forget', reason: 'the sub-interface is already gone' } : { action: 'keep', reason: 'no such link' };
  // Someone else's: never deleted; our records of it go when none of our attachments uses it.
  if (!s.marker) return s.users > 0 ? { action: 'keep', reason: 'not created by this plugin' } : { action: 'forget', reason: 'not created by this plugin, and unused by us' };
  if (s.marker.ifindex !== s.link.index || s.link.kind !== 'vlan') {
    return { action: 'forget', reason: `the link now named so is not the one we created (ifindex ${s.link.index}, ours was ${s.marker.ifindex})` };
  }
  if (s.users > 0) return { action: 'keep', reason: `${s.users} attachment(s) still use it` };
  if (s.hostChildren) return { action: 'keep', reason: `${s.hostChildren} macvlan(s) in the host namespace still use it` };
  return { action: 'delete' };
}

// ---- user records -------------------------------------------------------------
// One record per attachment: "<network>:<containerID>:<ifname>". Network
// names and container IDs cannot contain ":" or "/", interface names neither.

export interface UserKey {
  network: string;
  containerId: string;
  ifname: string;
}

export function userRecordName(k: UserKey): string {
  return `${k.network}:${k.containerId}:${k.ifname}`;
}

export function parseUserRecordName(name: string): UserKey | undefined {
  const m = /^([^:]+):([^:]+):([^:/]+)$/.exec(name);
  return m ? { network: m[1], containerId: m[2], ifname: m[3] } : undefined;
}

/** GC: this network's records whose attachment is no longer valid (other networks' records are left alone). */
export function staleUserRecords(records: readonly string[], network: string, valid: readonly Attachment[]): string[] {
  const keep = new Set(valid.map((a) => userRecordName({ network, containerId: a.containerID, ifname: a.ifname })));
  return records.filter((r) => parseUserRecordName(r)?.network === network && !keep.has(r));
}
