// The overlay store over etcd v3 (several hosts): a thin mapping of KvStore
// onto the raw KV, Lease and Watch RPCs of the `etcd3` client. etcd does the
// consensus, revisions, lease expiry and compaction; we only translate.

import { Etcd3, EtcdLeaseInvalidError, IKeyValue, IRequestOp, Watcher } from 'etcd3';
import {
  Compare, DeleteOptions, KeyValue, KvStore, LeaseId, LeaseNotFoundError, ListResult, PutOptions,
  prefixRangeEnd, TxnOp, TxnRequest, TxnResult, WatchEvent, WatchHandle, WatchListener,
} from './types';

export interface EtcdStoreOptions {
  /** Client URLs, e.g. ["http://10.0.0.1:2379"]. */
  endpoints: string[];
  /** Give up connecting after this many ms (default 5000). */
  dialTimeoutMs?: number;
  /** Deadline of one call, ms (default 10000): a dead cluster fails calls instead of hanging them. */
  callTimeoutMs?: number;
}

export class EtcdStore implements KvStore {
  readonly client: Etcd3;
  private readonly callTimeoutMs: number;
  private readonly watchers = new Set<Watcher>();

  constructor(opts: EtcdStoreOptions) {
    if (opts.endpoints.length === 0) throw new Error('etcd store needs at least one endpoint');
    const callTimeout = opts.callTimeoutMs ?? 10000;
    this.callTimeoutMs = callTimeout;
    this.client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: opts.dialTimeoutMs ?? 5000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeout }),
    });
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.client.kv.range({ key: Buffer.from(key) });
    return res.kvs.length > 0 ? fromEtcd(res.kvs[0]) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    const res = await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixRangeEnd(prefix) });
    return { kvs: res.kvs.map(fromEtcd), revision: Number(res.header.revision) };
  }

  async put(key: string, value: string, opts: PutOptions = {}): Promise<number> {
    const res = await this.withLease(opts.lease, () => this.client.kv.put(putRequest(key, value, opts.lease)));
    return Number(res.header.revision);
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<number> {
    const res = await this.client.kv.deleteRange(deleteRequest(key, opts.prefix));
    return Number(res.deleted);
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    const leases = [...req.success, ...(req.failure ?? [])].map((op) => (op.type === 'put' ? op.lease : undefined)).find((l) => l !== undefined);
    const res = await this.withLease(leases, () =>
      this.client.kv.txn({
        compare: req.compare.map(toEtcdCompare),
        success: req.success.map(toEtcdOp),
        failure: (req.failure ?? []).map(toEtcdOp),
      }),
    );
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async grantLease(ttlSeconds: number): Promise<LeaseId> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new Error(`lease TTL must be a whole number of seconds ≥ 1, got ${ttlSeconds}`);
    const res = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
    if (res.error) throw new Error(`etcd refused the lease: ${res.error}`);
    return String(res.ID);
  }

  async keepAlive(id: LeaseId): Promise<number> {
    const stream = await this.client.leaseClient.leaseKeepAlive();
    try {
      const res = await new Promise<{ TTL: string }>((resolve, reject) => {
        // A stream has no call deadline: bound the wait for the one answer here.
        const timer = setTimeout(() => reject(new Error(`etcd did not answer the keepalive of lease ${id} in ${this.callTimeoutMs} ms`)), this.callTimeoutMs);
        stream.on('data', (r) => { clearTimeout(timer); resolve(r); });
        stream.on('error', (e) => { clearTimeout(timer); reject(e); });
        stream.write({ ID: id });
      });
      const ttl = Number(res.TTL);
      if (ttl <= 0) throw new LeaseNotFoundError(id);
      return ttl;
    } finally {
      stream.end();
    }
  }

  async revokeLease(id: LeaseId): Promise<boolean> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id });
      return true;
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) return false;
      throw err;
    }
  }

  watch(prefix: string, fromRevision: number, listener: WatchListener): WatchHandle {
    let ended = false;
    let watcher: Watcher | undefined;
    const end = (): void => {
      ended = true;
      if (watcher) {
        this.watchers.delete(watcher);
        watcher.removeAllListeners();
        watcher.on('error', () => undefined);
        void watcher.cancel().catch(() => undefined);
      }
    };
    const start = Math.max(1, fromRevision);
    let lastSeen = start - 1; // the client's own lastRevision() jumps to the head on connect: track ours
    this.client.watch().prefix(prefix).startRevision(String(start)).create().then(
      (w) => {
        watcher = w;
        if (ended) return end();
        this.watchers.add(w);
        w.on('data', (res) => {
          if (ended) return;
          const events: WatchEvent[] = res.events.map((e) => ({
            type: e.type === 'Put' ? 'put' : 'delete',
            key: e.kv.key.toString(),
            value: e.type === 'Put' ? e.kv.value.toString() : '',
            modRevision: Number(e.kv.mod_revision),
            ...(e.type === 'Put' && e.kv.lease !== '0' ? { lease: String(e.kv.lease) } : {}),
          }));
          if (events.length > 0) {
            lastSeen = events[events.length - 1].modRevision;
            listener.onEvents(events);
          }
        });
        // The client would resume a broken stream from the head it saw last,
        // which can skip history still being replayed: end the watch instead,
        // so the caller lists again and watches from there.
        w.on('disconnected', (err) => {
          if (ended) return;
          end();
          listener.onError?.(new Error(`watch of ${prefix} lost its etcd stream: ${err.message}`));
        });
        // etcd cancels a watch whose start was compacted away; the client
        // reports that as a bare error, so ask etcd whether that is the reason.
        w.on('error', (err) => {
          if (ended) return;
          end();
          void this.isCompacted(prefix, lastSeen + 1).then(
            (compacted) => (compacted ? listener.onCompacted() : listener.onError?.(err)),
            () => listener.onError?.(err),
          );
        });
      },
      (err: Error) => {
        if (ended) return;
        ended = true;
        listener.onError?.(err);
      },
    );
    return { cancel: end };
  }

  async compact(revision: number): Promise<void> {
    await this.client.kv.compact({ revision, physical: true });
  }

  async close(): Promise<void> {
    for (const w of this.watchers) {
      w.removeAllListeners();
      w.on('error', () => undefined);
      await w.cancel().catch(() => undefined);
    }
    this.watchers.clear();
    this.client.close();
  }

  /** Is the history a watch still needs (from revision `needed` on) compacted away? */
  private async isCompacted(prefix: string, needed: number): Promise<boolean> {
    try {
      await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixRangeEnd(prefix), revision: needed, limit: 1 });
      return false;
    } catch (err) {
      return /compacted/.test(String((err as Error).message));
    }
  }

  /** Map etcd's "requested lease not found" to our LeaseNotFoundError. */
  private async withLease<T>(lease: LeaseId | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (lease !== undefined && err instanceof EtcdLeaseInvalidError) throw new LeaseNotFoundError(lease);
      throw err;
    }
  }
}

function fromEtcd(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    ...(kv.lease && kv.lease !== '0' ? { lease: String(kv.lease) } : {}),
  };
}

function putRequest(key: string, value: string, lease?: LeaseId) {
  return { key: Buffer.from(key), value: Buffer.from(value), ...(lease !== undefined ? { lease } : {}) };
}

function deleteRequest(key: string, prefix?: boolean) {
  return { key: Buffer.from(key), ...(prefix ? { range_end: prefixRangeEnd(key) } : {}) };
}

function toEtcdCompare(c: Compare) {
  const key = Buffer.from(c.key);
  switch (c.target) {
    case 'createRevision': return { key, target: 'Create' as const, result: 'Equal' as const, create_revision: c.equals };
    case 'modRevision': return { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: c.equals };
    case 'value': return { key, target: 'Value' as const, result: 'Equal' as const, value: Buffer.from(c.equals) };
  }
}

function toEtcdOp(op: TxnOp): IRequestOp {
  return op.type === 'put'
    ? { request_put: putRequest(op.key, op.value, op.lease) }
    : { request_delete_range: deleteRequest(op.key, op.prefix) };
}
