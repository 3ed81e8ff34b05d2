// Filesystem helpers shared by the plugins' state stores.
import * as fs from 'fs';
import * as path from 'path';

/**
 * Create a private directory (0700) and any missing parents (0755). A bare
 * recursive mkdir with 0700 would also make shared parents such as /run/cni
 * unsearchable for other users (the DNS service's dnsmasq runs as nobody).
 */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
}
