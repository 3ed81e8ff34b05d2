import { macspoofSharedTable, renderMacspoofAdd, renderMacspoofDeclare, renderMacspoofDel } from '../../lib/firewall/macspoof';
import { ruleTag } from '../../lib/firewall/render';

const entry = { hostVeth: 'veth0a1b2c3d', mac: '02:AB:00:00:00:01' };

describe('macspoof rendering', () => {
  it('declares one table, two sets and one fixed, tagged rule', () => {
    const rule = 'iifname @guarded iifname . ether saddr != @allowed drop';
    expect(renderMacspoofDeclare('t')).toBe([
      'add table bridge t { comment "MAC spoof check for node-cni-plugins bridge networks"; }',
      'add set bridge t guarded { type ifname; }',
      'add set bridge t allowed { type ifname . ether_addr; }',
      'add chain bridge t prerouting { type filter hook prerouting priority -300; policy accept; }',
      'flush chain bridge t prerouting',
      `add rule bridge t prerouting ${rule} comment "${ruleTag('prerouting', 0, rule)}"`,
    ].join('\n') + '\n');
    expect(macspoofSharedTable('t')).toMatchObject({ family: 'bridge', table: 't', chains: ['prerouting'], sets: ['guarded', 'allowed'] });
  });

  it('ADD is element operations only: the two elements (MAC lower-cased)', () => {
    expect(renderMacspoofAdd(entry, 't')).toBe([
      'add element bridge t allowed { "veth0a1b2c3d" . 02:ab:00:00:00:01 }',
      'add element bridge t guarded { "veth0a1b2c3d" }',
    ].join('\n') + '\n');
  });

  it('DEL unguards the port first, then removes its MAC', () => {
    expect(renderMacspoofDel(entry, 't')).toBe([
      'delete element bridge t guarded { "veth0a1b2c3d" }',
      'delete element bridge t allowed { "veth0a1b2c3d" . 02:ab:00:00:00:01 }',
    ].join('\n') + '\n');
  });

  it('rejects a malformed MAC instead of rendering it', () => {
    expect(() => renderMacspoofAdd({ hostVeth: 'v', mac: '02:00:00:00:00' }, 't')).toThrow(/invalid MAC/);
  });

  it('keeps quotes out of interface names', () => {
    expect(renderMacspoofDel({ hostVeth: 'a"b', mac: '02:00:00:00:00:01' }, 't')).toContain('{ "a_b" }');
  });
});
