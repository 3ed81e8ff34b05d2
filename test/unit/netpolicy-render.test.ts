// Rendering of internal networks and ICC off (lib/firewall/netpolicy.ts):
// fixed shared chains, one chain per network with the rules its flags ask
// for, elements per member, every rule tagged for verifyChains.
import { ruleTag } from '../../lib/firewall/render';
import { hasPolicy, netPolicySharedTable, policyChain, policyChains, policyComment, renderPolicyDeclare, renderPolicyElements, type NetworkPolicy } from '../../lib/firewall/netpolicy';

const internal: NetworkPolicy = { network: 'back', members: ['br-back'], internal: true, iccOff: false };
const iccOff: NetworkPolicy = { network: 'ovl', members: ['ovbr1', 'ovx1'], internal: false, iccOff: true };
const PUBLISHED = 'ct mark & 0x00400000 == 0x00400000';

describe('netpolicy rendering', () => {
  it('needs a policy only for internal or ICC off', () => {
    expect(hasPolicy({ internal: false, iccOff: false })).toBe(false);
    expect(hasPolicy(internal)).toBe(true);
    expect(hasPolicy(iccOff)).toBe(true);
  });

  it('internal: nothing in from or out to a non-member', () => {
    const [fwd, post, own] = policyChains(internal, 't');
    expect(fwd.lines).toEqual([
      'add chain inet t forward { type filter hook forward priority filter - 10; policy accept; }',
      'flush chain inet t forward',
      `add rule inet t forward iifname vmap @members comment "${ruleTag('forward', 0, 'iifname vmap @members')}"`,
      `add rule inet t forward oifname vmap @members comment "${ruleTag('forward', 1, 'oifname vmap @members')}"`,
    ]);
    expect(post.lines[0]).toBe('add chain inet t postrouting { type nat hook postrouting priority srcnat; policy accept; }');
    expect(post.lines[2]).toMatch(/^add rule inet t postrouting ct mark & 0x00800000 == 0x00800000 masquerade comment "nc:\w+"$/);
    expect(own.name).toBe(policyChain('back'));
    expect(own.lines.slice(2).map((l) => l.replace(/ comment "nc:\w+"$/, ''))).toEqual([
      `add rule inet t ${own.name} iifname != { "br-back" } drop`,
      `add rule inet t ${own.name} oifname != { "br-back" } drop`,
    ]);
    expect(own.lines[0]).toBe(`add chain inet t ${own.name} { comment "${policyComment(internal)}"; }`);
    expect(policyComment(internal)).toMatch(/^[0-9a-f]{12} members br-back network back$/);
  });

  it('ICC off: published ports pass (marked for masquerade), member to member is dropped (an overlay\'s bridge and VXLAN device alike)', () => {
    const own = policyChains(iccOff, 't')[2];
    const m2m = 'iifname { "ovbr1", "ovx1" } oifname { "ovbr1", "ovx1" }';
    expect(own.lines.slice(2).map((l) => l.replace(/ comment "nc:\w+"$/, ''))).toEqual([
      `add rule inet t ${own.name} ${m2m} ${PUBLISHED} ct mark set ct mark | 0x00800000 return`,
      `add rule inet t ${own.name} ${m2m} drop`,
    ]);
  });

  it('elements: each member jumps to the chain; the internal set holds exactly the members of internal networks', () => {
    const chain = policyChain('ovl');
    expect(renderPolicyElements(iccOff, 't').trim().split('\n').slice(0, 5)).toEqual([
      `add element inet t members { "ovbr1" : jump ${chain} }`,
      'delete element inet t members { "ovbr1" }',
      `add element inet t members { "ovbr1" comment "network ovl" : jump ${chain} }`,
      'add element inet t internal { "ovbr1" }',
      'delete element inet t internal { "ovbr1" }',
    ]);
    expect(renderPolicyElements(internal, 't')).toContain('add element inet t internal { "br-back" comment "network back" }');
  });

  it('the declaration re-states the table, map, sets and chains, then the elements; the shared table lists its fixed parts', () => {
    const text = renderPolicyDeclare(internal, 't');
    expect(text.split('\n').slice(0, 3)).toEqual([
      'add table inet t { comment "node-cni-plugins: internal networks and ICC off"; }',
      'add map inet t members { type ifname : verdict; }',
      'add set inet t internal { type ifname; }',
    ]);
    expect(text.endsWith(renderPolicyElements(internal, 't'))).toBe(true);
    expect(netPolicySharedTable('t')).toEqual({ family: 'inet', table: 't', chains: ['forward', 'postrouting'], sets: ['members', 'internal'] });
  });
});
