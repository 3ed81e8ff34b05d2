// Detaching a container from its bridge (DEL, and GC through the records):
// best-effort and idempotent, whatever is gone already counts as done; every
// error is collected and returned, none stops the rest.

import { removeMacspoof, type MacspoofEntry } from '../firewall/macspoof';
import { removeMasq } from '../firewall/masquerade';
import { unregisterNames } from '../dns/service';
import type { Kernel } from '../kernel';
import { isNotFound, withRtnl } from '../netlink';
import { openContainerNetnsIfPresent, type Netns } from '../netns';
import type { ErrorList } from '../util/errors';
import { leaveIsolationIfEmpty } from './isolation';
import type { AttachIsolation, AttachNameService } from './plan';
import { releaseVlanGatewayIfUnused, type VlanGatewayRelease } from './vlan-gateway';

export interface DetachOptions {
  /** CNI_NETNS; empty or gone is fine. */
  netnsPath?: string;
  ifname: string;
  /** The host end, when known from a record: deleted if the namespace is gone but the pair survived. */
  hostVeth?: string;
  /** Masquerade elements to remove. */
  masqAddresses?: readonly string[];
  /** The port's MAC spoof check elements (from the record). */
  macspoof?: MacspoofEntry;
  /** Leave the isolation group when this was the bridge's last container. */
  isolation?: AttachIsolation & { bridge: string };
  /** Remove the container's names; the last one stops the network's DNS service. */
  nameService?: Omit<AttachNameService, 'names'>;
  /** Delete the VLAN gateway interface when this was the last port in its VLAN. */
  vlanGateway?: VlanGatewayRelease;
}

/** The container interface's global addresses (before deleting it), for callers without a record. */
export async function containerAddresses(kernel: Kernel, netnsPath: string | undefined, ifname: string): Promise<string[]> {
  let ns: Netns | undefined;
  try {
    ns = openContainerNetnsIfPresent(netnsPath, (p) => kernel.openNetns(p));
  } catch {
    return [];
  }
  if (!ns) return [];
  const r = kernel.openRtnl(ns);
  try {
    const link = await r.getLink(ifname);
    if (!link) return [];
    return (await r.listAddresses(link.index)).filter((a) => a.scope === 0).map((a) => a.cidr);
  } finally {
    r.close();
    ns.close();
  }
}

/** Delete a link in `ns` (or here); gone already counts as done. */
async function deleteLinkIfPresent(kernel: Kernel, ns: Netns | undefined, name: string): Promise<void> {
  const r = kernel.openRtnl(ns);
  try {
    await r.deleteLink(name);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  } finally {
    r.close();
  }
}

/** Undo an attachment (./apply.ts); idempotent, best-effort: every step runs, the errors go to `errors`. */
export async function detachContainer(kernel: Kernel, o: DetachOptions, errors: ErrorList): Promise<void> {
  const macspoof = o.macspoof;
  if (macspoof) await errors.attempt('removing the MAC spoof check', () => removeMacspoof(macspoof));
  const masq = o.masqAddresses;
  if (masq?.length) await errors.attempt('removing masquerade', () => removeMasq(masq));
  let ns: Netns | undefined;
  await errors.attempt(`opening ${o.netnsPath}`, () => { ns = openContainerNetnsIfPresent(o.netnsPath, (p) => kernel.openNetns(p)); });
  if (ns) {
    const inside = ns;
    try {
      await errors.attempt(`deleting "${o.ifname}"`, () => deleteLinkIfPresent(kernel, inside, o.ifname));
    } finally {
      inside.close();
    }
  }
  const hostVeth = o.hostVeth;
  if (hostVeth) await errors.attempt(`deleting "${hostVeth}"`, () => deleteLinkIfPresent(kernel, undefined, hostVeth));
  const gw = o.vlanGateway;
  if (gw) await errors.attempt(`removing VLAN gateway "${gw.name}"`, () => withRtnl(undefined, (host) => releaseVlanGatewayIfUnused(gw, host), kernel.openRtnl));
  const names = o.nameService;
  if (names) await errors.attempt('removing DNS names', () => unregisterNames({ ...names, ifname: o.ifname }));
  const iso = o.isolation;
  if (iso) await errors.attempt('leaving the isolation group', () => withRtnl(undefined, (host) => leaveIsolationIfEmpty(iso, [], host), kernel.openRtnl));
}
