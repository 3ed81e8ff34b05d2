// The project's tiny addon (native/cni_native.c): setns, unshare, flock,
// gettid, bind mounts, nft commands through libnftables, one nfnetlink transaction. Loaded lazily so
// that verbs which never switch namespaces or take locks do not pay for it.

export interface Native {
  setns(fd: number, nstype: number): void;
  unshare(flags: number): void;
  flock(fd: number, op: number): void;
  gettid(): number;
  bindMount(source: string, target: string): void;
  umount(target: string): void;
  /** nft commands through libnftables; null when the library is not installed (lib/firewall/nft.ts). */
  nftRun(commands: string, json: boolean): { status: number; stdout: string; stderr: string } | null;
  /** One nfnetlink datagram sent, the replies read until `acks` acks or errors came (lib/firewall/nft-elements.ts). */
  nfnlTransact(request: Buffer, acks: number): Buffer;
}

export const CLONE_NEWNET = 0x40000000;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

let loaded: Native | undefined;

export function native(): Native {
  // A literal path, so the bundler (scripts/build.js) can embed the binary.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a .node addon loads only through require
  loaded ??= require('../../native/build/Release/cni_native.node') as Native;
  return loaded;
}
