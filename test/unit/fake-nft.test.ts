// The recording fake of the nft runner against the project's own renderers:
// what it models must behave like nft for the operations ADD, DEL and CHECK use
// (test/kernel/nft.test.ts holds the real nft to the same renderers).
import { NftError, applyNft, removeTableIfUnused, useNftBackend } from '../../lib/firewall/nft';
import { applyMasqAdd, hasMasq, listMasqElements, masqSharedTable, removeMasq, removeMasqNetwork } from '../../lib/firewall/masquerade';
import { applyMacspoofAdd, missingMacspoof, removeMacspoof, removeMacspoofIfUnused } from '../../lib/firewall/macspoof';
import { FakeNft } from '../helpers/fake-nft';

let nft: FakeNft;
let restore: () => void;
beforeEach(() => { nft = new FakeNft(); restore = useNftBackend(nft); });
afterEach(() => restore());

const owner = { network: 'smnet', containerId: 'smctr1', ifname: 'eth0' };
const entries = [{ address: '10.77.0.2', subnet: '10.77.0.0/24' }, { address: 'fd00:77::2', subnet: 'fd00:77::/64' }];

describe('FakeNft', () => {
  it('models masquerade: elements come and go, the table goes with the last network', async () => {
    await applyMasqAdd(owner, entries);
    expect(nft.elements()).toEqual([
      expect.stringMatching(/^host inet node_cni_masq masq4 10\.77\.0\.2 comment "[^"]+" : jump masq-[0-9a-f]{16}$/),
      expect.stringMatching(/^host inet node_cni_masq masq6 fd00:77::2 comment "[^"]+" : jump masq-/),
    ]);
    expect(hasMasq(owner, entries[0])).toBe(true);
    expect(listMasqElements().map((e) => e.address).sort()).toEqual(['10.77.0.2', 'fd00:77::2']);
    // The second ADD finds its chains intact and sends element operations only.
    const before = nft.transactions.length;
    await applyMasqAdd({ ...owner, containerId: 'smctr2' }, [{ address: '10.77.0.3', subnet: '10.77.0.0/24' }]);
    expect(nft.transactions.slice(before).map((t) => t.text).filter((t) => t.includes('add chain'))).toEqual([]);
    removeMasq(['10.77.0.2', 'fd00:77::2', '10.77.0.3']);
    expect(nft.elements()).toEqual([]);
    await removeMasqNetwork('smnet');
    expect(await removeTableIfUnused(masqSharedTable())).toBe('absent');
    expect(nft.snapshot()).toEqual({});
  });

  it('refuses a table that is still in use, and deletes one that is not', async () => {
    await applyMasqAdd(owner, entries.slice(0, 1));
    expect(await removeTableIfUnused(masqSharedTable())).toBe('in use');
    removeMasq(['10.77.0.2']);
    await removeMasqNetwork('smnet');
    expect(nft.snapshot()).toEqual({});
  });

  it('models the MAC spoof check of a bridge port', async () => {
    const e = { hostVeth: 'vethsm01', mac: '02:42:0a:4d:00:02' };
    await applyMacspoofAdd(e);
    expect(missingMacspoof(e)).toEqual([]);
    removeMacspoof(e);
    expect(missingMacspoof(e).length).toBeGreaterThan(0);
    await removeMacspoofIfUnused();
    expect(nft.elements()).toEqual([]);
  });

  it('fails a script as a whole, with the words nft uses', () => {
    applyNft('add table inet smt\nadd set inet smt s { type ipv4_addr; }\n');
    let err: unknown;
    try {
      applyNft('add element inet smt s { 10.0.0.1 }\ndelete element inet smt s { 10.0.0.9 }\n');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NftError);
    expect((err as NftError).missing).toBe(true);
    expect(nft.elements()).toEqual([]);
    applyNft('create element inet smt s { 10.0.0.1 }\n');
    expect(() => applyNft('create element inet smt s { 10.0.0.1 }\n')).toThrow(expect.objectContaining({ exists: true }));
  });

  it('throws on a statement it does not model', () => {
    expect(() => applyNft('add flowtable inet smt f { hook ingress priority 0; }\n')).toThrow('cannot model');
  });
});
