// The contract between the handlers (plugin.ts) and a reservation store: the
// disk store (store.ts, shared with the reference host-local) or the in-memory
// one (memory-store.ts, for unit tests and dry runs).

import type { Addr } from './addr';

/** Who holds an address. `ifname` undefined = a legacy file that names only the container. */
export interface Owner {
  containerID: string;
  ifname?: string;
}

export interface Reservation {
  addr: Addr;
  owner?: Owner; // undefined: empty or unreadable file (a writer killed mid-write)
}

/** A network's reservations while its lock is held. */
export interface LockedStore {
  lastReserved(setIndex: number): Addr | undefined;
  setLastReserved(setIndex: number, a: Addr): void;
  /** Reserve atomically; false when the address is already taken. */
  tryReserve(a: Addr, owner: Owner): boolean;
  /** Who holds an address (for messages); undefined when free or unreadable. */
  holderOf(a: Addr): Owner | undefined;
  release(a: Addr, owner?: Owner): void;
  /** The addresses of (containerID, ifname), and of legacy files naming containerID only. */
  heldBy(containerID: string, ifname: string): { exact: Addr[]; legacy: Addr[] };
  /** Every reservation of the network (walks the directory: GC only). */
  all(): Reservation[];
}

export interface NetworkStore {
  /** Whether the network has any state at all (DEL/CHECK/GC/STATUS create nothing). */
  exists(): boolean;
  /** Run fn holding the network's exclusive lock (created when missing). */
  withLock<T>(fn: (tx: LockedStore) => T): T;
  /** Reserved addresses without taking the lock (STATUS). */
  reservedAddrs(): Addr[];
}

export type OpenStore = (dataDir: string, network: string) => NetworkStore;
