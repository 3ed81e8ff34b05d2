// The container MAC a runtime asks for (the `mac` capability, args.cni.mac,
// CNI_ARGS MAC), checked once for every plugin that sets one: six hex pairs,
// unicast. Code 7 naming the source otherwise.

import { CniError, ErrorCode } from './errors';
import { show } from '../util/show';
import type { NetConf } from './types';
import { parseColonMac } from '../util/mac';
import { isObject } from '../util/is-object';

/** A unicast MAC, lower case; `where` names the source for the message. */
export function parseUnicastMac(value: unknown, plugin: string, where: string): string {
  const mac = typeof value === 'string' ? parseColonMac(value) : undefined;
  if (!mac) throw new CniError(ErrorCode.InvalidConfig, `${plugin}: invalid MAC address ${show(value)} in ${where}`);
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new CniError(ErrorCode.InvalidConfig, `${plugin}: MAC address "${value}" in ${where} is a multicast address`);
  return mac;
}

function isSet(v: unknown): boolean {
  return v !== undefined && v !== null && v !== '';
}

/**
 * The MAC asked for, highest precedence first: runtimeConfig.mac (Docker's
 * --mac-address through the `mac` capability), args.cni.mac, CNI_ARGS MAC,
 * then `configMac` (a plugin's own "mac" field, where it has one).
 */
export function pickContainerMac(conf: NetConf, cniArgs: Readonly<Record<string, string>>, plugin: string, configMac?: unknown): string | undefined {
  const rc = conf.runtimeConfig?.mac;
  if (isSet(rc)) return parseUnicastMac(rc, plugin, 'runtimeConfig.mac');
  const argsCni = conf.args?.cni;
  const argMac = isObject(argsCni) ? argsCni.mac : undefined;
  if (isSet(argMac)) return parseUnicastMac(argMac, plugin, 'args.cni.mac');
  if (cniArgs.MAC) return parseUnicastMac(cniArgs.MAC, plugin, 'CNI_ARGS MAC');
  if (isSet(configMac)) return parseUnicastMac(configMac, plugin, '"mac"');
  return undefined;
}
