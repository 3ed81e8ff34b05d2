// An undo stack for ADD: push an undo step right after each thing you create,
// commit() when everything worked, or unwind() to undo in reverse order.
//   const undo = new Rollback();
//   await createVeth(...); undo.push('delete veth x', () => deleteLink('x'));
//   ...; undo.commit();
// unwind() never throws: it runs every step and returns the errors it met, so
// the caller can report the original error (and log these).

export interface RollbackError {
  step: string;
  error: Error;
}

export class Rollback {
  private steps: Array<{ name: string; fn: () => unknown }> = [];
  private done = false;

  /** Register how to undo something that now exists. */
  push(name: string, fn: () => unknown): void {
    if (this.done) throw new Error(`Rollback: push("${name}") after commit/unwind`);
    this.steps.push({ name, fn });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Everything succeeded: forget the undo steps. */
  commit(): void {
    this.steps = [];
    this.done = true;
  }

  /** Undo in reverse order; every step runs even if an earlier one failed. */
  async unwind(): Promise<RollbackError[]> {
    const errors: RollbackError[] = [];
    const steps = this.steps.reverse();
    this.steps = [];
    this.done = true;
    for (const { name, fn } of steps) {
      try {
        await fn();
      } catch (err) {
        errors.push({ step: name, error: err instanceof Error ? err : new Error(String(err)) });
      }
    }
    return errors;
  }

  /**
   * Run `body` with a fresh stack: commit when it resolves, unwind and rethrow
   * its error when it rejects (undo failures go to `onUndoError`, e.g. inv.log.warn).
   */
  static async run<T>(body: (undo: Rollback) => Promise<T>, onUndoError?: (e: RollbackError) => void): Promise<T> {
    const undo = new Rollback();
    try {
      const out = await body(undo);
      undo.commit();
      return out;
    } catch (err) {
      for (const e of await undo.unwind()) onUndoError?.(e);
      throw err;
    }
  }
}

/** "undo failed: delete veth x: ENODEV; ..." for a log line. */
export function describeRollbackErrors(errors: RollbackError[]): string {
  return errors.map((e) => `${e.step}: ${e.error.message}`).join('; ');
}
