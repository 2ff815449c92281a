/**
 * Chromium for the browser tests: Debian's binary (test/helpers/browser.ts says where and whether
 * the tests run), driven by playwright-core with the flags PLATFORM-NOTES.md lists; pages that
 * record their console errors and uncaught exceptions.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { browserDecision, CHROMIUM, HOW_TO_RUN, type BrowserDecision } from '../helpers/browser.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BROWSER: BrowserDecision = browserDecision();

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
];

/** Says once, for a skipped suite, why and how to run it. */
export function noteSkip(what: string): void {
  if (BROWSER.skip) console.log(`${what} skipped: ${BROWSER.reason}. ${HOW_TO_RUN}`);
}

/** Launch Chromium, or fail saying why (missing binary, missing build, contradicting settings). */
export async function launch(): Promise<Browser> {
  if (BROWSER.reason !== '') throw new Error(`${BROWSER.reason}. ${HOW_TO_RUN}`);
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}. ${HOW_TO_RUN}`);
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new Error('dist/index.js is missing: run npm run build first');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
}

/** A page that records console errors and uncaught exceptions. */
export async function openPage(b: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await b.newPage({ viewport: { width: 1100, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  return { page, errors };
}
