// How cnictl reports failure: one sentence with the CNI code, exit 1.
import { toCniError } from '../../lib/cni/errors';

export function reportAndExit(err: unknown): never {
  const e = toCniError(err);
  process.stderr.write(`cnictl: ${e.message} (CNI error code ${e.code})${e.details ? `: ${e.details}` : ''}\n`);
  process.exit(1);
}
