// The macvlan plugin: the reference macvlan, plus Docker's trunk mode
// (`vlan`: the parent is the 802.1q sub-interface <master>.<vlan>, created
// when missing and deleted with its last user when we created it).

import { cniArgsOf } from '../../lib/cni/args';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { ipamAdd, ipamCheck, ipamDel, ipamGc, ipamStatus, type InProcessIpam } from '../../lib/cni/ipam';
import type { GcInvocation, Invocation, Plugin, Result } from '../../lib/cni/plugin';
import type { Kernel } from '../../lib/kernel';
import { openContainerNetns } from '../../lib/netns';
import type { Link, Rtnl } from '../../lib/netlink';
import { ErrorList } from '../../lib/util/errors';
import { Rollback, describeRollbackErrors } from '../../lib/util/rollback';
import { MACVLAN_ARGS, parseMacvlanConfig, type MacvlanConfig } from './config';
import {
  attachSubInterface, configureInterface, createMacvlan, deleteContainerInterface, releaseSubInterfaces, resolveMaster, writeSysctls,
} from './link';
import { buildResult, checkProblems, effectiveMtu, planInterface } from './plan';
import { staleUserRecords, subInterfaceName, userRecordName } from './trunk';
import { TrunkState } from './trunk-state';

/** host-local runs in-process (no fork+exec of a second Node); any other IPAM type is exec'd from CNI_PATH. */
function configOf(inv: Invocation): MacvlanConfig {
  return parseMacvlanConfig(inv.conf, cniArgsOf(inv, MACVLAN_ARGS));
}

function required(v: string | undefined, name: string): string {
  if (!v) throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${name}] missing`);
  return v;
}

function userOf(inv: Invocation): string {
  return userRecordName({ network: inv.conf.name, containerId: required(inv.env.containerId, 'CNI_CONTAINERID'), ifname: required(inv.env.ifname, 'CNI_IFNAME') });
}

/** The parent of the macvlan: the master, or in trunk mode its sub-interface (the caller attaches/creates it). */
async function findMaster(conf: MacvlanConfig, host: Rtnl, container: Rtnl): Promise<{ rtnl: Rtnl; master: Link }> {
  const rtnl = conf.linkInContainer ? container : host;
  return { rtnl, master: await resolveMaster(rtnl, conf.master, conf.linkInContainer ? 'container' : 'host') };
}

async function add(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<Result> {
  const conf = configOf(inv);
  const netnsPath = required(inv.env.netns, 'CNI_NETNS');
  const ifname = required(inv.env.ifname, 'CNI_IFNAME');
  const ns = openContainerNetns(netnsPath, 'macvlan', (p) => kernel.openNetns(p));
  const host = kernel.openRtnl();
  const container = kernel.openRtnl(ns);
  const state = new TrunkState(conf.dataDir);
  try {
    return await Rollback.run(async (undo) => {
      const { rtnl, master } = await findMaster(conf, host, container);
      let parent = master;
      if (conf.vlan) {
        const user = userOf(inv);
        parent = await attachSubInterface({ rtnl: host, state, master, vlan: conf.vlan, user });
        undo.push(`release sub-interface ${parent.name}`, async () => {
          const errs = await releaseSubInterfaces({ rtnl: host, state, staleUsers: (_s, users) => users.filter((u) => u === user) });
          if (errs.length) throw errs[0];
        });
      }
      const mtu = effectiveMtu(conf, parent);
      await createMacvlan({ conf, parentRtnl: rtnl, parent, mtu, ifname, containerNs: conf.linkInContainer ? undefined : ns });
      undo.push(`delete macvlan ${ifname}`, () => deleteContainerInterface(kernel, netnsPath, ifname));

      let ipam: Result | undefined;
      if (conf.ipamType) {
        ipam = await ipamAdd(inv, ipamTypes);
        undo.push('IPAM DEL', () => ipamDel(inv, ipamTypes));
      }
      const plan = planInterface(ifname, ipam);
      writeSysctls(kernel, ns, plan.sysctls);
      const installed = await configureInterface(container, ifname, plan, conf.gwPriority);
      const final = await container.requireLink(ifname);
      return buildResult({ cniVersion: conf.cniVersion, ifname, mac: final.mac, mtu: final.mtu, netns: netnsPath, ipam, installed, dns: conf.dns });
    }, (e) => inv.log?.warn(`rollback: ${describeRollbackErrors([e])}`));
  } finally {
    container.close();
    host.close();
    ns.close();
  }
}

/** Best-effort: IPAM first (like the reference), then the interface, then trunk records; every error reported at the end. */
async function del(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  const errors = new ErrorList();
  await errors.attempt(undefined, () => ipamDel(inv, ipamTypes));
  if (inv.env.netns) await errors.attempt(undefined, () => deleteContainerInterface(kernel, inv.env.netns!, required(inv.env.ifname, 'CNI_IFNAME')));
  const state = new TrunkState(conf.dataDir);
  if (state.subInterfaces().length) {
    const user = userOf(inv);
    const host = kernel.openRtnl();
    try {
      errors.addAll(await releaseSubInterfaces({ rtnl: host, state, staleUsers: (_s, users) => users.filter((u) => u === user) }));
    } finally {
      host.close();
    }
  }
  errors.throwIfAny('macvlan DEL');
}

async function check(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  const netnsPath = required(inv.env.netns, 'CNI_NETNS');
  const ifname = required(inv.env.ifname, 'CNI_IFNAME');
  await ipamCheck(inv, ipamTypes);
  const prev = inv.conf.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'macvlan CHECK: required prevResult missing');
  const idx = (prev.interfaces ?? []).findIndex((i) => i.name === ifname && i.sandbox === netnsPath);
  if (idx < 0) throw new CniError(ErrorCode.Internal, `macvlan CHECK: prevResult has no interface "${ifname}" in sandbox "${netnsPath}"`);
  const ns = openContainerNetns(netnsPath, 'macvlan', (p) => kernel.openNetns(p));
  const host = kernel.openRtnl();
  const container = kernel.openRtnl(ns);
  try {
    const { rtnl, master } = await findMaster(conf, host, container);
    let parent = master;
    if (conf.vlan) {
      const name = subInterfaceName(master.name, conf.vlan);
      const sub = await rtnl.getLink(name);
      if (!sub) throw new CniError(ErrorCode.Internal, `macvlan CHECK: 802.1q sub-interface "${name}" does not exist`);
      parent = sub;
    }
    const link = await container.getLink(ifname);
    if (!link) throw new CniError(ErrorCode.Internal, `macvlan CHECK: interface "${ifname}" does not exist in "${netnsPath}"`);
    const problems = checkProblems(
      {
        ifname, mode: conf.mode, mac: prev.interfaces![idx].mac, parent, configuredMtu: conf.mtu,
        addresses: (prev.ips ?? []).filter((ip) => ip.interface === idx).map((ip) => ip.address),
        routes: (prev.routes ?? []).map((r) => ({ dst: r.dst, gw: r.gw, priority: r.priority, table: r.table })),
      },
      {
        index: link.index, kind: link.kind, mode: link.macvlanMode, mac: link.mac, mtu: link.mtu, parentIndex: link.linkIndex,
        addresses: (await container.listAddresses(ifname)).map((a) => a.cidr),
        routes: await container.listRoutes({ table: 0 }),
      },
    );
    if (problems.length) throw new CniError(ErrorCode.Internal, `macvlan CHECK: ${problems[0]}`, problems.slice(1).join('; ') || undefined);
  } finally {
    container.close();
    host.close();
    ns.close();
  }
}

/** Ready for ADD when the master exists and is up (checked on the host; linkInContainer masters only exist per container), and IPAM is. */
async function status(inv: Invocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  if (!conf.linkInContainer) {
    const host = kernel.openRtnl();
    try {
      let master: Link;
      try {
        master = await resolveMaster(host, conf.master, 'host');
      } catch (err) {
        throw new CniError(ErrorCode.NotAvailable, (err as Error).message);
      }
      if (!master.up) throw new CniError(ErrorCode.NotAvailable, `macvlan: master "${master.name}" is down`);
    } finally {
      host.close();
    }
  }
  await ipamStatus(inv, ipamTypes);
}

/** IPAM GC, then this network's trunk records of attachments no longer valid, then unused sub-interfaces we created. */
async function gc(inv: GcInvocation, ipamTypes: InProcessIpam, kernel: Kernel): Promise<void> {
  const conf = configOf(inv);
  const errors = new ErrorList();
  await errors.attempt(undefined, () => ipamGc(inv, ipamTypes));
  const state = new TrunkState(conf.dataDir);
  if (state.subInterfaces().length) {
    const host = kernel.openRtnl();
    try {
      errors.addAll(await releaseSubInterfaces({ rtnl: host, state, staleUsers: (_s, users) => staleUserRecords(users, conf.name, inv.validAttachments) }));
    } finally {
      host.close();
    }
  }
  errors.throwIfAny('macvlan GC');
}

/** The macvlan plugin over `kernel` (main.ts: HOST_KERNEL); `ipamTypes` run in-process (ipam/index.ts), any other ipam.type is exec'd from CNI_PATH. */
export function makeMacvlanPlugin(ipamTypes: InProcessIpam, kernel: Kernel): Plugin {
  return {
    name: 'macvlan',
    description: 'macvlan interface on a host master (or its 802.1q sub-interface: Docker trunk mode)',
    knownArgs: MACVLAN_ARGS,
    add: (inv) => add(inv, ipamTypes, kernel),
    del: (inv) => del(inv, ipamTypes, kernel),
    check: (inv) => check(inv, ipamTypes, kernel),
    status: (inv) => status(inv, ipamTypes, kernel),
    gc: (inv) => gc(inv, ipamTypes, kernel),
  };
}
