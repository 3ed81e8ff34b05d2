// bandwidth's kernel side, through the netlink facade (lib/netlink/tc.ts):
//   ingress (to the container):   root tbf on the host end of its veth
//   egress (from the container):  ingress qdisc on the host end, every packet
//                                 redirected to an IFB, root tbf on the IFB
// Everything runs in the host namespace except finding the veth's peer.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import { isExists, isNotFound, NetlinkError, pschedTicksPerUsec, vethPeer, TBF_HANDLE, TC_H, type Link, type OpenRtnl, type Rtnl, type TbfParams } from '../../lib/netlink';
import type { Netns } from '../../lib/netns';
import type { Rollback } from '../../lib/util/rollback';
import type { BandwidthConfig } from './config';
import { ifbAlias, ifbName, isAliasOf, isStaleAlias, referenceIfbName, tbfFor, type Attachment } from './plan';

function fail(msg: string, code: number = ErrorCode.Internal): CniError {
  return new CniError(code, `bandwidth: ${msg}`);
}

/** The host end of the container interface's veth. Undefined when the container has no such interface. */
export async function hostVethOf(host: Rtnl, netns: Netns, ifname: string, open?: OpenRtnl): Promise<Link | undefined> {
  const { inside, peer } = await vethPeer(host, netns, ifname, open);
  if (!inside) return undefined;
  if (!peer) {
    throw fail(`"${ifname}" in the container is ${inside.kind ? `a ${inside.kind}` : 'not a veth'} without a veth peer in this namespace; bandwidth shapes veth-based attachments (bridge, ptp)`, ErrorCode.InvalidConfig);
  }
  return peer;
}

function errno(err: unknown): string {
  return err instanceof NetlinkError ? err.code : '';
}

/** Delete a qdisc; one that is not there counts as deleted. */
async function deleteQdiscIfPresent(rtnl: Rtnl, link: Link, parent: number): Promise<void> {
  try {
    await rtnl.deleteQdisc(link.index, parent);
  } catch (err) {
    if (!isNotFound(err) && errno(err) !== 'EINVAL') throw err;
  }
}

/** Our IFB of an attachment, if it exists; one of that name that is someone else's is an error (a hash collision). */
async function ownIfb(rtnl: Rtnl, a: Attachment): Promise<Link | undefined> {
  const link = await rtnl.getLink(ifbName(a));
  if (link && (link.kind !== 'ifb' || !isAliasOf(link.alias, a))) {
    throw fail(`"${link.name}" exists and is not this attachment's IFB (alias ${JSON.stringify(link.alias ?? '')})`);
  }
  return link;
}

/**
 * Shape the attachment; every step pushes its undo. A repeated ADD replaces
 * what an earlier one made. Returns the IFB when egress is shaped.
 */
export async function applyShaping(host: Rtnl, hostVeth: Link, cfg: BandwidthConfig, a: Attachment, undo: Rollback): Promise<Link | undefined> {
  const ticks = pschedTicksPerUsec();
  if (cfg.ingress) {
    await host.replaceRootTbf(hostVeth.index, tbfFor(cfg.ingress, ticks));
    undo.push(`delete the tbf of "${hostVeth.name}"`, () => deleteQdiscIfPresent(host, hostVeth, TC_H.ROOT));
  }
  if (!cfg.egress) return undefined;
  const name = ifbName(a);
  const stale = await ownIfb(host, a);
  if (stale) await host.deleteLink(stale.index);
  let ifb = await host.createIfb({ name, mtu: hostVeth.mtu, txqlen: 0, alias: ifbAlias(a) });
  undo.push(`delete IFB "${name}"`, async () => {
    try { await host.deleteLink(name); } catch (err) { if (!isNotFound(err)) throw err; }
  });
  await host.setLinkUp(ifb.index);
  await host.replaceRootTbf(ifb.index, tbfFor(cfg.egress, ticks));
  try {
    await host.addIngressQdisc(hostVeth.index);
  } catch (err) {
    // A repeated ADD: the earlier ingress qdisc (its filter pointed at the IFB just replaced).
    if (!isExists(err)) throw err;
    await host.deleteQdisc(hostVeth.index, TC_H.INGRESS);
    await host.addIngressQdisc(hostVeth.index);
  }
  undo.push(`delete the ingress qdisc of "${hostVeth.name}"`, () => deleteQdiscIfPresent(host, hostVeth, TC_H.INGRESS));
  await host.addIngressRedirect(hostVeth.index, ifb.index);
  ifb = await host.requireLink(ifb.index);
  return ifb;
}

async function ifbIf(host: Rtnl, name: string, isOurs: (l: Link) => boolean): Promise<Link | undefined> {
  const ifb = await host.getLink(name);
  return ifb && ifb.kind === 'ifb' && isOurs(ifb) ? ifb : undefined;
}

/**
 * DEL: the attachment's IFB (only if its alias says it is ours; also one the
 * reference made for it, named its way and without an alias), and, while the
 * veth still exists, our tbf and ingress qdisc on its host end. The qdiscs go
 * first: the IFB is what says the ingress qdisc is ours, so a DEL cut short
 * leaves the next one that proof. Idempotent.
 */
export async function removeShaping(host: Rtnl, a: Attachment, hostVeth: Link | undefined): Promise<void> {
  const ifbs = [await ifbIf(host, ifbName(a), (l) => isAliasOf(l.alias, a)), await ifbIf(host, referenceIfbName(a), (l) => l.alias === undefined)]
    .filter((l): l is Link => l !== undefined);
  if (hostVeth) {
    const root = await host.getQdisc(hostVeth.index, TC_H.ROOT);
    if (root?.kind === 'tbf' && root.handle === TBF_HANDLE) await deleteQdiscIfPresent(host, hostVeth, TC_H.ROOT);
    if (ifbs.length) await deleteQdiscIfPresent(host, hostVeth, TC_H.INGRESS);
  }
  for (const ifb of ifbs) {
    try { await host.deleteLink(ifb.index); } catch (err) { if (!isNotFound(err)) throw err; }
  }
}

function describeTbf(p: TbfParams): string {
  return `rate ${p.rate} B/s, limit ${p.limit} B, buffer ${p.buffer} ticks`;
}

async function checkTbf(host: Rtnl, link: Link, want: TbfParams): Promise<string | undefined> {
  const q = await host.getQdisc(link.index, TC_H.ROOT);
  if (q?.kind !== 'tbf' || !q.tbf) return `"${link.name}" has no tbf (root qdisc: ${q?.kind || 'none'})`;
  const have = q.tbf;
  if (have.rate !== want.rate || have.limit !== want.limit || have.buffer !== want.buffer) return `the tbf of "${link.name}" has ${describeTbf(have)}, configured ${describeTbf(want)}`;
  return undefined;
}

/** CHECK: each configured direction is shaped as configured. Returns what is wrong. */
export async function verifyShaping(host: Rtnl, hostVeth: Link, cfg: BandwidthConfig, a: Attachment): Promise<string[]> {
  const ticks = pschedTicksPerUsec();
  const problems: string[] = [];
  if (cfg.ingress) {
    const p = await checkTbf(host, hostVeth, tbfFor(cfg.ingress, ticks));
    if (p) problems.push(p);
  }
  if (cfg.egress) {
    const ifb = await ownIfb(host, a);
    if (!ifb) problems.push(`IFB "${ifbName(a)}" does not exist`);
    else {
      if (!ifb.up) problems.push(`IFB "${ifb.name}" is down`);
      const p = await checkTbf(host, ifb, tbfFor(cfg.egress, ticks));
      if (p) problems.push(p);
    }
    if ((await host.getQdisc(hostVeth.index, TC_H.INGRESS))?.kind !== 'ingress') problems.push(`"${hostVeth.name}" has no ingress qdisc (egress is not redirected)`);
  }
  return problems;
}

/** GC: this network's IFBs whose attachment is not valid any more (one link listing). Returns their names. */
export async function removeStaleIfbs(host: Rtnl, network: string, valid: ReadonlyArray<{ containerID: string; ifname: string }>): Promise<string[]> {
  const stale = (await host.listLinks()).filter((l) => l.kind === 'ifb' && isStaleAlias(l.alias, network, valid));
  for (const l of stale) {
    try { await host.deleteLink(l.index); } catch (err) { if (!isNotFound(err)) throw err; }
  }
  return stale.map((l) => l.name);
}
