// Paths from a config or the environment are data (DESIGN.md "Config values
// are data"): one validator per kind, used by every config parser. Pure: the
// text decides; lib/util/fs.ts checks the disk when a directory is used.
//
//   kind    where it may point                                  fields
//   state   strictly below /run, /var/run, /var/lib,            bridge stateDir, vxlan-overlay runDir,
//           /var/cache, /tmp or /var/tmp                        ipam.dataDir, store.dir, macvlan and
//                                                               portmap dataDir, nameResolution.runDir
//   read    anywhere but /proc, /sys and /dev (a file we or     host-local resolvConf,
//           dnsmasq read; checked to be a regular file, read   nameResolution.resolvConf
//           with a size limit)
//   log     a file directly in the log directory               logFile, NODE_CNI_LOG_FILE
//           (lib/util/log.ts)
//
// Every kind: a string, absolute, normalized (no ".", "..", "//" or trailing
// "/"), no control characters, well-formed Unicode, at most 1024 bytes, no
// component over 255 bytes. A program to run is never taken from a config.

import * as path from 'path';
import { CniError, ErrorCode } from '../cni/errors';
import { show } from './show';

export const STATE_ROOTS: readonly string[] = ['/run', '/var/run', '/var/lib', '/var/cache', '/tmp', '/var/tmp'];
export const READ_FORBIDDEN: readonly string[] = ['/proc', '/sys', '/dev'];
export const MAX_PATH_BYTES = 1024;
const MAX_NAME_BYTES = 255;

// C0, DEL, C1, the Unicode line and paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** `p` equals `root` or lies below it (text only). */
export function isWithin(p: string, root: string): boolean {
  return p === root || p.startsWith(root === '/' ? '/' : `${root}/`);
}

/** What is wrong with the text of an absolute path, or undefined when nothing is. */
export function pathTextProblem(p: string): string | undefined {
  if (p === '') return 'is empty';
  if (CONTROL.test(p)) return 'contains a control character (newline, tab, ...)';
  if (LONE_SURROGATE.test(p)) return 'is not well-formed Unicode';
  if (!p.startsWith('/')) return 'is not an absolute path';
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  if (path.posix.normalize(p) !== p || (p.length > 1 && p.endsWith('/'))) return `is not normalized (write ${JSON.stringify(path.posix.normalize(p).replace(/(.)\/$/, '$1'))})`;
  if (p.split('/').some((c) => Buffer.byteLength(c) > MAX_NAME_BYTES)) return `has a component longer than ${MAX_NAME_BYTES} bytes`;
  return undefined;
}

/** What is wrong with a state directory's text, or undefined. */
export function stateDirProblem(p: string): string | undefined {
  const text = pathTextProblem(p);
  if (text) return text;
  if (!STATE_ROOTS.some((r) => p !== r && isWithin(p, r))) return `is not below one of ${STATE_ROOTS.join(', ')}`;
  return undefined;
}

/** What is wrong with the text of a file to read, or undefined. */
export function readFileProblem(p: string): string | undefined {
  const text = pathTextProblem(p);
  if (text) return text;
  const bad = READ_FORBIDDEN.find((r) => isWithin(p, r));
  if (bad || p === '/') return `is in ${bad ?? '/'}, where no configuration file lives`;
  return undefined;
}

export interface PathField {
  /** The plugin, for the message: "bridge". */
  plugin: string;
  /** The field as the config spells it: "stateDir", "ipam.dataDir", "nameResolution.runDir". */
  field: string;
}

function parsePath(v: unknown, f: PathField, problem: (p: string) => string | undefined): string {
  if (typeof v !== 'string') throw new CniError(ErrorCode.InvalidConfig, `${f.plugin}: "${f.field}" must be a string (a path), got ${show(v)}`);
  const why = problem(v);
  if (why) throw new CniError(ErrorCode.InvalidConfig, `${f.plugin}: "${f.field}" ${show(v)} ${why}`, `rules for "${f.field}": docs/security.md`);
  return v;
}

/** A state directory from a config (code 7 naming the field when it breaks the rules above). */
export function parseStateDir(v: unknown, f: PathField): string {
  return parsePath(v, f, stateDirProblem);
}

/** A file to read from a config (code 7 naming the field when it breaks the rules above). */
export function parseReadFile(v: unknown, f: PathField): string {
  return parsePath(v, f, readFileProblem);
}
