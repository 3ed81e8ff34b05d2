// The long-running overlay agent of one network on one host: joins the
// network, holds the host's subnet and live record, keeps the VXLAN device,
// the bridge and every peer's neighbour/FDB/route entries in line with the
// store, and tells the CNI plugin it is ready (readiness.ts).
//
// Peer state flows one way: store -> PeerTable (list at R, watch from R+1) ->
// kernel. A watch event changes one host, and the table answers with the few
// ops that host needs (no listing, no diff of every peer): the cost of an
// event does not grow with the cluster. Every reconcile interval (stretched
// beyond 100 peers, model.reconcileInterval) the kernel's entries are dumped
// and planSync diffs them against the table (repairing what someone removed
// by hand); a failed batch brings one sooner. The whole store is read only on
// start and when the watch breaks, at most once per reconcile interval.
// Kernel work runs one batch at a time. When the store is unreachable nothing is
// removed: traffic keeps flowing.

import { openRtnl, type Rtnl } from '../../../lib/netlink';
import type { Logger } from '../../../lib/util/log';
import {
  defaultBridgeName, defaultVxlanName, describeOps, gatewayOf, overlayMtu, PeerTable, planSync, reconcileInterval, relistDelay, vtepCidr, vtepCidr6, vtepMac,
  type SyncOp,
} from '../model';
import { removeAgentState, statePath, writeAgentState, type AgentState } from '../readiness';
import { FileStore } from '../store/file-store';
import { OverlayStore, type HostRecord, type OverlayNetworkConfig } from '../store/overlay';
import { LeaseNotFoundError, type KvStore, type LeaseId, type WatchHandle } from '../store/types';
import type { OverlayStoreConfig } from '../config';
import { applySync, ensureOverlayBridge, ensureVxlan, findUnderlay, readActual } from './kernel';

export interface AgentOptions {
  network: string;
  hostID: string;
  /** Cluster CIDR; undefined joins a network whose config is already in the store. */
  cidr?: string;
  subnetLength?: number;
  /** Dual-stack: the IPv6 cluster CIDR (with cidr; a network already in the store may have one). */
  ipv6Cidr?: string;
  ipv6SubnetLength?: number;
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
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: etcd3 only for an etcd store
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
  private table!: PeerTable;
  private watch: WatchHandle | undefined;
  private watchGen = 0;
  private lastListAt = 0;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  /** Kernel work waiting for the one runner: event ops in order, or a full reconcile (which covers them). */
  private pendingOps: SyncOp[] = [];
  private fullWanted = false;
  private devicesWanted = false;
  /** Log the next reconcile's size and time even when it changes nothing (SIGHUP). */
  private reportWanted = false;
  private running: Promise<void> | undefined;
  private vxlanIndex = 0;
  private loopTimers = new Set<NodeJS.Timeout>();
  /** A failed batch: a full reconcile soon, backing off (1 s, 2 s, ... up to the reconcile interval). */
  private repairTimer: NodeJS.Timeout | undefined;
  private repairDelay = 0;
  private cfg!: OverlayNetworkConfig;
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
      if (o.cidr) {
        return this.store.ensureNetworkConfig({
          cidr: o.cidr, subnetLength: o.subnetLength, vni: o.vni, port: o.port, ipv6Cidr: o.ipv6Cidr, ipv6SubnetLength: o.ipv6SubnetLength,
        });
      }
      if (o.ipv6Cidr) throw new Error('--ipv6-cidr needs --cidr (the IPv4 cluster CIDR)');
      const have = await this.store.getConfig();
      if (!have) throw new Error(`network "${o.network}" has no config in the store yet (pass --cidr to create it)`);
      return have;
    });
    this.cfg = cfg;
    this.bridge = o.bridge ?? defaultBridgeName(cfg.vni);
    this.vxlan = o.vxlan ?? defaultVxlanName(cfg.vni);
    const underlay = await findUnderlay(this.rtnl, { ip: o.underlayIp, dev: o.underlayDev });
    const mtu = overlayMtu({ configured: o.mtu, underlayMtu: underlay.link.mtu, underlayFamily: underlay.family });
    const claim = await this.retry('claim a subnet', () => this.store.claimSubnet(o.hostID));
    const subnets = claim.subnet6 ? `subnets ${claim.subnet} and ${claim.subnet6} of ${cfg.cidr} and ${cfg.ipv6Cidr}` : `subnet ${claim.subnet} of ${cfg.cidr}`;
    o.log.info(`host "${o.hostID}" ${claim.created ? 'leased' : 'kept'} ${subnets}; underlay ${underlay.ip} (${underlay.link.name}), MTU ${mtu}`);
    this.record = {
      hostID: o.hostID, underlayIP: underlay.ip, vtepMAC: vtepMac(claim.subnet), vni: cfg.vni, port: cfg.port, mtu, subnet: claim.subnet,
      ...(claim.subnet6 ? { subnet6: claim.subnet6 } : {}),
    };
    this.table = new PeerTable({ hostID: o.hostID, subnet: claim.subnet, subnet6: claim.subnet6, underlayFamily: underlay.family });
    await this.ensureDevices(underlay.link.index);
    await this.retry('publish the live record', () => this.renewLease());
    await this.retry('list the hosts', () => this.relist());
    this.writeState();
    this.every(o.heartbeatMs, () => this.writeState());
    this.loop(() => Math.max(250, Math.floor((o.leaseTtl * 1000) / 3)), () => this.keepAlive());
    this.loop(() => reconcileInterval(o.reconcileMs, this.table.size), () => this.reconcile(true));
    this.every(Math.min(1000, o.reconcileMs), () => void this.checkDevice());
  }

  /** SIGTERM: stop programming, drop the live record (peers remove us at once), keep the subnet. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const t of this.loopTimers) clearTimeout(t);
    if (this.repairTimer) clearTimeout(this.repairTimer);
    this.watch?.cancel();
    removeAgentState(this.stateFile);
    try { await this.running; } catch { /* logged */ }
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

  /**
   * List at R, watch from R+1; a compaction or a broken watch lists again, but
   * not sooner than a reconcile interval after the last list (a flapping
   * watch must not turn into a full read of the store per event).
   */
  private async relist(): Promise<void> {
    const gen = ++this.watchGen;
    this.watch?.cancel();
    const wait = relistDelay(this.lastListAt, Date.now(), this.o.reconcileMs);
    if (wait > 0) await sleep(wait);
    if (gen !== this.watchGen || this.stopped) return;
    this.lastListAt = Date.now();
    const { hosts, revision } = await this.store.listHosts();
    if (gen !== this.watchGen || this.stopped) return;
    this.table.replaceAll(hosts);
    const again = (why: string): void => {
      if (gen !== this.watchGen || this.stopped) return;
      this.o.log.warn(`${why}; listing the hosts again`);
      void this.retry('list the hosts', () => this.relist()).catch(() => undefined);
    };
    this.watch = this.store.watchHosts(revision + 1, {
      onChanges: (changes) => {
        if (gen !== this.watchGen) return;
        const ops: SyncOp[] = [];
        for (const c of changes) ops.push(...(c.type === 'put' ? this.table.put(c.host) : this.table.remove(c.hostID)));
        if (ops.length) void this.enqueue(ops);
      },
      onCompacted: () => again('the store compacted the history the watch needed'),
      onError: (err) => again(`the watch ended: ${err.message}`),
    });
    await this.reconcile(false);
  }

  // ---- kernel side ---------------------------------------------------------

  private async ensureDevices(underlayIndex?: number): Promise<void> {
    const { record } = this;
    const index = underlayIndex ?? (await findUnderlay(this.rtnl, { ip: record.underlayIP })).link.index;
    const vx = await ensureVxlan(this.rtnl, {
      name: this.vxlan, vni: record.vni, port: record.port, local: record.underlayIP, underlayIndex: index,
      mtu: record.mtu, mac: record.vtepMAC, cidr: vtepCidr(record.subnet, this.cfg.cidr),
      cidr6: record.subnet6 ? vtepCidr6(record.subnet6) : undefined,
    });
    this.vxlanIndex = vx.index;
    await ensureOverlayBridge(this.rtnl, {
      name: this.bridge, mtu: record.mtu, gatewayCidr: gatewayOf(record.subnet).cidr,
      gatewayCidr6: record.subnet6 ? gatewayOf(record.subnet6).cidr : undefined,
    });
  }

  /** The ops of store events, applied in order by the one runner. */
  private enqueue(ops: readonly SyncOp[]): Promise<void> {
    this.pendingOps.push(...ops);
    return this.kick();
  }

  /** Dump the kernel's entries and make them match the table; `devices` also re-checks the devices first. */
  reconcile(devices: boolean, report = false): Promise<void> {
    this.fullWanted = true;
    if (devices) this.devicesWanted = true;
    if (report) this.reportWanted = true;
    return this.kick();
  }

  /** Start the runner unless it runs; the promise settles when the queue is empty. */
  private kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (!this.running) {
      this.running = this.drain().finally(() => {
        this.running = undefined;
        if (this.pendingOps.length || this.fullWanted) void this.kick();
      });
    }
    return this.running;
  }

  private async drain(): Promise<void> {
    while (!this.stopped && (this.pendingOps.length || this.fullWanted)) {
      const full = this.fullWanted;
      try {
        const started = Date.now();
        const report = full && this.reportWanted;
        let ops: SyncOp[];
        if (full) {
          const devices = this.devicesWanted;
          // The table already holds every event queued so far: the full plan covers their ops.
          this.fullWanted = this.devicesWanted = this.reportWanted = false;
          this.pendingOps = [];
          if (devices) await this.ensureDevices();
          ops = planSync(this.table.desired(), await readActual(this.rtnl, this.vxlanIndex));
        } else {
          ops = this.pendingOps;
          this.pendingOps = [];
        }
        if (ops.length) this.o.log.info(`${full ? 'reconcile' : 'event'}: ${describeOps(ops)}`);
        await applySync(this.rtnl, this.vxlanIndex, ops);
        if (report) this.o.log.info(`reconcile of ${this.table.size} peers: ${ops.length} changes, ${Date.now() - started} ms`);
        if (full) this.repairDelay = 0;
      } catch (err) {
        this.o.log.warn(`${full ? 'reconcile' : 'sync'} failed (a full reconcile follows): ${msg(err)}`);
        this.scheduleRepair();
      }
    }
  }

  private scheduleRepair(): void {
    if (this.repairTimer || this.stopped) return;
    this.repairDelay = Math.min(this.repairDelay ? this.repairDelay * 2 : 1000, this.o.reconcileMs);
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      void this.reconcile(true);
    }, this.repairDelay);
  }

  /** A deleted or replaced VXLAN device is repaired at once, not at the next reconcile. */
  private async checkDevice(): Promise<void> {
    const link = await this.rtnl.getLink(this.vxlan).catch(() => undefined);
    if (!link || link.index !== this.vxlanIndex || !link.up) {
      this.o.log.warn(`VXLAN device "${this.vxlan}" is ${link ? 'changed' : 'gone'}; repairing`);
      await this.reconcile(true);
    }
  }

  private writeState(): void {
    if (this.stopped) return;
    const { record, cfg } = this;
    const s: AgentState = {
      network: this.o.network, hostID: this.o.hostID, pid: process.pid, subnet: record.subnet, cidr: cfg.cidr,
      gateway: gatewayOf(record.subnet).ip, bridge: this.bridge, vxlan: this.vxlan, mtu: record.mtu,
      ...(record.subnet6 ? { subnet6: record.subnet6, cidr6: cfg.ipv6Cidr, gateway6: gatewayOf(record.subnet6).ip } : {}),
      leaseOk: this.leaseOk, heartbeat: Date.now(), heartbeatMs: this.o.heartbeatMs,
    };
    try { writeAgentState(this.stateFile, s); } catch (err) { this.o.log.warn(`writing ${this.stateFile}: ${msg(err)}`); }
  }

  private every(ms: number, fn: () => void): void {
    this.timers.push(setInterval(() => { if (!this.stopped) fn(); }, ms));
  }

  /** Like every(), but the next run waits for the previous one (keepalives must not pile up) and its delay is asked anew. */
  private loop(delayMs: () => number, fn: () => Promise<void>): void {
    const tick = (): void => {
      if (this.stopped) return;
      const t = setTimeout(() => {
        this.loopTimers.delete(t);
        void fn().finally(tick);
      }, delayMs());
      this.loopTimers.add(t);
    };
    tick();
  }
}
