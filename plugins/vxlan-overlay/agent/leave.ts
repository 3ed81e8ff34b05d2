// `vxlan-overlay leave`: the network leaves this host for good. The subnet
// goes back to the store, and nothing of it stays here: no VXLAN device (and
// with it no peer neighbour, FDB entry or route), no bridge with its gateway
// addresses and connected routes, no IPAM state, no readiness file. Another
// host may lease the subnet next and must be reachable from everywhere,
// including from here. Containers still attached would keep addresses of
// that subnet, so leave refuses until they are removed (CNI DEL works without
// the agent). Masquerade chains, DNS and isolation of the network go with its
// last container (DEL), not here.

import * as fs from 'fs';
import * as path from 'path';
import { openRtnl } from '../../../lib/netlink';
import type { Logger } from '../../../lib/util/log';
import { RecordDir } from '../../../lib/bridge/records';
import { DiskStore } from '../../../ipam/host-local';
import { defaultBridgeName, defaultVxlanName } from '../model';
import { attachmentsDir, pidAlive, readAgentState, removeAgentState, statePath } from '../readiness';
import { OverlayStore } from '../store/overlay';
import { openKvStore } from './agent';
import { removeOverlayDevices } from './kernel';
import type { CliOptions } from './options';

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** The network's host-local directory, when it holds no reservation (its lock and last-reserved files name the old subnet). */
function removeIpamState(dataDir: string, network: string): boolean {
  const store = new DiskStore(dataDir, network);
  if (!store.exists()) return false;
  const empty = store.withLock((tx) => tx.all().length === 0);
  if (!empty) return false;
  fs.rmSync(store.dir, { recursive: true, force: true });
  return true;
}

function rmdirIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch { /* not empty, or gone */ }
}

export async function runLeave(o: CliOptions & { hostID: string }, log: Logger): Promise<number> {
  const records = new RecordDir(attachmentsDir(o.runDir, o.network), o.network);
  const attached = records.list();
  if (attached.length > 0) {
    const ids = attached.slice(0, 5).map((r) => `${r.containerId.slice(0, 12)}/${r.ifname}`).join(', ');
    throw new Error(`${attached.length} container(s) of network "${o.network}" are still attached on this host (${ids}${attached.length > 5 ? ', ...' : ''}): remove them (CNI DEL) before leave`);
  }
  const file = statePath(o.runDir, o.network);
  const state = readAgentState(file);
  if (state && pidAlive(state.pid)) {
    process.kill(state.pid, 'SIGTERM');
    if (!(await waitGone(state.pid, 5000))) throw new Error(`the agent (pid ${state.pid}) did not stop within 5 s`);
  }
  const kv = openKvStore(o.store);
  let vni = o.vni;
  try {
    const store = new OverlayStore(kv, o.network);
    vni ??= (await store.getConfig())?.vni;
    const released = await store.releaseSubnet(o.hostID);
    log.info(released.length ? `host "${o.hostID}" released ${released.join(', ')}` : `host "${o.hostID}" held no subnet`);
  } finally {
    await kv.close();
  }
  const vxlan = o.vxlan ?? state?.vxlan ?? (vni ? defaultVxlanName(vni) : undefined);
  const bridge = o.bridge ?? state?.bridge ?? (vni ? defaultBridgeName(vni) : undefined);
  const rtnl = openRtnl();
  try {
    const removed = await removeOverlayDevices(rtnl, { vxlan, bridge });
    if (removed.length) log.info(`removed ${removed.join(' and ')}`);
  } finally {
    rtnl.close();
  }
  if (removeIpamState(o.ipamDataDir, o.network)) log.info(`removed the address reservations directory of "${o.network}" in ${o.ipamDataDir}`);
  removeAgentState(file);
  rmdirIfEmpty(records.dir);
  rmdirIfEmpty(path.join(o.runDir, o.network));
  return 0;
}
