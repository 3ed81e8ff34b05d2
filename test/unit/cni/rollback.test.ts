import { Rollback } from '../../../lib/util/rollback';

describe('Rollback', () => {
  it('unwinds in reverse order, keeps going past failures, returns the errors', async () => {
    const ran: string[] = [];
    const undo = new Rollback();
    undo.push('a', () => { ran.push('a'); });
    undo.push('b', () => { throw new Error('b broke'); });
    undo.push('c', async () => { ran.push('c'); });
    const errors = await undo.unwind();
    expect(ran).toEqual(['c', 'a']);
    expect(errors.map((e) => [e.step, e.error.message])).toEqual([['b', 'b broke']]);
    expect(await undo.unwind()).toEqual([]); // second unwind is a no-op
  });

  it('commit forgets the steps', async () => {
    const undo = new Rollback();
    let ran = false;
    undo.push('x', () => { ran = true; });
    undo.commit();
    expect(await undo.unwind()).toEqual([]);
    expect(ran).toBe(false);
  });

  it('run() unwinds and rethrows the original error', async () => {
    const ran: string[] = [];
    const seen: string[] = [];
    await expect(Rollback.run(async (undo) => {
      undo.push('one', () => { ran.push('one'); });
      undo.push('two', () => { throw new Error('undo two failed'); });
      throw new Error('original');
    }, (e) => seen.push(e.step))).rejects.toThrow('original');
    expect(ran).toEqual(['one']);
    expect(seen).toEqual(['two']);
    await expect(Rollback.run(async () => 42)).resolves.toBe(42);
  });
});
