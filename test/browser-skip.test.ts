/**
 * npm test on a machine without Chromium: the browser tests are skipped and the run says so and how
 * to run them; with PAGEWIRE_REQUIRE_BROWSER=1 (.ci/run) a missing Chromium fails the run instead.
 * The second part runs vitest itself on the e2e files with Chromium pointed at a path that does not exist.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { browserDecision, skipNotice } from './helpers/browser.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const present = (): boolean => true;
const absent = (): boolean => false;

describe('browser test decision', () => {
  it('runs with Chromium, skips without it, fails without it when required', () => {
    expect(browserDecision({}, present)).toEqual({ skip: false, reason: '' });
    expect(browserDecision({}, absent)).toEqual({ skip: true, reason: 'Chromium not found at /usr/bin/chromium' });
    expect(browserDecision({ PAGEWIRE_CHROMIUM: '/opt/c' }, (p) => p === '/opt/c').skip).toBe(false);
    expect(browserDecision({ PAGEWIRE_SKIP_BROWSER: '1' }, present)).toEqual({ skip: true, reason: 'PAGEWIRE_SKIP_BROWSER=1' });
    const required = browserDecision({ PAGEWIRE_REQUIRE_BROWSER: '1' }, absent);
    expect(required.skip).toBe(false);
    expect(required.reason).toMatch(/PAGEWIRE_REQUIRE_BROWSER=1 but Chromium is not at/);
    expect(browserDecision({ PAGEWIRE_REQUIRE_BROWSER: '1', PAGEWIRE_SKIP_BROWSER: '1' }, present).skip).toBe(false);
    expect(skipNotice(browserDecision({}, absent))).toMatch(/skipped: Chromium not found.*apt-get install -y chromium.*npm run test:e2e/);
  });
});

describe('vitest on the e2e files with no Chromium', () => {
  const vitest = join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
  const run = (extraEnv: Record<string, string>): { status: number | null; out: string } => {
    const env: Record<string, string | undefined> = { ...process.env, PAGEWIRE_CHROMIUM: join(ROOT, 'no-such-chromium'), ...extraEnv };
    delete env['PAGEWIRE_SKIP_BROWSER'];
    if (extraEnv['PAGEWIRE_REQUIRE_BROWSER'] === undefined) delete env['PAGEWIRE_REQUIRE_BROWSER'];
    delete env['VITEST']; delete env['VITEST_WORKER_ID']; delete env['VITEST_POOL_ID'];
    // Only the browser suites of every e2e file (the name filter leaves out the web/ typecheck, which needs no browser).
    const r = spawnSync(process.execPath, [vitest, 'run', 'test/e2e/', '-t', 'Chromium'],
      { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
    return { status: r.status, out: r.stdout + r.stderr };
  };

  it('skips the browser tests, exits 0 and ends with the notice', () => {
    const r = run({});
    expect(r.out).toMatch(/Browser tests \(test\/e2e\) were skipped: Chromium not found at .*no-such-chromium\..*npm run test:e2e/);
    expect(r.out).toMatch(/skipped/);
    expect(r.out).toMatch(/browser parallel-channel tests skipped: Chromium not found/);
    expect(r.out).not.toMatch(/\d+ passed/);
    expect(r.status, r.out).toBe(0);
  }, 150_000);

  it('fails with PAGEWIRE_REQUIRE_BROWSER=1 (as in .ci/run)', () => {
    const r = run({ PAGEWIRE_REQUIRE_BROWSER: '1' });
    expect(r.out).toMatch(/PAGEWIRE_REQUIRE_BROWSER=1 but Chromium is not at/);
    expect(r.status).not.toBe(0);
  }, 150_000);
});
