// lib/util/errors.ts ErrorList: the errors of a best-effort DEL or GC, reported once at the end.
import { CniError } from '../../lib/cni/errors';
import { ErrorList } from '../../lib/util/errors';

function thrown(fn: () => void): CniError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CniError);
    return e as CniError;
  }
  throw new Error('expected a throw');
}

describe('ErrorList', () => {
  it('runs every step, keeps what failed with what it was doing, and the original as cause', async () => {
    const errors = new ErrorList();
    const ran: string[] = [];
    const boom = new Error('EBUSY');
    await errors.attempt('deleting "veth1"', () => { ran.push('a'); throw boom; });
    await errors.attempt('removing masquerade', async () => { ran.push('b'); });
    await errors.attempt('leaving the isolation group', async () => { ran.push('c'); throw new Error('no table'); });
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(errors.list().map((e) => e.message)).toEqual(['deleting "veth1": EBUSY', 'leaving the isolation group: no table']);
    expect(errors.list()[0].cause).toBe(boom);
    const e = thrown(() => errors.throwIfAny('bridge: DEL of c1/eth0 failed'));
    expect(e.code).toBe(999);
    expect(e.message).toBe('bridge: DEL of c1/eth0 failed: deleting "veth1": EBUSY; leaving the isolation group: no table');
    expect(e.cause).toBe(errors.list()[0]);
  });

  it('nothing failed: no throw', () => {
    expect(() => new ErrorList().throwIfAny('x')).not.toThrow();
  });

  it('one CniError alone passes through as it is; first a CniError among several: its code', async () => {
    const ipam = new CniError(11, 'host-local: busy');
    const one = new ErrorList();
    await one.attempt(undefined, () => { throw ipam; });
    expect(thrown(() => one.throwIfAny('p'))).toBe(ipam);
    const two = new ErrorList();
    two.add(undefined, ipam);
    two.add('deleting "eth0"', new Error('EPERM'));
    const e = thrown(() => two.throwIfAny('macvlan DEL'));
    expect([e.code, e.message]).toEqual([11, 'macvlan DEL: host-local: busy; deleting "eth0": EPERM']);
  });

  it('a step that throws a non-Error is kept too', async () => {
    const errors = new ErrorList();
    await errors.attempt(undefined, () => { throw 'plain string'; });
    errors.addAll([new Error('more')]);
    expect(errors.length).toBe(2);
    expect(thrown(() => errors.throwIfAny('gc')).message).toBe('gc: plain string; more');
  });
});
