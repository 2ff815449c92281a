/**
 * Exit codes of the `pagewire` command, the same for every subcommand.
 */
import { ErrorCode, PagewireError } from '../errors.js';

export const EXIT = {
  /** Success (a migration completed and was verified). */
  OK: 0,
  /** Unexpected internal error (a bug: please report it). */
  INTERNAL: 1,
  /** Usage error: unknown command or option, bad option value. */
  USAGE: 2,
  /** The migration (or snapshot/restore) failed; the source guest keeps running. */
  FAILED: 3,
  /** Verification failed: the digests differ (nothing runs on the target). */
  VERIFY_FAILED: 4,
} as const;

/** Exit code for an error thrown by a command. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof PagewireError) {
    if (err.code === ErrorCode.INVALID_ARGUMENT) return EXIT.USAGE;
    if (err.code === ErrorCode.VERIFY_FAILED) return EXIT.VERIFY_FAILED;
    return EXIT.FAILED;
  }
  return EXIT.INTERNAL;
}
