// The firewall plugin's iptables part over the recording fake of its runner:
// one jump and one small chain, written once, read back intact, taken out with
// the last container (test/e2e/firewall.test.ts runs the real iptables).
import { ensureForwardAccept, missingForwardAccept, removeForwardAccept, useIptablesRunner } from '../../lib/firewall/iptables';
import { FakeIptables } from '../helpers/fake-iptables';

let fake: FakeIptables;
let restore: () => void;
beforeEach(() => { fake = new FakeIptables(); restore = useIptablesRunner(fake); });
afterEach(() => restore());

describe('the iptables runner', () => {
  it('adds one jump and our chain, and the steady state only reads', () => {
    const before = fake.snapshot();
    expect(ensureForwardAccept(4, { adminChain: 'CNI-ADMIN' })).toBe(true);
    const chains = fake.snapshot()['host iptables'];
    expect(chains).toContain('-A FORWARD -m comment --comment "node-cni-plugins firewall" -j NODE-CNI-FORWARD');
    expect(chains).toContain('-N CNI-ADMIN');
    expect(missingForwardAccept(4, { adminChain: 'CNI-ADMIN' })).toEqual([]);
    const n = fake.commands.length;
    expect(ensureForwardAccept(4, { adminChain: 'CNI-ADMIN' })).toBe(true);
    expect(fake.commands.slice(n).map((c) => c.args[1])).toEqual(['-C', '-S']);
    removeForwardAccept(4, { adminChain: 'CNI-ADMIN' });
    expect(fake.snapshot()).toEqual(before);
  });

  it('keeps an admin chain that holds the admin\'s rules', () => {
    ensureForwardAccept(4, { adminChain: 'CNI-ADMIN' });
    fake.exec('iptables', ['-w', '-A', 'CNI-ADMIN', '-s', '10.1.0.0/16', '-j', 'DROP'], {});
    removeForwardAccept(4, { adminChain: 'CNI-ADMIN' });
    expect(fake.snapshot()['host iptables']).toEqual(['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT', '-N CNI-ADMIN', '-A CNI-ADMIN -s 10.1.0.0/16 -j DROP']);
  });

  it('reports a family without iptables as nothing to do', () => {
    fake.missing.add('ip6tables');
    expect(ensureForwardAccept(6, { adminChain: 'CNI-ADMIN' })).toBe(false);
    expect(missingForwardAccept(6, { adminChain: 'CNI-ADMIN' })).toEqual([]);
  });
});
