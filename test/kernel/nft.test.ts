// lib/firewall/nft.ts over nfnetlink in a throwaway namespace: verifying a
// chain by its tagged rules, listing a table without its elements, deleting
// a network's objects, and deleting a shared table only when nobody uses it.
import { applyNft, deleteTableObjects, listTable, removeTableIfUnused, renderChain, verifyChains } from '../../lib/firewall/nft';
import { throwawayNetns } from '../helpers/sandbox';

const fx = throwawayNetns('lfnft');
const { sb } = fx;

const T = 'lf_shared';
const shared = { family: 'inet' as const, table: T, chains: ['postrouting'], sets: ['members4'] };
const base = renderChain('inet', T, 'postrouting', 'type nat hook postrouting priority srcnat; policy accept;', ['ip saddr vmap @members4']);
const net = renderChain('inet', T, 'net-a', 'comment "network a";', ['ip daddr 10.1.0.0/16 return', 'masquerade']);
const declare = [
  `add table inet ${T}`,
  `add map inet ${T} members4 { type ipv4_addr : verdict; }`,
  ...base.lines,
  ...net.lines,
].join('\n') + '\n';
const ruleset = () => sb.inNs(fx.ns, 'nft', ['list', 'ruleset']).stdout;

it('verifies chains by their tagged rules: a removed, added or changed rule, or a missing chain, is noticed', async () => {
  applyNft(declare, fx.netns);
  expect(await verifyChains('inet', T, [base, net], fx.netns)).toBe(true);
  const handles = sb.inNs(fx.ns, 'nft', ['-a', 'list', 'chain', 'inet', T, 'net-a']).stdout.match(/# handle (\d+)/g)!.map((h) => h.split(' ').pop()!);
  sb.inNs(fx.ns, 'nft', ['delete', 'rule', 'inet', T, 'net-a', 'handle', handles[handles.length - 1]]);
  expect(await verifyChains('inet', T, [base, net], fx.netns)).toBe(false);
  applyNft(net.lines.join('\n') + '\n', fx.netns); // the repair: flush and refill
  expect(await verifyChains('inet', T, [base, net], fx.netns)).toBe(true);
  sb.inNs(fx.ns, 'nft', ['add', 'rule', 'inet', T, 'net-a', 'counter']);
  expect(await verifyChains('inet', T, [net], fx.netns)).toBe(false);
  const other = renderChain('inet', T, 'net-a', 'comment "network a";', ['ip daddr 10.2.0.0/16 return', 'masquerade']);
  applyNft(net.lines.join('\n') + '\n', fx.netns);
  expect(await verifyChains('inet', T, [other], fx.netns)).toBe(false); // another config renders other rules
  expect(await verifyChains('inet', T, [{ name: 'nosuch', tags: ['nc:000000000000'] }], fx.netns)).toBe(false);
  expect(await verifyChains('inet', 'lf_nosuchtable', [net], fx.netns)).toBe(false);
});

it('lists a table\'s chains (with comments) and sets, and deletes a network\'s objects', async () => {
  applyNft(declare, fx.netns);
  const t = await listTable('inet', T, fx.netns);
  expect(t!.chains).toEqual(expect.arrayContaining([{ name: 'postrouting', comment: '' }, { name: 'net-a', comment: 'network a' }]));
  expect(t!.sets).toEqual(['members4']);
  expect(await listTable('inet', 'lf_nosuchtable', fx.netns)).toBeUndefined();
  await deleteTableObjects('inet', T, { chains: ['net-a'], sets: [] }, fx.netns);
  expect((await listTable('inet', T, fx.netns))!.chains.map((c) => c.name)).toEqual(['postrouting']);
});

it('removes a shared table only when no network has anything in it, atomically', async () => {
  applyNft(declare, fx.netns);
  // A network's chain is left: nothing changes.
  expect(await removeTableIfUnused(shared, fx.netns)).toBe('in use');
  expect(ruleset()).toMatch(/chain postrouting/);
  // An element in a shared map (a container's) is left: nothing changes.
  await deleteTableObjects('inet', T, { chains: ['net-a'], sets: [] }, fx.netns);
  applyNft(`add element inet ${T} members4 { 10.1.0.5 : accept }\n`, fx.netns);
  expect(await removeTableIfUnused(shared, fx.netns)).toBe('in use');
  expect(ruleset()).toMatch(/10\.1\.0\.5/);
  applyNft(`delete element inet ${T} members4 { 10.1.0.5 }\n`, fx.netns);
  expect(await removeTableIfUnused(shared, fx.netns)).toBe('removed');
  expect(ruleset()).toBe('');
  expect(await removeTableIfUnused(shared, fx.netns)).toBe('absent');
  // A shared part removed by hand does not keep the table alive.
  applyNft(`add table inet ${T}\nadd map inet ${T} members4 { type ipv4_addr : verdict; }\n`, fx.netns);
  expect(await removeTableIfUnused(shared, fx.netns)).toBe('removed');
  expect(ruleset()).toBe('');
  // An older release's (empty) marker sets do not keep it either; anything else does.
  applyNft(declare + `add set inet ${T} ok-0123456789abcdef { type mark; }\n`, fx.netns);
  await deleteTableObjects('inet', T, { chains: ['net-a'], sets: [] }, fx.netns);
  expect(await removeTableIfUnused(shared, fx.netns)).toBe('in use');
  expect(await removeTableIfUnused({ ...shared, legacySets: /^ok-[0-9a-f]{16}$/ }, fx.netns)).toBe('removed');
  expect(ruleset()).toBe('');
});
