/**
 * Whether the QEMU tests can run here. Without QEMU, busybox or the kernel they skip with a notice
 * on stderr; under CI (`PAGEWIRE_REQUIRE_QEMU=1`, set by .ci/run) a missing piece fails instead.
 */
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
