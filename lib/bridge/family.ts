// The one ADD/DEL/GC lifecycle of the plugins that attach containers to a
// local bridge (bridge, vxlan-overlay). Each plugin says what differs, as
// data and pure functions (its config, its IPAM invocation, its plan.ts that
// turns config + IPAM result into an AttachSpec, its result); the order of
// the steps, the locks, the rollback and the error handling are here, once.
//
//   ADD: network lock → CNI_NETNS → ifname free → IPAM → plan (./plan.ts) → apply (./apply.ts) → result; a failure unwinds all
//   DEL: record → masquerade to remove → detach (./detach.ts) → IPAM → record and network structure, errors at the end
//   GC:  stale records → names → VLAN gateway → isolation → network structure → IPAM, errors at the end

import type { GcInvocation } from '../cni/plugin';
import type { Invocation, Result } from '../cni/types';
import { ipamAdd, ipamDel, ipamGc, type InProcessIpam } from '../cni/ipam';
import type { NameResolutionConfig } from '../dns/config';
import { gcNames } from '../dns/service';
import type { MasqEntry } from '../firewall/masquerade';
import type { Kernel } from '../kernel';
import { withRtnl } from '../netlink';
import { openContainerNetns } from '../netns';
import { ErrorList } from '../util/errors';
import { Rollback, describeRollbackErrors } from '../util/rollback';
import { applyAttachPlan, observeAttach, type AttachKernel, type AttachResult } from './apply';
import { detachContainer, type DetachOptions } from './detach';
import { leaveIsolationIfEmpty } from './isolation';
import { attachToNetwork, gcAttachments, masqToRemove, removeNetworkIfUnused, requireFreeIfname } from './lifecycle';
import { planAttach, type AttachIsolation, type AttachSpec } from './plan';
import type { AttachmentRecord, RecordDir } from './records';
import { releaseVlanGatewayIfUnused, type VlanGatewayRelease } from './vlan-gateway';

/** Which network and which records an invocation is about. */
export interface FamilyNetwork<R extends AttachmentRecord> {
  /** For messages: "bridge", "vxlan-overlay". */
  plugin: string;
  network: string;
  records: RecordDir<R>;
}

export interface FamilyAdd<R extends AttachmentRecord> extends FamilyNetwork<R> {
  /** The IPAM invocation; undefined when the network has no IPAM (L2 only). */
  ipamInv?: Invocation;
  /** Pure (the plugin's plan.ts): the attachment, from the config and what IPAM returned. */
  specOf(ipam: Result | undefined): AttachSpec;
  /** The CNI result of the attachment made. */
  resultOf(att: AttachResult, spec: AttachSpec, ipam: Result | undefined): Result;
}

/** ADD: the whole attachment under the network's lock; a failure at any step leaves nothing behind. */
export async function addAttachment<R extends AttachmentRecord>(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel, a: FamilyAdd<R>): Promise<Result> {
  // The steps are module functions, not closures made per call: the snapshot carries their bytecode (docs/benchmarks/startup.md).
  return attachToNetwork(a.records, a.network, () => attachLocked(inv, ipamTypes, kernel, a), inv.log);
}

async function attachLocked<R extends AttachmentRecord>(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel, a: FamilyAdd<R>): Promise<Result> {
  const netns = openContainerNetns(inv.env.netns, a.plugin, (p) => kernel.openNetns(p));
  const host = kernel.openRtnl();
  const container = kernel.openRtnl(netns);
  const k: AttachKernel = { host, container, netns, sysctl: kernel.sysctl, records: a.records as RecordDir<AttachmentRecord> };
  try {
    await requireFreeIfname(container, inv.env.ifname!, a.plugin);
    return await Rollback.run((undo) => attachSteps(ipamTypes, k, a, undo), (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`));
  } finally {
    host.close();
    container.close();
    netns.close();
  }
}

/** IPAM, observe, plan, apply: each step that makes something pushes its undo on `undo`. */
async function attachSteps<R extends AttachmentRecord>(ipamTypes: InProcessIpam, k: AttachKernel, a: FamilyAdd<R>, undo: Rollback): Promise<Result> {
  let ipam: Result | undefined;
  const ipamInv = a.ipamInv;
  if (ipamInv) {
    ipam = await ipamAdd(ipamInv, ipamTypes);
    undo.push('release IPAM', () => ipamDel(ipamInv, ipamTypes));
  }
  const spec = a.specOf(ipam);
  const plan = planAttach(spec, await observeAttach(k, spec, false));
  return a.resultOf(await applyAttachPlan(plan, k, undo), spec, ipam);
}

export interface FamilyDel<R extends AttachmentRecord> extends FamilyNetwork<R> {
  ipMasq: boolean;
  /** The masquerade element of a container address, for an attachment without a record. */
  masqEntryOf(cidr: string): MasqEntry;
  /** What else goes with the attachment (isolation, names, VLAN gateway, MAC spoof check), given its record if any. */
  detachOf(rec: R | undefined): Omit<DetachOptions, 'netnsPath' | 'ifname' | 'hostVeth' | 'masqAddresses'>;
  /** The IPAM invocation that releases the attachment's addresses. */
  ipamInvOf(rec: R | undefined): Invocation;
}

/** DEL: best-effort and idempotent; IPAM is always released; every error is reported at the end. */
export async function removeAttachment<R extends AttachmentRecord>(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel, d: FamilyDel<R>): Promise<void> {
  const containerId = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const rec = d.records.read(containerId, ifname);
  const masqAddresses = await masqToRemove(kernel, inv, { network: d.network, record: rec, ipMasq: d.ipMasq, entryOf: d.masqEntryOf });
  const errors = new ErrorList();
  await detachContainer(kernel, { netnsPath: inv.env.netns || undefined, ifname, hostVeth: rec?.hostVeth, masqAddresses, ...d.detachOf(rec) }, errors);
  // Masquerade goes before IPAM releases the address, so no later owner of it is affected.
  await errors.attempt(undefined, () => ipamDel(d.ipamInvOf(rec), ipamTypes));
  if (errors.length === 0) {
    d.records.remove(containerId, ifname);
    await errors.attempt('removing the network\'s structure', () => removeNetworkIfUnused(d.records, d.network));
  }
  errors.throwIfAny(`${d.plugin}: DEL of ${containerId}/${ifname} failed`);
}

export interface FamilyGc<R extends AttachmentRecord & { bridge?: string }> extends FamilyNetwork<R> {
  nameResolution?: NameResolutionConfig;
  /** The VLAN gateway to delete when no port uses its VLAN any more. */
  vlanGateway?: VlanGatewayRelease;
  isolation?: AttachIsolation & { bridge: string };
  /** The plugin's own cleanup of a stale record (e.g. MAC spoof check elements), before the record goes. */
  removeExtra?(rec: R): void;
  ipamInv: GcInvocation;
}

/** GC: everything of attachments the runtime no longer knows, then what the network no longer needs; errors at the end. */
export async function gcNetwork<R extends AttachmentRecord & { bridge?: string }>(inv: GcInvocation, ipamTypes: InProcessIpam, kernel: Kernel, g: FamilyGc<R>): Promise<void> {
  const errors = new ErrorList();
  await gcAttachments(kernel, g.network, g.records, inv.validAttachments, g.removeExtra && ((rec: R) => g.removeExtra!(rec)), errors);
  const nameResolution = g.nameResolution;
  if (nameResolution) await errors.attempt('DNS service', () => gcNames({ network: g.network, config: nameResolution }, inv.validAttachments));
  const gw = g.vlanGateway;
  if (gw) await errors.attempt(`VLAN gateway "${gw.name}"`, () => withRtnl(undefined, (host) => releaseVlanGatewayIfUnused(gw, host), kernel.openRtnl));
  const iso = g.isolation;
  if (iso) await errors.attempt('isolation', () => withRtnl(undefined, (host) => leaveIsolationIfEmpty(iso, [], host), kernel.openRtnl));
  if (errors.length === 0) await errors.attempt('removing the network\'s structure', () => removeNetworkIfUnused(g.records, g.network));
  await errors.attempt(undefined, () => ipamGc(g.ipamInv, ipamTypes));
  errors.throwIfAny(`${g.plugin} GC`);
}
