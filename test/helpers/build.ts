// Build dist/bin executables a test needs, only when missing or older than any
// source (a single e2e file run by hand must not test a stale binary; the full
// suite builds everything first, in scripts/test.sh).
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, ROOT, sh } from './sandbox';

const SOURCE_DIRS = ['lib', 'plugins', 'ipam', 'cli'];
const BUILD_FILES = ['scripts/build.js', 'scripts/native-prelude.js', 'native/cni_native.c'];

function newestSource(): number {
  let newest = Math.max(...BUILD_FILES.map((f) => fs.statSync(path.join(ROOT, f)).mtimeMs));
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  for (const d of SOURCE_DIRS) walk(path.join(ROOT, d));
  return newest;
}

/** Build the named executables (e.g. 'bridge', 'cnictl') that are missing or stale. */
export function ensureBuilt(...names: string[]): void {
  const newest = newestSource();
  const stale = names.filter((n) => {
    const bin = path.join(DIST_BIN, n);
    return !fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest;
  });
  if (stale.length) sh(process.execPath, [path.join(ROOT, 'scripts', 'build.js'), ...stale]);
}
