// What a plugin imports decides what every start of the release pays
// (docs/benchmarks/startup.md): node:crypto costs ~70 M instructions to load
// (and 8 M per call once in the snapshot), net and tty ~45 M, child_process
// ~58 M. Plugins and the libraries they share use lib/util/hash, lib/util/random,
// lib/ip's isIP and lib/firewall/nft.ts (libnftables in process) instead.
// child_process stays for what must start a program (IPAM delegation, dnsmasq,
// iptables): a named import, which the release resolves when it is called; a
// namespace or default import would load the module with its importer (into
// the snapshot). Code few invocations run (cnictl, the overlay agent) may
// import what it needs.
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const NEVER = ['crypto', 'net', 'tty', 'dgram', 'tls', 'http', 'https', 'http2', 'worker_threads'];
const WHEN_CALLED = ['child_process'];
// Modules that need a heavy built-in and load it only on the path that needs it (a require inside a function).
const ON_DEMAND_DIRS = ['cli', path.join('plugins', 'vxlan-overlay', 'agent')];

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sources(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

it('no plugin module imports a heavy Node built-in at its top level', () => {
  const offenders: string[] = [];
  for (const file of ['lib', 'plugins', 'ipam'].flatMap(sources)) {
    if (ON_DEMAND_DIRS.some((d) => file.startsWith(d + path.sep))) continue;
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/^import\s[^;]*?from\s+'(?:node:)?([a-z_]+)'/gm)) {
      if (/^import\s+type\s/.test(m[0])) continue;
      const eager = !/^import\s*\{/.test(m[0]); // import * as x / import x: loaded with the importer
      if (NEVER.includes(m[1]) || (WHEN_CALLED.includes(m[1]) && eager)) offenders.push(`${file}: ${m[0].replace(/\s+/g, ' ')}`);
    }
  }
  expect(offenders).toEqual([]);
});
