// portmap: a chained plugin that publishes container ports on the host
// (Docker's -p) with nftables maps. See lib/firewall/portmap.ts for the
// ruleset and plugins/portmap/README.md for the design; ./container.ts for a
// container that publishes the same host port on several of its networks.

import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { GcInvocation, Invocation, Plugin, Result } from '../../lib/cni/plugin';
import type { Kernel } from '../../lib/kernel';
import { internalMember } from '../../lib/firewall/netpolicy';
import { planElements, type PortmapAttachment, type PortmapEntry, type PortmapNetwork } from '../../lib/firewall/portmap';
import { createLogger, type Logger } from '../../lib/util/log';
import { parsePortmapConfig, type PortmapConfig } from './config';
import { currentElements, publishForContainer, releaseForContainer } from './container';
import { defaultRouteMetrics, enableRouteLocalnet, flushUdpConntrack, unpublish, verifyPublished } from './kernel';
import { containerAddresses, planEntries } from './plan';
import { listRecordedAttachments, networkState, readRecord, removeRecord } from './store';
import { removeNetworkStructure } from './kernel';

function networkOf(cfg: PortmapConfig): PortmapNetwork {
  return { name: cfg.network, snat: cfg.snat, masqAll: cfg.masqAll, conditionsV4: cfg.conditionsV4, conditionsV6: cfg.conditionsV6 };
}

function logger(verb: string, inv: Invocation): Logger {
  return createLogger({ tag: `portmap ${verb} ${inv.env.containerId ?? ''}/${inv.env.ifname ?? ''}` });
}

function required(v: string | undefined, name: string): string {
  if (!v) throw new CniError(ErrorCode.InvalidEnvironment, `portmap: ${name} is required`);
  return v;
}

/** Take everything of one attachment out (elements, conntrack, record). Idempotent. */
async function release(cfg: PortmapConfig, containerID: string, ifname: string, log: Logger): Promise<string[]> {
  const rec = readRecord(cfg.dataDir, cfg.network, containerID, ifname);
  if (!rec) return [];
  if (rec.version === 2) {
    const errors = await releaseForContainer(cfg.dataDir, rec);
    for (const w of await flushUdpConntrack(rec.entries)) log.warn(w);
    return errors;
  }
  // A record of an older release: the claims carry the attachment's own mark.
  const errors = unpublish(planElements(rec));
  for (const w of await flushUdpConntrack(rec.entries)) log.warn(w);
  // Keep the record while something could not be removed, so a retried DEL can finish.
  if (errors.length === 0) removeRecord(cfg.dataDir, cfg.network, containerID, ifname);
  return errors;
}

/** After an attachment left: the network's last one takes the network's chains and maps (and the table, if no other network has any) with it. */
async function removeNetworkIfUnused(cfg: PortmapConfig): Promise<void> {
  await networkState(cfg.dataDir, cfg.network).teardownIfUnused(() => removeNetworkStructure(cfg.network));
}

/** An internal network (Docker's --internal, lib/firewall/netpolicy.ts) forwards nothing from outside: a port published there could never answer. */
async function refuseInternal(cfg: PortmapConfig, entries: readonly PortmapEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const hostSide = (cfg.prevResult?.interfaces ?? []).filter((i) => !i.sandbox).map((i) => i.name);
  const member = await internalMember(hostSide);
  if (!member) return;
  const e = entries[0];
  throw new CniError(ErrorCode.InvalidConfig, `portmap: network "${cfg.network}" is internal (its bridge "${member}" forwards nothing to or from outside the network), so it cannot publish ${e.protocol} port ${e.hostPort}; publish ports on a network of the container that is not internal`);
}

async function add(inv: Invocation, kernel: Kernel): Promise<Result> {
  const cfg = parsePortmapConfig(inv.conf);
  const passThrough: Result = cfg.prevResult ?? { cniVersion: cfg.cniVersion };
  if (cfg.mappings.length === 0) return passThrough;
  if (!cfg.prevResult) throw new CniError(ErrorCode.InvalidConfig, 'portmap: no prevResult; portmap must be chained after an interface plugin (bridge, macvlan, ...)');
  const containerID = required(inv.env.containerId, 'CNI_CONTAINERID');
  const ifname = required(inv.env.ifname, 'CNI_IFNAME');
  const addrs = containerAddresses(cfg.prevResult, ifname);
  const entries = planEntries(cfg.mappings, addrs, ifname);
  await refuseInternal(cfg, entries);
  const log = logger('ADD', inv);
  const state = networkState(cfg.dataDir, cfg.network);
  try {
    // Shared lock: no teardown of the network's structure while this attachment joins it.
    await state.whileAttaching(async () => {
      // A repeated ADD (no DEL in between) replaces this attachment's earlier publication.
      const stale = await release(cfg, containerID, ifname, log);
      if (stale.length) throw new CniError(ErrorCode.IoFailure, `portmap: cannot replace the earlier publication: ${stale.join('; ')}`);
      if (entries.length === 0) return;
      const att: PortmapAttachment = { network: cfg.network, containerID, ifname, entries };
      // Before publishing: nothing can fail after the transaction (a host port may have changed hands in it).
      if (cfg.snat && addrs.v4 && entries.some((e) => e.family === 4)) await enableRouteLocalnet(kernel, addrs.v4);
      await publishForContainer(cfg.dataDir, networkOf(cfg), att, await defaultRouteMetrics(kernel, inv.env.netns, ifname));
    });
  } catch (err) {
    // If this was the network's only attachment, what the failed ADD declared goes too.
    try { await removeNetworkIfUnused(cfg); } catch (e) { log.error(`removing the network's structure: ${(e as Error).message}`); }
    throw err;
  }
  for (const w of await flushUdpConntrack(entries)) log.warn(w);
  return passThrough;
}

async function del(inv: Invocation): Promise<void> {
  const cfg = parsePortmapConfig(inv.conf);
  const containerID = required(inv.env.containerId, 'CNI_CONTAINERID');
  const ifname = required(inv.env.ifname, 'CNI_IFNAME');
  const errors = await release(cfg, containerID, ifname, logger('DEL', inv));
  if (errors.length) throw new CniError(ErrorCode.IoFailure, `portmap: DEL left elements behind: ${errors.join('; ')}`);
  await removeNetworkIfUnused(cfg);
}

async function check(inv: Invocation): Promise<void> {
  const cfg = parsePortmapConfig(inv.conf);
  const containerID = required(inv.env.containerId, 'CNI_CONTAINERID');
  const ifname = required(inv.env.ifname, 'CNI_IFNAME');
  const rec = readRecord(cfg.dataDir, cfg.network, containerID, ifname);
  if (cfg.mappings.length > 0 && cfg.prevResult) {
    const want = planEntries(cfg.mappings, containerAddresses(cfg.prevResult, ifname), ifname);
    const have = rec?.entries ?? [];
    const key = (e: object): string => JSON.stringify(e, Object.keys(e).sort());
    const haveKeys = new Set(have.map(key));
    const missing = want.filter((e) => !haveKeys.has(key(e)));
    if (missing.length) {
      throw new CniError(ErrorCode.InvalidConfig, `portmap: ${missing.length} port mapping(s) are not published, e.g. ${missing[0].protocol} ${missing[0].hostIP ?? 'any'}:${missing[0].hostPort} -> ${missing[0].containerIP}:${missing[0].containerPort}`);
    }
  }
  if (!rec) return;
  const problems = verifyPublished(rec.version === 2 ? currentElements(cfg.dataDir, rec) : planElements(rec));
  if (problems.length) throw new CniError(ErrorCode.InvalidConfig, `portmap: published ports of "${containerID}" are damaged: ${problems.join('; ')}`);
}

async function gc(inv: GcInvocation): Promise<void> {
  const cfg = parsePortmapConfig(inv.conf);
  const valid = new Set(inv.validAttachments.map((a) => `${a.containerID}:${a.ifname}`));
  const log = createLogger({ tag: 'portmap GC' });
  const errors: string[] = [];
  for (const a of listRecordedAttachments(cfg.dataDir, cfg.network)) {
    if (valid.has(`${a.containerID}:${a.ifname}`)) continue;
    log.info(`removing port mappings of stale attachment ${a.containerID}/${a.ifname}`);
    try {
      errors.push(...(await release(cfg, a.containerID, a.ifname, log)));
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length === 0) {
    try {
      await removeNetworkIfUnused(cfg);
    } catch (err) {
      errors.push(`removing the network's structure: ${(err as Error).message}`);
    }
  }
  if (errors.length) throw new CniError(ErrorCode.IoFailure, `portmap: GC could not remove everything: ${errors.join('; ')}`);
}

/** The portmap plugin over `kernel` (main.ts: HOST_KERNEL); nft goes through lib/firewall/nft's one backend. */
export function makePortmapPlugin(kernel: Kernel): Plugin {
  return {
    name: 'portmap',
    description: 'publishes container ports on the host (Docker -p) with nftables maps',
    // Every version, like the reference: a 0.1.0/0.2.0 prevResult is converted by the skel like anywhere else.
    // It never opens CNI_NETNS for its work (it works from prevResult on the host side); ADD only reads the
    // container's default-route metrics there.
    ignoresNetns: true,
    add: (inv) => add(inv, kernel),
    del,
    check,
    gc,
  };
}
