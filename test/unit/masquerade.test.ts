import { applyMasqAdd, attachmentTag, elementComment, masqChains, masqSharedTable, networkTag, renderMasqCreate, renderMasqTakeover, renderMasqDeclare, renderMasqDel, subnetChain, subnetChainComment } from '../../lib/firewall/masquerade';
import { useNftBackend } from '../../lib/firewall/nft';
import { FakeNft } from '../helpers/fake-nft';
import { ruleTag } from '../../lib/firewall/render';

const owner = { network: 'net1', containerId: 'c0ffee', ifname: 'eth0' };

describe('masquerade rendering', () => {
  it('renders the declaration: fixed base, one chain per (network, subnet), every rule tagged', () => {
    const c4 = subnetChain('net1', '10.1.0.0/24');
    const c6 = subnetChain('net1', 'fd00:1::/64');
    const tag = (chain: string, i: number, text: string) => `${text} comment "${ruleTag(chain, i, text)}"`;
    const t = networkTag('net1');
    expect(renderMasqDeclare(owner, [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }, { address: 'fd00:1::5', subnet: 'fd00:1::/64' }])).toBe(
      [
        'add table inet node_cni_masq { comment "masquerade for node-cni-plugins bridge networks"; }',
        'add map inet node_cni_masq masq4 { type ipv4_addr : verdict; }',
        'add map inet node_cni_masq masq6 { type ipv6_addr : verdict; }',
        'add chain inet node_cni_masq postrouting { type nat hook postrouting priority srcnat; policy accept; }',
        'flush chain inet node_cni_masq postrouting',
        `add rule inet node_cni_masq postrouting ${tag('postrouting', 0, 'ip saddr vmap @masq4')}`,
        `add rule inet node_cni_masq postrouting ${tag('postrouting', 1, 'ip6 saddr vmap @masq6')}`,
        `add chain inet node_cni_masq ${c4} { comment "${t} 10.1.0.0/24 network net1"; }`,
        `flush chain inet node_cni_masq ${c4}`,
        `add rule inet node_cni_masq ${c4} ${tag(c4, 0, 'ip daddr 10.1.0.0/24 return')}`,
        `add rule inet node_cni_masq ${c4} ${tag(c4, 1, 'ip daddr 224.0.0.0/4 return')}`,
        `add rule inet node_cni_masq ${c4} ${tag(c4, 2, 'masquerade')}`,
        `add chain inet node_cni_masq ${c6} { comment "${t} fd00:1::/64 network net1"; }`,
        `flush chain inet node_cni_masq ${c6}`,
        `add rule inet node_cni_masq ${c6} ${tag(c6, 0, 'ip6 daddr fd00:1::/64 return')}`,
        `add rule inet node_cni_masq ${c6} ${tag(c6, 1, 'ip6 daddr ff00::/8 return')}`,
        `add rule inet node_cni_masq ${c6} ${tag(c6, 2, 'masquerade')}`,
        '',
      ].join('\n'),
    );
  });

  it('renders the steady-state ADD as element operations only: one element per address (its jump needs the chain)', () => {
    const c4 = subnetChain('net1', '10.1.0.0/24');
    const c6 = subnetChain('net1', 'fd00:1::/64');
    const cm = `"${elementComment(owner)}"`;
    const script = renderMasqTakeover(owner, [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }, { address: 'fd00:1::5', subnet: 'fd00:1::/64' }]);
    expect(script).toBe(
      [
        `add element inet node_cni_masq masq4 { 10.1.0.5 : jump ${c4} }`,
        'delete element inet node_cni_masq masq4 { 10.1.0.5 }',
        `add element inet node_cni_masq masq4 { 10.1.0.5 comment ${cm} : jump ${c4} }`,
        `add element inet node_cni_masq masq6 { fd00:1::5 : jump ${c6} }`,
        'delete element inet node_cni_masq masq6 { fd00:1::5 }',
        `add element inet node_cni_masq masq6 { fd00:1::5 comment ${cm} : jump ${c6} }`,
        '',
      ].join('\n'),
    );
    for (const line of script.trim().split('\n')) {
      expect(line).toMatch(/^(add|delete) element /);
      expect(line).not.toMatch(/^(add|create|delete|flush) (table|chain|map|set|rule)\b|^(list|reset)\b/);
    }
  });

  it('what an ADD verifies is exactly what the declaration renders: the base chain and its subnet chains, with their tags', () => {
    const entries = [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }, { address: '10.1.0.6', subnet: '10.1.0.0/24' }];
    const chains = masqChains('net1', entries);
    expect(chains.map((c) => c.name)).toEqual(['postrouting', subnetChain('net1', '10.1.0.0/24')]);
    const declared = renderMasqDeclare(owner, entries);
    for (const c of chains) for (const tag of c.tags) expect(declared).toContain(`comment "${tag}"`);
    expect(masqSharedTable()).toMatchObject({ family: 'inet', table: 'node_cni_masq', chains: ['postrouting'], sets: ['masq4', 'masq6'] });
    expect(masqSharedTable().legacySets!.test('ok-0123456789abcdef')).toBe(true); // an older release's marker sets go along
    // Another subnet or network renders other rules, so a changed config is re-declared.
    expect(masqChains('net2', entries)[1].tags).not.toEqual(chains[1].tags);
  });

  it('chain comments start with the network tag (teardown finds them by it) and stay under the nft limit', () => {
    expect(subnetChainComment('net1', '10.1.0.0/24').startsWith(`${networkTag('net1')} `)).toBe(true);
    expect(Buffer.byteLength(subnetChainComment('n'.repeat(300), 'fd00:1:2:3:4:5:6:0/112'))).toBeLessThanOrEqual(127);
  });

  it('the ADD text does not depend on how many containers exist (only on this one)', () => {
    // The steady-state ADD creates its element; a takeover (a leaked element of the same address) is its fallback.
    for (const render of [renderMasqCreate, renderMasqTakeover]) {
      const a = render({ ...owner, containerId: 'a' }, [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }]);
      const b = render({ ...owner, containerId: 'b' }, [{ address: '10.1.0.6', subnet: '10.1.0.0/24' }]);
      expect(a.split('\n').length).toBe(b.split('\n').length);
    }
  });

  it('renders DEL as element deletions only', () => {
    expect(renderMasqDel(['10.1.0.5', 'fd00::5'], 't')).toBe('delete element inet t masq4 { 10.1.0.5 }\ndelete element inet t masq6 { fd00::5 }\n');
  });

  it('names chains and tags stably, and keeps comments under the nft limit', () => {
    expect(subnetChain('net1', '10.1.0.0/24')).toMatch(/^masq-[0-9a-f]{16}$/);
    expect(subnetChain('net1', '10.1.0.0/24')).not.toBe(subnetChain('net2', '10.1.0.0/24'));
    expect(networkTag('net1')).toHaveLength(12);
    expect(attachmentTag('a', 'eth0')).not.toBe(attachmentTag('a', 'eth1'));
    const long = elementComment({ network: 'n'.repeat(200), containerId: 'c'.repeat(200), ifname: 'eth0123456789ab' });
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(128);
  });
});

describe('masquerade ADD transactions', () => {
  const entry = (address: string) => [{ address, subnet: '10.1.0.0/24' }];

  it('creates a new element without deleting anything, and takes over an element a leaked attachment left for the same address', async () => {
    expect(renderMasqCreate(owner, entry('10.1.0.5'))).toBe(
      `create element inet node_cni_masq masq4 { 10.1.0.5 comment "${elementComment(owner)}" : jump ${subnetChain('net1', '10.1.0.0/24')} }\n`,
    );
    const nft = new FakeNft();
    const restore = useNftBackend(nft);
    try {
      await applyMasqAdd({ ...owner, containerId: 'first' }, entry('10.1.0.5')); // declares the structure
      const steady = nft.transactions.length;
      await applyMasqAdd({ ...owner, containerId: 'second' }, entry('10.1.0.6'));
      const scripts = nft.transactions.slice(steady).map((t) => t.text).filter((t) => /element/.test(t));
      expect(scripts).toHaveLength(1);
      expect(scripts[0]).toMatch(/^create element /);
      expect(scripts[0]).not.toMatch(/delete/);
      // 10.1.0.5's attachment leaked (no DEL); a new container gets the address.
      await applyMasqAdd({ ...owner, containerId: 'third' }, entry('10.1.0.5'));
      const comments = nft.elements().filter((e) => e.includes('10.1.0.5 '));
      expect(comments).toHaveLength(1);
      expect(comments[0]).toContain(elementComment({ ...owner, containerId: 'third' }));
    } finally {
      restore();
    }
  });
});
