// The key-value contract both overlay store backends implement (embedded file
// store, etcd v3). It follows etcd v3 semantics so the etcd backend stays thin:
// one global revision that every write bumps once (a txn, a prefix delete or a
// lease revoke is one revision), create/mod revisions per key, leases whose
// expiry deletes their keys with delete events, and watches that replay from a
// revision or say "compacted" when that history is gone.

export type LeaseId = string;

export interface KeyValue {
  key: string;
  value: string;
  /** Revision of the last write to this key. */
  modRevision: number;
  /** Revision that created this key (0 never appears: absent keys are not returned). */
  createRevision: number;
  /** Lease the key is attached to, if any. */
  lease?: LeaseId;
}

export interface ListResult {
  kvs: KeyValue[];
  /** Store revision the list was taken at: watch from revision + 1 to miss nothing. */
  revision: number;
}

export interface PutOptions {
  lease?: LeaseId;
}

export interface DeleteOptions {
  /** Delete every key that starts with the given key. */
  prefix?: boolean;
}

/** A txn condition. createRevision 0 means "key absent"; modRevision N means "unchanged since N". */
export type Compare =
  | { key: string; target: 'createRevision'; equals: number }
  | { key: string; target: 'modRevision'; equals: number }
  | { key: string; target: 'value'; equals: string };

export type TxnOp =
  | { type: 'put'; key: string; value: string; lease?: LeaseId }
  | { type: 'delete'; key: string; prefix?: boolean };

export interface TxnRequest {
  compare: Compare[];
  success: TxnOp[];
  failure?: TxnOp[];
}

export interface TxnResult {
  succeeded: boolean;
  /** Store revision after the txn (unchanged if the chosen branch wrote nothing). */
  revision: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value for put; '' for delete. */
  value: string;
  /** Revision of this event (for delete: the revision of the deletion). */
  modRevision: number;
  lease?: LeaseId;
}

export interface WatchListener {
  /** Events in revision order; a batch never splits one revision. */
  onEvents(events: WatchEvent[]): void;
  /** History before the watch's start is gone: the watch has ended, list again and watch anew. */
  onCompacted(): void;
  /** The watch broke for another reason and has ended (the caller re-lists and re-watches). */
  onError?(err: Error): void;
}

export interface WatchHandle {
  cancel(): void;
}

export interface KvStore {
  get(key: string): Promise<KeyValue | undefined>;
  list(prefix: string): Promise<ListResult>;
  /** Returns the revision of the write. Throws LeaseNotFoundError for an unknown or expired lease. */
  put(key: string, value: string, opts?: PutOptions): Promise<number>;
  /** Returns how many keys were deleted (a delete of nothing writes nothing). */
  delete(key: string, opts?: DeleteOptions): Promise<number>;
  txn(req: TxnRequest): Promise<TxnResult>;
  /** Grant a lease of ttlSeconds (a whole number ≥ 1). */
  grantLease(ttlSeconds: number): Promise<LeaseId>;
  /** One refresh; returns the TTL granted again. Throws LeaseNotFoundError if it expired or was revoked. */
  keepAlive(id: LeaseId): Promise<number>;
  /** Revoke a lease and delete its keys; false if it was already gone (idempotent). */
  revokeLease(id: LeaseId): Promise<boolean>;
  /** Watch keys under prefix from fromRevision (≥ 1) on: past events first, then live ones. */
  watch(prefix: string, fromRevision: number, listener: WatchListener): WatchHandle;
  /** Drop history before revision (watches that start earlier get onCompacted). */
  compact(revision: number): Promise<void>;
  close(): Promise<void>;
}

export class LeaseNotFoundError extends Error {
  constructor(readonly leaseId: LeaseId) {
    super(`lease ${leaseId} not found (expired or revoked)`);
    this.name = 'LeaseNotFoundError';
  }
}

/** Create-if-absent in one call: true if this caller created the key. */
export async function createIfAbsent(kv: KvStore, key: string, value: string, opts: PutOptions = {}): Promise<boolean> {
  const res = await kv.txn({
    compare: [{ key, target: 'createRevision', equals: 0 }],
    success: [{ type: 'put', key, value, lease: opts.lease }],
  });
  return res.succeeded;
}

/** The end of the key range "everything starting with prefix" (etcd's range_end). */
export function prefixRangeEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all keys
}
