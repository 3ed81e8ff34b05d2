// The bridge plugin's verb handlers: Docker's docker0 and user-defined
// bridge networks as a CNI plugin. Parsing and planning are pure
// (config.ts, plan.ts); the kernel work is in attach.ts.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, type InProcessPlugins } from '../../lib/cni/ipam';
import type { GcInvocation, Plugin } from '../../lib/cni/plugin';
import type { Invocation, Result } from '../../lib/cni/types';
import { gcMasq, hasMasq, removeMasq, type MasqEntry } from '../../lib/firewall/masquerade';
import { openRtnl } from '../../lib/netlink';
import { hostLocal } from '../../ipam/host-local/plugin';
import { Netns } from '../../lib/netns';
import { Rollback, describeRollbackErrors } from '../../lib/util/rollback';
import { attachContainer, containerAddresses, detachContainer, type AttachIsolation, type AttachNameService } from './attach';
import { parseBridgeConfig, parseCniArgs, type BridgeConfig } from './config';
import { containerNames } from './dns/config';
import { mergeResultDns } from './dns/render';
import { checkNames, gcNames } from './dns/service';
import { leaveIsolationIfEmpty } from './isolation';
import { addressText, networkText, sameIP } from '../../lib/ip';
import { needsVlanFiltering, planAdd, planVlans, requireAddresses } from './plan';
import { buildResult } from './result';
import { listRecords, readRecord, removeRecord, writeRecord, type AttachmentRecord } from './state';

/** IPAM plugins run in-process instead of exec'd: saves a fork+exec of Node per call. Any other type is exec'd from CNI_PATH. */
export const IN_PROCESS_IPAM: InProcessPlugins = { 'host-local': hostLocal };

function configOf(inv: Invocation): BridgeConfig {
  return parseBridgeConfig(inv.conf, inv.env.args);
}

function isolationOf(conf: BridgeConfig): (AttachIsolation & { bridge: string }) | undefined {
  return conf.isolation ? { network: conf.name, bridge: conf.bridge, lockDir: conf.stateDir } : undefined;
}

function nameServiceOf(conf: BridgeConfig, inv: Invocation): AttachNameService | undefined {
  if (!conf.nameResolution) return undefined;
  const podName = inv.cniArgs?.K8S_POD_NAME ?? parseCniArgs(inv.env.args).get('K8S_POD_NAME');
  const names = inv.env.command === 'ADD' ? containerNames({ network: conf.name, aliases: inv.conf.runtimeConfig?.aliases, podName }) : [];
  return { network: conf.name, config: conf.nameResolution, containerId: inv.env.containerId!, names };
}

function openContainerNetns(nsPath: string | undefined): Netns {
  if (!nsPath) throw new CniError(ErrorCode.InvalidEnvironment, 'bridge: CNI_NETNS is required');
  try {
    return Netns.open(nsPath);
  } catch (err) {
    throw new CniError(ErrorCode.InvalidNetns, `bridge: failed to open netns "${nsPath}": ${(err as Error).message}`);
  }
}

async function add(inv: Invocation): Promise<Result> {
  const conf = configOf(inv);
  const containerId = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const nameService = nameServiceOf(conf, inv);
  const netns = openContainerNetns(inv.env.netns);
  try {
    // Fail on an existing ifname before IPAM, so a repeated ADD does not release the first one's address.
    const probe = openRtnl(netns);
    try {
      if (await probe.getLink(ifname)) throw new CniError(ErrorCode.Internal, `bridge: container already has an interface named "${ifname}"`);
    } finally {
      probe.close();
    }
    return await Rollback.run(async (undo) => {
      let ipam: Result | undefined;
      if (conf.ipamType) {
        ipam = await ipamAdd(inv, IN_PROCESS_IPAM);
        undo.push('release IPAM', () => ipamDel(inv, IN_PROCESS_IPAM));
      }
      requireAddresses(conf, ipam);
      const plan = planAdd(conf, ipam);
      const record: AttachmentRecord = {
        network: conf.name, containerId, ifname, bridge: conf.bridge,
        addresses: plan.ips.map((ip) => ip.address), masq: plan.masq,
      };
      const att = await attachContainer({
        netns, ifname, bridge: conf.bridge, mtu: conf.mtu, mac: conf.mac,
        promisc: conf.promiscMode, hairpin: conf.hairpinMode, portIsolation: conf.portIsolation,
        vlanFiltering: needsVlanFiltering(conf), vlans: (existing) => planVlans(conf, existing),
        enableDad: conf.enabledad, disableContainerInterface: conf.disableContainerInterface,
        ips: plan.ips, routes: plan.routes, bridgeAddresses: plan.bridgeAddresses, forceAddress: conf.forceAddress,
        forwardV4: plan.forwardV4, forwardV6: plan.forwardV6,
        masq: plan.masq.length ? { owner: { network: conf.name, containerId, ifname }, entries: plan.masq } : undefined,
        isolation: isolationOf(conf), nameService,
        undo,
        onHostVeth: (name) => {
          // Written before the masquerade elements exist, so a crash after them still leaves DEL a record.
          writeRecord(conf.stateDir, { ...record, hostVeth: name });
          undo.push('remove attachment record', () => removeRecord(conf.stateDir, conf.name, containerId, ifname));
        },
      });
      // Name resolution: the gateways become the container's nameservers, the network's domain its search domain.
      const dns = conf.nameResolution
        ? mergeResultDns(conf.dns ?? ipam?.dns, plan.bridgeAddresses.map((b) => addressText(b.cidr)), conf.nameResolution.domain)
        : conf.dns;
      return buildResult({ cniVersion: conf.cniVersion, netnsPath: inv.env.netns!, att, plan, dns, ipamDns: ipam?.dns });
    }, (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`));
  } finally {
    netns.close();
  }
}

/**
 * The masquerade elements to remove when there is no record (written by an
 * older ADD, or lost): addresses from prevResult or the live interface, and
 * only the elements that carry this attachment's tag.
 */
async function fallbackMasq(inv: Invocation, conf: BridgeConfig): Promise<string[]> {
  const owner = { network: conf.name, containerId: inv.env.containerId!, ifname: inv.env.ifname! };
  const prev = inv.conf.prevResult?.ips?.map((ip) => ip.address) ?? [];
  const cidrs = prev.length ? prev : await containerAddresses(inv.env.netns, inv.env.ifname!);
  return cidrs
    .map((c) => ({ address: addressText(c), subnet: networkText(c) }))
    .filter((e) => {
      try { return hasMasq(owner, e); } catch { return false; }
    })
    .map((e) => e.address);
}

async function del(inv: Invocation): Promise<void> {
  const conf = configOf(inv);
  const containerId = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const rec = readRecord(conf.stateDir, conf.name, containerId, ifname);
  const masqAddresses = rec ? rec.masq.map((m) => m.address) : conf.ipMasq ? await fallbackMasq(inv, conf) : [];
  const errors = await detachContainer({
    netnsPath: inv.env.netns || undefined, ifname, hostVeth: rec?.hostVeth, masqAddresses,
    isolation: isolationOf(conf), nameService: nameServiceOf(conf, inv),
  });
  // Masquerade goes before IPAM releases the address, so no later owner of it is affected.
  try {
    await ipamDel(inv, IN_PROCESS_IPAM);
  } catch (err) {
    errors.push(err as Error);
  }
  if (errors.length === 0) removeRecord(conf.stateDir, conf.name, containerId, ifname);
  if (errors.length === 1 && errors[0] instanceof CniError) throw errors[0];
  if (errors.length) throw new CniError(ErrorCode.Internal, `bridge: DEL of ${containerId}/${ifname} failed: ${errors.map((e) => e.message).join('; ')}`);
}

function checkFail(msg: string): CniError {
  return new CniError(ErrorCode.Internal, `bridge CHECK: ${msg}`);
}

async function check(inv: Invocation): Promise<void> {
  const conf = configOf(inv);
  await ipamCheck(inv, IN_PROCESS_IPAM);
  const prev = inv.conf.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'bridge: Required prevResult missing');
  const ifname = inv.env.ifname!;
  const ifaces = prev.interfaces ?? [];
  const brIf = ifaces.find((i) => i.name === conf.bridge && !i.sandbox);
  const ctrIdx = ifaces.findIndex((i) => i.name === ifname && i.sandbox);
  const ctrIf = ifaces[ctrIdx];

  const host = openRtnl();
  let hostIndex: number | undefined;
  try {
    const br = await host.getLink(conf.bridge);
    if (!br) throw checkFail(`bridge "${conf.bridge}" does not exist`);
    if (br.kind !== 'bridge') throw checkFail(`"${conf.bridge}" is a ${br.kind ?? 'device'}, not a bridge`);
    if (brIf?.mac && brIf.mac.toLowerCase() !== br.mac) throw checkFail(`bridge "${conf.bridge}" has MAC ${br.mac}, prevResult says ${brIf.mac}`);
    const promisc = (br.flags & 0x100) !== 0;
    if (conf.promiscMode && !promisc) throw checkFail(`bridge "${conf.bridge}" is not promiscuous`);

    const netns = openContainerNetns(inv.env.netns);
    const ctr = openRtnl(netns);
    try {
      const link = await ctr.getLink(ifname);
      if (!link) throw checkFail(`interface "${ifname}" not found in ${inv.env.netns}`);
      if (link.kind !== 'veth') throw checkFail(`"${ifname}" is a ${link.kind ?? 'device'}, not a veth`);
      if (ctrIf?.mac && ctrIf.mac.toLowerCase() !== link.mac) throw checkFail(`"${ifname}" has MAC ${link.mac}, prevResult says ${ctrIf.mac}`);
      hostIndex = link.peerIndex;
      const have = await ctr.listAddresses(link.index);
      for (const ip of prev.ips ?? []) {
        if (ip.interface !== undefined && ip.interface !== ctrIdx) continue;
        const [a, len] = ip.address.split('/');
        if (!have.some((x) => sameIP(x.ip, a) && String(x.prefix) === len)) throw checkFail(`address ${ip.address} is missing on "${ifname}"`);
      }
      const routes = [...(await ctr.listRoutes({ family: 4 })), ...(await ctr.listRoutes({ family: 6 }))];
      for (const r of prev.routes ?? []) {
        const dst = networkText(r.dst);
        const found = routes.some((x) => networkText(x.dst) === dst && (!r.gw || (x.gw !== undefined && sameIP(x.gw, r.gw))));
        if (!found) throw checkFail(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in the container`);
      }
    } finally {
      ctr.close();
      netns.close();
    }

    const peer = hostIndex !== undefined ? await host.getLink(hostIndex) : undefined;
    if (!peer || peer.kind !== 'veth') throw checkFail(`the host end of "${ifname}" was not found`);
    if (peer.master !== br.index) throw checkFail(`host veth "${peer.name}" is not attached to "${conf.bridge}"`);
    const hostIf = ifaces.find((i) => i.name === peer.name && !i.sandbox);
    if (hostIf?.mac && hostIf.mac.toLowerCase() !== peer.mac) throw checkFail(`host veth "${peer.name}" has MAC ${peer.mac}, prevResult says ${hostIf.mac}`);
  } finally {
    host.close();
  }

  if (conf.ipMasq) {
    const owner = { network: conf.name, containerId: inv.env.containerId!, ifname };
    for (const ip of prev.ips ?? []) {
      const entry: MasqEntry = { address: addressText(ip.address), subnet: networkText(ip.address) };
      if (!hasMasq(owner, entry)) throw checkFail(`masquerade for ${entry.address} is missing`);
    }
  }
  if (conf.nameResolution) checkNames({ network: conf.name, config: conf.nameResolution, containerId: inv.env.containerId!, ifname });
}

async function gc(inv: GcInvocation): Promise<void> {
  const conf = configOf(inv);
  const errors: string[] = [];
  const valid = new Set(inv.validAttachments.map((a) => `${a.containerID}\0${a.ifname}`));
  try {
    gcMasq(conf.name, inv.validAttachments);
  } catch (err) {
    errors.push(`masquerade: ${(err as Error).message}`);
  }
  for (const rec of listRecords(conf.stateDir, conf.name)) {
    if (valid.has(`${rec.containerId}\0${rec.ifname}`)) continue;
    try {
      removeMasq(rec.masq.map((m) => m.address));
      removeRecord(conf.stateDir, conf.name, rec.containerId, rec.ifname);
    } catch (err) {
      errors.push(`${rec.containerId}/${rec.ifname}: ${(err as Error).message}`);
    }
  }
  if (conf.nameResolution) {
    try {
      await gcNames({ network: conf.name, config: conf.nameResolution }, inv.validAttachments);
    } catch (err) {
      errors.push(`DNS service: ${(err as Error).message}`);
    }
  }
  const iso = isolationOf(conf);
  if (iso) {
    try {
      await leaveIsolationIfEmpty(iso);
    } catch (err) {
      errors.push(`isolation: ${(err as Error).message}`);
    }
  }
  try {
    await ipamGc(inv, IN_PROCESS_IPAM);
  } catch (err) {
    if (errors.length === 0) throw err;
    errors.push((err as Error).message);
  }
  if (errors.length) throw new CniError(ErrorCode.Internal, `bridge GC: ${errors.join('; ')}`);
}

async function status(inv: Invocation): Promise<void> {
  configOf(inv);
  await ipamStatus(inv, IN_PROCESS_IPAM);
}

export const bridgePlugin: Plugin = {
  name: 'bridge',
  description: 'Linux bridge networks (Docker bridge mode) with nftables masquerade',
  // MAC for the container veth; IP for host-local, which runs in-process.
  knownArgs: ['MAC', 'IP'],
  add,
  del,
  check,
  gc,
  status,
};
