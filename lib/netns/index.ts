// Network namespaces. We never "live inside" a namespace: we enter it with
// setns on the main thread, do synchronous work (create a netlink socket,
// write a sysctl, spawnSync), and return, all in one tick. libuv pool threads
// never switch, and a thread spawned while switched would stay in the
// container's namespace, so `inNetns` refuses async callbacks.

import * as fs from 'fs';
import * as path from 'path';
import { CLONE_NEWNET, native } from '../sys/native';

export class NetnsNotFoundError extends Error {
  readonly code = 'ENOENT';
  constructor(readonly nsPath: string) {
    super(`network namespace "${nsPath}" does not exist`);
    this.name = 'NetnsNotFoundError';
  }
}

let hostFd: number | undefined;
/** The namespace this process started in, pinned by an fd so we can always return. */
function hostNetnsFd(): number {
  hostFd ??= fs.openSync('/proc/thread-self/ns/net', 'r');
  return hostFd;
}

export class Netns {
  private constructor(readonly path: string, private fd: number) {}

  static open(nsPath: string): Netns {
    let fd: number;
    try {
      fd = fs.openSync(nsPath, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NetnsNotFoundError(nsPath);
      throw err;
    }
    // A regular file or directory at that path is not a namespace; setns would say EINVAL later.
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size !== 0) {
      fs.closeSync(fd);
      throw new Error(`"${nsPath}" is not a network namespace`);
    }
    return new Netns(nsPath, fd);
  }

  /** Run fn inside this namespace, synchronously, and come back. */
  run<T>(fn: () => T): T {
    const n = native();
    const host = hostNetnsFd();
    n.setns(this.fd, CLONE_NEWNET);
    try {
      const out = fn();
      if (out && typeof (out as { then?: unknown }).then === 'function') {
        throw new Error('inNetns callback must be synchronous');
      }
      return out;
    } finally {
      n.setns(host, CLONE_NEWNET);
    }
  }

  /** The inode that identifies the namespace (same value for two paths to one namespace). */
  inode(): number {
    return fs.fstatSync(this.fd).ino;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * The inode of the namespace this process runs in: what tells two "hosts" on one
 * machine apart (a runtime in a namespace of its own shares /run with the others).
 */
export function hostNetnsInode(): number {
  return fs.fstatSync(hostNetnsFd()).ino;
}

/** True when nsPath names the namespace this process runs in (CONFORMANCE E20). */
export function isHostNetns(nsPath: string): boolean {
  try {
    return fs.statSync(nsPath).ino === fs.fstatSync(hostNetnsFd()).ino && fs.statSync(nsPath).dev === fs.fstatSync(hostNetnsFd()).dev;
  } catch {
    return false;
  }
}

export const NETNS_RUN_DIR = '/run/netns';

/** What `ip netns add NAME` does: a new namespace pinned by a bind mount. */
export function createNamedNetns(name: string, runDir = NETNS_RUN_DIR): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) throw new Error(`invalid namespace name "${name}"`);
  fs.mkdirSync(runDir, { recursive: true, mode: 0o755 });
  const target = path.join(runDir, name);
  const fd = fs.openSync(target, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDONLY, 0o444);
  fs.closeSync(fd);
  const n = native();
  const host = hostNetnsFd();
  try {
    n.unshare(CLONE_NEWNET);
    try {
      n.bindMount(`/proc/self/task/${n.gettid()}/ns/net`, target);
    } finally {
      n.setns(host, CLONE_NEWNET);
    }
  } catch (err) {
    fs.rmSync(target, { force: true });
    throw err;
  }
  return target;
}

/** What `ip netns del NAME` does. Succeeds when it is already gone. */
export function deleteNamedNetns(name: string, runDir = NETNS_RUN_DIR): void {
  const target = path.join(runDir, path.basename(name));
  if (!fs.existsSync(target)) return;
  try {
    native().umount(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err; // EINVAL: not mounted
  }
  fs.rmSync(target, { force: true });
}

export function listNamedNetns(runDir = NETNS_RUN_DIR): string[] {
  try {
    return fs.readdirSync(runDir).sort();
  } catch {
    return [];
  }
}
