// How a plugin gets its kernel: the facade's three doors in one object, handed
// in by each plugin's main.ts (makeXPlugin(..., HOST_KERNEL)) and passed down to
// the code that applies a plan. Nothing below a plugin's verb handlers opens a
// socket or a namespace on its own, so a test can hand in a fake kernel
// (test/helpers/fake-kernel.ts) that fails any step on demand.
//   openRtnl   rtnetlink in a namespace (lib/netlink, interface Rtnl)
//   openNetns  CNI_NETNS as a Netns (lib/netns: code 4 when it is missing or no netns)
//   sysctl     /proc/sys/net, in a namespace (lib/sys/sysctl)
// nftables goes through lib/firewall/nft.ts, the one runner of every nft change.
import type { OpenRtnl } from './netlink';
import { Netns } from './netns';
import { ensureSysctl, listSysctl, readSysctl, readSysctlIfExists, writeSysctl, type SysctlOptions } from './sys/sysctl';

export interface Sysctls {
  read(key: string, netns?: Netns): string;
  /** undefined when the key does not exist (IPv6 disabled, interface gone). */
  readIfExists(key: string, netns?: Netns): string | undefined;
  write(key: string, value: string | number, netns?: Netns, o?: SysctlOptions): void;
  /** Write only when different. */
  ensure(key: string, value: string | number, netns?: Netns, o?: SysctlOptions): void;
  /** The entries of a directory ("net/ipv6/conf"); [] when it does not exist. */
  list(key: string, netns?: Netns): string[];
}

export interface Kernel {
  openRtnl: OpenRtnl;
  /** Throws NetnsNotFoundError / NotNetnsError (code 4). */
  openNetns(path: string): Netns;
  sysctl: Sysctls;
}

/** The real kernel of the namespace this process runs in. */
export const HOST_KERNEL: Kernel = {
  // Loaded on first use: VERSION and config errors answer without node-netlink.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy (start-up)
  openRtnl: (netns) => (require('./netlink/rtnl') as typeof import('./netlink/rtnl')).openRtnl(netns),
  openNetns: (path) => Netns.open(path),
  sysctl: { read: readSysctl, readIfExists: readSysctlIfExists, write: writeSysctl, ensure: ensureSysctl, list: listSysctl },
};
