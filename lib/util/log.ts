// Logging for plugins: stdout belongs to the protocol, so logs go to stderr
// (relayed by the runtime) and, when configured, are appended to a file.
// A Logger never throws: a broken log file must not fail a DEL.
//
// Log files (the config's "logFile", NODE_CNI_LOG_FILE) are a path into a
// config or environment that root then appends to, so they are data too: an
// absolute path to a file directly in the log directory, /var/log/cni, or the
// directory NODE_CNI_LOG_DIR names when root owns it and nobody else can
// write it. The file name is letters, digits, ".", "_" and "-" (no dotfile).
// The skel writes the lines at the end of the invocation, so a config it
// refuses never creates or touches its logFile.

import * as fs from 'fs';
import * as path from 'path';
import { pathTextProblem } from './paths';
import { requireSafeDir } from './fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface LoggerOptions {
  /** Prefix of every line, e.g. "bridge ADD abc/eth0". */
  tag: string;
  /** Where stderr lines go; default process.stderr. The skel passes a buffer so its core stays testable. */
  stderr?: (line: string) => void;
  /** Append every line (with a timestamp) to this file as well (a trusted path: the agent's --log-file). */
  file?: string;
  /** Or hand every timestamped line to this sink (the skel collects them and decides the file at the end). */
  fileLines?: (line: string) => void;
  /** Lines below this level are dropped from stderr (the file gets everything). Default "info". */
  stderrLevel?: LogLevel;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function createLogger(opts: LoggerOptions): Logger {
  const toStderr = opts.stderr ?? ((line: string) => process.stderr.write(line));
  const minRank = RANK[opts.stderrLevel ?? 'info'];
  const emit = (level: LogLevel, msg: string): void => {
    const line = `${opts.tag}: ${level === 'info' ? '' : `${level}: `}${msg}\n`;
    if (RANK[level] >= minRank) {
      try { toStderr(line); } catch { /* stderr closed: nothing better to do */ }
    }
    const stamped = `${new Date().toISOString()} ${line}`;
    if (opts.fileLines) opts.fileLines(stamped);
    if (opts.file) appendLogLine(opts.file, stamped);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

/** Append one line; failures are ignored (logging is never the reason an operation fails). */
export function appendLogLine(file: string, line: string): void {
  appendLogLines(file, [line]);
}

/**
 * Append lines to a regular file: never through a symlink (O_NOFOLLOW), never
 * blocking on a FIFO (O_NONBLOCK, then fstat), created 0600. Errors ignored.
 */
export function appendLogLines(file: string, lines: readonly string[]): void {
  if (lines.length === 0) return;
  const text = lines.map((l) => (l.endsWith('\n') ? l : `${l}\n`)).join('');
  let fd: number | undefined;
  try {
    const c = fs.constants;
    fd = fs.openSync(file, c.O_WRONLY | c.O_APPEND | c.O_CREAT | c.O_NOFOLLOW | c.O_NONBLOCK, 0o600);
    if (!fs.fstatSync(fd).isFile()) return;
    fs.writeSync(fd, text);
  } catch { /* ignore */ } finally {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* ignore */ }
  }
}

/** A logger that drops everything (default for code called outside the skel). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

// ---------------------------------------------------------------------------
// Where log files may be.

export const DEFAULT_LOG_DIR = '/var/log/cni';
/** Env var naming the log directory instead of /var/log/cni (it must exist, be root's and writable by root only). */
export const LOG_DIR_ENV = 'NODE_CNI_LOG_DIR';
const LOG_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

/** The log directory for this environment: NODE_CNI_LOG_DIR (text checked here, the disk at write time) or /var/log/cni. */
export function logDirOf(env: NodeJS.ProcessEnv): string {
  const v = env[LOG_DIR_ENV];
  return v === undefined || v === '' ? DEFAULT_LOG_DIR : v;
}

/** Why `file` may not be a log file in `dir`, or undefined (pure). */
export function logFileProblem(file: string, dir: string): string | undefined {
  const dirWhy = pathTextProblem(dir);
  if (dirWhy) return `the log directory ${JSON.stringify(dir)} (${LOG_DIR_ENV}) ${dirWhy}`;
  const why = pathTextProblem(file);
  if (why) return why;
  if (path.dirname(file) !== dir) return `is not a file directly in the log directory ${dir} (${LOG_DIR_ENV} names another one)`;
  if (!LOG_NAME.test(path.basename(file))) return 'must be named with letters, digits, ".", "_" and "-" (not starting with ".")';
  return undefined;
}

/**
 * Write collected lines to a log file whose text passed logFileProblem: the
 * default directory is created (0755) if missing, any directory must pass
 * requireSafeDir. Failures are ignored.
 */
export function writeLogFile(file: string, lines: readonly string[]): void {
  if (lines.length === 0) return;
  const dir = path.dirname(file);
  try {
    if (dir === DEFAULT_LOG_DIR) fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    requireSafeDir(dir, ['/']);
  } catch {
    return;
  }
  appendLogLines(file, lines);
}
