// firewall: a chained plugin that lets containers' traffic through the
// host's FORWARD policy (Docker sets it to DROP), answers published ports
// from the LAN, and keeps networks apart with ingressPolicy "same-bridge"
// (the bridge plugin's isolation) or "isolated" (also no traffic between
// containers of one bridge). lib/firewall/forward.ts and iptables.ts say how.

import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors';
import type { GcInvocation, Invocation, Plugin, Result } from '../../lib/cni/plugin';
import { joinIsolation, leaveIsolationIfEmpty } from '../../lib/bridge/isolation';
import { applyForwardAdd, hasForwardElement, removeForwardElements, removeForwardTableIfUnused, staleForwardAddresses } from '../../lib/firewall/forward';
import { ensureForwardAccept, missingForwardAccept, removeForwardAccept, type IpFamily } from '../../lib/firewall/iptables';
import { listIsolatedBridges } from '../../lib/firewall/isolation';
import type { Kernel } from '../../lib/kernel';
import { vethPeer, withRtnl, type Link } from '../../lib/netlink';
import { Netns, openContainerNetns, openContainerNetnsIfPresent } from '../../lib/netns';
import { Rollback, describeRollbackErrors } from '../../lib/util/rollback';
import { parseFirewallConfig, type FirewallConfig } from './config';
import { allowedAddresses, familiesOf, policyBridge } from './plan';
import { FirewallState, type FirewallRecord } from './state';

const BOTH: readonly IpFamily[] = [4, 6];

function requirePrev(cfg: FirewallConfig): Result {
  if (!cfg.prevResult) throw invalidConfig('firewall: missing prevResult from earlier plugin (firewall must be chained after an interface plugin)');
  return cfg.prevResult;
}

function ownerOf(cfg: FirewallConfig, inv: Invocation) {
  return { network: cfg.network, containerId: inv.env.containerId!, ifname: inv.env.ifname! };
}

function isolationOf(cfg: FirewallConfig, bridge: string) {
  return { network: cfg.network, bridge, lockDir: cfg.stateDir };
}

/** The container's port on the bridge (isolated: it gets the port flag; leaving the group must not count it). */
async function hostPort(kernel: Kernel, netns: Netns, ifname: string): Promise<Link | undefined> {
  const host = kernel.openRtnl();
  try {
    return (await vethPeer(host, netns, ifname, kernel.openRtnl)).peer;
  } finally {
    host.close();
  }
}

async function requireBridge(kernel: Kernel, name: string): Promise<void> {
  const host = kernel.openRtnl();
  try {
    const br = await host.getLink(name);
    if (br?.kind !== 'bridge') throw invalidConfig(`firewall: the first interface of prevResult, "${name}", is ${br ? `a ${br.kind ?? 'device'}` : 'not a link here'}, not a bridge; an ingressPolicy other than "open" needs "firewall" chained after "bridge"`);
  } finally {
    host.close();
  }
}

/**
 * With the last attachment of the host gone: our nft table (only if no element
 * is left in it: atomic against an ADD) and then the iptables jump and chain.
 */
async function teardownIfUnused(cfg: FirewallConfig, state: FirewallState): Promise<void> {
  await state.teardownIfUnused(async () => {
    if ((await removeForwardTableIfUnused()) === 'in use') return; // elements without a record: GC finds them by comment
    for (const f of BOTH) removeForwardAccept(f, { adminChain: cfg.adminChain });
  });
}

async function add(inv: Invocation, kernel: Kernel): Promise<Result> {
  const cfg = parseFirewallConfig(inv.conf);
  const prev = requirePrev(cfg);
  inv.log?.debug(`backend ${JSON.stringify(cfg.backend)}: implemented with nftables (table node_cni_firewall) and one iptables FORWARD jump`);
  const addresses = allowedAddresses(prev);
  const bridge = policyBridge(prev, cfg.ingressPolicy);
  const owner = ownerOf(cfg, inv);
  let port: Link | undefined;
  if (bridge) {
    await requireBridge(kernel, bridge);
    const netns = openContainerNetns(inv.env.netns, 'firewall', kernel.openNetns);
    try { port = await hostPort(kernel, netns, owner.ifname); } finally { netns.close(); }
    if (cfg.ingressPolicy === 'isolated' && !port) throw invalidConfig(`firewall: ingressPolicy "isolated" needs "${owner.ifname}" to be a veth with its peer on "${bridge}"`);
  }
  const state = new FirewallState(cfg.stateDir);
  const rec: FirewallRecord = { network: cfg.network, containerID: owner.containerId, ifname: owner.ifname, addresses, policy: cfg.ingressPolicy, bridge, hostVeth: port?.name };
  try {
    await state.whileAttaching(() => Rollback.run(async (undo) => {
      state.write(rec);
      undo.push('remove the attachment record', () => state.remove(rec.network, rec.containerID, rec.ifname));
      if (addresses.length) {
        // Shared: a failed ADD leaves it to the teardown below.
        await state.iptablesLocked(() => { for (const f of familiesOf(addresses)) ensureForwardAccept(f, { adminChain: cfg.adminChain }); });
        await applyForwardAdd(owner, addresses);
        undo.push('remove the set elements', () => removeForwardElements(addresses));
      }
      if (bridge) {
        const iso = isolationOf(cfg, bridge);
        // Pushed first: a join that fails half-way (its lock file made) is undone too.
        undo.push('leave the isolation group if the bridge has no other container', async () => {
          const host = kernel.openRtnl();
          try { await leaveIsolationIfEmpty(iso, port ? [port.name] : [], host); } finally { host.close(); }
        });
        await joinIsolation(iso);
      }
      if (cfg.ingressPolicy === 'isolated' && port) {
        const host = kernel.openRtnl();
        try { await host.setBridgePortFlags(port.index, { isolated: true }); } finally { host.close(); }
      }
    }, (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`)));
  } catch (err) {
    // The shared structure goes too if this was to be the host's first attachment.
    await teardownIfUnused(cfg, state).catch((e) => inv.log?.warn(`teardown after the failed ADD: ${(e as Error).message}`));
    throw err;
  }
  return prev;
}

/** The container's port, when its namespace is still there (DEL runs before the bridge's DEL removes the veth). */
async function portIfPresent(kernel: Kernel, nsPath: string | undefined, ifname: string): Promise<string | undefined> {
  const netns = openContainerNetnsIfPresent(nsPath, kernel.openNetns); // DEL: a container gone took its interfaces along
  if (!netns) return undefined;
  try {
    return (await hostPort(kernel, netns, ifname))?.name;
  } finally {
    netns.close();
  }
}

/** Take one attachment out: its elements, the isolation group if its bridge has no other container, its record. */
async function release(kernel: Kernel, cfg: FirewallConfig, rec: FirewallRecord, state: FirewallState, ownPort?: string): Promise<void> {
  removeForwardElements(rec.addresses);
  if (rec.bridge) {
    const ignore = [rec.hostVeth, ownPort].filter((p): p is string => !!p);
    await withRtnl(undefined, (host) => leaveIsolationIfEmpty(isolationOf(cfg, rec.bridge!), ignore, host), kernel.openRtnl);
  }
  state.remove(rec.network, rec.containerID, rec.ifname);
}

/** DEL finds what to remove in the record; without one (written by nothing, or lost), the elements tagged with this attachment. */
async function del(inv: Invocation, kernel: Kernel): Promise<void> {
  const cfg = parseFirewallConfig(inv.conf);
  const owner = ownerOf(cfg, inv);
  const state = new FirewallState(cfg.stateDir);
  const ownPort = await portIfPresent(kernel, inv.env.netns, owner.ifname);
  let rec = state.read(cfg.network, owner.containerId, owner.ifname);
  if (!rec && cfg.prevResult) {
    const addresses = allowedAddresses(cfg.prevResult).filter((a) => { try { return hasForwardElement(owner, a); } catch { return false; } });
    let bridge: string | undefined;
    try { bridge = policyBridge(cfg.prevResult, cfg.ingressPolicy); } catch { /* nothing to leave */ }
    rec = { network: cfg.network, containerID: owner.containerId, ifname: owner.ifname, addresses, policy: cfg.ingressPolicy, bridge };
  }
  if (rec) await release(kernel, cfg, rec, state, ownPort);
  await teardownIfUnused(cfg, state);
}

function checkFail(msg: string): CniError {
  return new CniError(ErrorCode.Internal, `firewall CHECK: ${msg}`);
}

async function check(inv: Invocation, kernel: Kernel): Promise<void> {
  const cfg = parseFirewallConfig(inv.conf);
  const prev = requirePrev(cfg);
  const owner = ownerOf(cfg, inv);
  const addresses = allowedAddresses(prev);
  for (const a of addresses) if (!hasForwardElement(owner, a)) throw checkFail(`${a} is not let through (no element of this attachment in table node_cni_firewall)`);
  for (const f of familiesOf(addresses)) {
    const missing = missingForwardAccept(f, { adminChain: cfg.adminChain });
    if (missing.length) throw checkFail(missing.join('; '));
  }
  const bridge = policyBridge(prev, cfg.ingressPolicy);
  if (!bridge) return;
  if (!listIsolatedBridges().some((b) => b.bridge === bridge)) throw checkFail(`bridge "${bridge}" is not in the isolation group (ingressPolicy "${cfg.ingressPolicy}")`);
  if (cfg.ingressPolicy === 'isolated') {
    const netns = openContainerNetns(inv.env.netns, 'firewall', kernel.openNetns);
    let port: Link | undefined;
    try { port = await hostPort(kernel, netns, owner.ifname); } finally { netns.close(); }
    if (!port?.bridgePort?.isolated) throw checkFail(`the bridge port of "${owner.ifname}" is not isolated (ingressPolicy "isolated")`);
  }
}

/** Attachments of this network the runtime no longer has: their records, then elements without a record; the structure if nothing is left. */
async function gc(inv: GcInvocation, kernel: Kernel): Promise<void> {
  const cfg = parseFirewallConfig(inv.conf);
  const state = new FirewallState(cfg.stateDir);
  const valid = new Set(inv.validAttachments.map((a) => `${a.containerID}\0${a.ifname}`));
  const errors: string[] = [];
  for (const rec of state.list(cfg.network)) {
    if (valid.has(`${rec.containerID}\0${rec.ifname}`)) continue;
    try { await release(kernel, cfg, rec, state); } catch (err) { errors.push(`${rec.containerID}/${rec.ifname}: ${(err as Error).message}`); }
  }
  try { removeForwardElements(staleForwardAddresses(cfg.network, inv.validAttachments)); } catch (err) { errors.push((err as Error).message); }
  try { await teardownIfUnused(cfg, state); } catch (err) { errors.push((err as Error).message); }
  if (errors.length) throw new CniError(ErrorCode.Internal, `firewall GC: ${errors.join('; ')}`);
}

async function status(inv: Invocation): Promise<void> {
  parseFirewallConfig(inv.conf);
}

/** The firewall plugin over `kernel` (main.ts: HOST_KERNEL). */
export function makeFirewallPlugin(kernel: Kernel): Plugin {
  return {
    name: 'firewall',
    description: 'lets containers\' traffic through the host\'s FORWARD policy; ingressPolicy same-bridge/isolated keeps networks apart',
    // Like the reference: CHECK and DEL's prevResult, which this plugin is built on, start with 0.4.0.
    supportedVersions: ['0.4.0', '1.0.0', '1.1.0'],
    add: (inv) => add(inv, kernel),
    del: (inv) => del(inv, kernel),
    check: (inv) => check(inv, kernel),
    gc: (inv) => gc(inv, kernel),
    status,
  };
}
