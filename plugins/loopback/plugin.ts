// loopback: brings `lo` up inside the container (CNI_IFNAME is ignored, as in
// the reference plugin). ADD reports lo and its addresses, or passes a chained
// prevResult through unchanged; DEL sets lo down and succeeds when there is
// nothing left to do; CHECK verifies lo is up.
import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { Plugin } from '../../lib/cni/plugin';
import type { Kernel } from '../../lib/kernel';
import type { Invocation, Result } from '../../lib/cni/types';
import type { Address } from '../../lib/netlink';
// The kernel side (and node-netlink with it) is loaded only when a verb needs
// it, so VERSION and input errors answer without evaluating it.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy (start-up)
const kernelSide = (): typeof import('./lo') => require('./lo') as typeof import('./lo');
import { foreignAddress, loopbackResult } from './result';

function requireNetns(inv: Invocation): string {
  const netns = inv.env.netns;
  if (!netns) throw new CniError(ErrorCode.InvalidEnvironment, 'required env variables [CNI_NETNS] missing');
  return netns;
}

async function add(inv: Invocation, kernel: Kernel): Promise<Result> {
  const netns = requireNetns(inv);
  const refuseForeign = (addrs: Address[]): void => {
    const foreign = foreignAddress(addrs);
    if (foreign) throw new CniError(ErrorCode.Internal, `loopback interface found with non-loopback address "${foreign}"`, `lo in ${netns}`);
  };
  // A missing or wrong CNI_NETNS is the skel's code 4 (lib/netns NetnsNotFoundError, NotNetnsError), as in every plugin.
  const { inNetns, bringLoopbackUp } = kernelSide();
  const addrs: Address[] = await inNetns(kernel, netns, (rtnl) => bringLoopbackUp(rtnl, refuseForeign));
  // Chained after another plugin: lo changes nothing in the result.
  return inv.conf.prevResult ?? loopbackResult(inv.conf.cniVersion, netns, addrs);
}

async function del(inv: Invocation, kernel: Kernel): Promise<void> {
  const netns = inv.env.netns;
  if (!netns) return;
  const { inNetns, bringLoopbackDown, isGone } = kernelSide();
  try {
    await inNetns(kernel, netns, bringLoopbackDown);
  } catch (err) {
    if (isGone(err)) return; // the container is gone, and lo with it
    throw err;
  }
}

async function check(inv: Invocation, kernel: Kernel): Promise<void> {
  const netns = requireNetns(inv);
  const { inNetns, isLoopbackUp } = kernelSide();
  const up = await inNetns(kernel, netns, isLoopbackUp);
  if (!up) throw new CniError(ErrorCode.Internal, 'loopback interface is down', `lo in ${netns}`);
}

/** The loopback plugin over `kernel` (main.ts: HOST_KERNEL). */
export function makeLoopbackPlugin(kernel: Kernel): Plugin {
  return {
    name: 'loopback',
    description: 'brings the loopback interface up inside the container',
    add: (inv) => add(inv, kernel),
    del: (inv) => del(inv, kernel),
    check: (inv) => check(inv, kernel),
  };
}
