// The vxlan-overlay CNI plugin: containers on a local bridge whose subnet the
// host's agent leased from the cluster CIDR; the agent does the overlay. The
// plugin never talks to the store: ADD/CHECK/STATUS read the agent's
// readiness file, DEL and GC work from attachment records alone.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import { ipamCheck, type InProcessIpam } from '../../lib/cni/ipam';
import type { GcInvocation, Plugin } from '../../lib/cni/plugin';
import type { Kernel } from '../../lib/kernel';
import type { Invocation, Result } from '../../lib/cni/types';
import { hasMasq, type MasqEntry } from '../../lib/firewall/masquerade';
import { missingPolicy } from '../../lib/firewall/netpolicy';
import { addAttachment, gcNetwork, removeAttachment } from '../../lib/bridge/family';
import { nameServiceOf, type AttachIsolation, type AttachNameService } from '../../lib/bridge/plan';
import { cniArgsOf } from '../../lib/cni/args';
import { mergeResultDns } from '../../lib/dns/render';
import { addressText, familyOf } from '../../lib/ip';
import { checkNames } from '../../lib/dns/service';
import { checkAttachment } from '../../lib/bridge/check';
import { RecordDir, type AttachmentRecord } from '../../lib/bridge/records';
import { asOverlayError, OVERLAY_ARGS, parseOverlayConfig, type OverlayConfig } from './config';
import { defaultBridgeName, gatewayOf } from './model';
import { attachSpecOf, overlayFamilies, policyOf } from './plan';
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

async function add(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<Result> {
  const conf = configOf(inv);
  const agent = requireAgent(conf);
  // Before anything is created: a name DNS cannot carry is refused here.
  const nameService = nameServiceFor(conf, inv);
  const families = overlayFamilies(agent);
  const who = { containerId: inv.env.containerId!, ifname: inv.env.ifname!, nameService };
  return addAttachment(inv, ipamTypes, kernel, {
    plugin: 'vxlan-overlay', network: conf.name, records: recordsOf(conf),
    ipamInv: ipamInvocation(inv, conf, families.map((f) => f.subnet)),
    specOf: (ipam) => {
      try {
        return attachSpecOf(conf, agent, ipam!, who);
      } catch (err) {
        throw fail((err as Error).message);
      }
    },
    resultOf: (att, spec) => {
      const res: Result = {
        cniVersion: conf.cniVersion,
        interfaces: [
          { name: att.bridge.name, mac: att.bridge.mac, mtu: att.bridge.mtu },
          { name: att.hostVeth.name, mac: att.hostVeth.mac, mtu: att.hostVeth.mtu },
          { name: att.containerVeth.name, mac: att.containerVeth.mac, mtu: att.containerVeth.mtu, sandbox: inv.env.netns },
        ],
        ips: spec.ips.map((ip) => ({ ...ip, interface: CONTAINER_IF })),
        routes: att.routes, // as installed, with their metrics
      };
      const dns = conf.dns;
      // Name resolution: the gateway becomes the container's nameserver, the network's domain its search domain.
      if (conf.nameResolution) res.dns = mergeResultDns(dns, [families[0].gateway.ip], conf.nameResolution.domain);
      else if (dns) res.dns = dns;
      return res;
    },
  });
}

async function del(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  await removeAttachment(inv, ipamTypes, kernel, {
    plugin: 'vxlan-overlay', network: conf.name, records: recordsOf(conf), ipMasq: conf.ipMasq,
    // Without a record the cluster CIDR may be unknown: the element's tag is what identifies it.
    masqEntryOf: (cidr: string): MasqEntry => familyOf(cidr) === 6
      ? { address: addressText(cidr), subnet: conf.ipv6Cidr ?? '::/0' }
      : { address: addressText(cidr), subnet: conf.cidr ?? '0.0.0.0/0' },
    detachOf: (rec) => ({ isolation: isolationOf(conf, knownBridge(conf, rec)), nameService: nameServiceFor(conf, inv) }),
    ipamInvOf: (rec) => ipamInvocation(inv, conf, knownSubnets(conf, rec)),
  });
}

function checkFail(msg: string): CniError {
  return new CniError(ErrorCode.Internal, `vxlan-overlay CHECK: ${msg}`);
}

async function check(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  const agent = requireAgent(conf);
  const prev = inv.conf.prevResult;
  if (!prev) throw fail('Required prevResult missing', ErrorCode.InvalidConfig);
  await ipamCheck(ipamInvocation(inv, conf, subnetsOf(agent)), ipamTypes);
  const ifname = inv.env.ifname!;
  await checkAttachment(kernel, {
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

async function gc(inv: GcInvocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  await gcNetwork(inv, ipamTypes, kernel, {
    plugin: 'vxlan-overlay', network: conf.name, records: recordsOf(conf), nameResolution: conf.nameResolution,
    isolation: isolationOf(conf, knownBridge(conf)), ipamInv: ipamInvocation(inv, conf, knownSubnets(conf)) as GcInvocation,
  });
}

async function status(inv: Invocation): Promise<void> {
  const conf = configOf(inv);
  const r = agentReadiness(conf.runDir, conf.name);
  if (!r.ready) throw new CniError(ErrorCode.NotAvailable, `vxlan-overlay: ${r.reason}`);
}

/** The vxlan-overlay plugin; its IPAM is always host-local, run in-process from `ipamTypes` (ipam/index.ts). */
export function makeOverlayPlugin(ipamTypes: InProcessIpam, kernel: Kernel): Plugin {
  return {
    name: 'vxlan-overlay',
    description: 'VXLAN overlay across hosts (flannel-style: one subnet per host, a local bridge); run `vxlan-overlay agent` on every host',
    knownArgs: OVERLAY_ARGS,
    add: (inv) => add(inv, ipamTypes, kernel),
    del: (inv) => del(inv, ipamTypes, kernel),
    check: (inv) => check(inv, ipamTypes, kernel),
    gc: (inv) => gc(inv, ipamTypes, kernel),
    status,
  };
}
