// tuning: a chained plugin that sets sysctls and interface attributes
// (mac, mtu, promisc, allmulti, txQLen) inside the container's namespace,
// like the reference tuning plugin, and puts the attributes back on DEL.

import { cniArgsOf } from '../../lib/cni/args';
import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors';
import type { GcInvocation, Invocation, Plugin, Result } from '../../lib/cni/plugin';
import type { Kernel } from '../../lib/kernel';
import { isTransient, type Link, type Rtnl } from '../../lib/netlink';
import { openContainerNetns, openContainerNetnsIfPresent, type Netns } from '../../lib/netns';
import { Rollback, describeRollbackErrors } from '../../lib/util/rollback';
import { listBackups, readBackup, removeBackup, writeBackup, type BackupRecord, type OriginalAttributes } from './backup';
import { changesLink, checkAllowlist, parseTuningConfig, parseTuningDataDir, type TuningConfig } from './config';
import { applyAttributes, readAllowlist, readSysctls, restoreAttributes, writeContainerSysctl, type RestoreFailure } from './kernel';
import { linkMismatches, originalsOf, resultWithMac, sameSysctlValue } from './plan';

const KNOWN_ARGS = ['MAC'];

function configOf(inv: Invocation): TuningConfig {
  return parseTuningConfig(inv.conf, { ifname: inv.env.ifname, cniArgs: cniArgsOf(inv, KNOWN_ARGS), rawConfig: inv.raw.toString('utf8') });
}

/** DEL, GC and STATUS need only the data dir: a config ADD refused (a bad sysctl) must still DEL cleanly. */
function dataDirOf(inv: Invocation): string {
  return parseTuningDataDir(inv.conf);
}

function requirePrevResult(cfg: TuningConfig): Result {
  if (!cfg.prevResult) throw invalidConfig('tuning: Required prevResult missing (tuning must be chained after an interface plugin)');
  return cfg.prevResult;
}

async function containerLink(rtnl: Rtnl, ifname: string): Promise<Link> {
  const link = await rtnl.getLink(ifname);
  if (!link) throw new CniError(ErrorCode.Internal, `tuning: the container has no interface "${ifname}"`);
  return link;
}

async function add(inv: Invocation, kernel: Kernel): Promise<Result> {
  const cfg = configOf(inv);
  checkAllowlist(cfg.sysctls, readAllowlist());
  const prev = requirePrevResult(cfg);
  const containerID = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const netns = openContainerNetns(inv.env.netns, 'tuning', kernel.openNetns);
  try {
    await Rollback.run(async (undo) => {
      const before = readSysctls(kernel.sysctl, netns, cfg.sysctls);
      cfg.sysctls.forEach((s, n) => {
        writeContainerSysctl(kernel.sysctl, netns, s);
        undo.push(`restore sysctl ${s.key}`, () => writeContainerSysctl(kernel.sysctl, netns, s, before[n]));
      });
      if (!changesLink(cfg.link)) return;
      const rtnl = kernel.openRtnl(netns);
      try {
        const link = await containerLink(rtnl, ifname);
        const original = originalsOf(link, cfg.link);
        writeBackup(cfg.dataDir, containerID, ifname, { ...original, network: cfg.network, containerID, ifname });
        undo.push('remove the backup record', () => removeBackup(cfg.dataDir, containerID, ifname));
        undo.push('restore the interface', async () => {
          const r = kernel.openRtnl(netns);
          try {
            const failed = await restoreAttributes(r, await containerLink(r, ifname), original);
            if (failed.length) throw new Error(describeFailures(failed, ifname));
          } finally {
            r.close();
          }
        });
        await applyAttributes(rtnl, link, cfg.link);
      } finally {
        rtnl.close();
      }
    }, (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`));
  } finally {
    netns.close();
  }
  return resultWithMac(prev, ifname, cfg.link.mac);
}


function describeFailures(failed: readonly RestoreFailure[], ifname: string): string {
  return failed.map((f) => `could not restore ${f.attribute} of "${ifname}": ${f.error.message}`).join('; ');
}

/** The saved attributes the kernel refused to take back, as failures; a lookup that failed fails them all. */
async function restoreInContainer(kernel: Kernel, netns: Netns, ifname: string, rec: OriginalAttributes): Promise<RestoreFailure[]> {
  const rtnl = kernel.openRtnl(netns);
  try {
    const link = await rtnl.getLink(ifname);
    return link ? await restoreAttributes(rtnl, link, rec) : [];
  } catch (err) {
    return (Object.keys(rec) as Array<keyof OriginalAttributes>).map((attribute) => ({ attribute, error: err as Error }));
  } finally {
    rtnl.close();
  }
}

/** The record with only `keep` of its attributes (its identity fields stay). */
function recordOf(rec: BackupRecord, keep: ReadonlySet<string>): BackupRecord {
  const { network, containerID, ifname, ...attributes } = rec;
  const left = Object.fromEntries(Object.entries(attributes).filter(([k]) => keep.has(k)));
  return { ...left, network, containerID, ifname };
}

/**
 * Put the saved attributes back and drop the record. Without the namespace or the interface there is nothing to
 * restore. Each attribute is restored on its own. One the kernel refuses is logged and given up, like the
 * reference does: a failing DEL would stop the runtime's teardown of the rest of the chain, and every retry would
 * meet the same refusal. One that failed for a passing reason (ENOBUFS, ENOMEM, EBUSY...) stays in the record
 * and DEL answers "try again later" (11), so the runtime's retry finishes the restore.
 */
async function del(inv: Invocation, kernel: Kernel): Promise<void> {
  const dataDir = dataDirOf(inv);
  const containerID = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const rec = readBackup(dataDir, containerID, ifname);
  if (!rec) return;
  const netns = openContainerNetnsIfPresent(inv.env.netns, kernel.openNetns);
  let failed: RestoreFailure[] = [];
  if (netns) {
    try {
      failed = await restoreInContainer(kernel, netns, ifname, rec);
    } finally {
      netns.close();
    }
  }
  const retry = failed.filter((f) => isTransient(f.error));
  const refused = failed.filter((f) => !isTransient(f.error));
  if (refused.length) inv.log?.warn(`${describeFailures(refused, ifname)} (given up)`);
  if (retry.length) {
    writeBackup(dataDir, containerID, ifname, recordOf(rec, new Set(retry.map((f) => f.attribute))));
    throw new CniError(ErrorCode.TryAgainLater, `tuning: ${describeFailures(retry, ifname)}; a repeated DEL finishes the restore`);
  }
  removeBackup(dataDir, containerID, ifname);
}

async function check(inv: Invocation, kernel: Kernel): Promise<void> {
  const cfg = configOf(inv);
  requirePrevResult(cfg);
  const ifname = inv.env.ifname!;
  const netns = openContainerNetns(inv.env.netns, 'tuning', kernel.openNetns);
  try {
    const current = readSysctls(kernel.sysctl, netns, cfg.sysctls);
    cfg.sysctls.forEach((s, n) => {
      if (!sameSysctlValue(s.value, current[n])) throw new CniError(ErrorCode.Internal, `tuning CHECK: sysctl ${s.key} is ${JSON.stringify(current[n])}, configured ${JSON.stringify(s.value)}`);
    });
    const rtnl = kernel.openRtnl(netns);
    try {
      const wrong = linkMismatches(await containerLink(rtnl, ifname), cfg.link);
      if (wrong.length) throw new CniError(ErrorCode.Internal, `tuning CHECK: ${wrong.join('; ')}`);
    } finally {
      rtnl.close();
    }
  } finally {
    netns.close();
  }
}

/** Records of this network's attachments the runtime no longer has: their interfaces are gone, so only the files go. */
async function gc(inv: GcInvocation): Promise<void> {
  const dataDir = dataDirOf(inv);
  const valid = new Set(inv.validAttachments.map((a) => `${a.containerID}\0${a.ifname}`));
  for (const a of listBackups(dataDir, inv.conf.name)) {
    if (!valid.has(`${a.containerID}\0${a.ifname}`)) removeBackup(dataDir, a.containerID, a.ifname);
  }
}

async function status(inv: Invocation): Promise<void> {
  dataDirOf(inv);
}

/** The tuning plugin over `kernel` (main.ts: HOST_KERNEL). */
export function makeTuningPlugin(kernel: Kernel): Plugin {
  return {
    name: 'tuning',
    description: 'sets sysctls and interface attributes (mac, mtu, promisc, allmulti, txQLen) in the container; DEL restores them',
    knownArgs: KNOWN_ARGS,
    add: (inv) => add(inv, kernel),
    del: (inv) => del(inv, kernel),
    check: (inv) => check(inv, kernel),
    gc,
    status,
  };
}
