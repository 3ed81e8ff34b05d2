// The kernel half of attaching a container to a bridge: read what
// ./plan.ts planAttach needs to know (observeAttach), then carry an AttachPlan
// out (applyAttachPlan) through the sockets it is given. Every decision is in
// the plan; here are only the steps, in the order the kernel needs them, each
// thing created followed by its undo step. Mechanisms, not decisions: a random
// host veth name that clashes is drawn again, a route metric a concurrent ADD
// took meanwhile is picked again (lib/routes/install.ts).

import { CniError, ErrorCode } from '../cni/errors';
import type { Route } from '../cni/types';
import { applyMacspoofAdd, removeMacspoof, type MacspoofEntry } from '../firewall/macspoof';
import { applyMasqAdd, removeMasq } from '../firewall/masquerade';
import { applyNetworkPolicy } from '../firewall/netpolicy';
import { registerNames, unregisterNames } from '../dns/service';
import { isExists, isNotFound, type Address, type Link, type Rtnl } from '../netlink';
import type { Netns } from '../netns';
import { installPlannedRoutes } from '../routes/install';
import type { Sysctls } from '../kernel';
import type { Rollback } from '../util/rollback';
import { ensureBridge } from './bridge-device';
import { enableIpv4Forwarding, enableIpv6Forwarding } from './forwarding';
import { joinIsolation, leaveIsolationIfEmpty } from './isolation';
import type { AttachObserved, AttachPlan, AttachSpec, GatewayAddress } from './plan';
import { applyPortVlans, createVethWithRandomPeer, errMsg } from './port';
import type { AttachmentRecord, RecordDir } from './records';
import { ensureVlanGateway, releaseVlanGatewayIfUnused } from './vlan-gateway';

/** Where an attachment is made: sockets in the host and the container namespace (opened and closed by the caller), sysctls, and the record directory. */
export interface AttachKernel {
  host: Rtnl;
  container: Rtnl;
  /** The container's namespace: its sysctls are written inside it. */
  netns: Netns;
  sysctl: Sysctls;
  records: RecordDir<AttachmentRecord>;
}

export interface AttachResult {
  bridge: Link;
  hostVeth: Link;
  containerVeth: Link;
  vlanGateway?: Link;
  /** The routes installed in the container, each with the metric it got (what the result reports). */
  routes: Route[];
}

const IFA_F_TENTATIVE = 0x40;
const IFA_F_DADFAILED = 0x08;
const HOST_NETNS = '/proc/thread-self/ns/net';
/** Whatever the kernel says missing (IPv6 disabled, interface gone) is skipped: these sysctls are best-effort tuning. */
const OPTIONAL = { ignoreMissing: true };

function fail(msg: string): CniError {
  return new CniError(ErrorCode.Internal, msg);
}

/** What planAttach decides on: the container's interface name, the bridge, the gateway device's addresses, the container's routes. */
export async function observeAttach(k: Pick<AttachKernel, 'host' | 'container'>, spec: AttachSpec, containerHasIfname: boolean): Promise<AttachObserved> {
  const bridge = await k.host.getLink(spec.bridge);
  const devName = spec.bridgeAddresses.length && spec.vlanGateway ? spec.vlanGateway.name : spec.bridge;
  const dev = devName === spec.bridge ? bridge : await k.host.getLink(devName);
  const gatewayDeviceAddresses: Address[] = [];
  // The kernel ignores the link in an address dump, so list only the families we need: an IPv4 dump
  // stays small, while an IPv6 one carries a link-local address per container veth on the host.
  if (dev) for (const family of new Set(spec.bridgeAddresses.map((gw) => gw.family))) gatewayDeviceAddresses.push(...(await k.host.listAddresses(dev.index, family)));
  return {
    containerHasIfname, // (looked up once, before IPAM, by the caller: lifecycle.ts requireFreeIfname)
    bridge,
    gatewayDeviceAddresses,
    containerRoutes: spec.routes.length ? await k.container.listRoutes({ table: 0 }) : [],
  };
}

/** Put the planned gateway addresses on `dev` (the bridge or its VLAN gateway; shared state: never rolled back). */
async function applyGatewayAddresses(host: Rtnl, br: Link, dev: Link, g: { addresses: readonly GatewayAddress[]; remove: readonly string[] }, plugin: string): Promise<void> {
  for (const cidr of g.remove) {
    try {
      await host.deleteAddress(dev.index, cidr);
    } catch (err) {
      if (!isNotFound(err)) throw err; // a concurrent ADD of the network removed it first
    }
  }
  for (const gw of g.addresses) {
    try {
      await host.addAddress(dev.index, gw.cidr, { nodad: gw.family === 6 });
    } catch (err) {
      if (!isExists(err)) throw fail(`${plugin}: failed to add gateway address ${gw.cidr} to "${dev.name}": ${errMsg(err)}`);
    }
  }
  // Pin the bridge MAC so it stops following the lowest port MAC (cni#285), also when the
  // addresses are on the VLAN gateway. Re-read it: a bridge without ports reports 00:00:00:00:00:00 until one joins.
  const now = await host.requireLink(br.index);
  if (now.mac && now.mac !== '00:00:00:00:00:00') await host.setMac(br.index, now.mac);
}

async function waitDad(container: Rtnl, index: number, timeoutMs: number, plugin: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const addrs = (await container.listAddresses(index, 6)).filter((a) => !a.ip.startsWith('fe80:'));
    const failed = addrs.find((a) => a.flags & IFA_F_DADFAILED);
    if (failed) throw fail(`${plugin}: duplicate address detection failed for ${failed.cidr}`);
    if (!addrs.some((a) => a.flags & IFA_F_TENTATIVE)) return;
    if (Date.now() > deadline) throw fail(`${plugin}: IPv6 addresses still tentative after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The veth pair from the container side (the host end sent home), its undo, and the record DEL starts from. */
async function createVeth(plan: AttachPlan, k: AttachKernel, undo: Rollback): Promise<{ containerVeth: Link; hostName: string }> {
  const { ifname } = plan.veth;
  const { link, peerName } = await createVethWithRandomPeer(k.container, { name: ifname, peerNetns: HOST_NETNS, mtu: plan.veth.mtu, mac: plan.veth.mac, plugin: plan.plugin });
  undo.push(`delete veth "${ifname}"`, async () => {
    // Deleting one end deletes both; the host end may be reachable only from the host.
    try { await k.container.deleteLink(ifname); } catch (err) { if (!isNotFound(err)) throw err; }
  });
  // Written before the masquerade elements exist, so a crash after them still leaves DEL a record.
  k.records.write({ ...plan.record, hostVeth: peerName });
  undo.push('remove attachment record', () => k.records.remove(plan.record.containerId, plan.record.ifname));
  return { containerVeth: link, hostName: peerName };
}

/** The host end as a bridge port: sysctls, master, flags, VLANs, up. */
async function configurePort(plan: AttachPlan, k: AttachKernel, br: Link, hostName: string): Promise<Link> {
  const host = k.host;
  const hostVeth = await host.requireLink(hostName);
  // Written, not read first: the device is new (as the reference does; a read per key cost 0.1-0.2 ms).
  for (const s of plan.sysctls.hostVeth) k.sysctl.write(`net/${s.family}/conf/${hostName}/${s.key}`, s.value, undefined, OPTIONAL);
  try {
    await host.setMaster(hostVeth.index, br.index);
  } catch (err) {
    throw fail(`${plan.plugin}: failed to attach "${hostName}" to bridge "${br.name}": ${errMsg(err)}`);
  }
  const { hairpin, isolated, vlans } = plan.port;
  if (hairpin || isolated) await host.setBridgePortFlags(hostVeth.index, { hairpin: hairpin || undefined, isolated: isolated || undefined });
  if (vlans) await applyPortVlans(host, hostVeth, vlans, plan.plugin);
  await host.setLinkUp(hostVeth.index);
  return hostVeth;
}

/** Sysctls, addresses, up, DAD, routes inside the container; returns the routes as installed. */
async function configureContainer(plan: AttachPlan, k: AttachKernel, link: Link): Promise<Route[]> {
  const c = plan.container;
  for (const s of plan.sysctls.container) k.sysctl.write(s.path, s.value, k.netns, OPTIONAL); // (a new device: see configurePort)
  for (const a of c.addresses) {
    try {
      await k.container.addAddress(link.index, a.cidr, { nodad: a.nodad });
    } catch (err) {
      throw fail(`${plan.plugin}: failed to add address ${a.cidr} to "${link.name}": ${errMsg(err)}`);
    }
  }
  if (c.up) await k.container.setLinkUp(link.index);
  if (c.dadTimeoutMs !== undefined) await waitDad(k.container, link.index, c.dadTimeoutMs, plan.plugin);
  return installPlannedRoutes(k.container, { plugin: plan.plugin, ifname: link.name, index: link.index, gwPriority: c.gwPriority }, c.routes);
}

/** The host-side elements of the attachment: VLAN gateway, gateway addresses, forwarding, masquerade, isolation, policy, names. */
async function applyHostSide(plan: AttachPlan, k: AttachKernel, br: Link, hostName: string, undo: Rollback): Promise<Link | undefined> {
  const host = k.host;
  let gatewayLink: Link | undefined;
  const g = plan.gateway;
  if (g?.vlanGateway) {
    const v = g.vlanGateway;
    // Pushed first: a gateway (or its lock file) made by a failing ensure goes too. The undo runs while our own port still exists: do not count it.
    undo.push(`delete VLAN gateway "${v.name}" if no other port is in VLAN ${v.vlan}`, async () => {
      await releaseVlanGatewayIfUnused({ bridge: br.name, name: v.name, vlan: v.vlan, lockDir: v.lockDir, ignorePorts: [hostName] }, host);
    });
    gatewayLink = await ensureVlanGateway(host, br, v, plan.plugin, k.sysctl);
  }
  if (g) await applyGatewayAddresses(host, br, gatewayLink ?? br, g, plan.plugin);
  if (plan.forwarding.v4) enableIpv4Forwarding(k.sysctl);
  if (plan.forwarding.v6) enableIpv6Forwarding(k.sysctl);
  const fw = plan.firewall;
  if (fw.masq) {
    const addrs = fw.masq.entries.map((e) => e.address);
    await applyMasqAdd(fw.masq.owner, fw.masq.entries);
    undo.push('remove masquerade elements', () => removeMasq(addrs));
  }
  if (fw.isolation) {
    const iso = fw.isolation;
    // Pushed first: a join that fails half-way (its lock file made) is undone too. The undo runs while our own veth still exists: do not count it.
    undo.push('leave the isolation group if the bridge has no other container', () => leaveIsolationIfEmpty(iso, [hostName], k.host));
    await joinIsolation(iso);
  }
  if (fw.policy) await applyNetworkPolicy(fw.policy);
  if (plan.names) {
    const n = plan.names;
    await registerNames(n);
    undo.push('unregister the container\'s names', () => unregisterNames({ network: n.network, config: n.config, containerId: n.containerId, ifname: n.ifname }));
  }
  return gatewayLink;
}

/** The MAC spoof check of the port: recorded before the elements exist, so DEL can remove them whatever happens next. */
async function applyMacspoof(plan: AttachPlan, k: AttachKernel, entry: MacspoofEntry, undo: Rollback): Promise<void> {
  const rec: AttachmentRecord & Record<string, unknown> = { ...plan.record, hostVeth: entry.hostVeth, macspoof: entry };
  k.records.write(rec);
  await applyMacspoofAdd(entry);
  undo.push('remove MAC spoof check elements', () => removeMacspoof(entry));
}

/**
 * Carry out `plan` through `k`: the bridge, the veth pair, the port, the
 * container's addresses and routes, the host side, the firewall, the names;
 * then wait for the port to come up. Every step that creates something pushes
 * its undo on `undo` (the bridge and sysctls are shared: never undone).
 */
export async function applyAttachPlan(plan: AttachPlan, k: AttachKernel, undo: Rollback): Promise<AttachResult> {
  const br = await ensureBridge(k.host, { ...plan.bridge, plugin: plan.plugin }, k.sysctl);
  const { containerVeth, hostName } = await createVeth(plan, k, undo);
  let hostVeth = await configurePort(plan, k, br, hostName);
  const routes = await configureContainer(plan, k, containerVeth);
  const gatewayLink = await applyHostSide(plan, k, br, hostName, undo);
  if (plan.portUpTimeoutMs > 0) {
    try {
      hostVeth = await k.host.waitOperUp(hostVeth.index, plan.portUpTimeoutMs);
    } catch (err) {
      throw fail(`${plan.plugin}: bridge port "${hostName}" did not come up: ${errMsg(err)}`);
    }
  }
  const att: AttachResult = {
    // Read again: a port joining can change the bridge's MTU and MAC. The veth ends as last read: the host end
    // just now by waitOperUp, the container end when it was made (its name, MAC and MTU stay as made).
    bridge: await k.host.requireLink(br.index),
    hostVeth: plan.portUpTimeoutMs > 0 ? hostVeth : await k.host.requireLink(hostVeth.index),
    containerVeth,
    vlanGateway: gatewayLink && await k.host.requireLink(gatewayLink.index),
    routes,
  };
  if (plan.firewall.macspoof) await applyMacspoof(plan, k, { hostVeth: att.hostVeth.name, mac: att.containerVeth.mac }, undo);
  return att;
}
