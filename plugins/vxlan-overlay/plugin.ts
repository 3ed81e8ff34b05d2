// The vxlan-overlay CNI plugin: containers on a local bridge whose subnet the
// host's agent leased from the cluster CIDR; the agent does the overlay. The
// plugin never talks to the store: ADD/CHECK/STATUS read the agent's
// readiness file, DEL and GC work from attachment records alone.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, type InProcessIpam } from '../../lib/cni/ipam';
import type { GcInvocation, Plugin } from '../../lib/cni/plugin';
import type { Invocation, Result } from '../../lib/cni/types';
import { hasMasq, type MasqEntry } from '../../lib/firewall/masquerade';
import { hasPolicy, missingPolicy, type NetworkPolicy } from '../../lib/firewall/netpolicy';
import { attachContainer, detachContainer, nameServiceOf, type AttachIsolation, type AttachNameService } from '../../lib/bridge/attach';
import { leaveIsolationIfEmpty } from '../../lib/bridge/isolation';
import { cniArgsOf } from '../../lib/cni/args';
import { mergeResultDns } from '../../lib/dns/render';
import { addressText, familyOf } from '../../lib/ip';
import { checkNames, gcNames } from '../../lib/dns/service';
import { checkAttachment } from '../../lib/bridge/check';
import { attachToNetwork, gcAttachments, masqToRemove, openContainerNetns, removeNetworkIfUnused, requireFreeIfname, throwDelErrors } from '../../lib/bridge/lifecycle';
import { RecordDir, type AttachmentRecord } from '../../lib/bridge/records';
import { Rollback, describeRollbackErrors } from '../../lib/util/rollback';
import { asOverlayError, OVERLAY_ARGS, parseOverlayConfig, type OverlayConfig } from './config';
import { defaultBridgeName, gatewayOf } from './model';
import { overlayFamilies, planAttachment } from './plan';
import { agentReadiness, attachmentsDir, readAgentState, statePath, type AgentState } from './readiness';

const CONTAINER_IF = 2;
/** DEL and GC release by container ID whatever the ranges say: any valid range will do when none is known. */
const PLACEHOLDER_SUBNET = '192.0.2.0/24';

/** What DEL and GC need without the netns, the agent or the store; `subnet` picks the IPAM range to release from. */
interface OverlayRecord extends AttachmentRecord {
  subnet: string;
  /** Dual-stack: the host's IPv6 subnet at ADD. */
  subnet6?: string;
  /** The agent's bridge at ADD (isolation leaves the group by bridge); absent in records of older versions. */
  bridge?: string;
}

/** One JSON file per attachment under <runDir>/<network>/attachments-<netns id>/ (a tmpfs). */
function recordsOf(conf: OverlayConfig): RecordDir<OverlayRecord> {
  return new RecordDir<OverlayRecord>(attachmentsDir(conf.runDir, conf.name), conf.name);
}

function configOf(inv: Invocation): OverlayConfig {
  return parseOverlayConfig(inv.conf, cniArgsOf(inv, OVERLAY_ARGS));
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
  if (conf.ipv6Cidr && conf.ipv6Cidr !== r.state.cidr6) {
    const serves = r.state.cidr6 ? `serves ${r.state.cidr6}` : 'serves IPv4 only (start it with --ipv6-cidr, or the same conf)';
    throw fail(`"ipv6Cidr" is ${conf.ipv6Cidr} in this config but the agent of network "${conf.name}" ${serves}`, ErrorCode.InvalidConfig);
  }
  return r.state;
}

/** The host's subnets (of an agent state or a record): IPv4, and IPv6 on a dual-stack network. */
function subnetsOf(s: { subnet: string; subnet6?: string }): string[] {
  return s.subnet6 ? [s.subnet, s.subnet6] : [s.subnet];
}

/**
 * The invocation host-local sees: one range set per family, the host's
 * subnets, gateways on the bridge. Only fields we built are serialized
 * (host-local runs in-process and reads conf): the rest of the config may be
 * nested as deep as a DEL brings it.
 */
function ipamInvocation(inv: Invocation, conf: OverlayConfig, subnets: readonly string[]): Invocation {
  const ranges = subnets.map((subnet) => [{ subnet, gateway: gatewayOf(subnet).ip }]);
  const ipam = { type: 'host-local', ranges, dataDir: conf.ipamDataDir };
  const c = { ...inv.conf, ipam };
  return { ...inv, conf: c, raw: Buffer.from(JSON.stringify({ cniVersion: conf.cniVersion, name: conf.name, type: 'vxlan-overlay', ipam })) };
}

/** The bridge for DEL/GC: the record's, else the (maybe stale) agent state's, else the config's or the default for VNI 1. */
function knownBridge(conf: OverlayConfig, rec?: OverlayRecord): string {
  return rec?.bridge ?? readAgentState(statePath(conf.runDir, conf.name))?.bridge ?? conf.bridge ?? defaultBridgeName(conf.vni ?? 1);
}

/** Isolation as the bridge plugin does it: the VXLAN device is routed (not a bridge port), so cross-host traffic never meets the group's rule. */
function isolationOf(conf: OverlayConfig, bridge: string): (AttachIsolation & { bridge: string }) | undefined {
  return conf.isolation ? { network: conf.name, bridge, lockDir: conf.runDir } : undefined;
}

/** Internal, ICC off: the network here is its bridge and its VXLAN device (traffic to other hosts' containers is routed through it). */
function policyOf(conf: OverlayConfig, agent: Pick<AgentState, 'bridge' | 'vxlan'>): NetworkPolicy | undefined {
  const p: NetworkPolicy = { network: conf.name, members: [agent.bridge, agent.vxlan], internal: conf.internal, iccOff: conf.portIsolation };
  return hasPolicy(p) ? p : undefined;
}

/** This host's name service for the network; names only on ADD (DEL and CHECK go by container ID). */
function nameServiceFor(conf: OverlayConfig, inv: Invocation): AttachNameService | undefined {
  if (!conf.nameResolution) return undefined;
  return asOverlayError(() => nameServiceOf({ network: conf.name, config: conf.nameResolution, inv, podName: cniArgsOf(inv, OVERLAY_ARGS).K8S_POD_NAME }));
}

/** Subnets for DEL/GC (host-local releases by container ID whatever they say): the record's, else the (maybe stale) agent state's, else a placeholder. */
function knownSubnets(conf: OverlayConfig, rec?: OverlayRecord): string[] {
  const known = rec ?? readAgentState(statePath(conf.runDir, conf.name));
  return known ? subnetsOf(known) : [PLACEHOLDER_SUBNET];
}

async function add(inv: Invocation, ipamTypes: InProcessIpam): Promise<Result> {
  const conf = configOf(inv);
  const agent = requireAgent(conf);
  // Before anything is created: a name DNS cannot carry is refused here.
  const nameService = nameServiceFor(conf, inv);
  const records = recordsOf(conf);
  return attachToNetwork(records, conf.name, () => addUnderLock(inv, ipamTypes, conf, agent, records, nameService), inv.log);
}

async function addUnderLock(inv: Invocation, ipamTypes: InProcessIpam, conf: OverlayConfig, agent: AgentState, records: RecordDir<OverlayRecord>, nameService: AttachNameService | undefined): Promise<Result> {
  const containerId = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const netns = openContainerNetns(inv.env.netns, 'vxlan-overlay');
  try {
    await requireFreeIfname(netns, ifname, 'vxlan-overlay');
    const families = overlayFamilies(agent);
    const ipamInv = ipamInvocation(inv, conf, families.map((f) => f.subnet));
    return await Rollback.run(async (undo) => {
      const ipam = await ipamAdd(ipamInv, ipamTypes);
      undo.push('release IPAM', () => ipamDel(ipamInv, ipamTypes));
      let plan;
      try {
        plan = planAttachment(families, (ipam.ips ?? []).map((ip) => ip.address), {
          // An internal network has no way out: no default route, no masquerade.
          isDefaultGateway: conf.isDefaultGateway && !conf.internal, ipMasq: conf.ipMasq && !conf.internal,
        });
      } catch (err) {
        throw fail((err as Error).message);
      }
      const { ips, routes, masq } = plan;
      const record: OverlayRecord = {
        network: conf.name, containerId, ifname, subnet: agent.subnet, ...(agent.subnet6 ? { subnet6: agent.subnet6 } : {}),
        bridge: agent.bridge, addresses: ips.map((i) => i.address), masq,
      };
      const att = await attachContainer({
        plugin: 'vxlan-overlay', netns, ifname, bridge: agent.bridge, mtu: agent.mtu, mac: conf.mac, ips, routes, gwPriority: conf.gwPriority,
        bridgeAddresses: families.map((f) => ({ family: f.family, cidr: f.gateway.cidr })), forwardV4: true, forwardV6: families.length > 1,
        masq: masq.length ? { owner: { network: conf.name, containerId, ifname }, entries: masq } : undefined,
        isolation: isolationOf(conf, agent.bridge), nameService, portIsolation: conf.portIsolation, policy: policyOf(conf, agent),
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
        routes: att.routes, // as installed, with their metrics
      };
      const dns = conf.dns;
      // Name resolution: the gateway becomes the container's nameserver, the network's domain its search domain.
      if (conf.nameResolution) res.dns = mergeResultDns(dns, [families[0].gateway.ip], conf.nameResolution.domain);
      else if (dns) res.dns = dns;
      return res;
    }, (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`));
  } finally {
    netns.close();
  }
}

async function del(inv: Invocation, ipamTypes: InProcessIpam): Promise<void> {
  const conf = configOf(inv);
  const containerId = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const records = recordsOf(conf);
  const rec = records.read(containerId, ifname);
  // Without a record the cluster CIDR may be unknown: the element's tag is what identifies it.
  const entryOf = (cidr: string): MasqEntry => familyOf(cidr) === 6
    ? { address: addressText(cidr), subnet: conf.ipv6Cidr ?? '::/0' }
    : { address: addressText(cidr), subnet: conf.cidr ?? '0.0.0.0/0' };
  const masqAddresses = await masqToRemove(inv, { network: conf.name, record: rec, ipMasq: conf.ipMasq, entryOf });
  const errors = await detachContainer({
    netnsPath: inv.env.netns || undefined, ifname, hostVeth: rec?.hostVeth, masqAddresses,
    isolation: isolationOf(conf, knownBridge(conf, rec)), nameService: nameServiceFor(conf, inv),
  });
  try {
    await ipamDel(ipamInvocation(inv, conf, knownSubnets(conf, rec)), ipamTypes);
  } catch (err) {
    errors.push(err as Error);
  }
  if (errors.length === 0) {
    records.remove(containerId, ifname);
    try { await removeNetworkIfUnused(records, conf.name); } catch (err) { errors.push(new Error(`removing the network's structure: ${(err as Error).message}`)); }
  }
  throwDelErrors(errors, 'vxlan-overlay', inv);
}

function checkFail(msg: string): CniError {
  return new CniError(ErrorCode.Internal, `vxlan-overlay CHECK: ${msg}`);
}

async function check(inv: Invocation, ipamTypes: InProcessIpam): Promise<void> {
  const conf = configOf(inv);
  const agent = requireAgent(conf);
  const prev = inv.conf.prevResult;
  if (!prev) throw fail('Required prevResult missing', ErrorCode.InvalidConfig);
  await ipamCheck(ipamInvocation(inv, conf, subnetsOf(agent)), ipamTypes);
  const ifname = inv.env.ifname!;
  await checkAttachment({
    plugin: 'vxlan-overlay', netnsPath: inv.env.netns, ifname, bridge: agent.bridge, mtu: agent.mtu,
    addresses: (prev.ips ?? []).map((ip) => ip.address), routes: prev.routes ?? [],
  });
  if (conf.ipMasq && !conf.internal) {
    const owner = { network: conf.name, containerId: inv.env.containerId!, ifname };
    for (const ip of prev.ips ?? []) {
      const cluster = familyOf(ip.address) === 6 ? agent.cidr6 : agent.cidr;
      if (!cluster) throw checkFail(`${ip.address} is IPv6 but the agent serves IPv4 only`);
      const entry = { address: addressText(ip.address), subnet: cluster };
      if (!hasMasq(owner, entry)) throw checkFail(`masquerade for ${entry.address} is missing`);
    }
  }
  if (conf.nameResolution) checkNames({ network: conf.name, config: conf.nameResolution, containerId: inv.env.containerId!, ifname });
  const policy = policyOf(conf, agent);
  const missing = policy && await missingPolicy(policy);
  if (missing) throw checkFail(`${missing} ${missing.startsWith('the forwarding') ? 'are' : 'is'} missing`);
}

async function gc(inv: GcInvocation, ipamTypes: InProcessIpam): Promise<void> {
  const conf = configOf(inv);
  const errors = await gcAttachments(conf.name, recordsOf(conf), inv.validAttachments);
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
  if (errors.length === 0) {
    try {
      await removeNetworkIfUnused(recordsOf(conf), conf.name);
    } catch (err) {
      errors.push(`removing the network's structure: ${(err as Error).message}`);
    }
  }
  try {
    await ipamGc(ipamInvocation(inv, conf, knownSubnets(conf)) as GcInvocation, ipamTypes);
  } catch (err) {
    errors.push((err as Error).message);
  }
  if (errors.length) throw fail(`GC: ${errors.join('; ')}`);
}

async function status(inv: Invocation): Promise<void> {
  const conf = configOf(inv);
  const r = agentReadiness(conf.runDir, conf.name);
  if (!r.ready) throw new CniError(ErrorCode.NotAvailable, `vxlan-overlay: ${r.reason}`);
}

/** The vxlan-overlay plugin; its IPAM is always host-local, run in-process from `ipamTypes` (ipam/index.ts). */
export function makeOverlayPlugin(ipamTypes: InProcessIpam): Plugin {
  return {
    name: 'vxlan-overlay',
    description: 'VXLAN overlay across hosts (flannel-style: one subnet per host, a local bridge); run `vxlan-overlay agent` on every host',
    knownArgs: OVERLAY_ARGS,
    add: (inv) => add(inv, ipamTypes),
    del: (inv) => del(inv, ipamTypes),
    check: (inv) => check(inv, ipamTypes),
    gc: (inv) => gc(inv, ipamTypes),
    status,
  };
}
