// `cnictl rm NETWORK`: remove a network entirely once no container uses it.
// Refuses while cnictl's result cache has an attachment of the network or
// while one of its bridges still has a port (a container attached by another
// runtime); otherwise GCs every plugin with no valid attachment (each removes
// all it keeps for the network: rules, sets, records, locks, DNS daemons)
// and deletes the bridge devices, which GC keeps (like the reference).
import { CniError, ErrorCode } from '../../lib/cni/errors';
import type { ChainRunner, NetworkConfigList } from '../../lib/cni/conflist';
import { versionAtLeast } from '../../lib/cni/version';
import { openRtnl, type Rtnl } from '../../lib/netlink';

/** The bridges a network's plugins use: the bridge plugin's "bridge" (default cni0, as the reference). */
export function bridgesOf(list: NetworkConfigList): string[] {
  const names = list.plugins.filter((p) => p.type === 'bridge').map((p) => (typeof p.bridge === 'string' && p.bridge ? p.bridge : 'cni0'));
  return [...new Set(names)];
}

async function portsOf(rtnl: Rtnl, bridge: string): Promise<string[] | undefined> {
  const br = await rtnl.getLink(bridge);
  if (!br || br.kind !== 'bridge') return undefined;
  return (await rtnl.listLinks()).filter((l) => l.master === br.index).map((l) => l.name);
}

export interface Removal {
  bridgesDeleted: string[];
}

export async function removeNetwork(runner: ChainRunner, list: NetworkConfigList): Promise<Removal> {
  const cached = runner.cachedAttachments(list.name);
  if (cached.length) {
    const which = cached.slice(0, 3).map((a) => `${a.containerID}/${a.ifname}`).join(', ');
    throw new CniError(ErrorCode.InvalidConfig, `network "${list.name}" is still used by ${cached.length} attachment(s) (${which}${cached.length > 3 ? ', ...' : ''}): cnictl del them first`);
  }
  const rtnl = openRtnl();
  try {
    for (const bridge of bridgesOf(list)) {
      const ports = await portsOf(rtnl, bridge);
      if (ports?.length) {
        throw new CniError(ErrorCode.InvalidConfig, `network "${list.name}" is still used: bridge "${bridge}" has ${ports.length} port(s) (${ports.slice(0, 3).join(', ')}${ports.length > 3 ? ', ...' : ''}), a container attached by another runtime?`);
      }
    }
    // GC exists from CNI 1.1.0 on: an older list is collected as 1.1.0 (every plugin of ours speaks it).
    await runner.gc(versionAtLeast(list.cniVersion, '1.1.0') ? list : { ...list, cniVersion: '1.1.0' }, []);
    const bridgesDeleted: string[] = [];
    for (const bridge of bridgesOf(list)) {
      const ports = await portsOf(rtnl, bridge);
      if (ports === undefined) continue; // gone already, or not a bridge of ours
      if (ports.length) throw new CniError(ErrorCode.InvalidConfig, `bridge "${bridge}" got a port while network "${list.name}" was being removed; nothing more was removed`);
      await rtnl.deleteLink(bridge);
      bridgesDeleted.push(bridge);
    }
    return { bridgesDeleted };
  } finally {
    rtnl.close();
  }
}
