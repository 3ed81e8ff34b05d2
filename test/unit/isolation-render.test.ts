// The isolation ruleset text: fixed parts, one chain + two elements per network.
import { isolationChain, isolationSharedTable, renderIsolationElements, renderIsolationJoin, renderIsolationLeave } from '../../lib/firewall/isolation';
import { ruleTag } from '../../lib/firewall/render';

describe('isolation renderer', () => {
  const m = { network: 'web', bridge: 'br-web' };
  const chain = isolationChain(m);

  it('chain names are stable, per (network, bridge)', () => {
    expect(chain).toMatch(/^iso-[0-9a-f]{16}$/);
    expect(isolationChain({ network: 'web', bridge: 'br-web' })).toBe(chain);
    expect(isolationChain({ network: 'web', bridge: 'br-x' })).not.toBe(chain);
  });

  it('join: two fixed forward rules (published ports pass first), one chain rule (all tagged), set and map elements re-stated', () => {
    const lines = renderIsolationJoin(m, 't').trim().split('\n');
    const published = 'ct mark & 0x00400000 == 0x00400000 accept';
    const fwd = 'oifname @isolated iifname vmap @isolated_from';
    const own = 'oifname != "br-web" drop';
    expect(lines).toEqual([
      'add table inet t { comment "isolation between node-cni-plugins networks"; }',
      'add set inet t isolated { type ifname; }',
      'add map inet t isolated_from { type ifname : verdict; }',
      'add chain inet t forward { type filter hook forward priority filter - 10; policy accept; }',
      'flush chain inet t forward',
      `add rule inet t forward ${published} comment "${ruleTag('forward', 0, published)}"`,
      `add rule inet t forward ${fwd} comment "${ruleTag('forward', 1, fwd)}"`,
      `add chain inet t ${chain} { comment "network web bridge br-web"; }`,
      `flush chain inet t ${chain}`,
      `add rule inet t ${chain} ${own} comment "${ruleTag(chain, 0, own)}"`,
      'add element inet t isolated { "br-web" }',
      'delete element inet t isolated { "br-web" }',
      'add element inet t isolated { "br-web" comment "network web" }',
      `add element inet t isolated_from { "br-web" : goto ${chain} }`,
      'delete element inet t isolated_from { "br-web" }',
      `add element inet t isolated_from { "br-web" comment "network web" : goto ${chain} }`,
    ]);
  });

  it('the steady join is the element lines only; the shared table keeps forward and both sets', () => {
    expect(renderIsolationJoin(m, 't').endsWith(renderIsolationElements(m, 't'))).toBe(true);
    for (const l of renderIsolationElements(m, 't').trim().split('\n')) expect(l).toMatch(/^(add|delete) element /);
    expect(isolationSharedTable('t')).toEqual({ family: 'inet', table: 't', chains: ['forward'], sets: ['isolated', 'isolated_from'] });
  });

  it('leave: elements before the chain they reference', () => {
    expect(renderIsolationLeave(m, 't')).toBe(
      `delete element inet t isolated { "br-web" }\ndelete element inet t isolated_from { "br-web" }\ndelete chain inet t ${chain}\n`);
  });

  it('quotes and backslashes never reach the script', () => {
    expect(renderIsolationJoin({ network: 'a"b\\c', bridge: 'br0' })).toContain('comment "network a_b_c"');
  });
});
