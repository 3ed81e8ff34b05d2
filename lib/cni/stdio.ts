// The plugin's stdin and stdout as plain file descriptors. A plugin reads one
// config and writes one result: synchronous reads and writes on fd 0 and 1
// need none of Node's stream machinery (process.stdin on a pipe loads net and
// streams: several ms of every start), and this is also how Node itself writes
// to pipes on Linux. If the runtime handed us non-blocking descriptors
// (EAGAIN), fall back to Node's streams.
import * as fs from 'fs';

const CHUNK = 64 * 1024;

const wouldBlock = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'EAGAIN';

/** All of stdin, or its first `limit + 1` bytes when it is longer (so the caller can tell and refuse). */
export async function readStdin(limit = Infinity): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK);
      const n = fs.readSync(0, buf, 0, CHUNK, null);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      size += n;
      if (size > limit) break;
    }
  } catch (err) {
    if (!wouldBlock(err)) throw err;
    for await (const chunk of process.stdin) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size > limit) break;
    }
  }
  return Buffer.concat(chunks).subarray(0, limit === Infinity ? undefined : limit + 1);
}

/**
 * Whether stdin is a terminal (a person ran the plugin by hand). A terminal is
 * a character device: pipes and files (what runtimes hand a plugin) are
 * answered by one fstat, without loading tty, which loads net (~15 M
 * instructions of every VERSION call, docs/benchmarks/startup.md).
 */
export function stdinIsTerminal(): boolean {
  try {
    if (!fs.fstatSync(0).isCharacterDevice()) return false;
  } catch {
    return false; // no fd 0: nothing to read either
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: tty loads net (start-up)
  return (require('tty') as typeof import('tty')).isatty(0);
}

/** Write all of text to fd 1 (stdout) or 2 (stderr), then call done. A closed stderr loses the line, nothing more. */
export function writeOut(fd: 1 | 2, text: string, done: () => void): void {
  let buf = Buffer.from(text);
  try {
    while (buf.length > 0) buf = buf.subarray(fs.writeSync(fd, buf));
  } catch (err) {
    if (wouldBlock(err)) {
      (fd === 1 ? process.stdout : process.stderr).write(buf, () => done());
      return;
    }
    if (fd === 1) throw err;
  }
  done();
}
