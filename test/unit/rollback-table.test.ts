// The rollback and teardown tables themselves: they must fail when an ADD
// forgets an undo step or reports another error, and when a DEL cannot be
// repeated after a failure; otherwise the plugin tables would prove nothing.
import { Rollback } from '../../lib/util/rollback';
import { FakeKernel } from '../helpers/fake-rtnl';
import { brokenRows, rollbackTable, teardownTable } from '../helpers/rollback-table';

/** A toy ADD: two links, each with its undo unless `forget` names it. */
function toyWorld(o: { forget?: string; swallow?: boolean } = {}) {
  return () => {
    const kernel = new FakeKernel();
    const host = kernel.openRtnl();
    const add = () => Rollback.run(async (undo) => {
      for (const name of ['sma0', 'smb0']) {
        await host.createBridge({ name });
        if (o.forget !== name) undo.push(`delete ${name}`, () => host.deleteLink(name));
      }
      try {
        await host.setLinkUp('smb0');
      } catch (err) {
        if (!o.swallow) throw err;
        throw new Error('something else went wrong');
      }
    });
    const del = async () => {
      for (const name of ['smb0', 'sma0']) {
        // Best-effort and idempotent: gone already counts as done.
        try { await host.deleteLink(name); } catch (err) { if ((err as { code?: string }).code !== 'ENODEV') throw err; }
      }
    };
    return { kernel, add, del };
  };
}

describe('rollbackTable', () => {
  it('holds for an ADD that undoes every step', async () => {
    const { steps, rows } = await rollbackTable({ setup: toyWorld() });
    expect(steps.map((s) => s.op)).toEqual(['createBridge sma0', 'createBridge smb0', 'setLinkUp smb0']);
    expect(brokenRows(rows)).toEqual([]);
  });

  it('names the rows where a created link is left behind', async () => {
    const { rows } = await rollbackTable({ setup: toyWorld({ forget: 'sma0' }) });
    expect(brokenRows(rows)).toEqual([expect.stringMatching(/^step 2 .*createBridge smb0.*kernel differs/), expect.stringMatching(/^step 3 .*setLinkUp smb0.*kernel differs/)]);
  });

  it('names the rows where the injected error is not what ADD reports', async () => {
    const { rows } = await rollbackTable({ setup: toyWorld({ swallow: true }) });
    expect(brokenRows(rows)).toEqual([expect.stringMatching(/^step 3 .*reported "something else went wrong" instead of the injected ENOBUFS/)]);
  });
});

describe('teardownTable', () => {
  it('holds for a DEL that counts what is gone as done', async () => {
    const { steps, rows } = await teardownTable({ setup: toyWorld() });
    expect(steps.map((s) => s.op)).toEqual(['deleteLink smb0', 'deleteLink sma0']);
    expect(brokenRows(rows)).toEqual([]);
  });

  it('names the rows where a second DEL fails', async () => {
    const strict = () => {
      const w = toyWorld()();
      const host = w.kernel.openRtnl();
      return { ...w, del: async () => { await host.deleteLink('smb0'); await host.deleteLink('sma0'); } };
    };
    const { rows } = await teardownTable({ setup: strict });
    // DEL's step 5 fails after smb0 is gone: the second DEL trips over the missing smb0 and sma0 stays.
    expect(brokenRows(rows)).toEqual([expect.stringMatching(/^step 5 .*deleteLink sma0.*the second DEL failed.*ENODEV.*kernel differs/)]);
  });
});
