// Pick the overlay store backend from config: the embedded file store (one
// machine; the default) or etcd v3 (several hosts).

import { EtcdStore } from './etcd-store';
import { FileStore } from './file-store';
import { KvStore } from './types';

export type StoreConfig =
  | { type: 'file'; dir: string }
  | { type: 'etcd'; endpoints: string[] };

export const DEFAULT_FILE_STORE_DIR = '/var/lib/cni/vxlan-overlay/store';

export function openStore(cfg: StoreConfig = { type: 'file', dir: DEFAULT_FILE_STORE_DIR }): KvStore {
  return cfg.type === 'etcd' ? new EtcdStore({ endpoints: cfg.endpoints }) : new FileStore({ dir: cfg.dir });
}

export * from './types';
export { FileStore } from './file-store';
export { EtcdStore } from './etcd-store';
export * from './overlay';
