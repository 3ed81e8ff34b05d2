// Forwarding for a routed container network. Runs in the current (host)
// namespace; sync on purpose, like every sysctl write (lib/sys/sysctl).

import { HOST_KERNEL, type Sysctls } from '../kernel';

export function enableIpv4Forwarding(sysctl: Sysctls = HOST_KERNEL.sysctl): void {
  sysctl.ensure('net/ipv4/ip_forward', '1');
}

/**
 * Turn IPv6 forwarding on without making the host drop router
 * advertisements: with forwarding=1 the kernel ignores RAs on interfaces
 * whose accept_ra is 1, so those become 2 first (reference issue #21).
 * Only walks the interfaces when forwarding is still off, so it stays O(1)
 * once on. Nothing to do when IPv6 is disabled.
 */
export function enableIpv6Forwarding(sysctl: Sysctls = HOST_KERNEL.sysctl): void {
  const now = sysctl.readIfExists('net/ipv6/conf/all/forwarding');
  if (now === undefined || now === '1') return;
  for (const n of sysctl.list('net/ipv6/conf')) {
    if (sysctl.readIfExists(`net/ipv6/conf/${n}/accept_ra`) === '1') sysctl.write(`net/ipv6/conf/${n}/accept_ra`, '2', undefined, { ignoreMissing: true });
  }
  sysctl.write('net/ipv6/conf/all/forwarding', '1');
}
