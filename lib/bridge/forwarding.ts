// Forwarding for a routed container network. Runs in the current (host)
// namespace; sync on purpose, like every sysctl write (lib/sys/sysctl).

import * as fs from 'fs';
import { ensureSysctl, readSysctlIfExists, writeSysctl } from '../sys/sysctl';

export function enableIpv4Forwarding(): void {
  ensureSysctl('net/ipv4/ip_forward', '1');
}

/**
 * Turn IPv6 forwarding on without making the host drop router
 * advertisements: with forwarding=1 the kernel ignores RAs on interfaces
 * whose accept_ra is 1, so those become 2 first (reference issue #21).
 * Only walks the interfaces when forwarding is still off, so it stays O(1)
 * once on. Nothing to do when IPv6 is disabled.
 */
export function enableIpv6Forwarding(): void {
  const now = readSysctlIfExists('net/ipv6/conf/all/forwarding');
  if (now === undefined || now === '1') return;
  let names: string[] = [];
  try {
    names = fs.readdirSync('/proc/sys/net/ipv6/conf');
  } catch {
    return;
  }
  for (const n of names) {
    if (readSysctlIfExists(`net/ipv6/conf/${n}/accept_ra`) === '1') writeSysctl(`net/ipv6/conf/${n}/accept_ra`, '2', undefined, { ignoreMissing: true });
  }
  writeSysctl('net/ipv6/conf/all/forwarding', '1');
}
