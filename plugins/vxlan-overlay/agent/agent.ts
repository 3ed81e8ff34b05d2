// The long-running overlay agent of one network on one host: joins the
// network, holds the host's subnet and live record, keeps the VXLAN device,
// the bridge and every peer's neighbour/FDB/route entries in line with the
// store, and tells the CNI plugin it is ready (readiness.ts).
//
// Peer state flows one way: store -> this.peers (list at R, watch from R+1,
// re-list on compaction or error) -> desiredPeers -> planSync against what the
// kernel holds -> applySync. Syncs run one at a time; requests coalesce.
// When the store is unreachable nothing is removed: traffic keeps flowing.

import { openRtnl, type Rtnl } from '../../../lib/netlink';
import type { Logger } from '../../../lib/util/log';
import { defaultBridgeName, defaultVxlanName, desiredPeers, gatewayOf, overlayMtu, planSync, vtepCidr, vtepMac } from '../model';
import { removeAgentState, statePath, writeAgentState, type AgentState } from '../readiness';
import { FileStore } from '../store/file-store';
import { OverlayStore, type HostRecord } from '../store/overlay';
import { LeaseNotFoundError, type KvStore, type LeaseId, type WatchHandle } from '../store/types';
import type { OverlayStoreConfig } from '../config';
import { applySync, ensureOverlayBridge, ensureVxlan, findUnderlay, readActual } from './kernel';

export interface AgentOptions {
  network: string;
  hostID: string;
  /** Cluster CIDR; undefined joins a network whose config is already in the store. */
  cidr?: string;
  subnetLength?: number;
  /** VNI and port: defaults (1, 4789) when creating the network; the store's when joining. */
  vni?: number;
  port?: number;
  /** 0: underlay MTU minus the VXLAN overhead. */
  mtu: number;
  /** Device names; default ovbr<vni> and ovx<vni>. */
  bridge?: string;
  vxlan?: string;
  underlayIp?: string;
  underlayDev?: string;
  store: OverlayStoreConfig;
  leaseTtl: number;
  runDir: string;
  reconcileMs: number;
  heartbeatMs: number;
  log: Logger;
}

/** The etcd client (gRPC, protobufs) is loaded only when an etcd store is configured. */
export function openKvStore(cfg: OverlayStoreConfig, callTimeoutMs = 3000): KvStore {
  if (cfg.type === 'file') return new FileStore({ dir: cfg.dir, pollMs: 100 });
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { EtcdStore } = require('../store/etcd-store') as typeof import('../store/etcd-store');
  return new EtcdStore({ endpoints: cfg.endpoints, dialTimeoutMs: 2000, callTimeoutMs });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class Agent {
  private kv!: KvStore;
  private store!: OverlayStore;
  private rtnl!: Rtnl;
  private record!: HostRecord;
  private lease: LeaseId | undefined;
  private leaseOkAt = 0;
  private leaseOk = false;
  private peers = new Map<string, HostRecord>();
  private watch: WatchHandle | undefined;
  private watchGen = 0;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private vxlanIndex = 0;
  private loopTimer: NodeJS.Timeout | undefined;
  private clusterCidr = '';
  private bridge = '';
  private vxlan = '';
  private readonly stateFile: string;

  constructor(readonly o: AgentOptions) {
    this.stateFile = statePath(o.runDir, o.network);
  }

  get subnet(): string {
    return this.record.subnet;
  }

  /** Join: config, subnet, devices, live record, watch, readiness. Retries while the store is unreachable. */
  async start(): Promise<void> {
    const { o } = this;
    this.kv = openKvStore(o.store, Math.max(1000, Math.min(3000, (o.leaseTtl * 1000) / 2)));
    this.store = new OverlayStore(this.kv, o.network);
    this.rtnl = openRtnl();
    const cfg = await this.retry('read the network config', async () => {
      if (o.cidr) return this.store.ensureNetworkConfig({ cidr: o.cidr, subnetLength: o.subnetLength, vni: o.vni, port: o.port });
      const have = await this.store.getConfig();
      if (!have) throw new Error(`network "${o.network}" has no config in the store yet (pass --cidr to create it)`);
      return have;
    });
    this.clusterCidr = cfg.cidr;
    this.bridge = o.bridge ?? defaultBridgeName(cfg.vni);
    this.vxlan = o.vxlan ?? defaultVxlanName(cfg.vni);
    const underlay = await findUnderlay(this.rtnl, { ip: o.underlayIp, dev: o.underlayDev });
    const mtu = overlayMtu({ configured: o.mtu, underlayMtu: underlay.link.mtu, underlayFamily: underlay.family });
    const claim = await this.retry('claim a subnet', () => this.store.claimSubnet(o.hostID));
    o.log.info(`host "${o.hostID}" ${claim.created ? 'leased' : 'kept'} subnet ${claim.subnet} of ${cfg.cidr}; underlay ${underlay.ip} (${underlay.link.name}), MTU ${mtu}`);
    this.record = {
      hostID: o.hostID, underlayIP: underlay.ip, vtepMAC: vtepMac(claim.subnet), vni: cfg.vni, port: cfg.port, mtu, subnet: claim.subnet,
    };
    await this.ensureDevices(underlay.link.index);
    await this.retry('publish the live record', () => this.renewLease());
    await this.retry('list the hosts', () => this.relist());
    await this.requestSync();
    this.writeState();
    this.every(o.heartbeatMs, () => this.writeState());
    this.loop(Math.max(250, Math.floor((o.leaseTtl * 1000) / 3)), () => this.keepAlive());
    this.every(o.reconcileMs, () => void this.requestSync(true));
    this.every(Math.min(1000, o.reconcileMs), () => void this.checkDevice());
  }

  /** SIGTERM: stop programming, drop the live record (peers remove us at once), keep the subnet. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.loopTimer) clearTimeout(this.loopTimer);
    this.watch?.cancel();
    removeAgentState(this.stateFile);
    try { await this.syncing; } catch { /* logged */ }
    if (this.lease !== undefined) {
      try { await this.kv.revokeLease(this.lease); } catch (err) { this.o.log.warn(`revoking lease ${this.lease}: ${msg(err)}`); }
    }
    await this.kv.close().catch(() => undefined);
    this.rtnl.close();
  }

  // ---- store side ----------------------------------------------------------

  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
      if (this.stopped) throw new Error('agent stopped');
      try {
        return await fn();
      } catch (err) {
        // A config conflict or a full CIDR will not fix itself.
        if ((err as { reason?: string }).reason && (err as { reason?: string }).reason !== 'contention') throw err;
        this.o.log.warn(`could not ${what}: ${msg(err)}; retrying in ${delay} ms`);
        await sleep(delay);
      }
    }
  }

  /** A new lease and the live record on it. */
  private async renewLease(): Promise<void> {
    const lease = await this.kv.grantLease(this.o.leaseTtl);
    await this.store.publishHost(this.record, lease);
    const old = this.lease;
    this.lease = lease;
    this.setLeaseOk(true);
    if (old !== undefined && old !== lease) await this.kv.revokeLease(old).catch(() => false);
  }

  private async keepAlive(): Promise<void> {
    try {
      if (this.lease === undefined) throw new LeaseNotFoundError('none');
      await this.kv.keepAlive(this.lease);
      this.setLeaseOk(true);
    } catch (err) {
      if (this.stopped) return;
      if (err instanceof LeaseNotFoundError) {
        this.o.log.warn(`lease ${this.lease} is gone; publishing the live record again`);
        try { await this.renewLease(); return; } catch (e) { this.o.log.warn(`re-publishing: ${msg(e)}`); }
      } else {
        this.o.log.warn(`keepalive of lease ${this.lease}: ${msg(err)}`);
      }
      if (Date.now() - this.leaseOkAt > this.o.leaseTtl * 1000) this.setLeaseOk(false);
    }
  }

  private setLeaseOk(ok: boolean): void {
    if (ok) this.leaseOkAt = Date.now();
    if (ok === this.leaseOk) return;
    this.leaseOk = ok;
    if (!this.stopped && this.vxlanIndex) this.writeState();
  }

  /** List at R, watch from R+1; a compaction or a broken watch lists again. */
  private async relist(): Promise<void> {
    const gen = ++this.watchGen;
    this.watch?.cancel();
    const { hosts, revision } = await this.store.listHosts();
    if (gen !== this.watchGen || this.stopped) return;
    this.peers = new Map(hosts.map((h) => [h.hostID, h]));
    const again = (why: string): void => {
      if (gen !== this.watchGen || this.stopped) return;
      this.o.log.warn(`${why}; listing the hosts again`);
      void this.retry('list the hosts', () => this.relist()).catch(() => undefined);
    };
    this.watch = this.store.watchHosts(revision + 1, {
      onChanges: (changes) => {
        if (gen !== this.watchGen) return;
        for (const c of changes) {
          if (c.type === 'put') this.peers.set(c.host.hostID, c.host);
          else this.peers.delete(c.hostID);
        }
        void this.requestSync();
      },
      onCompacted: () => again('the store compacted the history the watch needed'),
      onError: (err) => again(`the watch ended: ${err.message}`),
    });
    void this.requestSync();
  }

  // ---- kernel side ---------------------------------------------------------

  private async ensureDevices(underlayIndex?: number): Promise<void> {
    const { record } = this;
    const index = underlayIndex ?? (await findUnderlay(this.rtnl, { ip: record.underlayIP })).link.index;
    const vx = await ensureVxlan(this.rtnl, {
      name: this.vxlan, vni: record.vni, port: record.port, local: record.underlayIP, underlayIndex: index,
      mtu: record.mtu, mac: record.vtepMAC, cidr: vtepCidr(record.subnet, this.clusterCidr),
    });
    this.vxlanIndex = vx.index;
    await ensureOverlayBridge(this.rtnl, { name: this.bridge, mtu: record.mtu, gatewayCidr: gatewayOf(record.subnet).cidr });
  }

  /** Make the kernel match the store; `full` also re-checks the devices. Calls coalesce; one runs at a time. */
  requestSync(full = false): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        do {
          this.syncAgain = false;
          if (full) await this.ensureDevices();
          const desired = desiredPeers(this.peers.values(), this.record);
          const ops = planSync(desired, await readActual(this.rtnl, this.vxlanIndex));
          if (ops.length) this.o.log.info(`sync: ${ops.map((x) => `${x.op} ${Object.values(x).slice(1).join(' ')}`).join(', ')}`);
          await applySync(this.rtnl, this.vxlanIndex, ops);
        } while (this.syncAgain && !this.stopped);
      } catch (err) {
        this.o.log.warn(`sync failed (retrying at the next reconcile): ${msg(err)}`);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  /** A deleted or replaced VXLAN device is repaired at once, not at the next reconcile. */
  private async checkDevice(): Promise<void> {
    const link = await this.rtnl.getLink(this.vxlan).catch(() => undefined);
    if (!link || link.index !== this.vxlanIndex || !link.up) {
      this.o.log.warn(`VXLAN device "${this.vxlan}" is ${link ? 'changed' : 'gone'}; repairing`);
      await this.requestSync(true);
    }
  }

  private writeState(): void {
    if (this.stopped) return;
    const s: AgentState = {
      network: this.o.network, hostID: this.o.hostID, pid: process.pid, subnet: this.record.subnet, cidr: this.clusterCidr,
      gateway: gatewayOf(this.record.subnet).ip, bridge: this.bridge, vxlan: this.vxlan, mtu: this.record.mtu,
      leaseOk: this.leaseOk, heartbeat: Date.now(), heartbeatMs: this.o.heartbeatMs,
    };
    try { writeAgentState(this.stateFile, s); } catch (err) { this.o.log.warn(`writing ${this.stateFile}: ${msg(err)}`); }
  }

  private every(ms: number, fn: () => void): void {
    this.timers.push(setInterval(() => { if (!this.stopped) fn(); }, ms));
  }

  /** Like every(), but the next run waits for the previous one (keepalives must not pile up). */
  private loop(ms: number, fn: () => Promise<void>): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.loopTimer = setTimeout(() => void fn().finally(tick), ms);
    };
    tick();
  }
}
