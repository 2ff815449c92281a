/**
 * Whether the browser tests run here, decided once from the environment:
 * - Chromium at PAGEWIRE_CHROMIUM (default /usr/bin/chromium) -> they run;
 * - no Chromium, or PAGEWIRE_SKIP_BROWSER=1 -> they are skipped, and the run ends with a notice
 *   (test/global-setup.ts) that says how to run them;
 * - PAGEWIRE_REQUIRE_BROWSER=1 (set by .ci/run) -> they always run: a missing Chromium fails them
 *   instead of skipping them, and PAGEWIRE_SKIP_BROWSER is refused.
 */
import { existsSync } from 'node:fs';

export const CHROMIUM = process.env['PAGEWIRE_CHROMIUM'] ?? '/usr/bin/chromium';

export const HOW_TO_RUN = 'To run them: apt-get install -y chromium (or set PAGEWIRE_CHROMIUM to a Chromium binary), ' +
  'then npm run test:e2e (or npm test).';

export interface BrowserDecision {
  /** true: the browser tests are skipped. */
  skip: boolean;
  /** Why they are skipped, or why they cannot be (empty when they run normally). */
  reason: string;
}

/** Decide from an environment (process.env by default) and a file check (tests inject both). */
export function browserDecision(env: Record<string, string | undefined> = process.env,
  exists: (path: string) => boolean = existsSync): BrowserDecision {
  const chromium = env['PAGEWIRE_CHROMIUM'] ?? '/usr/bin/chromium';
  const required = env['PAGEWIRE_REQUIRE_BROWSER'] === '1';
  if (env['PAGEWIRE_SKIP_BROWSER'] === '1') {
    if (required) return { skip: false, reason: 'PAGEWIRE_REQUIRE_BROWSER=1 and PAGEWIRE_SKIP_BROWSER=1 contradict each other' };
    return { skip: true, reason: 'PAGEWIRE_SKIP_BROWSER=1' };
  }
  if (exists(chromium)) return { skip: false, reason: '' };
  if (required) return { skip: false, reason: `PAGEWIRE_REQUIRE_BROWSER=1 but Chromium is not at ${chromium}` };
  return { skip: true, reason: `Chromium not found at ${chromium}` };
}

/** The notice printed at the end of a run whose browser tests were skipped. */
export function skipNotice(d: BrowserDecision): string {
  return `Browser tests (test/e2e) were skipped: ${d.reason}. ${HOW_TO_RUN}`;
}
