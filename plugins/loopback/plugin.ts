// loopback: brings `lo` up inside the container (CNI_IFNAME is ignored, as in
// the reference plugin). ADD reports lo and its addresses, or passes a chained
// prevResult through unchanged; DEL sets lo down and succeeds when there is
// nothing left to do; CHECK verifies lo is up.
import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { Plugin } from '../../lib/cni/plugin';
import type { Invocation, Result } from '../../lib/cni/types';
import type { Address } from '../../lib/netlink';
import { NetnsNotFoundError } from '../../lib/netns';
// The kernel side (and node-netlink with it) is loaded only when a verb needs
// it, so VERSION and input errors answer without evaluating it.
const kernel = (): typeof import('./lo') => require('./lo') as typeof import('./lo');
import { foreignAddress, loopbackResult } from './result';

function requireNetns(inv: Invocation): string {
  const netns = inv.env.netns;
  if (!netns) throw new CniError(ErrorCode.InvalidEnvironment, 'required env variables [CNI_NETNS] missing');
  return netns;
}

/** A missing namespace as a CNI error that names it. */
function netnsError(err: unknown, netns: string): unknown {
  if (err instanceof NetnsNotFoundError) {
    return new CniError(ErrorCode.InvalidEnvironment, `network namespace "${netns}" does not exist`, `CNI_NETNS=${netns}`);
  }
  return err;
}

async function add(inv: Invocation): Promise<Result> {
  const netns = requireNetns(inv);
  const refuseForeign = (addrs: Address[]): void => {
    const foreign = foreignAddress(addrs);
    if (foreign) throw new CniError(ErrorCode.Internal, `loopback interface found with non-loopback address "${foreign}"`, `lo in ${netns}`);
  };
  let addrs: Address[];
  try {
    const { inNetns, bringLoopbackUp } = kernel();
    addrs = await inNetns(netns, (rtnl) => bringLoopbackUp(rtnl, refuseForeign));
  } catch (err) {
    throw netnsError(err, netns);
  }
  // Chained after another plugin: lo changes nothing in the result.
  return inv.conf.prevResult ?? loopbackResult(inv.conf.cniVersion, netns, addrs);
}

async function del(inv: Invocation): Promise<void> {
  const netns = inv.env.netns;
  if (!netns) return;
  try {
    const { inNetns, bringLoopbackDown } = kernel();
    await inNetns(netns, bringLoopbackDown);
  } catch (err) {
    if (err instanceof NetnsNotFoundError) return; // the container is gone, and lo with it
    throw err;
  }
}

async function check(inv: Invocation): Promise<void> {
  const netns = requireNetns(inv);
  let up: boolean;
  try {
    const { inNetns, isLoopbackUp } = kernel();
    up = await inNetns(netns, isLoopbackUp);
  } catch (err) {
    throw netnsError(err, netns);
  }
  if (!up) throw new CniError(ErrorCode.Internal, 'loopback interface is down', `lo in ${netns}`);
}

export const loopbackPlugin: Plugin = {
  name: 'loopback',
  description: 'brings the loopback interface up inside the container',
  add,
  del,
  check,
};
