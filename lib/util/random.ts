// Random bytes for names that must not collide (temporary link names, veth
// names), read from the kernel's /dev/urandom: node:crypto's randomBytes would
// load crypto (~70 M instructions at start-up, lib/util/hash.ts).
import * as fs from 'fs';

export function randomBytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    for (let got = 0; got < n; ) got += fs.readSync(fd, out, got, n - got, null);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}
