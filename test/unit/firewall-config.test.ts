import type { NetConf } from '../../lib/cni/types';
import { forwardChains, renderForwardDeclare, renderForwardDel, renderForwardElements } from '../../lib/firewall/forward';
import { expectedChainListing } from '../../lib/firewall/iptables';
import { parseFirewallConfig } from '../../plugins/firewall/config';
import { allowedAddresses, familiesOf, policyBridge } from '../../plugins/firewall/plan';

const base = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.0.0', name: 'fw', type: 'firewall', ...extra });

describe('parseFirewallConfig', () => {
  it('defaults like the reference (CNI-ADMIN, trusted, open) and takes podman\'s "backend": ""', () => {
    expect(parseFirewallConfig(base({ backend: '' }))).toMatchObject({ backend: '', adminChain: 'CNI-ADMIN', firewalldZone: 'trusted', ingressPolicy: 'open', stateDir: '/run/cni/firewall' });
  });
  it.each(['iptables', 'firewalld', 'nftables'])('accepts backend %s (ours is nftables + one iptables jump either way)', (backend) => {
    expect(parseFirewallConfig(base({ backend })).backend).toBe(backend);
  });
  it('takes every field', () => {
    expect(parseFirewallConfig(base({ iptablesAdminChainName: 'MY-ADMIN', firewalldZone: 'internal', ingressPolicy: 'isolated', stateDir: '/var/lib/fw' })))
      .toMatchObject({ adminChain: 'MY-ADMIN', firewalldZone: 'internal', ingressPolicy: 'isolated', stateDir: '/var/lib/fw' });
  });
  it.each([
    [{ ingressPolicy: 'closed' }, /unknown ingressPolicy "closed"/],
    [{ ingressPolicy: 1 }, /"ingressPolicy" must be a string/],
    [{ iptablesAdminChainName: 'A'.repeat(29) }, /iptablesAdminChainName must be an iptables chain name/],
    [{ iptablesAdminChainName: 'X -j DROP' }, /must be an iptables chain name/],
    [{ backend: true }, /"backend" must be a string/],
    [{ stateDir: 'run/fw' }, /"stateDir" "run\/fw" is not an absolute path/],
    [{ stateDir: '/etc/fw' }, /is not below one of/],
  ])('refuses %j with code 7', (extra, msg) => {
    expect(() => parseFirewallConfig(base(extra))).toThrow(expect.objectContaining({ code: 7, message: expect.stringMatching(msg) }));
  });
});

describe('plan', () => {
  const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'cni0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/x' }], ips: [{ address: '10.1.0.5/24', interface: 2 }, { address: 'FD00:0::5/64', interface: 2 }, { address: '10.1.0.5/24' }] };
  it('lets every prevResult address through, canonical and once', () => {
    expect(allowedAddresses(prev)).toEqual(['10.1.0.5', 'fd00::5']);
    expect(familiesOf(allowedAddresses(prev))).toEqual([4, 6]);
  });
  it('the bridge of an ingress policy is the first interface (reference); open needs none', () => {
    expect(policyBridge(prev, 'open')).toBeUndefined();
    expect(policyBridge(prev, 'same-bridge')).toBe('cni0');
    expect(() => policyBridge({ cniVersion: '1.0.0' }, 'isolated')).toThrow(expect.objectContaining({ code: 7, message: expect.stringMatching(/chain "firewall" after "bridge"/) }));
  });
});

describe('rules (golden text)', () => {
  const untagged = (l: string): string => l.replace(/ comment "nc:[0-9a-f]{12}"$/, '');
  it('the structure: two sets, the marking chain before iptables\' filter, the clearing one after; every rule tagged', () => {
    const lines = renderForwardDeclare('t');
    expect(lines.filter((l) => l.startsWith('add rule')).every((l) => / comment "nc:[0-9a-f]{12}"$/.test(l))).toBe(true);
    expect(lines.map(untagged).join('\n')).toBe([
      'add table inet t { comment "node-cni-plugins firewall: containers\' forwarded traffic passes the host\'s FORWARD policy"; }',
      'add set inet t allowed4 { type ipv4_addr; comment "container addresses"; }',
      'add set inet t allowed6 { type ipv6_addr; comment "container addresses"; }',
      'add chain inet t let-through { type filter hook forward priority filter - 5; policy accept; }',
      'flush chain inet t let-through',
      'add rule inet t let-through ip saddr @allowed4 meta mark set meta mark | 0x00001000',
      'add rule inet t let-through ip daddr @allowed4 ct state established,related meta mark set meta mark | 0x00001000',
      'add rule inet t let-through ip daddr @allowed4 ct status dnat meta mark set meta mark | 0x00001000',
      'add rule inet t let-through ip6 saddr @allowed6 meta mark set meta mark | 0x00001000',
      'add rule inet t let-through ip6 daddr @allowed6 ct state established,related meta mark set meta mark | 0x00001000',
      'add rule inet t let-through ip6 daddr @allowed6 ct status dnat meta mark set meta mark | 0x00001000',
      'add chain inet t clear-mark { type filter hook forward priority filter + 1; policy accept; }',
      'flush chain inet t clear-mark',
      'add rule inet t clear-mark meta mark & 0x00001000 == 0x00001000 meta mark set meta mark & 0xffffefff',
    ].join('\n'));
    expect(forwardChains('t').map((c) => [c.name, c.tags.length])).toEqual([['let-through', 6], ['clear-mark', 1]]);
  });
  it('per container: only elements (added, deleted, added with the owner), whatever the number of containers', () => {
    const perContainer = renderForwardElements({ network: 'n', containerId: 'c1', ifname: 'eth0' }, ['10.1.0.5', 'fd00::5'], 't');
    expect(perContainer.every((l) => /^(add|delete) element inet t allowed[46] \{ /.test(l))).toBe(true);
    expect(perContainer).toHaveLength(6);
    expect(perContainer[2]).toMatch(/^add element inet t allowed4 \{ 10\.1\.0\.5 comment "[0-9a-f]{12} [0-9a-f]{16} c1\/eth0" \}$/);
    expect(renderForwardDel(['10.1.0.5', 'fd00::5'], 't')).toEqual(['delete element inet t allowed4 { 10.1.0.5 }', 'delete element inet t allowed6 { fd00::5 }']);
  });
  it('the iptables chain as `iptables -S` prints it: a jump per admin chain, then the accept', () => {
    expect(expectedChainListing(['CNI-ADMIN', 'MY-ADMIN'])).toBe([
      '-N NODE-CNI-FORWARD',
      '-A NODE-CNI-FORWARD -m comment --comment "node-cni-plugins firewall: admin overrides" -j CNI-ADMIN',
      '-A NODE-CNI-FORWARD -m comment --comment "node-cni-plugins firewall: admin overrides" -j MY-ADMIN',
      '-A NODE-CNI-FORWARD -m mark --mark 0x1000/0x1000 -m comment --comment "node-cni-plugins firewall: containers" -j ACCEPT',
    ].join('\n'));
  });
});
