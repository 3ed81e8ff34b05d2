// The vxlan-overlay CNI plugin: containers on a local bridge whose subnet the
// host's agent leased from the cluster CIDR; the agent does the overlay. The
// plugin never talks to the store: ADD/CHECK/STATUS read the agent's
// readiness file, DEL and GC work from attachment records alone.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, type InProcessPlugins } from '../../lib/cni/ipam';
import type { GcInvocation, Plugin } from '../../lib/cni/plugin';
import type { Invocation, IpConfig, Result, Route } from '../../lib/cni/types';
import * as path from 'path';
import { hasMasq, type MasqEntry } from '../../lib/firewall/masquerade';
import { attachContainer, detachContainer, nameServiceOf, type AttachIsolation, type AttachNameService } from '../../lib/bridge/attach';
import { leaveIsolationIfEmpty } from '../../lib/bridge/isolation';
import { cniArgsOf } from '../../lib/cni/args';
import { mergeResultDns } from '../../lib/dns/render';
import { checkNames, gcNames } from '../../lib/dns/service';
import { checkAttachment } from '../../lib/bridge/check';
import { gcAttachments, masqToRemove, openContainerNetns, requireFreeIfname, throwDelErrors } from '../../lib/bridge/lifecycle';
import { RecordDir, type AttachmentRecord } from '../../lib/bridge/records';
import { Rollback, describeRollbackErrors } from '../../lib/util/rollback';
import { hostLocal } from '../../ipam/host-local/plugin';
import { asOverlayError, parseOverlayConfig, type OverlayConfig } from './config';
import { defaultBridgeName, gatewayOf } from './model';
import { agentReadiness, currentNetnsId, readAgentState, statePath, type AgentState } from './readiness';

const IN_PROCESS: InProcessPlugins = { 'host-local': hostLocal };
const CONTAINER_IF = 2;
/** DEL and GC release by container ID whatever the ranges say: any valid range will do when none is known. */
const PLACEHOLDER_SUBNET = '192.0.2.0/24';

/** What DEL and GC need without the netns, the agent or the store; `subnet` picks the IPAM range to release from. */
interface OverlayRecord extends AttachmentRecord {
  subnet: string;
  /** The agent's bridge at ADD (isolation leaves the group by bridge); absent in records of older versions. */
  bridge?: string;
}

/** One JSON file per attachment under <runDir>/<network>/attachments-<netns id>/ (a tmpfs). */
function recordsOf(conf: OverlayConfig): RecordDir<OverlayRecord> {
  return new RecordDir<OverlayRecord>(path.join(conf.runDir, conf.name, `attachments-${currentNetnsId()}`));
}

function fail(msg: string, code: number = ErrorCode.Internal): CniError {
  return new CniError(code, `vxlan-overlay: ${msg}`);
}

/** The agent's state, or code 11 (try again later) naming the agent and why it is not ready. */
function requireAgent(conf: OverlayConfig): AgentState {
  const r = agentReadiness(conf.runDir, conf.name);
  if (!r.ready) throw new CniError(ErrorCode.TryAgainLater, `vxlan-overlay: ${r.reason}`);
  if (conf.cidr && conf.cidr !== r.state.cidr) {
    throw fail(`"cidr" is ${conf.cidr} in this config but the agent of network "${conf.name}" serves ${r.state.cidr}`, ErrorCode.InvalidConfig);
  }
  return r.state;
}

/** The invocation host-local sees: one range, the host's subnet, gateway on the bridge. */
function ipamInvocation(inv: Invocation, conf: OverlayConfig, subnet: string): Invocation {
  const ipam = { type: 'host-local', ranges: [[{ subnet, gateway: gatewayOf(subnet).ip }]], dataDir: conf.ipamDataDir };
  const c = { ...inv.conf, ipam };
  return { ...inv, conf: c, raw: Buffer.from(JSON.stringify(c)) };
}

/** The bridge for DEL/GC: the record's, else the (maybe stale) agent state's, else the config's or the default for VNI 1. */
function knownBridge(conf: OverlayConfig, rec?: OverlayRecord): string {
  return rec?.bridge ?? readAgentState(statePath(conf.runDir, conf.name))?.bridge ?? conf.bridge ?? defaultBridgeName(conf.vni ?? 1);
}

/** Isolation as the bridge plugin does it: the VXLAN device is routed (not a bridge port), so cross-host traffic never meets the group's rule. */
function isolationOf(conf: OverlayConfig, bridge: string): (AttachIsolation & { bridge: string }) | undefined {
  return conf.isolation ? { network: conf.name, bridge, lockDir: conf.runDir } : undefined;
}

/** This host's name service for the network; names only on ADD (DEL and CHECK go by container ID). */
function nameServiceFor(conf: OverlayConfig, inv: Invocation): AttachNameService | undefined {
  return asOverlayError(() => nameServiceOf({ network: conf.name, config: conf.nameResolution, inv, podName: cniArgsOf(inv).K8S_POD_NAME }));
}

/** A subnet for DEL/GC: the record's, else the (maybe stale) agent state's, else a placeholder. */
function knownSubnet(conf: OverlayConfig, rec?: OverlayRecord): string {
  return rec?.subnet ?? readAgentState(statePath(conf.runDir, conf.name))?.subnet ?? PLACEHOLDER_SUBNET;
}

async function add(inv: Invocation): Promise<Result> {
  const conf = parseOverlayConfig(inv.conf);
  const agent = requireAgent(conf);
  const containerId = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  // Before anything is created: a name DNS cannot carry is refused here.
  const nameService = nameServiceFor(conf, inv);
  const records = recordsOf(conf);
  const netns = openContainerNetns(inv.env.netns, 'vxlan-overlay');
  try {
    await requireFreeIfname(netns, ifname, 'vxlan-overlay');
    const ipamInv = ipamInvocation(inv, conf, agent.subnet);
    return await Rollback.run(async (undo) => {
      const ipam = await ipamAdd(ipamInv, IN_PROCESS);
      undo.push('release IPAM', () => ipamDel(ipamInv, IN_PROCESS));
      const gateway = gatewayOf(agent.subnet);
      const ips: IpConfig[] = (ipam.ips ?? []).map((ip) => ({ address: ip.address, gateway: gateway.ip }));
      if (ips.length === 0) throw fail(`host-local gave no address from ${agent.subnet}`);
      const routes: Route[] = [{ dst: agent.cidr, gw: gateway.ip }];
      if (conf.isDefaultGateway) routes.push({ dst: '0.0.0.0/0', gw: gateway.ip });
      const masq: MasqEntry[] = conf.ipMasq ? ips.map((ip) => ({ address: ip.address.split('/')[0], subnet: agent.cidr })) : [];
      const record: OverlayRecord = { network: conf.name, containerId, ifname, subnet: agent.subnet, bridge: agent.bridge, addresses: ips.map((i) => i.address), masq };
      const att = await attachContainer({
        plugin: 'vxlan-overlay', netns, ifname, bridge: agent.bridge, mtu: agent.mtu, ips, routes,
        bridgeAddresses: [{ family: 4, cidr: gateway.cidr }], forwardV4: true,
        masq: masq.length ? { owner: { network: conf.name, containerId, ifname }, entries: masq } : undefined,
        isolation: isolationOf(conf, agent.bridge), nameService,
        undo,
        onHostVeth: (name) => {
          records.write({ ...record, hostVeth: name });
          undo.push('remove attachment record', () => records.remove(containerId, ifname));
        },
      });
      const res: Result = {
        cniVersion: conf.cniVersion,
        interfaces: [
          { name: att.bridge.name, mac: att.bridge.mac, mtu: att.bridge.mtu },
          { name: att.hostVeth.name, mac: att.hostVeth.mac, mtu: att.hostVeth.mtu },
          { name: att.containerVeth.name, mac: att.containerVeth.mac, mtu: att.containerVeth.mtu, sandbox: inv.env.netns },
        ],
        ips: ips.map((ip) => ({ ...ip, interface: CONTAINER_IF })),
        routes,
      };
      const dns = inv.conf.dns && Object.keys(inv.conf.dns).length ? inv.conf.dns : undefined;
      // Name resolution: the gateway becomes the container's nameserver, the network's domain its search domain.
      if (conf.nameResolution) res.dns = mergeResultDns(dns, [gateway.ip], conf.nameResolution.domain);
      else if (dns) res.dns = dns;
      return res;
    }, (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`));
  } finally {
    netns.close();
  }
}

async function del(inv: Invocation): Promise<void> {
  const conf = parseOverlayConfig(inv.conf);
  const containerId = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const records = recordsOf(conf);
  const rec = records.read(containerId, ifname);
  // Without a record the cluster CIDR may be unknown: the element's tag is what identifies it.
  const entryOf = (cidr: string): MasqEntry => ({ address: cidr.split('/')[0], subnet: conf.cidr ?? '0.0.0.0/0' });
  const masqAddresses = await masqToRemove(inv, { network: conf.name, record: rec, ipMasq: conf.ipMasq, entryOf });
  const errors = await detachContainer({
    netnsPath: inv.env.netns || undefined, ifname, hostVeth: rec?.hostVeth, masqAddresses,
    isolation: isolationOf(conf, knownBridge(conf, rec)), nameService: nameServiceFor(conf, inv),
  });
  try {
    await ipamDel(ipamInvocation(inv, conf, knownSubnet(conf, rec)), IN_PROCESS);
  } catch (err) {
    errors.push(err as Error);
  }
  if (errors.length === 0) records.remove(containerId, ifname);
  throwDelErrors(errors, 'vxlan-overlay', inv);
}

function checkFail(msg: string): CniError {
  return new CniError(ErrorCode.Internal, `vxlan-overlay CHECK: ${msg}`);
}

async function check(inv: Invocation): Promise<void> {
  const conf = parseOverlayConfig(inv.conf);
  const agent = requireAgent(conf);
  const prev = inv.conf.prevResult;
  if (!prev) throw fail('Required prevResult missing', ErrorCode.InvalidConfig);
  await ipamCheck(ipamInvocation(inv, conf, agent.subnet), IN_PROCESS);
  const ifname = inv.env.ifname!;
  await checkAttachment({
    plugin: 'vxlan-overlay', netnsPath: inv.env.netns, ifname, bridge: agent.bridge, mtu: agent.mtu,
    addresses: (prev.ips ?? []).map((ip) => ip.address), routes: prev.routes ?? [],
  });
  if (conf.ipMasq) {
    const owner = { network: conf.name, containerId: inv.env.containerId!, ifname };
    for (const ip of prev.ips ?? []) {
      const entry = { address: ip.address.split('/')[0], subnet: agent.cidr };
      if (!hasMasq(owner, entry)) throw checkFail(`masquerade for ${entry.address} is missing`);
    }
  }
  if (conf.nameResolution) checkNames({ network: conf.name, config: conf.nameResolution, containerId: inv.env.containerId!, ifname });
}

async function gc(inv: GcInvocation): Promise<void> {
  const conf = parseOverlayConfig(inv.conf);
  const errors = gcAttachments(conf.name, recordsOf(conf), inv.validAttachments);
  if (conf.nameResolution) {
    try {
      await gcNames({ network: conf.name, config: conf.nameResolution }, inv.validAttachments);
    } catch (err) {
      errors.push(`DNS service: ${(err as Error).message}`);
    }
  }
  const iso = isolationOf(conf, knownBridge(conf));
  if (iso) {
    try {
      await leaveIsolationIfEmpty(iso);
    } catch (err) {
      errors.push(`isolation: ${(err as Error).message}`);
    }
  }
  try {
    await ipamGc(ipamInvocation(inv, conf, knownSubnet(conf)) as GcInvocation, IN_PROCESS);
  } catch (err) {
    errors.push((err as Error).message);
  }
  if (errors.length) throw fail(`GC: ${errors.join('; ')}`);
}

async function status(inv: Invocation): Promise<void> {
  const conf = parseOverlayConfig(inv.conf);
  const r = agentReadiness(conf.runDir, conf.name);
  if (!r.ready) throw new CniError(ErrorCode.NotAvailable, `vxlan-overlay: ${r.reason}`);
}

export const overlayPlugin: Plugin = {
  name: 'vxlan-overlay',
  description: 'VXLAN overlay across hosts (flannel-style: one subnet per host, a local bridge); run `vxlan-overlay agent` on every host',
  add,
  del,
  check,
  gc,
  status,
};
