// lib/firewall/nft.ts runs nft through libnftables in the plugin's process
// (native/cni_native.c nftRun) and falls back to the nft CLI where the
// library is missing. Both must behave alike: the same transactions, the same
// output, the same errors (NftError tells missing, exists and busy apart by
// the error text). In a throwaway namespace, each case runs through both.
import { NftError, libraryCommand, runNft, spawnNft, type NftRun } from '../../lib/firewall/nft';
import { native } from '../../lib/sys/native';
import { throwawayNetns } from '../helpers/sandbox';

const fx = throwawayNetns('pfnft');

const T = 'pf_lib';
const cli = (args: string[], input?: string): NftRun => fx.netns.run(() => spawnNft(args, input));
const lib = (args: string[], input?: string): NftRun => runNft(args, { input, netns: fx.netns });
const error = (r: NftRun): string => (r.status === 0 ? 'ok' : new NftError(r.stderr, '').missing ? 'missing' : new NftError(r.stderr, '').exists ? 'exists' : new NftError(r.stderr, '').busy ? 'busy' : 'other');
const listed = (r: NftRun): unknown => (JSON.parse(r.stdout).nftables as Array<Record<string, unknown>>).filter((o) => !o.metainfo);

it('this host has libnftables, so runNft does not start nft', () => {
  expect(fx.netns.run(() => native().nftRun('list tables', false))).toMatchObject({ status: 0 });
});

it('maps the CLI arguments the project uses onto library commands', () => {
  expect(libraryCommand(['-f', '-'], 'add table inet x\n')).toEqual({ commands: 'add table inet x\n', json: false });
  expect(libraryCommand(['-j', 'list', 'table', 'inet', 'x'])).toEqual({ commands: 'list table inet x', json: true });
  expect(libraryCommand(['get', 'element', 'inet', 'x', 's', '{ 10.0.0.1 }'])).toEqual({ commands: 'get element inet x s { 10.0.0.1 }', json: false });
  // Options only the CLI knows stay with the CLI.
  expect(libraryCommand(['-a', 'list', 'ruleset'])).toBeUndefined();
  expect(libraryCommand(['-f', '/etc/nftables.conf'])).toBeUndefined();
  expect(libraryCommand([])).toBeUndefined();
});

it('a transaction made by either is seen alike by both', () => {
  const declare = [
    `add table inet ${T}`,
    `add map inet ${T} m4 { type ipv4_addr : verdict; }`,
    `add chain inet ${T} post { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain inet ${T} net-a { comment "network a"; }`,
    `add rule inet ${T} net-a masquerade comment "pf:1"`,
    `add rule inet ${T} post ip saddr vmap @m4`,
    `add element inet ${T} m4 { 10.9.0.2 comment "ctr a" : jump net-a }`,
  ].join('\n') + '\n';
  expect(lib(['-f', '-'], declare)).toMatchObject({ status: 0, stderr: '' });
  const viaLib = lib(['-j', 'list', 'table', 'inet', T]);
  const viaCli = cli(['-j', 'list', 'table', 'inet', T]);
  expect(viaLib.status).toBe(0);
  expect(listed(viaLib)).toEqual(listed(viaCli));
  expect(lib(['get', 'element', 'inet', T, 'm4', '{ 10.9.0.2 }']).stdout).toBe(cli(['get', 'element', 'inet', T, 'm4', '{ 10.9.0.2 }']).stdout);
  expect(cli(['-f', '-'], `add element inet ${T} m4 { 10.9.0.3 : jump net-a }\n`).status).toBe(0);
  expect(lib(['get', 'element', 'inet', T, 'm4', '{ 10.9.0.3 }'])).toMatchObject({ status: 0 });
});

it.each([
  ['a missing element', (t: string) => `delete element inet ${t} m4 { 10.9.9.9 }\n`, 'missing'],
  ['a missing table', () => 'delete table inet pf_nosuch\n', 'missing'],
  ['an element that exists (create)', (t: string) => `create element inet ${t} m4 { 10.9.0.2 : jump net-a }\n`, 'exists'],
  ['a chain still jumped to', (t: string) => `delete chain inet ${t} net-a\n`, 'busy'],
  ['a syntax error', () => 'add tabel inet x\n', 'other'],
])('fails alike on %s, and changes nothing', (_what, script, kind) => {
  const before = cli(['-j', 'list', 'table', 'inet', T]).stdout;
  const viaLib = lib(['-f', '-'], script(T));
  const viaCli = cli(['-f', '-'], script(T));
  expect([viaLib.status, error(viaLib)]).toEqual([1, kind]);
  expect([viaCli.status, error(viaCli)]).toEqual([1, kind]);
  expect(cli(['-j', 'list', 'table', 'inet', T]).stdout).toBe(before);
});

it('a failing transaction is atomic through the library too', () => {
  const r = lib(['-f', '-'], `add element inet ${T} m4 { 10.9.0.7 : jump net-a }\ndelete element inet ${T} m4 { 10.9.9.9 }\n`);
  expect(r.status).toBe(1);
  expect(cli(['get', 'element', 'inet', T, 'm4', '{ 10.9.0.7 }']).status).toBe(1);
  expect(lib(['-f', '-'], `delete table inet ${T}\n`).status).toBe(0);
  expect(cli(['list', 'tables']).stdout).not.toContain(T);
});
