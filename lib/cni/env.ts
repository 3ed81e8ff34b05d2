// The CNI_* environment (CONFORMANCE §1.2, §1.3): which variables each verb
// needs, and the validation rules the reference library applies. Pure: takes
// an env object, returns a CniEnv or throws CniError code 4.

import { CniError, ErrorCode } from './errors';
import type { CniEnv, Verb } from './types';
import { show } from '../util/show';
import { ifnameProblem } from '../util/ifname';

export const VERBS: readonly Verb[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'];

type CniVar = 'CNI_COMMAND' | 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_PATH';

/**
 * Required per verb. CNI_PATH is required only for GC (the spec says so);
 * other verbs need it only when they delegate, and lib/cni/exec says so then.
 * DEL does not need CNI_NETNS (the netns may be gone).
 */
const REQUIRED: Record<Verb, readonly CniVar[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  GC: ['CNI_PATH'],
  STATUS: [],
  VERSION: [],
};

/** Which verbs look at the attachment variables at all (GC/STATUS/VERSION get "" or dummies from libcni). */
const USES_ATTACHMENT: Record<Verb, boolean> = { ADD: true, CHECK: true, DEL: true, GC: false, STATUS: false, VERSION: false };

/** An env var set to "" counts as unset: libcni exports all six and blanks the unused ones. */
export function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

export function isVerb(s: string): s is Verb {
  return (VERBS as readonly string[]).includes(s);
}

/** Same character rule for container IDs and network names (Go utils cniValidNameChars). */
const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validateContainerId(id: string): void {
  if (!VALID_NAME.test(id)) {
    throw new CniError(ErrorCode.InvalidEnvironment, 'invalid characters in containerID', `CNI_CONTAINERID ${show(id)} must match ${VALID_NAME.source}`);
  }
}

/** Linux interface name rules (Go utils ValidateInterfaceName). */
export function validateIfname(name: string): void {
  const bad = (why: string) => new CniError(ErrorCode.InvalidEnvironment, `invalid CNI_IFNAME ${show(name)}: ${why}`, `CNI_IFNAME=${show(name)}`);
  const problem = ifnameProblem(name);
  if (problem) throw bad(problem);
}

/** The network name (stdin "name"): required, same characters as a container ID. Code 7. */
export function validateNetworkName(name: unknown): string {
  if (name === undefined || name === null || name === '') throw new CniError(ErrorCode.InvalidConfig, 'missing network name');
  if (typeof name !== 'string') throw new CniError(ErrorCode.InvalidConfig, 'invalid network name', `"name" must be a string, got ${show(name)}`);
  if (!VALID_NAME.test(name)) {
    throw new CniError(ErrorCode.InvalidConfig, 'invalid characters found in network name', `name ${show(name)} must match ${VALID_NAME.source}`);
  }
  return name;
}

export function splitCniPath(v: string | undefined): string[] {
  return (v ?? '').split(':').filter((p) => p !== '');
}

/**
 * Read and validate the CNI_* variables for one invocation. A missing
 * CNI_COMMAND or an unknown one is code 4; every missing required variable
 * is named in one code-4 error. VERSION validates nothing (libcni sends dummies).
 */
export function readCniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = envValue(env, 'CNI_COMMAND');
  if (command === undefined) throw new CniError(ErrorCode.InvalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  if (!isVerb(command)) {
    throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`, `CNI_COMMAND must be one of ${VERBS.join(', ')}`);
  }
  const path = splitCniPath(envValue(env, 'CNI_PATH'));
  if (command === 'VERSION') return { command, path };

  const missing = REQUIRED[command].filter((name) => envValue(env, name) === undefined);
  if (missing.length) throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);

  if (!USES_ATTACHMENT[command]) return { command, path };
  const containerId = envValue(env, 'CNI_CONTAINERID');
  const ifname = envValue(env, 'CNI_IFNAME');
  if (containerId !== undefined) validateContainerId(containerId);
  if (ifname !== undefined) validateIfname(ifname);
  return {
    command,
    containerId,
    netns: envValue(env, 'CNI_NETNS'),
    ifname,
    args: envValue(env, 'CNI_ARGS'),
    path,
  };
}
