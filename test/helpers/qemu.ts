/**
 * Whether the QEMU tests can run here. Without QEMU, busybox or the kernel they skip with a notice
 * on stderr; under CI (`PAGEWIRE_REQUIRE_QEMU=1`, set by .ci/run) a missing piece fails instead.
 */
import { PagewireError } from '../../src/errors.js';
import { findGuestTools } from '../../scripts/qemu-guest.mjs';

export interface GuestTools { qemu: string; busybox: string; kernel: string }

/** The tools, or null (and a notice) when the QEMU tests must skip. @throws when CI requires QEMU */
export function qemuOrSkip(what: string): GuestTools | null {
  const t = findGuestTools() as GuestTools | { missing: string };
  if (!('missing' in t)) return t;
  if (process.env['PAGEWIRE_REQUIRE_QEMU'] === '1') {
    throw new Error(`${what}: PAGEWIRE_REQUIRE_QEMU=1 but ${t.missing} is missing`);
  }
  process.stderr.write(`NOTICE: skipping ${what}: ${t.missing} is missing (CI sets PAGEWIRE_REQUIRE_QEMU=1 and installs it)\n`);
  return null;
}

/** QEMU running the tiny guest (or waiting for one): scripts/qemu-guest.mjs. */
export { startGuest, type GuestProcess } from '../../scripts/qemu-guest.mjs';

/** The PagewireError `p` rejects with (fails the test if it resolves or rejects with something else). */
export async function pagewireRejection(p: Promise<unknown>): Promise<PagewireError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof PagewireError)) throw new Error(`expected a PagewireError, got ${String(e)}`, { cause: e });
    return e;
  }
  throw new Error('expected a rejection');
}
