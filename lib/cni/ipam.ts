// IPAM delegation for interface plugins (CONFORMANCE §6). The plugin calls
// ipamAdd/ipamDel/... with its own Invocation; the IPAM plugin named by
// conf.ipam.type either runs in-process (when the caller passes its handlers
// in `inProcess`: ipam/index.ts, handed in by each main.ts, which saves a
// fork+exec of Node) or is exec'd from CNI_PATH with the same env and stdin.

import { CniError, ErrorCode } from './errors';
import { PluginUnavailableError, execDelegate, validatePluginType } from './exec';
import type { GcInvocation, Plugin } from './plugin';
import type { Invocation, Result, Verb } from './types';
import { abbreviateIpamResult } from './version';

/** What an IPAM library gives its in-process callers: a plugin's verb handlers. */
export type IpamHandlers = Pick<Plugin, 'add' | 'del' | 'check' | 'gc' | 'status'>;

/** IPAM types run in-process, by ipam.type. */
export type InProcessIpam = Readonly<Record<string, IpamHandlers>>;

/** Whether the config names an IPAM plugin at all ("ipam": {} means L2 only). */
export function hasIpam(inv: Invocation): boolean {
  const t = inv.conf.ipam?.type;
  return typeof t === 'string' && t !== '';
}

function ipamType(inv: Invocation): string {
  return validatePluginType(inv.conf.ipam?.type, 'ipam.type');
}

/** The same invocation as seen by a delegate: only the verb differs. */
function asVerb<T extends Invocation>(inv: T, verb: Verb): T {
  return inv.env.command === verb ? inv : { ...inv, env: { ...inv.env, command: verb } };
}

async function delegate(inv: Invocation, verb: Verb, inProcess: InProcessIpam): Promise<Result | undefined> {
  const type = ipamType(inv);
  const local = Object.prototype.hasOwnProperty.call(inProcess, type) ? inProcess[type] : undefined;
  if (local) {
    const same = asVerb(inv, verb);
    switch (verb) {
      case 'ADD': return local.add(same);
      case 'DEL': return void (await local.del(same));
      case 'CHECK': return void (await local.check?.(same));
      case 'GC': return void (await local.gc?.(same as GcInvocation));
      case 'STATUS': return void (await local.status?.(same));
      default: throw new CniError(ErrorCode.Internal, `cannot delegate ${verb}`);
    }
  }
  return execDelegate({ type, verb, env: inv.env, stdin: inv.raw, confVersion: inv.conf.cniVersion });
}

/**
 * IPAM ADD. Returns the abbreviated result in the 1.x shape: no interfaces,
 * no ips[].interface (the caller fills those in). If the caller fails after
 * this, it must call ipamDel (SPEC L563).
 */
export async function ipamAdd(inv: Invocation, inProcess: InProcessIpam = {}): Promise<Result> {
  const res = await delegate(inv, 'ADD', inProcess);
  if (!res) throw new CniError(ErrorCode.Internal, `IPAM plugin "${ipamType(inv)}" returned no result`);
  return { ...abbreviateIpamResult(res), cniVersion: inv.conf.cniVersion };
}

/** IPAM DEL (idempotent on the IPAM side). A no-op when the config has no ipam.type. */
export async function ipamDel(inv: Invocation, inProcess: InProcessIpam = {}): Promise<void> {
  if (hasIpam(inv)) await delegate(inv, 'DEL', inProcess);
}

/** IPAM CHECK. A no-op when the config has no ipam.type. */
export async function ipamCheck(inv: Invocation, inProcess: InProcessIpam = {}): Promise<void> {
  if (hasIpam(inv)) await delegate(inv, 'CHECK', inProcess);
}

/** IPAM GC: the stdin already carries cni.dev/valid-attachments. A no-op without ipam.type. */
export async function ipamGc(inv: GcInvocation, inProcess: InProcessIpam = {}): Promise<void> {
  if (hasIpam(inv)) await delegate(inv, 'GC', inProcess);
}

/**
 * IPAM STATUS. An IPAM plugin we cannot find or run means we cannot serve
 * ADD: code 50 (CONFORMANCE E47). The delegate's own error passes up unchanged.
 */
export async function ipamStatus(inv: Invocation, inProcess: InProcessIpam = {}): Promise<void> {
  if (!hasIpam(inv)) return;
  try {
    await delegate(inv, 'STATUS', inProcess);
  } catch (err) {
    if (err instanceof PluginUnavailableError) {
      throw new CniError(ErrorCode.NotAvailable, `IPAM plugin "${String(inv.conf.ipam?.type)}" is not available`, `${err.message}${err.details ? `: ${err.details}` : ''}`);
    }
    throw err;
  }
}
