// bandwidth: a chained plugin that limits a container's traffic in both
// directions with token buckets, like the reference bandwidth plugin
// (kubelet's kubernetes.io/ingress-bandwidth and egress-bandwidth).

import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors';
import type { GcInvocation, Invocation, Plugin, Result } from '../../lib/cni/plugin';
import type { Kernel } from '../../lib/kernel';
import type { Link, Rtnl } from '../../lib/netlink';
import { openContainerNetns, openContainerNetnsIfPresent } from '../../lib/netns';
import { Rollback, describeRollbackErrors } from '../../lib/util/rollback';
import { parseBandwidthConfig, type BandwidthConfig } from './config';
import { applyShaping, hostVethOf, removeShaping, removeStaleIfbs, verifyShaping } from './kernel';
import { resultWithIfb, type Attachment } from './plan';

function attachmentOf(cfg: BandwidthConfig, inv: Invocation): Attachment {
  return { network: cfg.network, containerID: inv.env.containerId!, ifname: inv.env.ifname! };
}

function requireHostVeth(v: Link | undefined, ifname: string): Link {
  if (!v) throw new CniError(ErrorCode.Internal, `bandwidth: the container has no interface "${ifname}"`);
  return v;
}

async function add(inv: Invocation, kernel: Kernel): Promise<Result> {
  const cfg = parseBandwidthConfig(inv.conf);
  const passThrough: Result = cfg.prevResult ?? { cniVersion: cfg.cniVersion };
  if (!cfg.ingress && !cfg.egress) return passThrough;
  if (!cfg.prevResult) throw invalidConfig('bandwidth: no prevResult; bandwidth must be chained after an interface plugin (bridge, ptp)');
  const netns = openContainerNetns(inv.env.netns, 'bandwidth', kernel.openNetns);
  const host = kernel.openRtnl();
  try {
    const hostVeth = requireHostVeth(await hostVethOf(host, netns, inv.env.ifname!, kernel.openRtnl), inv.env.ifname!);
    const ifb = await Rollback.run((undo) => applyShaping(host, hostVeth, cfg, attachmentOf(cfg, inv), undo),
      (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`));
    return resultWithIfb(cfg.prevResult, ifb && { name: ifb.name, mac: ifb.mac });
  } finally {
    host.close();
    netns.close();
  }
}

/** The host end of the veth while the container's namespace and interface still exist; else undefined. */
async function hostVethIfPresent(kernel: Kernel, host: Rtnl, nsPath: string | undefined, ifname: string): Promise<Link | undefined> {
  const netns = openContainerNetnsIfPresent(nsPath, kernel.openNetns); // DEL: a container gone took its interfaces along
  if (!netns) return undefined;
  try {
    // Not a veth (code 7): nothing of ours on it. Any other failure fails the DEL, before anything is removed, for the retry.
    return await hostVethOf(host, netns, ifname, kernel.openRtnl).catch((err) => { if (err instanceof CniError) return undefined; throw err; });
  } finally {
    netns.close();
  }
}

/** DEL needs no runtimeConfig: the IFB's name and alias come from the attachment. */
async function del(inv: Invocation, kernel: Kernel): Promise<void> {
  const cfg = parseBandwidthConfig(inv.conf);
  const host = kernel.openRtnl();
  try {
    await removeShaping(host, attachmentOf(cfg, inv), await hostVethIfPresent(kernel, host, inv.env.netns, inv.env.ifname!));
  } finally {
    host.close();
  }
}

async function check(inv: Invocation, kernel: Kernel): Promise<void> {
  const cfg = parseBandwidthConfig(inv.conf);
  if (!cfg.prevResult) throw invalidConfig('bandwidth: Required prevResult missing (bandwidth must be chained)');
  if (!cfg.ingress && !cfg.egress) return;
  const netns = openContainerNetns(inv.env.netns, 'bandwidth', kernel.openNetns);
  const host = kernel.openRtnl();
  try {
    const hostVeth = requireHostVeth(await hostVethOf(host, netns, inv.env.ifname!, kernel.openRtnl), inv.env.ifname!);
    const problems = await verifyShaping(host, hostVeth, cfg, attachmentOf(cfg, inv));
    if (problems.length) throw new CniError(ErrorCode.Internal, `bandwidth CHECK: ${problems.join('; ')}`);
  } finally {
    host.close();
    netns.close();
  }
}

/** The IFBs of this network's attachments the runtime no longer has (their veths went with their namespaces). */
async function gc(inv: GcInvocation, kernel: Kernel): Promise<void> {
  const cfg = parseBandwidthConfig(inv.conf);
  const host = kernel.openRtnl();
  try {
    const removed = await removeStaleIfbs(host, cfg.network, inv.validAttachments);
    if (removed.length) inv.log?.info(`removed the IFBs of stale attachments: ${removed.join(', ')}`);
  } finally {
    host.close();
  }
}

async function status(inv: Invocation): Promise<void> {
  parseBandwidthConfig(inv.conf);
}

/** The bandwidth plugin over `kernel` (main.ts: HOST_KERNEL). */
export function makeBandwidthPlugin(kernel: Kernel): Plugin {
  return {
    name: 'bandwidth',
    description: 'limits a container\'s ingress and egress rate (token buckets on its veth and an IFB)',
    // Like the reference: capabilities and chaining exist from 0.3.0 on.
    supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    add: (inv) => add(inv, kernel),
    del: (inv) => del(inv, kernel),
    check: (inv) => check(inv, kernel),
    gc: (inv) => gc(inv, kernel),
    status,
  };
}
