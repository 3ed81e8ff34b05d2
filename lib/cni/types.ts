// Types of the CNI protocol. The in-memory result is always the newest
// (1.1.0) shape; lib/cni/version converts on input and at print time.

import type { Logger } from '../util/log';

export type Verb = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IpConfig {
  address: string; // CIDR, host bits kept: "10.1.0.5/24"
  gateway?: string;
  interface?: number; // index into interfaces
}

export interface Route {
  dst: string; // CIDR
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the 1.x shape (1.0.0 and 1.1.0 share it). */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

/** The request configuration a plugin receives on stdin, after decoding. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: { type?: string; [key: string]: unknown };
  dns?: Dns;
  ipMasq?: boolean;
  runtimeConfig?: Record<string, unknown>;
  args?: { cni?: Record<string, unknown>; [key: string]: unknown };
  prevResult?: Result; // already converted to the 1.x shape
  'cni.dev/valid-attachments'?: Attachment[];
  'cni.dev/attachments'?: Attachment[];
  [key: string]: unknown;
}

/** The validated CNI_* environment of one invocation. */
export interface CniEnv {
  command: Verb;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string; // raw CNI_ARGS
  path: string[]; // CNI_PATH split, empty when unset
}

/** Everything a verb handler gets. `raw` is stdin exactly as received (for delegation). */
export interface Invocation<C extends NetConf = NetConf> {
  env: CniEnv;
  conf: C;
  raw: Buffer;
  /** CNI_ARGS parsed with the plugin's knownArgs (set by the skel; lib/cni/args cniArgsOf() parses when absent). */
  cniArgs?: Readonly<Record<string, string>>;
  /** stderr (+ log file) logger of this invocation (set by the skel; absent means silent). */
  log?: Logger;
}
