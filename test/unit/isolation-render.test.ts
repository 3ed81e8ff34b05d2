// The isolation ruleset text: fixed parts, one chain + two elements per network.
import { isolationChain, renderIsolationJoin, renderIsolationLeave } from '../../lib/firewall/isolation';

describe('isolation renderer', () => {
  const m = { network: 'web', bridge: 'br-web' };
  const chain = isolationChain(m);

  it('chain names are stable, per (network, bridge)', () => {
    expect(chain).toMatch(/^iso-[0-9a-f]{16}$/);
    expect(isolationChain({ network: 'web', bridge: 'br-web' })).toBe(chain);
    expect(isolationChain({ network: 'web', bridge: 'br-x' })).not.toBe(chain);
  });

  it('join: one fixed forward rule, one chain rule, set and map elements re-stated', () => {
    const lines = renderIsolationJoin(m, 't').trim().split('\n');
    expect(lines).toEqual([
      'add table inet t { comment "isolation between node-cni-plugins networks"; }',
      'add set inet t isolated { type ifname; }',
      'add map inet t isolated_from { type ifname : verdict; }',
      'add chain inet t forward { type filter hook forward priority filter - 10; policy accept; }',
      'flush chain inet t forward',
      'add rule inet t forward oifname @isolated iifname vmap @isolated_from',
      `add chain inet t ${chain} { comment "network web bridge br-web"; }`,
      `flush chain inet t ${chain}`,
      `add rule inet t ${chain} oifname != "br-web" drop`,
      'add element inet t isolated { "br-web" }',
      'delete element inet t isolated { "br-web" }',
      'add element inet t isolated { "br-web" comment "network web" }',
      `add element inet t isolated_from { "br-web" : goto ${chain} }`,
      'delete element inet t isolated_from { "br-web" }',
      `add element inet t isolated_from { "br-web" comment "network web" : goto ${chain} }`,
    ]);
  });

  it('leave: elements before the chain they reference', () => {
    expect(renderIsolationLeave(m, 't')).toBe(
      `delete element inet t isolated { "br-web" }\ndelete element inet t isolated_from { "br-web" }\ndelete chain inet t ${chain}\n`);
  });

  it('quotes and backslashes never reach the script', () => {
    expect(renderIsolationJoin({ network: 'a"b\\c', bridge: 'br0' })).toContain('comment "network a_b_c"');
  });
});
