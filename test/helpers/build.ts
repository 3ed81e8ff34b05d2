// Build the release (scripts/build.js: the single executable, its tarball, and
// dist/bin = that tarball unpacked) when a program a test needs is missing or
// older than any source (a single e2e file run by hand must not test a stale
// build; the full suite builds first, in scripts/test.sh).
import * as fs from 'fs';
import * as path from 'path';
import { DIST_BIN, ROOT, sh } from './sandbox';

const SOURCE_DIRS = ['lib', 'plugins', 'ipam', 'cli'];
const BUILD_FILES = ['scripts/build.js', 'scripts/release/runtime.js', 'native/cni_native.c', 'package-lock.json'];

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

/** Build the release if any of the named programs (e.g. 'bridge', 'cnictl') is missing or stale: one executable holds them all. */
export function ensureBuilt(...names: string[]): void {
  const newest = newestSource();
  const stale = names.some((n) => {
    const bin = path.join(DIST_BIN, n);
    return !fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest;
  });
  if (stale) sh(process.execPath, [path.join(ROOT, 'scripts', 'build.js')]);
}
