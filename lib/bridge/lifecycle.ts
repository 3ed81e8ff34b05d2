// The DEL/GC bookkeeping both bridge-attaching plugins share (./family.ts
// runs the verbs): the masquerade elements of an attachment without a
// record, collecting DEL errors, GC of stale records, and the network's
// lifecycle (lib/util/network-state.ts): an ADD runs under the network's
// shared lock; after the last attachment left (DEL, GC, a failed ADD), the
// network's structure goes: its masquerade chains, its forwarding policy
// (internal, ICC off), and each shared table
// (masquerade, MAC spoof check) no other network uses any more. Only the
// bridge device stays, as in the reference.

import { attachmentExists } from '../cni/errors';
import type { Invocation } from '../cni/types';
import { removeMacspoofIfUnused } from '../firewall/macspoof';
import { gcMasq, hasMasq, removeMasq, removeMasqNetwork, type MasqEntry } from '../firewall/masquerade';
import { removeNetworkPolicy } from '../firewall/netpolicy';
import { NetworkState } from '../util/network-state';
import type { Kernel } from '../kernel';
import { isNotFound, type Rtnl } from '../netlink';
import type { ErrorList } from '../util/errors';
import { containerAddresses } from './detach';
import type { AttachmentRecord, RecordDir } from './records';

/** The network's record directory as its lifecycle state: the records are its members. */
export function networkStateOf(records: RecordDir<AttachmentRecord>): NetworkState {
  return new NetworkState(records.dir, (n) => n.endsWith('.json'));
}

/** What goes with a network's last attachment (the bridge device stays). */
export async function removeNetworkStructure(network: string): Promise<void> {
  await removeMasqNetwork(network);
  await removeNetworkPolicy(network);
  await removeMacspoofIfUnused();
}

/** After an attachment left: if it was the network's last, the network's structure, record directory and lock go. */
export async function removeNetworkIfUnused(records: RecordDir<AttachmentRecord>, network: string): Promise<boolean> {
  return networkStateOf(records).teardownIfUnused(() => removeNetworkStructure(network));
}

/**
 * Run an ADD under the network's shared lock (no teardown meanwhile). If it
 * fails and leaves the network without attachments, what it built of the
 * network goes too.
 */
export async function attachToNetwork<T>(records: RecordDir<AttachmentRecord>, network: string, add: () => Promise<T>, log?: { warn(msg: string): void }): Promise<T> {
  try {
    return await networkStateOf(records).whileAttaching(add);
  } catch (err) {
    try {
      await removeNetworkIfUnused(records, network);
    } catch (e) {
      log?.warn(`removing what the failed ADD built of network "${network}": ${(e as Error).message}`);
    }
    throw err;
  }
}

/** Fail on an existing ifname before IPAM runs, so a repeated ADD does not release the first one's address. */
export async function requireFreeIfname(container: Rtnl, ifname: string, plugin: string): Promise<void> {
  if (await container.getLink(ifname)) throw attachmentExists(`${plugin}: container already has an interface named "${ifname}"`);
}

/**
 * The masquerade elements to remove for an attachment without a record
 * (written by an older ADD, or lost): addresses from prevResult or the live
 * interface, and only the elements tagged with this attachment.
 */
export async function untrackedMasqAddresses(kernel: Kernel, inv: Invocation, network: string, entryOf: (cidr: string) => MasqEntry): Promise<string[]> {
  const owner = { network, containerId: inv.env.containerId!, ifname: inv.env.ifname! };
  const prev = inv.conf.prevResult?.ips?.map((ip) => ip.address) ?? [];
  const cidrs = prev.length ? prev : await containerAddresses(kernel, inv.env.netns, inv.env.ifname!);
  return cidrs
    .map(entryOf)
    .filter((e) => {
      try { return hasMasq(owner, e); } catch { return false; }
    })
    .map((e) => e.address);
}

/** What DEL removes from the host side: the record's masquerade elements, else (with ipMasq) the tagged ones found. */
export async function masqToRemove(kernel: Kernel, inv: Invocation, o: { network: string; record?: AttachmentRecord; ipMasq: boolean; entryOf: (cidr: string) => MasqEntry }): Promise<string[]> {
  if (o.record) return o.record.masq.map((m) => m.address);
  return o.ipMasq ? untrackedMasqAddresses(kernel, inv, o.network, o.entryOf) : [];
}

/**
 * A stale attachment's host veth: deleted (with its peer, if the container's
 * namespace still exists) when it is still a veth on the record's bridge
 * (random names could in theory be reused by another container elsewhere).
 */
async function deleteStaleHostVeth(rtnl: Rtnl, rec: AttachmentRecord & { bridge?: string }): Promise<void> {
  if (!rec.hostVeth) return;
  const link = await rtnl.getLink(rec.hostVeth);
  if (!link || link.kind !== 'veth') return;
  if (rec.bridge) {
    const br = await rtnl.getLink(rec.bridge);
    if (!br || link.master !== br.index) return;
  }
  try {
    await rtnl.deleteLink(link.index);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/**
 * GC: masquerade elements of the network not owned by a valid attachment,
 * then everything of the attachments no longer valid that have a record:
 * their elements (also the plugin's own via removeExtra), their host veth,
 * their record. The errors go to `errors`; the caller goes on with the rest
 * of GC.
 */
export async function gcAttachments<T extends AttachmentRecord & { bridge?: string }>(
  kernel: Kernel, network: string, records: RecordDir<T>, valid: ReadonlyArray<{ containerID: string; ifname: string }>,
  /** The plugin's own per-record cleanup (e.g. MAC spoof check elements), before the record goes. */
  removeExtra: ((rec: T) => void) | undefined,
  errors: ErrorList,
): Promise<void> {
  const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
  await errors.attempt('masquerade', () => gcMasq(network, valid));
  const stale = records.list().filter((rec) => !keep.has(`${rec.containerId}\0${rec.ifname}`));
  if (stale.length === 0) return;
  const rtnl = kernel.openRtnl();
  try {
    for (const rec of stale) {
      await errors.attempt(`${rec.containerId}/${rec.ifname}`, async () => {
        removeMasq(rec.masq.map((m) => m.address));
        removeExtra?.(rec);
        await deleteStaleHostVeth(rtnl, rec);
        records.remove(rec.containerId, rec.ifname);
      });
    }
  } finally {
    rtnl.close();
  }
}
