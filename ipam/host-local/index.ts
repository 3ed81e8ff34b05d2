// The host-local IPAM as a library: what other programs may use of it. The
// handlers run in-process in our interface plugins (ipam/index.ts); the store
// is also what `vxlan-overlay leave` clears. The plugin object (plugin.ts) is
// only for dist/bin/host-local.

export { HOST_LOCAL_ARGS, hostLocalIpam, makeHostLocalIpam } from './ipam';
export { DiskStore, openDiskStore } from './store';
export type { LockedStore, NetworkStore, OpenStore, Owner, Reservation } from './store-types';
