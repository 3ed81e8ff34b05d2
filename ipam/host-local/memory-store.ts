// An in-memory NetworkStore with the disk store's semantics (one owner per
// address, atomic "reserve if free", last reserved address per set): unit
// tests drive the real handlers with it, no filesystem and no root needed.

import { Addr, formatAddr, parseAddr } from './addr';
import type { LockedStore, NetworkStore, OpenStore, Owner, Reservation } from './store-types';

export class MemoryStore implements NetworkStore, LockedStore {
  readonly reservations = new Map<string, Owner | undefined>();
  readonly last = new Map<number, Addr>();
  private locked = false;

  exists(): boolean {
    return this.reservations.size > 0 || this.last.size > 0;
  }

  withLock<T>(fn: (tx: LockedStore) => T): T {
    if (this.locked) throw new Error('MemoryStore: lock taken twice');
    this.locked = true;
    try {
      return fn(this);
    } finally {
      this.locked = false;
    }
  }

  reservedAddrs(): Addr[] {
    return [...this.reservations.keys()].map((k) => parseAddr(k) as Addr);
  }

  lastReserved(setIndex: number): Addr | undefined {
    return this.last.get(setIndex);
  }

  setLastReserved(setIndex: number, a: Addr): void {
    this.last.set(setIndex, a);
  }

  tryReserve(a: Addr, owner: Owner): boolean {
    const ip = formatAddr(a);
    if (this.reservations.has(ip)) return false;
    this.reservations.set(ip, { ...owner });
    return true;
  }

  holderOf(a: Addr): Owner | undefined {
    return this.reservations.get(formatAddr(a));
  }

  release(a: Addr): void {
    this.reservations.delete(formatAddr(a));
  }

  heldBy(containerID: string, ifname: string): { exact: Addr[]; legacy: Addr[] } {
    const exact: Addr[] = [];
    const legacy: Addr[] = [];
    for (const [ip, o] of this.reservations) {
      if (o?.containerID !== containerID) continue;
      if (o.ifname === ifname) exact.push(parseAddr(ip) as Addr);
      else if (o.ifname === undefined) legacy.push(parseAddr(ip) as Addr);
    }
    return { exact, legacy };
  }

  all(): Reservation[] {
    return [...this.reservations].map(([ip, owner]) => ({ addr: parseAddr(ip) as Addr, owner }));
  }
}

/** An OpenStore handing out one MemoryStore per (dataDir, network). */
export function memoryStores(): { open: OpenStore; get(dataDir: string, network: string): MemoryStore } {
  const stores = new Map<string, MemoryStore>();
  const get = (dataDir: string, network: string) => {
    const key = `${dataDir}\0${network}`;
    let s = stores.get(key);
    if (!s) stores.set(key, (s = new MemoryStore()));
    return s;
  };
  return { open: get, get };
}
