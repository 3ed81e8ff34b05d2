// Attaching a container to a local Linux bridge, and detaching it: what the
// bridge and vxlan-overlay plugins share (the overlay agent also uses
// ensureBridge). Everything takes an options object and knows nothing about
// either plugin's config format.
//
//   const att = await attachContainer({ netns, ifname, bridge: 'cni0', ips, routes, undo, ... });
//   await detachContainer({ netnsPath, ifname, hostVeth: att.hostVeth.name });

import { CniError, ErrorCode, attachmentExists } from '../cni/errors';
import type { IpConfig, Route } from '../cni/types';
import { applyMasqAdd, removeMasq, type MasqEntry, type MasqOwner } from '../firewall/masquerade';
import { applyNetworkPolicy, type NetworkPolicy } from '../firewall/netpolicy';
import { isExists, isNotFound, openRtnl, type Link, type Rtnl } from '../netlink';
import { Netns, isNetnsGone } from '../netns';
import type { Rollback } from '../util/rollback';
import { containerNames, type NameResolutionConfig } from '../dns/config';
import type { Invocation } from '../cni/types';
import { registerNames, unregisterNames } from '../dns/service';
import { addressText, familyOf, overlapsText, sameIP, type Family } from '../ip';
import { installRoutes } from '../routes/install';
import { ensureSysctl } from '../sys/sysctl';
import { enableIpv4Forwarding, enableIpv6Forwarding } from './forwarding';
import { joinIsolation, leaveIsolationIfEmpty } from './isolation';
import { applyPortVlans, createVethWithRandomPeer, errMsg, type BridgeVlanOp } from './port';
import { ensureVlanGateway, releaseVlanGatewayIfUnused, type VlanGatewayRelease, type VlanGatewaySpec } from './vlan-gateway';

export type { BridgeVlanOp };

export interface GatewayAddress {
  family: Family;
  /** Gateway with the subnet's prefix, as it goes on the bridge: "10.1.0.1/24". */
  cidr: string;
}

export interface AttachOptions {
  /** Who is attaching, for messages ("bridge", "vxlan-overlay"); default "bridge". */
  plugin?: string;
  /** The container's network namespace (open). */
  netns: Netns;
  /** Interface name inside the container. */
  ifname: string;
  /** Bridge to create or reuse in the current (host) namespace. */
  bridge: string;
  /** 0/undefined: kernel default. Applied to both veth ends, and to the bridge when it is created. */
  mtu?: number;
  /** Container-side MAC. */
  mac?: string;
  promisc?: boolean;
  hairpin?: boolean;
  portIsolation?: boolean;
  /** Create the bridge with vlan_filtering (only takes effect on creation). */
  vlanFiltering?: boolean;
  /** VLAN ops for the host port; `existing` VIDs are read from the port when a 'del' of the defaults is wanted. */
  vlans?: (existing: number[]) => BridgeVlanOp[];
  enableDad?: boolean;
  /** Leave the container interface down (L2 only). */
  disableContainerInterface?: boolean;
  /** Addresses for the container interface (CIDR, host bits kept). */
  ips: readonly IpConfig[];
  routes: readonly Route[];
  /** The attachment's gateway priority (lib/routes/priority.ts): the metric of the routes without their own. */
  gwPriority?: number;
  /** Gateway addresses to ensure on the bridge (or on the VLAN gateway interface). */
  bridgeAddresses: readonly GatewayAddress[];
  /** Put the gateway addresses on this VLAN gateway interface instead of the bridge (./vlan-gateway.ts). */
  vlanGateway?: VlanGatewaySpec;
  forceAddress?: boolean;
  forwardV4?: boolean;
  forwardV6?: boolean;
  masq?: { owner: MasqOwner; entries: readonly MasqEntry[] };
  /** Every created thing gets an undo step here (the bridge and sysctls are shared: never undone). */
  undo: Rollback;
  /** Called right after the host veth name is known (e.g. to write a record DEL can use). */
  onHostVeth?: (name: string) => void;
  /** Put the bridge into the isolation group (./isolation.ts): no forwarding to other isolated bridges. */
  isolation?: AttachIsolation;
  /** Register the container's names with the network's DNS service on the gateway addresses (lib/dns/service.ts). */
  nameService?: AttachNameService;
  /** Internal network, ICC off (lib/firewall/netpolicy.ts): in place before the ADD returns; goes with the network's last container. */
  policy?: NetworkPolicy;
}

export interface AttachIsolation {
  /** CNI network name. */
  network: string;
  /** Directory for the per-bridge lock file (the plugin's state directory). */
  lockDir: string;
  /** nftables table; default node_cni_isolation. */
  table?: string;
}

export interface AttachNameService {
  network: string;
  config: NameResolutionConfig;
  containerId: string;
  /** The container's names on this network (lib/dns/config.ts containerNames). */
  names: readonly string[];
}

/**
 * The name service of one invocation, or undefined when the network has none. Names (ADD only) come
 * from the `aliases` capability and CNI_ARGS K8S_POD_NAME; a name DNS cannot carry throws code 7.
 */
export function nameServiceOf(o: { network: string; config?: NameResolutionConfig; inv: Invocation; podName?: string }): AttachNameService | undefined {
  if (!o.config) return undefined;
  const names = o.inv.env.command === 'ADD' ? containerNames({ network: o.network, aliases: o.inv.conf.runtimeConfig?.aliases, podName: o.podName }) : [];
  return { network: o.network, config: o.config, containerId: o.inv.env.containerId!, names };
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

function fail(msg: string, code: number = ErrorCode.Internal): CniError {
  return new CniError(code, msg);
}

/** Whatever the kernel says missing (IPv6 disabled, interface gone) is skipped: these sysctls are best-effort tuning. */
const OPTIONAL = { ignoreMissing: true };

/** Create or reuse the bridge, bring it up; a non-bridge of that name is an error. */
export async function ensureBridge(host: Rtnl, o: { name: string; mtu?: number; promisc?: boolean; vlanFiltering?: boolean; plugin?: string }): Promise<Link> {
  const who = o.plugin ?? 'bridge';
  let br = await host.getLink(o.name);
  if (br && br.kind !== 'bridge') throw fail(`${who}: "${o.name}" already exists and is a ${br.kind ?? 'device'}, not a bridge`, ErrorCode.InvalidConfig);
  if (!br) {
    try {
      br = await host.ensureBridge({ name: o.name, mtu: o.mtu || undefined, vlanFiltering: o.vlanFiltering || undefined });
    } catch (err) {
      throw fail(`${who}: failed to create bridge "${o.name}": ${errMsg(err)}`);
    }
  }
  if (o.promisc) {
    try {
      await host.setPromisc(br.index, true);
    } catch (err) {
      throw fail(`${who}: failed to set promiscuous mode on "${o.name}": ${errMsg(err)}`);
    }
  }
  // A bridge must not autoconfigure from RAs seen on container ports.
  ensureSysctl(`net/ipv6/conf/${o.name}/accept_ra`, '0', undefined, OPTIONAL);
  if (!br.up) await host.setLinkUp(br.index);
  return br;
}

function who(o: { plugin?: string }): string {
  return o.plugin ?? 'bridge';
}

/** Put each gateway address on `dev`, the bridge or its VLAN gateway (shared state: never rolled back). */
async function ensureBridgeAddresses(host: Rtnl, br: Link, dev: Link, wanted: readonly GatewayAddress[], force: boolean, plugin: string): Promise<void> {
  if (wanted.length === 0) return;
  // The kernel ignores the link in an address dump, so list only the families we need: an IPv4 dump
  // stays small, while an IPv6 one carries a link-local address per container veth on the host.
  const present = [];
  for (const family of new Set(wanted.map((gw) => gw.family))) present.push(...(await host.listAddresses(dev.index, family)));
  for (const gw of wanted) {
    const [ip] = gw.cidr.split('/');
    if (present.some((a) => sameIP(a.ip, ip) && a.cidr.split('/')[1] === gw.cidr.split('/')[1])) continue;
    // v4: one address per bridge; v6: only an overlapping prefix conflicts.
    const conflicts = present.filter((a) => a.family === gw.family && (gw.family === 4 ? a.scope === 0 : overlapsText(a.cidr, gw.cidr)) && !a.ip.startsWith('fe80:'));
    for (const c of conflicts) {
      if (!force) throw fail(`${plugin}: "${dev.name}" already has an IP address different from ${gw.cidr} (${c.cidr}); set "forceAddress" to replace it`);
      await host.deleteAddress(dev.index, c.cidr);
    }
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

/** Addresses, link up, DAD, then the routes; returns the routes as installed (with their metrics). */
async function configureContainer(container: Rtnl, link: Link, o: AttachOptions): Promise<Route[]> {
  const hasV6 = o.ips.some((ip) => familyOf(ip.address) === 6);
  const dev = o.ifname;
  ensureSysctl(`net/ipv6/conf/${dev}/accept_dad`, o.enableDad ? '1' : '0', o.netns, OPTIONAL);
  if (o.enableDad) ensureSysctl(`net/ipv6/conf/${dev}/enhanced_dad`, '1', o.netns, OPTIONAL);
  ensureSysctl(`net/ipv4/conf/${dev}/arp_notify`, '1', o.netns, OPTIONAL);
  if (hasV6) {
    ensureSysctl('net/ipv6/conf/lo/disable_ipv6', '0', o.netns, OPTIONAL);
    ensureSysctl(`net/ipv6/conf/${dev}/disable_ipv6`, '0', o.netns, OPTIONAL);
    ensureSysctl(`net/ipv6/conf/${dev}/keep_addr_on_down`, '1', o.netns, OPTIONAL);
  }
  for (const ip of o.ips) {
    try {
      await container.addAddress(link.index, ip.address, { nodad: familyOf(ip.address) === 6 && !o.enableDad });
    } catch (err) {
      throw fail(`${who(o)}: failed to add address ${ip.address} to "${dev}": ${errMsg(err)}`);
    }
  }
  if (!o.disableContainerInterface) await container.setLinkUp(link.index);
  if (hasV6 && o.enableDad) await waitDad(container, link.index, 5000, who(o));
  return installRoutes(container, { plugin: who(o), ifname: dev, index: link.index, routes: o.routes, gwPriority: o.gwPriority ?? 0 });
}

/**
 * Attach a container: ensure the bridge, create the veth pair from the
 * container side (host end `veth` + 8 hex), addresses and routes inside,
 * gateway addresses on the bridge, forwarding, masquerade; wait for the host
 * end to be up. Every step that creates something pushes its undo on o.undo.
 */
export async function attachContainer(o: AttachOptions): Promise<AttachResult> {
  const host = openRtnl();
  const container = openRtnl(o.netns);
  try {
    if (await container.getLink(o.ifname)) throw attachmentExists(`${who(o)}: container already has an interface named "${o.ifname}"`);
    const br = await ensureBridge(host, { name: o.bridge, mtu: o.mtu, promisc: o.promisc, vlanFiltering: o.vlanFiltering, plugin: o.plugin });

    const { link: containerVeth, peerName: hostName } = await createVethWithRandomPeer(container, { name: o.ifname, peerNetns: HOST_NETNS, mtu: o.mtu, mac: o.mac, plugin: who(o) });
    o.undo.push(`delete veth "${o.ifname}"`, async () => {
      // Deleting one end deletes both; the host end may be reachable only from the host.
      const r = openRtnl(o.netns);
      try { await r.deleteLink(o.ifname); } catch (err) { if (!isNotFound(err)) throw err; } finally { r.close(); }
    });
    o.onHostVeth?.(hostName);

    let hostVeth = await host.requireLink(hostName);
    ensureSysctl(`net/ipv6/conf/${hostName}/accept_ra`, '0', undefined, OPTIONAL);
    try {
      await host.setMaster(hostVeth.index, br.index);
    } catch (err) {
      throw fail(`${who(o)}: failed to attach "${hostName}" to bridge "${o.bridge}": ${errMsg(err)}`);
    }
    if (o.hairpin || o.portIsolation) await host.setBridgePortFlags(hostVeth.index, { hairpin: o.hairpin || undefined, isolated: o.portIsolation || undefined });
    if (o.vlans) await applyPortVlans(host, hostVeth, o.vlans, who(o));
    await host.setLinkUp(hostVeth.index);

    const routes = await configureContainer(container, containerVeth, o);

    let gatewayLink: Link | undefined;
    if (o.vlanGateway && o.bridgeAddresses.length) {
      const g = o.vlanGateway;
      gatewayLink = await ensureVlanGateway(host, br, g, who(o));
      // The undo runs while our own port still exists: do not count it.
      o.undo.push(`delete VLAN gateway "${g.name}" if no other port is in VLAN ${g.vlan}`, async () => {
        await releaseVlanGatewayIfUnused({ bridge: o.bridge, name: g.name, vlan: g.vlan, lockDir: g.lockDir, ignorePorts: [hostName] });
      });
    }
    await ensureBridgeAddresses(host, br, gatewayLink ?? br, o.bridgeAddresses, !!o.forceAddress, who(o));
    if (o.forwardV4) enableIpv4Forwarding();
    if (o.forwardV6) enableIpv6Forwarding();

    if (o.masq && o.masq.entries.length) {
      const addrs = o.masq.entries.map((e) => e.address);
      await applyMasqAdd(o.masq.owner, o.masq.entries);
      o.undo.push('remove masquerade elements', () => removeMasq(addrs));
    }

    if (o.isolation) {
      const iso = { ...o.isolation, bridge: o.bridge };
      await joinIsolation(iso);
      // The undo runs while our own veth still exists: do not count it.
      o.undo.push('leave the isolation group if the bridge has no other container', () => leaveIsolationIfEmpty(iso, [hostName]));
    }

    if (o.policy) await applyNetworkPolicy(o.policy);

    if (o.nameService) {
      const ns = o.nameService;
      await registerNames({
        ...ns, ifname: o.ifname, bridge: o.bridge,
        addresses: o.ips.map((ip) => addressText(ip.address)),
        listen: o.bridgeAddresses.map((b) => addressText(b.cidr)),
      });
      o.undo.push('unregister the container\'s names', () => unregisterNames({ ...ns, ifname: o.ifname }));
    }

    if (!o.disableContainerInterface) {
      try {
        hostVeth = await host.waitOperUp(hostVeth.index, 2550);
      } catch (err) {
        throw fail(`${who(o)}: bridge port "${hostName}" did not come up: ${errMsg(err)}`);
      }
    }
    return {
      bridge: await host.requireLink(br.index),
      hostVeth: await host.requireLink(hostVeth.index),
      containerVeth: await container.requireLink(containerVeth.index),
      vlanGateway: gatewayLink && await host.requireLink(gatewayLink.index),
      routes,
    };
  } finally {
    host.close();
    container.close();
  }
}

export interface DetachOptions {
  /** CNI_NETNS; empty or gone is fine. */
  netnsPath?: string;
  ifname: string;
  /** The host end, when known from a record: deleted if the namespace is gone but the pair survived. */
  hostVeth?: string;
  /** Masquerade elements to remove. */
  masqAddresses?: readonly string[];
  /** Leave the isolation group when this was the bridge's last container. */
  isolation?: AttachIsolation & { bridge: string };
  /** Remove the container's names; the last one stops the network's DNS service. */
  nameService?: Omit<AttachNameService, 'names'>;
  /** Delete the VLAN gateway interface when this was the last port in its VLAN. */
  vlanGateway?: VlanGatewayRelease;
}

/** The container interface's global addresses (before deleting it), for callers without a record. */
export async function containerAddresses(netnsPath: string | undefined, ifname: string): Promise<string[]> {
  if (!netnsPath) return [];
  let ns: Netns;
  try {
    ns = Netns.open(netnsPath);
  } catch {
    return [];
  }
  const r = openRtnl(ns);
  try {
    const link = await r.getLink(ifname);
    if (!link) return [];
    return (await r.listAddresses(link.index)).filter((a) => a.scope === 0).map((a) => a.cidr);
  } finally {
    r.close();
    ns.close();
  }
}

/** Delete a link in `ns` (or here); gone already counts as done, anything else is added to `errors`. */
async function deleteLinkIfPresent(ns: Netns | undefined, name: string, errors: Error[]): Promise<void> {
  const r = openRtnl(ns);
  try {
    await r.deleteLink(name);
  } catch (err) {
    if (!isNotFound(err)) errors.push(new Error(`deleting "${name}": ${errMsg(err)}`));
  } finally {
    r.close();
  }
}

/** Undo attachContainer; idempotent, best-effort: returns the errors it met. */
export async function detachContainer(o: DetachOptions): Promise<Error[]> {
  const errors: Error[] = [];
  if (o.masqAddresses?.length) {
    try { removeMasq(o.masqAddresses); } catch (err) { errors.push(new Error(`removing masquerade: ${errMsg(err)}`)); }
  }
  let ns: Netns | undefined;
  if (o.netnsPath) {
    try {
      ns = Netns.open(o.netnsPath);
    } catch (err) {
      if (!isNetnsGone(err)) errors.push(new Error(`opening ${o.netnsPath}: ${errMsg(err)}`));
    }
  }
  if (ns) {
    try {
      await deleteLinkIfPresent(ns, o.ifname, errors);
    } finally {
      ns.close();
    }
  }
  if (o.hostVeth) await deleteLinkIfPresent(undefined, o.hostVeth, errors);
  if (o.vlanGateway) {
    try { await releaseVlanGatewayIfUnused(o.vlanGateway); } catch (err) { errors.push(new Error(`removing VLAN gateway "${o.vlanGateway.name}": ${errMsg(err)}`)); }
  }
  if (o.nameService) {
    try { await unregisterNames({ ...o.nameService, ifname: o.ifname }); } catch (err) { errors.push(new Error(`removing DNS names: ${errMsg(err)}`)); }
  }
  if (o.isolation) {
    try { await leaveIsolationIfEmpty(o.isolation); } catch (err) { errors.push(new Error(`leaving the isolation group: ${errMsg(err)}`)); }
  }
  return errors;
}
