// lib/firewall/nft.ts runs nft through libnftables in the plugin's process
// (native/cni_native.c nftRun) and falls back to the nft CLI where the
// library is missing. Both must behave alike: the same transactions, the same
// output, the same errors (NftError tells missing, exists and busy apart by
// the error text). In a throwaway namespace, each case runs through both.
import { NftError, libraryCommand, runNft, spawnNft, type NftRun } from '../../lib/firewall/nft';
import { parseElementScript } from '../../lib/firewall/nft-elements';
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

// Element scripts go over nfnetlink without libnftables (lib/firewall/nft-elements.ts): the same changes and the
// same errors as libnftables itself makes of the same text, on twin tables.
describe('element changes without libnftables', () => {
  const twin = (t: string): string => [
    `add table inet ${t}`,
    `add map inet ${t} m4 { type ipv4_addr : verdict; }`,
    `add map inet ${t} m6 { type ipv6_addr : verdict; }`,
    `add chain inet ${t} net-a`,
  ].join('\n') + '\n';
  const viaLibrary = (script: string): NftRun => fx.netns.run(() => native().nftRun(script, false)!);
  const viaNfnl = (script: string): NftRun => lib(['-f', '-'], script);
  const elements = (t: string): unknown => (listed(cli(['-j', 'list', 'table', 'inet', t])) as Array<{ map?: Record<string, unknown> }>)
    .flatMap((o) => (o.map ? [{ ...o.map, table: undefined, handle: undefined }] : []));

  beforeAll(() => {
    expect(viaLibrary(twin('pf_el_a') + twin('pf_el_b'))).toMatchObject({ status: 0 });
  });
  afterAll(() => {
    viaLibrary('delete table inet pf_el_a\ndelete table inet pf_el_b\n');
  });

  it.each([
    ['create', (t: string) => `create element inet ${t} m4 { 10.9.1.2 comment "ctr a/eth0" : jump net-a }\ncreate element inet ${t} m6 { fd00:9::2 comment "ctr a/eth0" : jump net-a }\n`, 'ok'],
    ['create of an element that exists', (t: string) => `create element inet ${t} m4 { 10.9.1.2 comment "ctr b/eth0" : jump net-a }\n`, 'exists'],
    ['add, delete, add (takeover)', (t: string) => `add element inet ${t} m4 { 10.9.1.2 : jump net-a }\ndelete element inet ${t} m4 { 10.9.1.2 }\nadd element inet ${t} m4 { 10.9.1.2 comment "ctr c/eth0" : jump net-a }\n`, 'ok'],
    ['a jump to a missing chain', (t: string) => `create element inet ${t} m4 { 10.9.1.3 : jump net-gone }\n`, 'missing'],
    ['delete of a missing element, with one that exists (atomic)', (t: string) => `delete element inet ${t} m6 { fd00:9::2 }\ndelete element inet ${t} m4 { 10.9.9.9 }\n`, 'missing'],
    ['a missing map', (t: string) => `delete element inet ${t} nosuch { 10.9.1.2 }\n`, 'missing'],
    ['delete', (t: string) => `delete element inet ${t} m6 { fd00:9::2 }\n`, 'ok'],
  ])('%s', (_what, script, kind) => {
    expect(parseElementScript(script('pf_el_b'))).toBeDefined();
    const a = viaLibrary(script('pf_el_a'));
    const b = viaNfnl(script('pf_el_b'));
    expect([error(a), error(b)]).toEqual([kind, kind]);
    expect(elements('pf_el_b')).toEqual(elements('pf_el_a'));
  });

  it('the listing compared above holds the elements and their comments', () => {
    expect(JSON.stringify(elements('pf_el_b'))).toContain('ctr c/eth0');
  });
});
