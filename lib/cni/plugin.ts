// The contract between the skel and a plugin. A plugin's main.ts is one line:
//   runPlugin(bridgePlugin)
// The skel validates the environment and stdin, negotiates the version,
// converts prevResult to the 1.x shape, calls one handler, converts and
// prints the result or the error, and exits.

import type { Attachment, Invocation, NetConf, Result } from './types';

export interface GcInvocation extends Invocation {
  /** From cni.dev/valid-attachments, else cni.dev/attachments, else [] (libcni sends none only after deleting every cached attachment). */
  validAttachments: Attachment[];
}

export interface Plugin {
  /** Executable name, e.g. "bridge". */
  name: string;
  /** One line for --help. */
  description: string;
  /** Defaults to every version lib/cni/version supports. */
  supportedVersions?: readonly string[];
  /**
   * CNI_ARGS keys this plugin understands (e.g. ["IP", "MAC"]), besides the
   * always-known IgnoreUnknown and K8S_POD_*. The skel rejects other keys
   * (code 4) unless IgnoreUnknown=1, like the reference plugins. Parsed values: inv.cniArgs.
   * Absent: the plugin takes no CNI_ARGS and the skel ignores them (the
   * reference loopback does; its own tests send CNI_ARGS=none); one that
   * still looks a key up now and then parses on demand (lib/cni/args cniArgsOf).
   */
  knownArgs?: readonly string[];
  /**
   * True for plugins that never open CNI_NETNS (IPAM, portmap): the skel then
   * leaves it alone. For everyone else a DEL whose CNI_NETNS is gone or no
   * network namespace gets it dropped (cleanup as without a namespace); ADD
   * and CHECK get code 4 from lib/netns Netns.open when they open it.
   */
  ignoresNetns?: boolean;
  add(inv: Invocation): Promise<Result>;
  del(inv: Invocation): Promise<void>;
  check?(inv: Invocation): Promise<void>;
  gc?(inv: GcInvocation): Promise<void>;
  status?(inv: Invocation): Promise<void>;
}

export type { Invocation, NetConf, Result };
