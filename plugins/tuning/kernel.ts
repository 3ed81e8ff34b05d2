// tuning's kernel side: sysctls and interface attributes inside the
// container's namespace, through lib/sys/sysctl and the netlink facade.

import * as fs from 'fs';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { NetlinkError, type Link, type Rtnl } from '../../lib/netlink';
import type { Netns } from '../../lib/netns';
import type { Sysctls } from '../../lib/kernel';
import { SysctlError } from '../../lib/sys/sysctl';
import type { OriginalAttributes } from './backup';
import { ALLOWLIST_FILE, type SysctlSetting } from './config';

const MAX_ALLOWLIST_BYTES = 64 * 1024;

/** The allowlist's text, or undefined when there is no allowlist. */
export function readAllowlist(file = ALLOWLIST_FILE): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CniError(ErrorCode.IoFailure, `tuning: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(MAX_ALLOWLIST_BYTES + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_ALLOWLIST_BYTES) throw new CniError(ErrorCode.InvalidConfig, `tuning: ${file} is larger than ${MAX_ALLOWLIST_BYTES} bytes`);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** What a sysctl failure means for the user: a key the container's namespace has not (not per-namespace) or may not change. */
function sysctlFailure(s: SysctlSetting, err: unknown, what: string): CniError {
  const code = err instanceof SysctlError ? err.code : '';
  if (code === 'ENOENT') {
    return new CniError(ErrorCode.InvalidConfig, `tuning: sysctl ${JSON.stringify(s.key)} does not exist in the container's network namespace (only per-namespace net.* sysctls can be set; is the interface name right?)`, `/proc/sys/${s.path}`);
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new CniError(ErrorCode.InvalidConfig, `tuning: sysctl ${JSON.stringify(s.key)} is read-only in the container's network namespace (it is not per-namespace)`, `/proc/sys/${s.path}`);
  }
  if (code === 'EINVAL' || code === 'ERANGE') return new CniError(ErrorCode.InvalidConfig, `tuning: the kernel refuses ${JSON.stringify(s.value)} for sysctl ${JSON.stringify(s.key)} (${code})`);
  return new CniError(ErrorCode.IoFailure, `tuning: ${what} sysctl ${JSON.stringify(s.key)}: ${(err as Error).message}`);
}

/** The current value of each sysctl in the container; CniError code 7 for a key it does not have. */
export function readSysctls(sysctl: Sysctls, netns: Netns, sysctls: readonly SysctlSetting[]): string[] {
  return sysctls.map((s) => {
    try {
      return sysctl.read(s.path, netns);
    } catch (err) {
      throw sysctlFailure(s, err, 'reading');
    }
  });
}

export function writeContainerSysctl(sysctl: Sysctls, netns: Netns, s: SysctlSetting, value = s.value): void {
  try {
    sysctl.write(s.path, value, netns);
  } catch (err) {
    throw sysctlFailure(s, err, 'writing');
  }
}

/** Set a MAC; drivers without live address change refuse while the link is up (EBUSY): then down, set, up. */
async function setMac(rtnl: Rtnl, link: Link, mac: string): Promise<void> {
  try {
    await rtnl.setMac(link.index, mac);
  } catch (err) {
    if (!(err instanceof NetlinkError && err.code === 'EBUSY') || !link.up) throw err;
    await rtnl.setLinkDown(link.index);
    try {
      await rtnl.setMac(link.index, mac);
    } finally {
      await rtnl.setLinkUp(link.index);
    }
  }
}

type AttributeName = keyof OriginalAttributes;

/** One netlink step per attribute, or nothing for an attribute `a` does not name. */
function attributeSteps(rtnl: Rtnl, link: Link, a: OriginalAttributes): Record<AttributeName, () => Promise<void> | undefined> {
  return {
    mac: () => (a.mac !== undefined ? setMac(rtnl, link, a.mac) : undefined),
    promisc: () => (a.promisc !== undefined ? rtnl.setPromisc(link.index, a.promisc) : undefined),
    mtu: () => (a.mtu !== undefined ? rtnl.setMtu(link.index, a.mtu) : undefined),
    allmulti: () => (a.allmulti !== undefined ? rtnl.setAllmulti(link.index, a.allmulti) : undefined),
    txQLen: () => (a.txQLen !== undefined ? rtnl.setTxqlen(link.index, a.txQLen) : undefined),
  };
}

/** Apply attributes in the reference's ADD order (mac, promisc, mtu, allmulti, txqlen); the first refusal stops it. */
export async function applyAttributes(rtnl: Rtnl, link: Link, a: OriginalAttributes): Promise<void> {
  const steps = attributeSteps(rtnl, link, a);
  for (const k of ['mac', 'promisc', 'mtu', 'allmulti', 'txQLen'] as const) {
    try {
      await steps[k]();
    } catch (err) {
      throw new CniError(ErrorCode.Internal, `tuning: failed to set ${k} ${JSON.stringify(a[k])} on "${link.name}": ${(err as Error).message}`);
    }
  }
}

export interface RestoreFailure {
  attribute: AttributeName;
  error: Error;
}

/**
 * Put saved attributes back in the reference's DEL order (mtu, mac, promisc, allmulti, txqlen), each on its
 * own: one refusal does not keep the others from being restored. Returns the attributes left as they were.
 */
export async function restoreAttributes(rtnl: Rtnl, link: Link, a: OriginalAttributes): Promise<RestoreFailure[]> {
  const steps = attributeSteps(rtnl, link, a);
  const failures: RestoreFailure[] = [];
  for (const k of ['mtu', 'mac', 'promisc', 'allmulti', 'txQLen'] as const) {
    try {
      await steps[k]();
    } catch (err) {
      failures.push({ attribute: k, error: err as Error });
    }
  }
  return failures;
}
