// tuning: a chained plugin that sets sysctls and interface attributes
// (mac, mtu, promisc, allmulti, txQLen) inside the container's namespace,
// like the reference tuning plugin, and puts the attributes back on DEL.

import { cniArgsOf } from '../../lib/cni/args';
import { CniError, ErrorCode, invalidConfig } from '../../lib/cni/errors';
import type { GcInvocation, Invocation, Plugin, Result } from '../../lib/cni/plugin';
import type { Kernel } from '../../lib/kernel';
import type { Link, Rtnl } from '../../lib/netlink';
import { openContainerNetns, openContainerNetnsIfPresent } from '../../lib/netns';
import { Rollback, describeRollbackErrors } from '../../lib/util/rollback';
import { listBackups, readBackup, removeBackup, writeBackup } from './backup';
import { changesLink, checkAllowlist, parseTuningConfig, parseTuningDataDir, type TuningConfig } from './config';
import { applyAttributes, readAllowlist, readSysctls, writeContainerSysctl } from './kernel';
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
          try { await applyAttributes(r, await containerLink(r, ifname), original, 'restore'); } finally { r.close(); }
        });
        await applyAttributes(rtnl, link, cfg.link, 'add');
      } finally {
        rtnl.close();
      }
    }, (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`));
  } finally {
    netns.close();
  }
  return resultWithMac(prev, ifname, cfg.link.mac);
}


/**
 * Put the saved attributes back and drop the record. Without the namespace or
 * the interface there is nothing to restore. A restore the kernel refuses is
 * logged, not returned: a failing DEL would stop the runtime's teardown of the
 * rest of the chain, and every retry would meet the same refusal.
 */
async function del(inv: Invocation, kernel: Kernel): Promise<void> {
  const dataDir = dataDirOf(inv);
  const containerID = inv.env.containerId!;
  const ifname = inv.env.ifname!;
  const rec = readBackup(dataDir, containerID, ifname);
  if (!rec) return;
  const netns = openContainerNetnsIfPresent(inv.env.netns, kernel.openNetns);
  if (netns) {
    try {
      const rtnl = kernel.openRtnl(netns);
      try {
        const link = await rtnl.getLink(ifname);
        if (link) await applyAttributes(rtnl, link, rec, 'restore');
      } finally {
        rtnl.close();
      }
    } catch (err) {
      inv.log?.warn(`could not restore the original attributes of "${ifname}": ${(err as Error).message}`);
    } finally {
      netns.close();
    }
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
