// Logging for plugins: stdout belongs to the protocol, so logs go to stderr
// (relayed by the runtime) and, when configured, are appended to a file.
// A Logger never throws: a broken log file must not fail a DEL.

import * as fs from 'fs';

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
  /** Append every line (with a timestamp) to this file as well. */
  file?: string;
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
    if (opts.file) appendLogLine(opts.file, `${new Date().toISOString()} ${line}`);
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
  try {
    fs.appendFileSync(file, line.endsWith('\n') ? line : `${line}\n`, { mode: 0o600 });
  } catch { /* ignore */ }
}

/** A logger that drops everything (default for code called outside the skel). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
