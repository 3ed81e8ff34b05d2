import { macspoofMarker, renderMacspoofAdd, renderMacspoofDeclare, renderMacspoofDel } from '../../lib/firewall/macspoof';

const entry = { hostVeth: 'veth0a1b2c3d', mac: '02:AB:00:00:00:01' };

describe('macspoof rendering', () => {
  it('declares one table, two sets, one fixed rule and the marker set', () => {
    expect(renderMacspoofDeclare('t')).toBe([
      'add table bridge t { comment "MAC spoof check for node-cni-plugins bridge networks"; }',
      'add set bridge t guarded { type ifname; }',
      'add set bridge t allowed { type ifname . ether_addr; }',
      'add chain bridge t prerouting { type filter hook prerouting priority -300; policy accept; }',
      'flush chain bridge t prerouting',
      'add rule bridge t prerouting iifname @guarded iifname . ether saddr != @allowed drop',
      `add set bridge t ${macspoofMarker('t')} { type mark; }`,
    ].join('\n') + '\n');
  });

  it('ADD is element operations only: a marker no-op, then the two elements (MAC lower-cased)', () => {
    const m = macspoofMarker('t');
    expect(renderMacspoofAdd(entry, 't')).toBe([
      `add element bridge t ${m} { 0x1 }`,
      `delete element bridge t ${m} { 0x1 }`,
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

  it('the marker name depends on the table (and so on the structure text), and is stable', () => {
    expect(macspoofMarker('t')).toMatch(/^ok-[0-9a-f]{16}$/);
    expect(macspoofMarker('t')).toBe(macspoofMarker('t'));
    expect(macspoofMarker('t')).not.toBe(macspoofMarker('u'));
  });

  it('rejects a malformed MAC instead of rendering it', () => {
    expect(() => renderMacspoofAdd({ hostVeth: 'v', mac: '02:00:00:00:00' }, 't')).toThrow(/invalid MAC/);
  });

  it('keeps quotes out of interface names', () => {
    expect(renderMacspoofDel({ hostVeth: 'a"b', mac: '02:00:00:00:00:01' }, 't')).toContain('{ "a_b" }');
  });
});
