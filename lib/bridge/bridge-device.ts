// The bridge device itself: created on a network's first ADD (or by the
// overlay agent) and reused after; it outlives its last container, as in the
// reference. Shared state: never rolled back.

import { CniError, ErrorCode } from '../cni/errors';
import { HOST_KERNEL, type Sysctls } from '../kernel';
import type { Link, Rtnl } from '../netlink';
import { errMsg } from './port';

function fail(msg: string, code: number = ErrorCode.Internal): CniError {
  return new CniError(code, msg);
}

/** Create or reuse the bridge, bring it up; a non-bridge of that name is an error. */
export async function ensureBridge(host: Rtnl, o: { name: string; mtu?: number; promisc?: boolean; vlanFiltering?: boolean; plugin?: string }, sysctl: Sysctls = HOST_KERNEL.sysctl): Promise<Link> {
  const who = o.plugin ?? 'bridge';
  let br = await host.getLink(o.name);
  if (br && br.kind !== 'bridge') throw fail(`${who}: "${o.name}" already exists and is a ${br.kind ?? 'device'}, not a bridge`, ErrorCode.InvalidConfig);
  if (!br) {
    try {
      br = await host.ensureBridge({ name: o.name, mtu: o.mtu || undefined, vlanFiltering: o.vlanFiltering || undefined });
    } catch (err) {
      throw fail(`${who}: failed to create bridge "${o.name}": ${errMsg(err)}`);
    }
  }
  if (o.promisc) {
    try {
      await host.setPromisc(br.index, true);
    } catch (err) {
      throw fail(`${who}: failed to set promiscuous mode on "${o.name}": ${errMsg(err)}`);
    }
  }
  // A bridge must not autoconfigure from RAs seen on container ports.
  sysctl.ensure(`net/ipv6/conf/${o.name}/accept_ra`, '0', undefined, { ignoreMissing: true });
  if (!br.up) await host.setLinkUp(br.index);
  return br;
}
