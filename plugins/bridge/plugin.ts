// The bridge plugin's verb handlers: Docker's docker0 and user-defined
// bridge networks as a CNI plugin. Parsing and planning are pure
// (config.ts, plan.ts); the kernel work is lib/bridge (shared with vxlan-overlay).

import * as path from 'path';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { ipamCheck, ipamStatus, type InProcessIpam } from '../../lib/cni/ipam';
import type { GcInvocation, Plugin } from '../../lib/cni/plugin';
import type { Kernel } from '../../lib/kernel';
import type { Invocation, Result } from '../../lib/cni/types';
import { cniArgsOf } from '../../lib/cni/args';
import { missingMacspoof, removeMacspoof, type MacspoofEntry } from '../../lib/firewall/macspoof';
import { hasMasq, type MasqEntry } from '../../lib/firewall/masquerade';
import { missingPolicy } from '../../lib/firewall/netpolicy';
import { IFF_PROMISC } from '../../lib/netlink';
import { checkAttachment } from '../../lib/bridge/check';
import { addAttachment, gcNetwork, removeAttachment } from '../../lib/bridge/family';
import { nameServiceOf, type AttachIsolation, type AttachNameService } from '../../lib/bridge/plan';
import { RecordDir, type AttachmentRecord } from '../../lib/bridge/records';
import { mergeResultDns } from '../../lib/dns/render';
import { checkNames } from '../../lib/dns/service';
import { addressText, networkText } from '../../lib/ip';
import { BRIDGE_ARGS, parseBridgeConfig, type BridgeConfig } from './config';
import { attachSpecOf, planPolicy, planVlanGateway, type VlanGatewayPlan } from './plan';
import type { VlanGatewayRelease } from '../../lib/bridge/vlan-gateway';
import { buildResult } from './result';

const KNOWN_ARGS = BRIDGE_ARGS;

function configOf(inv: Invocation): BridgeConfig {
  return parseBridgeConfig(inv.conf, cniArgsOf(inv, KNOWN_ARGS));
}

interface BridgeRecord extends AttachmentRecord {
  bridge: string;
  /** With `vlan` and isGateway: the VLAN gateway interface this attachment keeps in use. */
  vlanGateway?: VlanGatewayPlan;
  /** With macspoofchk: the elements of the MAC spoof check (lib/firewall/macspoof.ts). */
  macspoof?: MacspoofEntry;
}

/** One JSON file per attachment under <stateDir>/<network>/. */
function recordsOf(conf: BridgeConfig): RecordDir<BridgeRecord> {
  return new RecordDir<BridgeRecord>(path.join(conf.stateDir, conf.name), conf.name);
}

/** A container address and its subnet: the masquerade element of that address. */
function masqEntryOf(cidr: string): MasqEntry {
  return { address: addressText(cidr), subnet: networkText(cidr) };
}

function isolationOf(conf: BridgeConfig): (AttachIsolation & { bridge: string }) | undefined {
  return conf.isolation ? { network: conf.name, bridge: conf.bridge, lockDir: conf.stateDir } : undefined;
}

/** DEL/GC: the VLAN gateway to delete with the last port of its VLAN (from the record, else from the config). */
function vlanGatewayRelease(conf: BridgeConfig, rec?: BridgeRecord): VlanGatewayRelease | undefined {
  let gw = rec ? rec.vlanGateway : undefined;
  if (!rec) {
    try { gw = planVlanGateway(conf); } catch { gw = undefined; } // a name that cannot exist was never created
  }
  return gw && { bridge: rec?.bridge ?? conf.bridge, name: gw.name, vlan: gw.vlan, lockDir: conf.stateDir };
}

function nameServiceFor(conf: BridgeConfig, inv: Invocation): AttachNameService | undefined {
  return nameServiceOf({ network: conf.name, config: conf.nameResolution, inv, podName: cniArgsOf(inv, KNOWN_ARGS).K8S_POD_NAME });
}

async function add(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<Result> {
  const conf = configOf(inv);
  const nameService = nameServiceFor(conf, inv);
  planVlanGateway(conf); // a name that does not fit fails before anything is made
  const who = { containerId: inv.env.containerId!, ifname: inv.env.ifname!, nameService };
  return addAttachment(inv, ipamTypes, kernel, {
    plugin: 'bridge', network: conf.name, records: recordsOf(conf),
    ipamInv: conf.ipamType ? inv : undefined,
    specOf: (ipam) => attachSpecOf(conf, ipam, who),
    resultOf: (att, spec, ipam) => {
      // Name resolution: the gateways become the container's nameservers, the network's domain its search domain.
      const dns = conf.nameResolution
        ? mergeResultDns(conf.dns ?? ipam?.dns, spec.bridgeAddresses.map((b) => addressText(b.cidr)), conf.nameResolution.domain)
        : conf.dns;
      return buildResult({ cniVersion: conf.cniVersion, netnsPath: inv.env.netns!, att, ips: spec.ips, dns, ipamDns: ipam?.dns });
    },
  });
}

async function del(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  await removeAttachment(inv, ipamTypes, kernel, {
    plugin: 'bridge', network: conf.name, records: recordsOf(conf), ipMasq: conf.ipMasq, masqEntryOf,
    detachOf: (rec) => ({ macspoof: rec?.macspoof, isolation: isolationOf(conf), nameService: nameServiceFor(conf, inv), vlanGateway: vlanGatewayRelease(conf, rec) }),
    ipamInvOf: () => inv,
  });
}

function checkFail(msg: string): CniError {
  return new CniError(ErrorCode.Internal, `bridge CHECK: ${msg}`);
}

async function check(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  await ipamCheck(inv, ipamTypes);
  const prev = inv.conf.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'bridge: Required prevResult missing');
  const ifname = inv.env.ifname!;
  const ifaces = prev.interfaces ?? [];
  const brIf = ifaces.find((i) => i.name === conf.bridge && !i.sandbox);
  const ctrIdx = ifaces.findIndex((i) => i.name === ifname && i.sandbox);
  const ctrIf = ifaces[ctrIdx];

  const host = kernel.openRtnl();
  try {
    const br = await host.getLink(conf.bridge);
    if (!br) throw checkFail(`bridge "${conf.bridge}" does not exist`);
    if (br.kind !== 'bridge') throw checkFail(`"${conf.bridge}" is a ${br.kind ?? 'device'}, not a bridge`);
    if (brIf?.mac && brIf.mac.toLowerCase() !== br.mac) throw checkFail(`bridge "${conf.bridge}" has MAC ${br.mac}, prevResult says ${brIf.mac}`);
    const promisc = (br.flags & IFF_PROMISC) !== 0;
    if (conf.promiscMode && !promisc) throw checkFail(`bridge "${conf.bridge}" is not promiscuous`);
    const gw = (prev.ips ?? []).length ? planVlanGateway(conf) : undefined;
    if (gw && !(await host.getLink(gw.name))?.up) throw checkFail(`VLAN gateway interface "${gw.name}" is missing or down`);
  } finally {
    host.close();
  }
  const { container, hostVeth } = await checkAttachment(kernel, {
    plugin: 'bridge', netnsPath: inv.env.netns, ifname, bridge: conf.bridge,
    addresses: (prev.ips ?? []).filter((ip) => ip.interface === undefined || ip.interface === ctrIdx).map((ip) => ip.address),
    routes: prev.routes ?? [], containerMac: ctrIf?.mac,
    hostMacOf: (name) => ifaces.find((i) => i.name === name && !i.sandbox)?.mac,
  });

  if (conf.macspoofchk) {
    const missing = missingMacspoof({ hostVeth: hostVeth.name, mac: container.mac });
    if (missing.length) throw checkFail(`MAC spoof check elements missing: ${missing.join(', ')}`);
  }
  if (conf.ipMasq && !conf.internal) {
    const owner = { network: conf.name, containerId: inv.env.containerId!, ifname };
    for (const ip of prev.ips ?? []) {
      const entry = masqEntryOf(ip.address);
      if (!hasMasq(owner, entry)) throw checkFail(`masquerade for ${entry.address} is missing`);
    }
  }
  if (conf.nameResolution) checkNames({ network: conf.name, config: conf.nameResolution, containerId: inv.env.containerId!, ifname });
  const policy = planPolicy(conf, (prev.ips ?? []).length ? planVlanGateway(conf) : undefined);
  const missing = policy && await missingPolicy(policy);
  if (missing) throw checkFail(`${missing} ${missing.startsWith('the forwarding') ? 'are' : 'is'} missing`);
}

async function gc(inv: GcInvocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  await gcNetwork(inv, ipamTypes, kernel, {
    plugin: 'bridge', network: conf.name, records: recordsOf(conf), nameResolution: conf.nameResolution,
    vlanGateway: vlanGatewayRelease(conf), isolation: isolationOf(conf), ipamInv: inv,
    removeExtra: (rec) => { if (rec.macspoof) removeMacspoof(rec.macspoof); },
  });
}

async function status(inv: Invocation, ipamTypes: InProcessIpam): Promise<void> {
  configOf(inv);
  await ipamStatus(inv, ipamTypes);
}

/** The bridge plugin; `ipamTypes` run in-process (ipam/index.ts), any other ipam.type is exec'd from CNI_PATH. */
export function makeBridgePlugin(ipamTypes: InProcessIpam, kernel: Kernel): Plugin {
  return {
    name: 'bridge',
    description: 'Linux bridge networks (Docker bridge mode) with nftables masquerade',
    knownArgs: KNOWN_ARGS,
    add: (inv) => add(inv, ipamTypes, kernel),
    del: (inv) => del(inv, ipamTypes, kernel),
    check: (inv) => check(inv, ipamTypes, kernel),
    gc: (inv) => gc(inv, ipamTypes, kernel),
    status: (inv) => status(inv, ipamTypes),
  };
}
