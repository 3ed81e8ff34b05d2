import { attachmentTag, elementComment, networkTag, renderMasqAdd, renderMasqDeclare, renderMasqDel, markerSet, subnetChain } from '../../lib/firewall/masquerade';

const owner = { network: 'net1', containerId: 'c0ffee', ifname: 'eth0' };

describe('masquerade rendering', () => {
  it('renders the declaration: fixed base, one chain and one (empty) marker set per (network, subnet)', () => {
    const c4 = subnetChain('net1', '10.1.0.0/24');
    const c6 = subnetChain('net1', 'fd00:1::/64');
    const m4 = markerSet('net1', '10.1.0.0/24');
    const m6 = markerSet('net1', 'fd00:1::/64');
    expect(renderMasqDeclare(owner, [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }, { address: 'fd00:1::5', subnet: 'fd00:1::/64' }])).toBe(
      [
        'add table inet node_cni_masq { comment "masquerade for node-cni-plugins bridge networks"; }',
        'add chain inet node_cni_masq postrouting { type nat hook postrouting priority srcnat; policy accept; }',
        'add map inet node_cni_masq masq4 { type ipv4_addr : verdict; }',
        'add map inet node_cni_masq masq6 { type ipv6_addr : verdict; }',
        'flush chain inet node_cni_masq postrouting',
        'add rule inet node_cni_masq postrouting ip saddr vmap @masq4',
        'add rule inet node_cni_masq postrouting ip6 saddr vmap @masq6',
        `add chain inet node_cni_masq ${c4} { comment "network net1 subnet 10.1.0.0/24"; }`,
        `flush chain inet node_cni_masq ${c4}`,
        `add rule inet node_cni_masq ${c4} ip daddr 10.1.0.0/24 return`,
        `add rule inet node_cni_masq ${c4} ip daddr 224.0.0.0/4 return`,
        `add rule inet node_cni_masq ${c4} masquerade`,
        `add set inet node_cni_masq ${m4} { type mark; comment "declared: network net1 subnet 10.1.0.0/24"; }`,
        `add chain inet node_cni_masq ${c6} { comment "network net1 subnet fd00:1::/64"; }`,
        `flush chain inet node_cni_masq ${c6}`,
        `add rule inet node_cni_masq ${c6} ip6 daddr fd00:1::/64 return`,
        `add rule inet node_cni_masq ${c6} ip6 daddr ff00::/8 return`,
        `add rule inet node_cni_masq ${c6} masquerade`,
        `add set inet node_cni_masq ${m6} { type mark; comment "declared: network net1 subnet fd00:1::/64"; }`,
        '',
      ].join('\n'),
    );
  });

  it('renders the steady-state ADD as element operations only: the marker check, then one element per address', () => {
    const c4 = subnetChain('net1', '10.1.0.0/24');
    const c6 = subnetChain('net1', 'fd00:1::/64');
    const m4 = markerSet('net1', '10.1.0.0/24');
    const m6 = markerSet('net1', 'fd00:1::/64');
    const cm = `"${elementComment(owner)}"`;
    const script = renderMasqAdd(owner, [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }, { address: 'fd00:1::5', subnet: 'fd00:1::/64' }]);
    expect(script).toBe(
      [
        `add element inet node_cni_masq ${m4} { 0x1 }`,
        `delete element inet node_cni_masq ${m4} { 0x1 }`,
        `add element inet node_cni_masq ${m6} { 0x1 }`,
        `delete element inet node_cni_masq ${m6} { 0x1 }`,
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

  it('marker sets differ per (network, subnet) and table, and are stable', () => {
    const marks = new Set([markerSet('net1', '10.1.0.0/24'), markerSet('net2', '10.1.0.0/24'), markerSet('net1', '10.2.0.0/24'), markerSet('net1', '10.1.0.0/24', 't')]);
    expect(marks.size).toBe(4);
    expect(markerSet('net1', '10.1.0.0/24')).toBe(markerSet('net1', '10.1.0.0/24'));
    expect(markerSet('net1', '10.1.0.0/24')).toMatch(/^ok-[0-9a-f]{16}$/);
  });

  it('the ADD text does not depend on how many containers exist (only on this one)', () => {
    const a = renderMasqAdd({ ...owner, containerId: 'a' }, [{ address: '10.1.0.5', subnet: '10.1.0.0/24' }]);
    const b = renderMasqAdd({ ...owner, containerId: 'b' }, [{ address: '10.1.0.6', subnet: '10.1.0.0/24' }]);
    expect(a.split('\n').length).toBe(b.split('\n').length);
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
