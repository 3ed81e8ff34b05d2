import {
  networkChainNames,
  networkChains,
  networkSets,
  ownerComment,
  ownerMark,
  parseOwnerComment,
  planElements,
  renderAddElements,
  renderDeclareAndPublish,
  renderGetElements,
  portmapSharedTable,
  renderRemoveElements,
  renderRemoveSet,
  renderSkeleton,
  type PortmapAttachment,
  type PortmapNetwork,
} from '../../lib/firewall/portmap';

const att: PortmapAttachment = {
  network: 'net1',
  containerID: 'abc',
  ifname: 'eth0',
  entries: [
    { family: 4, protocol: 'tcp', hostPort: 8080, containerIP: '10.88.0.5', containerPort: 80 },
    { family: 4, hostIP: '192.0.2.10', protocol: 'udp', hostPort: 53, containerIP: '10.88.0.5', containerPort: 53 },
    { family: 6, protocol: 'tcp', hostPort: 8080, containerIP: 'fd00::5', containerPort: 80 },
  ],
};

const GOLDEN_SKELETON = `add table inet cni_portmap { comment "node-cni-plugins portmap: published container ports"; }
add map inet cni_portmap claims4 { type ipv4_addr . inet_proto . inet_service : mark; comment "published host ports -> owner"; }
add map inet cni_portmap claims6 { type ipv6_addr . inet_proto . inet_service : mark; comment "published host ports -> owner"; }
add map inet cni_portmap n_6c270ef2f251_any4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet cni_portmap n_6c270ef2f251_ip4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add set inet cni_portmap n_6c270ef2f251_targets4 { type ipv4_addr . inet_proto . inet_service; }
add set inet cni_portmap n_6c270ef2f251_hairpin4 { type ipv4_addr . ipv4_addr; }
add map inet cni_portmap n_6c270ef2f251_any6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet cni_portmap n_6c270ef2f251_ip6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add set inet cni_portmap n_6c270ef2f251_targets6 { type ipv6_addr . inet_proto . inet_service; }
add set inet cni_portmap n_6c270ef2f251_hairpin6 { type ipv6_addr . ipv6_addr; }
add chain inet cni_portmap n_6c270ef2f251_dnat { comment "portmap network net1"; }
flush chain inet cni_portmap n_6c270ef2f251_dnat
add rule inet cni_portmap n_6c270ef2f251_dnat iifname != "eth9" ip daddr . meta l4proto . th dport @n_6c270ef2f251_ip4 ct mark set ct mark | 0x00400000 comment "nc:6f3af1ec7aef"
add rule inet cni_portmap n_6c270ef2f251_dnat iifname != "eth9" dnat ip to ip daddr . meta l4proto . th dport map @n_6c270ef2f251_ip4 comment "nc:ff830d744da7"
add rule inet cni_portmap n_6c270ef2f251_dnat iifname != "eth9" fib daddr type local meta l4proto . th dport @n_6c270ef2f251_any4 ct mark set ct mark | 0x00400000 comment "nc:41ef0158f75c"
add rule inet cni_portmap n_6c270ef2f251_dnat iifname != "eth9" fib daddr type local dnat ip to meta l4proto . th dport map @n_6c270ef2f251_any4 comment "nc:11fbad27264f"
add rule inet cni_portmap n_6c270ef2f251_dnat ip6 daddr . meta l4proto . th dport @n_6c270ef2f251_ip6 ct mark set ct mark | 0x00400000 comment "nc:fb0e398cabba"
add rule inet cni_portmap n_6c270ef2f251_dnat dnat ip6 to ip6 daddr . meta l4proto . th dport map @n_6c270ef2f251_ip6 comment "nc:686fd869533d"
add rule inet cni_portmap n_6c270ef2f251_dnat fib daddr type local meta l4proto . th dport @n_6c270ef2f251_any6 ct mark set ct mark | 0x00400000 comment "nc:bfb58ef2a6d7"
add rule inet cni_portmap n_6c270ef2f251_dnat fib daddr type local dnat ip6 to meta l4proto . th dport map @n_6c270ef2f251_any6 comment "nc:8e81b9dffd89"
add chain inet cni_portmap n_6c270ef2f251_prerouting { type nat hook prerouting priority dstnat; policy accept; }
flush chain inet cni_portmap n_6c270ef2f251_prerouting
add rule inet cni_portmap n_6c270ef2f251_prerouting jump n_6c270ef2f251_dnat comment "nc:478cacfd39c8"
add chain inet cni_portmap n_6c270ef2f251_output { type nat hook output priority -100; policy accept; }
flush chain inet cni_portmap n_6c270ef2f251_output
add rule inet cni_portmap n_6c270ef2f251_output jump n_6c270ef2f251_dnat comment "nc:e05a8f1700c5"
add chain inet cni_portmap n_6c270ef2f251_postrouting { type nat hook postrouting priority srcnat; policy accept; }
flush chain inet cni_portmap n_6c270ef2f251_postrouting
add rule inet cni_portmap n_6c270ef2f251_postrouting ct status dnat ip saddr . ip daddr @n_6c270ef2f251_hairpin4 masquerade comment "nc:58fe34c2db60"
add rule inet cni_portmap n_6c270ef2f251_postrouting ip saddr 127.0.0.0/8 ct status dnat ip daddr . meta l4proto . th dport @n_6c270ef2f251_targets4 masquerade comment "nc:cc1cb99a130d"
add rule inet cni_portmap n_6c270ef2f251_postrouting ct status dnat ip6 saddr . ip6 daddr @n_6c270ef2f251_hairpin6 masquerade comment "nc:2fdaf1e39e55"
`;

const net1: PortmapNetwork = { name: 'net1', snat: true, masqAll: false, conditionsV4: ['iifname != "eth9"'], conditionsV6: [] };

/** Any line that declares or rewrites structure (as opposed to an element operation). */
const STRUCTURE = /^(add|create|delete|flush) (table|chain|map|set|rule)\b|^(insert|replace) rule\b|^(list|reset)\b/;

const GOLDEN_ADD = `create element inet cni_portmap claims4 { 0.0.0.0 . tcp . 8080 comment "net1/abc/eth0" : 0xc23805bb, 192.0.2.10 . udp . 53 comment "net1/abc/eth0" : 0xc23805bb }
create element inet cni_portmap n_6c270ef2f251_any4 { tcp . 8080 comment "net1/abc/eth0" : 10.88.0.5 . 80 }
add element inet cni_portmap n_6c270ef2f251_targets4 { 10.88.0.5 . tcp . 80, 10.88.0.5 . udp . 53 }
add element inet cni_portmap n_6c270ef2f251_hairpin4 { 10.88.0.5 . 10.88.0.5 }
create element inet cni_portmap n_6c270ef2f251_ip4 { 192.0.2.10 . udp . 53 comment "net1/abc/eth0" : 10.88.0.5 . 53 }
create element inet cni_portmap claims6 { :: . tcp . 8080 comment "net1/abc/eth0" : 0xc23805bb }
create element inet cni_portmap n_6c270ef2f251_any6 { tcp . 8080 comment "net1/abc/eth0" : fd00::5 . 80 }
add element inet cni_portmap n_6c270ef2f251_targets6 { fd00::5 . tcp . 80 }
add element inet cni_portmap n_6c270ef2f251_hairpin6 { fd00::5 . fd00::5 }
`;

const GOLDEN_REMOVE = `add element inet cni_portmap claims4 { 0.0.0.0 . tcp . 8080 : 0xc23805bb, 192.0.2.10 . udp . 53 : 0xc23805bb }
add element inet cni_portmap claims6 { :: . tcp . 8080 : 0xc23805bb }
delete element inet cni_portmap claims4 { 0.0.0.0 . tcp . 8080, 192.0.2.10 . udp . 53 }
delete element inet cni_portmap n_6c270ef2f251_any4 { tcp . 8080 }
delete element inet cni_portmap n_6c270ef2f251_targets4 { 10.88.0.5 . tcp . 80, 10.88.0.5 . udp . 53 }
delete element inet cni_portmap n_6c270ef2f251_hairpin4 { 10.88.0.5 . 10.88.0.5 }
delete element inet cni_portmap n_6c270ef2f251_ip4 { 192.0.2.10 . udp . 53 }
delete element inet cni_portmap claims6 { :: . tcp . 8080 }
delete element inet cni_portmap n_6c270ef2f251_any6 { tcp . 8080 }
delete element inet cni_portmap n_6c270ef2f251_targets6 { fd00::5 . tcp . 80 }
delete element inet cni_portmap n_6c270ef2f251_hairpin6 { fd00::5 . fd00::5 }
`;

describe('portmap nft rendering (golden text)', () => {
  it('renders the table, claims and the per-network maps and chains', () => {
    expect(renderSkeleton(net1)).toBe(GOLDEN_SKELETON);
  });

  it('the steady-state ADD is element operations only', () => {
    const script = renderAddElements(planElements(att));
    expect(script).toBe(GOLDEN_ADD);
    for (const line of script.trim().split('\n')) {
      expect(line).toMatch(/^(add|create|delete) element /);
      expect(line).not.toMatch(STRUCTURE);
    }
  });

  it('the declaring ADD is the skeleton plus the same elements; every rule carries the tag verifyChains expects', () => {
    expect(renderDeclareAndPublish(net1, planElements(att))).toBe(GOLDEN_SKELETON + GOLDEN_ADD);
    const chains = networkChains(net1);
    expect(chains.map((c) => c.name)).toEqual(['n_6c270ef2f251_dnat', 'n_6c270ef2f251_prerouting', 'n_6c270ef2f251_output', 'n_6c270ef2f251_postrouting']);
    for (const c of chains) {
      const rules = GOLDEN_SKELETON.split('\n').filter((l) => l.startsWith(`add rule inet cni_portmap ${c.name} `));
      expect(rules.map((l) => /comment "(nc:[0-9a-f]{12})"$/.exec(l)?.[1])).toEqual(c.tags);
    }
  });

  it('a config change changes the expected rules, so the next ADD declares again', () => {
    const tags = (n: typeof net1, table?: string) => JSON.stringify(networkChains(n, table).map((c) => c.tags));
    const all = new Set([
      tags(net1),
      tags({ ...net1, conditionsV4: [] }),
      tags({ ...net1, masqAll: true }),
      tags({ ...net1, snat: false }),
      tags({ ...net1, name: 'net2' }),
    ]);
    expect(all.size).toBe(5);
    expect(tags(net1)).toBe(tags({ ...net1 }));
  });

  it('teardown names every chain and set the skeleton declares for the network, and the shared table keeps the claims', () => {
    const declared = GOLDEN_SKELETON.split('\n').map((l) => /^add (chain|map|set) inet cni_portmap (\S+)/.exec(l)).filter(Boolean).map((m) => [m![1], m![2]]);
    expect(networkChainNames('net1').sort()).toEqual(declared.filter(([k]) => k === 'chain').map(([, n]) => n).sort());
    const current = networkSets('net1').filter((n) => !n.endsWith('_declared')); // the structure mark of an older release goes along
    expect(networkSets('net1')).toContain('n_6c270ef2f251_declared');
    expect([...current, ...portmapSharedTable().sets].sort()).toEqual(declared.filter(([k]) => k !== 'chain').map(([, n]) => n).sort());
    // Hooked chains jump to dnat: they go first.
    expect(networkChainNames('net1').at(-1)).toBe('n_6c270ef2f251_dnat');
  });

  it('creates claims and DNAT entries exclusively, and adds the masquerade keys', () => {
    expect(renderAddElements(planElements(att))).toBe(GOLDEN_ADD);
  });

  it('removes in one transaction guarded by the claims: add our own claim value, then delete everything', () => {
    expect(renderRemoveElements(planElements(att))).toBe(GOLDEN_REMOVE);
  });

  it('the careful removal of one set is idempotent: add our own value, then delete', () => {
    const any4 = planElements(att).filter((o) => o.set === 'n_6c270ef2f251_any4');
    expect(renderRemoveSet('n_6c270ef2f251_any4', any4)).toBe(
      'add element inet cni_portmap n_6c270ef2f251_any4 { tcp . 8080 : 10.88.0.5 . 80 }\n' +
      'delete element inet cni_portmap n_6c270ef2f251_any4 { tcp . 8080 }\n',
    );
  });

  it('masqAll masquerades every DNATed connection to a target; snat:false masquerades nothing', () => {
    const masqAll = renderSkeleton({ name: 'net1', snat: true, masqAll: true, conditionsV4: [], conditionsV6: [] });
    const post = masqAll.split('\n').filter((l) => l.startsWith('add rule') && l.includes('_postrouting '));
    expect(post.map((l) => l.replace(/^.*_postrouting /, '').replace(/ comment "nc:[0-9a-f]+"$/, ''))).toEqual([
      'ct status dnat ip daddr . meta l4proto . th dport @n_6c270ef2f251_targets4 masquerade',
      'ct status dnat ip6 daddr . meta l4proto . th dport @n_6c270ef2f251_targets6 masquerade',
    ]);
    const noSnat = renderSkeleton({ name: 'net1', snat: false, masqAll: true, conditionsV4: [], conditionsV6: [] });
    expect(noSnat).not.toMatch(/masquerade/);
  });

  it('the ADD transaction does not grow with other containers: its size depends only on this one', () => {
    const one = renderAddElements(planElements({ ...att, containerID: 'other' }));
    expect(one.split('\n').length).toBe(renderAddElements(planElements(att)).split('\n').length);
  });

  it('DEL is element operations only', () => {
    for (const line of GOLDEN_REMOVE.trim().split('\n')) expect(line).toMatch(/^(add|delete) element /);
  });

  it('deduplicates elements shared by two mappings of one container', () => {
    const ops = planElements({ network: 'n', containerID: 'c', ifname: 'eth0', entries: [
      { family: 4, protocol: 'tcp', hostPort: 1, containerIP: '10.0.0.2', containerPort: 80 },
      { family: 4, protocol: 'tcp', hostPort: 2, containerIP: '10.0.0.2', containerPort: 80 },
    ] });
    expect(ops.filter((o) => o.set.endsWith('targets4'))).toHaveLength(1);
    expect(ops.filter((o) => o.set.endsWith('hairpin4'))).toHaveLength(1);
    expect(ops.filter((o) => o.set === 'claims4')).toHaveLength(2);
  });

  it('owner marks differ per attachment and comments round-trip', () => {
    expect(ownerMark({ network: 'n', containerID: 'a', ifname: 'eth0' })).not.toBe(ownerMark({ network: 'n', containerID: 'a', ifname: 'eth1' }));
    expect(ownerMark(att)).toMatch(/^0x[89a-f][0-9a-f]{7}$/);
    expect(parseOwnerComment(ownerComment(att))).toEqual({ network: 'net1', containerID: 'abc', ifname: 'eth0' });
    expect(ownerComment({ network: 'n', containerID: 'c', ifname: 'e"th;0' })).toBe('n/c/e_th_0');
  });

  it('CHECK queries one get per set', () => {
    const q = renderGetElements(planElements(att));
    expect(q.map((x) => x.set)).toContain('claims4');
    expect(q.find((x) => x.set === 'claims4')!.keys).toEqual(['0.0.0.0 . tcp . 8080', '192.0.2.10 . udp . 53']);
  });
});
