// The errors of a best-effort teardown (DEL, GC): every step runs, what fails
// is kept with what it was doing and the original error as its cause, and
// the verb reports them all at the end, once.
//
//   const errors = new ErrorList();
//   await errors.attempt('removing masquerade', () => removeMasq(addrs));
//   errors.throwIfAny('bridge: DEL of c1/eth0 failed');

import { CniError, ErrorCode } from '../cni/errors';

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class ErrorList {
  private readonly errors: Error[] = [];

  get length(): number {
    return this.errors.length;
  }

  /** Keep `err` as it is (undefined `what`), or as "what: message" with `err` as its cause. */
  add(what: string | undefined, err: unknown): void {
    if (what === undefined) this.errors.push(err instanceof Error ? err : new Error(String(err)));
    else this.errors.push(new Error(`${what}: ${messageOf(err)}`, { cause: err }));
  }

  /** Run one step; its error is kept and the teardown goes on. */
  async attempt(what: string | undefined, step: () => unknown): Promise<void> {
    try {
      await step();
    } catch (err) {
      this.add(what, err);
    }
  }

  /** Keep errors another step collected. */
  addAll(errors: Iterable<Error>): void {
    for (const e of errors) this.errors.push(e);
  }

  list(): readonly Error[] {
    return this.errors;
  }

  /**
   * Nothing failed: return. One CniError alone passes through as it is; else
   * one CniError naming every error, with the first one's code when it is a
   * CniError (999 otherwise) and the first as its cause.
   */
  throwIfAny(prefix: string): void {
    if (this.errors.length === 0) return;
    const first = this.errors[0];
    if (this.errors.length === 1 && first instanceof CniError) throw first;
    const code = first instanceof CniError ? first.code : ErrorCode.Internal;
    throw new CniError(code, `${prefix}: ${this.errors.map((e) => e.message).join('; ')}`, undefined, { cause: first });
  }
}
