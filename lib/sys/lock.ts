// A blocking flock(LOCK_EX) around a short critical section. Every holder is
// one short plugin run, so waiting is bounded by the slowest of them.

import * as fs from 'fs';
import * as path from 'path';
import { LOCK_EX, LOCK_UN, native } from './native';

export async function withFileLock<T>(lockFile: string, fn: () => Promise<T> | T, dirMode = 0o700): Promise<T> {
  fs.mkdirSync(path.dirname(lockFile), { recursive: true, mode: dirMode });
  const fd = fs.openSync(lockFile, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  try {
    native().flock(fd, LOCK_EX);
    try {
      return await fn();
    } finally {
      native().flock(fd, LOCK_UN);
    }
  } finally {
    fs.closeSync(fd);
  }
}
