// Network namespaces. We never "live inside" a namespace: we enter it with
// setns on the main thread, do synchronous work (create a netlink socket,
// write a sysctl, spawnSync), and return, all in one tick. libuv pool threads
// never switch, and a thread spawned while switched would stay in the
// container's namespace, so `inNetns` refuses async callbacks.
//
// A path is checked to be a network namespace before it is used for anything
// (probeNetns): statfs says whether it is on nsfs without opening it, the open
// is non-blocking (a FIFO swapped in cannot hang us) and its fd must be on the
// same nsfs, and a setns there and straight back proves it is a *network*
// namespace (/proc/self/ns/mnt is on nsfs too).

import * as fs from 'fs';
import * as path from 'path';
import { CniError, ErrorCode } from '../cni/errors';
import { CLONE_NEWNET, native } from '../sys/native';

const NSFS_MAGIC = 0x6e736673;

/** CNI_NETNS names nothing: code 4 (DEL treats it as "the container is gone"). */
export class NetnsNotFoundError extends CniError {
  readonly errno = 'ENOENT';
  constructor(readonly nsPath: string) {
    super(ErrorCode.InvalidEnvironment, `CNI_NETNS "${nsPath}" does not exist`, 'CNI_NETNS must name the container\'s network namespace');
    this.name = 'NetnsNotFoundError';
  }
}

/** CNI_NETNS names something that is not a network namespace (or cannot be checked): code 4, the same in every plugin. */
export class NotNetnsError extends CniError {
  /** `problem` completes 'CNI_NETNS "<path>" ...': "is not a network namespace: it is a FIFO". */
  constructor(readonly nsPath: string, problem: string) {
    super(ErrorCode.InvalidEnvironment, `CNI_NETNS "${nsPath}" ${problem}`, 'CNI_NETNS must name the container\'s network namespace, e.g. /run/netns/<name> or /proc/<pid>/ns/net');
    this.name = 'NotNetnsError';
  }
}

let hostFd: number | undefined;
/** The namespace this process started in, pinned by an fd so we can always return. */
function hostNetnsFd(): number {
  hostFd ??= fs.openSync('/proc/thread-self/ns/net', 'r');
  return hostFd;
}

function kindOf(nsPath: string): string {
  try {
    const st = fs.statSync(nsPath);
    if (st.isFIFO()) return 'a FIFO';
    if (st.isDirectory()) return 'a directory';
    if (st.isSocket()) return 'a socket';
    if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
    if (st.isFile()) return st.size === 0 ? 'an empty regular file (an unmounted namespace pin?)' : 'a regular file';
  } catch { /* gone meanwhile */ }
  return 'not on the namespace filesystem';
}

/**
 * Open `nsPath` as a network namespace: the fd, or NetnsNotFoundError /
 * NotNetnsError. Never blocks, whatever the path is.
 */
function openNetnsFd(nsPath: string): number {
  let magic: number;
  try {
    magic = Number(fs.statfsSync(nsPath).type);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NetnsNotFoundError(nsPath);
    throw new NotNetnsError(nsPath, `cannot be opened: ${(err as Error).message}`);
  }
  if (magic !== NSFS_MAGIC) throw new NotNetnsError(nsPath, `is not a network namespace: it is ${kindOf(nsPath)}`);
  let fd: number;
  try {
    fd = fs.openSync(nsPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NetnsNotFoundError(nsPath);
    throw new NotNetnsError(nsPath, `cannot be opened: ${(err as Error).message}`);
  }
  try {
    // Replaced between statfs and open? Every namespace file lives on the one nsfs.
    if (fs.fstatSync(fd).dev !== fs.fstatSync(hostNetnsFd()).dev) throw new NotNetnsError(nsPath, `is not a network namespace: it is ${kindOf(nsPath)}`);
    const n = native();
    try {
      n.setns(fd, CLONE_NEWNET);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.syscall !== 'setns') throw err; // the native code itself could not load: its own error
      if (e.code === 'EINVAL') throw new NotNetnsError(nsPath, 'is not a network namespace: it is a namespace of another type (mount, pid, ...)');
      if (e.code !== 'EPERM') throw new NotNetnsError(nsPath, `cannot be opened: ${e.message}`);
      return fd; // without CAP_SYS_ADMIN we cannot tell; using it will say so
    }
    n.setns(hostNetnsFd(), CLONE_NEWNET);
    return fd;
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** For DEL: the namespace is gone (or the path no longer names one), so whatever was inside went with it. */
export function isNetnsGone(err: unknown): boolean {
  return err instanceof NetnsNotFoundError || err instanceof NotNetnsError;
}

/** Check that `nsPath` is a network namespace (throws NetnsNotFoundError or NotNetnsError, both code 4). */
export function probeNetns(nsPath: string): void {
  fs.closeSync(openNetnsFd(nsPath));
}

export class Netns {
  private constructor(readonly path: string, private fd: number) {}

  static open(nsPath: string): Netns {
    return new Netns(nsPath, openNetnsFd(nsPath));
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

/** How a namespace is opened: Netns.open, or a plugin's Kernel.openNetns (lib/kernel.ts; a fake in tests). */
export type OpenNetns = (nsPath: string) => Netns;

/**
 * ADD and CHECK: open CNI_NETNS, the same way in every plugin. Empty is code 4
 * with the skel's message (it checks first; a plugin called in-process may not be);
 * Netns.open's errors pass through as they are (code 4 for a path that is
 * missing, gone or not a network namespace; a native code that cannot load
 * keeps its own error).
 */
export function openContainerNetns(nsPath: string | undefined, plugin: string, open: OpenNetns = Netns.open): Netns {
  if (!nsPath) throw new CniError(ErrorCode.InvalidEnvironment, `${plugin}: required env variables [CNI_NETNS] missing`);
  return open(nsPath);
}

/**
 * DEL and GC: the container's namespace, or undefined when CNI_NETNS is empty
 * or names no namespace any more (the container is gone, and whatever was
 * inside went with it). Any other error throws.
 */
export function openContainerNetnsIfPresent(nsPath: string | undefined, open: OpenNetns = Netns.open): Netns | undefined {
  if (!nsPath) return undefined;
  try {
    return open(nsPath);
  } catch (err) {
    if (isNetnsGone(err)) return undefined;
    throw err;
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
