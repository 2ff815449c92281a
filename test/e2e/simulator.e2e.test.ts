/**
 * Browser end-to-end tests in real Chromium (Debian's /usr/bin/chromium, driven by playwright-core;
 * no browser is ever downloaded):
 * 1. the simulator (web/, built here with Vite) runs small migrations between two Web Workers and
 *    its summary shows a verified, converged migration; a screenshot goes to test/artifacts/;
 * 2. the package's browser entry (dist/index.js, served as plain ES modules with no bundler) loads
 *    in a page without Node globals and runs xxh64 and an in-page migration with the same results
 *    as Node.
 * Without Chromium (or with PAGEWIRE_SKIP_BROWSER=1) they are skipped and the run ends with a notice
 * saying how to run them; with PAGEWIRE_REQUIRE_BROWSER=1 (.ci/run) they run and fail instead
 * (test/helpers/browser.ts decides).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { serveStatic, type StaticServer } from './static-server.js';
import { browserDecision, CHROMIUM, HOW_TO_RUN } from '../helpers/browser.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BROWSER = browserDecision();
const SKIP = BROWSER.skip;
const ARTIFACTS = join(ROOT, 'test', 'artifacts');
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
];

if (SKIP) console.log(`browser end-to-end tests skipped: ${BROWSER.reason}. ${HOW_TO_RUN}`);

let browser: Browser | null = null;

async function launch(): Promise<Browser> {
  if (BROWSER.reason !== '') throw new Error(`${BROWSER.reason}. ${HOW_TO_RUN}`);
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}. ${HOW_TO_RUN}`);
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new Error('dist/index.js is missing: run npm run build first');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
}

/** A page that records console errors and uncaught exceptions. */
async function openPage(b: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await b.newPage({ viewport: { width: 1100, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  return { page, errors };
}

describe('simulator sources', () => {
  it('web/ typechecks against the package types (dist/index.d.ts), as an outside user compiles', () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', 'web/tsconfig.json'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 150_000);
});

describe.skipIf(SKIP)('browser (Chromium)', () => {
  beforeAll(async () => {
    browser = await launch();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  describe('simulator (web/)', () => {
    let server: StaticServer;

    beforeAll(async () => {
      // Build the page as a user would: Vite, with 'pagewire' resolved through the exports map.
      const vite = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
      const r = spawnSync(process.execPath, [vite, 'build', '--config', 'web/vite.config.ts', '--logLevel', 'error'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`vite build failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
      server = await serveStatic({ '/': join(ROOT, 'web', 'dist') });
    }, 150_000);

    afterAll(async () => {
      await server?.close();
    });

    async function runMigration(page: Page, choice: Record<string, string>): Promise<{ state: string; sim: Record<string, any> }> {
      await page.goto(server.url + '/');
      for (const [id, value] of Object.entries(choice)) {
        const tag = await page.locator(`#${id}`).evaluate((e) => e.tagName);
        if (tag === 'SELECT') await page.selectOption(`#${id}`, value);
        else await page.fill(`#${id}`, value);
      }
      await page.click('#start');
      await page.waitForFunction(() => {
        const s = document.getElementById('summary')?.dataset['state'];
        return s !== undefined && s !== 'idle' && s !== 'running';
      }, undefined, { timeout: 90_000, polling: 200 });
      const state = await page.locator('#summary').getAttribute('data-state');
      const sim = await page.evaluate(() => (window as unknown as { pagewireSim?: unknown }).pagewireSim ?? null) as Record<string, any>;
      if (state !== 'verified') {
        throw new Error(`migration did not verify: state ${state}; status: ${await page.locator('#status').textContent()}; summary: ${await page.locator('#summary').textContent()}`);
      }
      return { state: state!, sim };
    }

    it('bundles pagewire from its built JavaScript (the exports map), not from src/', () => {
      const assets = join(ROOT, 'web', 'dist', 'assets');
      const maps = readdirSync(assets).filter((f) => /^(source|target)\.worker-.*\.js\.map$/.test(f));
      expect(maps).toHaveLength(2);
      for (const f of maps) {
        const sources = (JSON.parse(readFileSync(join(assets, f), 'utf8')) as { sources: string[] }).sources;
        expect(sources.some((x) => x.endsWith('migration/source.js') || x.endsWith('migration/target.js'))).toBe(true);
        expect(sources.filter((x) => !x.endsWith('.js') && !x.includes('web/src/'))).toEqual([]);
      }
    });

    it('runs a 32 MiB hot-set migration between two workers and shows it verified and converged', async () => {
      const { page, errors } = await openPage(browser!);
      const { sim } = await runMigration(page, {
        // a fast link and a generous limit, so the run converges even on a loaded machine
        'guest-size': '32', workload: 'hotset', 'dirty-rate': '8', link: '10000', delay: '1', engine: 'pagewire', 'downtime-limit': '1000',
      });
      // what the page shows
      expect(await page.locator('#verified').textContent()).toBe('verified');
      const digest = (await page.locator('#digest').textContent()) ?? '';
      expect(digest).toMatch(/^[0-9a-f]{16}$/);
      expect(await page.locator('#sum-converged').textContent()).toMatch(/^yes/);
      expect(await page.locator('#summary').getAttribute('data-converged')).toBe('true');
      expect(await page.locator('#sum-wire').textContent()).toMatch(/MiB/);
      // what the workers reported (the page's check is not the only one)
      expect(sim['verified']).toBe(true);
      expect(sim['source'].memoryDigest).toBe(digest);
      expect(sim['target'].memoryDigest).toBe(digest);
      expect(sim['source'].report.digest).toBe(sim['target'].report.digest);
      expect(sim['source'].report.guestPages).toBe((32 * 1024 * 1024) / 4096);
      expect(sim['source'].report.mode).toBe('precopy');
      expect(sim['source'].report.rounds.length).toBeGreaterThanOrEqual(2);
      // pagewire's codecs at work: fewer bytes on the wire than raw pages (the guest is partly zero)
      expect(sim['source'].report.wireBytes).toBeLessThan(sim['source'].report.rawBytes);
      // the charts were drawn: one bar per round and series in the per-round charts
      expect(await page.locator('#chart-pages rect.bar.s0').count()).toBe(sim['source'].report.rounds.length);
      expect(await page.locator('#chart-bandwidth path').count()).toBeGreaterThan(0);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'simulator.png'), fullPage: true });
      expect(errors).toEqual([]);
      await page.close();
    }, 120_000);

    it('runs a post-copy migration: the target guest faults pages in, memory verified', async () => {
      const { page, errors } = await openPage(browser!);
      const { sim } = await runMigration(page, {
        'guest-size': '16', workload: 'uniform', 'dirty-rate': '10', link: '100', delay: '2', engine: 'postcopy',
      });
      const s = sim['source'].report;
      const t = sim['target'].report;
      expect(s.mode).toBe('postcopy');
      expect(s.verified && t.verified).toBe(true);
      expect(sim['source'].memoryDigest).toBe(sim['target'].memoryDigest);
      expect(s.postcopyBytes).toBeGreaterThan(0);
      // 16 MiB over 100 Mbit/s takes over a second: the running target guest must have faulted
      expect(sim['target'].extra.guestAccesses).toBeGreaterThan(0);
      expect(t.faults).toBeGreaterThan(0);
      expect(await page.locator('#sum-postcopy').textContent()).toMatch(/faults/);
      expect(errors).toEqual([]);
      await page.close();
    }, 120_000);

    it('Stop ends a running migration and Start is enabled again', async () => {
      const { page, errors } = await openPage(browser!);
      await page.goto(server.url + '/');
      // 64 MiB over 10 Mbit/s would take many seconds
      await page.selectOption('#guest-size', '64');
      await page.selectOption('#link', '10');
      await page.selectOption('#engine', 'precopy');
      await page.click('#start');
      expect(await page.locator('#start').isDisabled()).toBe(true);
      await page.waitForFunction(() => /Round \d/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 30_000 });
      await page.click('#stop');
      expect(await page.locator('#summary').getAttribute('data-state')).toBe('stopped');
      expect(await page.locator('#status').textContent()).toBe('Stopped.');
      expect(await page.locator('#start').isEnabled()).toBe(true);
      expect(await page.locator('#stop').isDisabled()).toBe(true);
      expect(errors).toEqual([]);
      await page.close();
    }, 60_000);
  });

  describe('README embedding example (docs/examples/embed)', () => {
    it('migrates between two module workers over a MessageChannel, verified', async () => {
      // 'pagewire' resolved to the served dist/index.js, as a bundler or an import map would
      const server = await serveStatic({ '/dist/': join(ROOT, 'dist'), '/': join(ROOT, 'docs', 'examples', 'embed') }, {},
        (_path, text) => text.replaceAll(`from 'pagewire'`, `from '/dist/index.js'`));
      try {
        const { page, errors } = await openPage(browser!);
        await page.goto(server.url + '/index.html');
        await page.waitForFunction(() => (window as unknown as { embedResult?: unknown }).embedResult !== undefined, undefined, { timeout: 60_000, polling: 100 });
        const r = await page.evaluate(() => (window as unknown as { embedResult: Record<string, any> }).embedResult);
        expect(r['source'].verified).toBe(true);
        expect(r['target'].verified).toBe(true);
        expect(r['source'].digest).toMatch(/^[0-9a-f]{16}$/);
        expect(r['target'].digest).toBe(r['source'].digest);
        expect(await page.locator('#log').textContent()).toMatch(/round 0: 8192 pages/);
        expect(errors).toEqual([]);
        await page.close();
      } finally {
        await server.close();
      }
    }, 90_000);
  });

  describe('browser entry (dist/index.js) without a bundler', () => {
    let server: StaticServer;

    const PROBE = `<!doctype html><meta charset="utf-8"><title>probe</title><link rel="icon" href="data:,"><script type="module">
const out = { globals: { Buffer: typeof Buffer, process: typeof process, require: typeof require, global: typeof global } };
try {
  const pw = await import('/dist/index.js');
  await pw.ready();
  out.xxh = pw.xxh64(new TextEncoder().encode('pagewire in a browser'), 7n).toString(16);
  const pages = 512;
  const fill = (m) => { for (let p = 0; p < pages; p++) { if (p % 3 === 0) continue; const v = m.page(p); for (let i = 0; i < v.length; i += 16) v[i] = (p * 7 + i) & 0xff; } };
  const c1 = await pw.createCore();
  const src = pw.GuestMemory.inCore(c1, pages, 4096);
  fill(src);
  const c2 = await pw.createCore();
  const dst = pw.GuestMemory.inCore(c2, pages, 4096);
  const log = { start() {}, stop() {}, sync() { return new Uint32Array(0); } };
  const [a, b] = pw.memoryPair();
  const source = new pw.MigrationSource(src, log, a, { codecs: 'all' });
  const target = new pw.MigrationTarget(dst);
  const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
  out.verified = rs.verified && rt.verified;
  out.reportDigest = rs.digest;
  out.srcDigest = pw.memoryDigest(src, c1);
  out.dstDigest = pw.memoryDigest(dst, c2);
} catch (e) {
  out.error = String(e && e.stack || e);
}
window.__probe = out;
</script>`;

    beforeAll(async () => {
      server = await serveStatic({ '/dist/': join(ROOT, 'dist') }, { '/probe.html': PROBE });
    });

    afterAll(async () => {
      await server?.close();
    });

    it('loads in Chromium without Buffer/process/node:* and matches Node on xxh64 and a migration digest', async () => {
      const { page, errors } = await openPage(browser!);
      await page.goto(server.url + '/probe.html');
      await page.waitForFunction(() => (window as unknown as { __probe?: unknown }).__probe !== undefined, undefined, { timeout: 30_000 });
      const probe = await page.evaluate(() => (window as unknown as { __probe: Record<string, any> }).__probe);
      expect(probe['error']).toBeUndefined();
      expect(probe['globals']).toEqual({ Buffer: 'undefined', process: 'undefined', require: 'undefined', global: 'undefined' });
      // the same computations in Node with the same build
      const pw = await import(join(ROOT, 'dist', 'index.js'));
      await pw.ready();
      expect(probe['xxh']).toBe((pw.xxh64(new TextEncoder().encode('pagewire in a browser'), 7n) as bigint).toString(16));
      const core = await pw.createCore();
      const mem = pw.GuestMemory.inCore(core, 512, 4096);
      for (let p = 0; p < 512; p++) {
        if (p % 3 === 0) continue;
        const v = mem.page(p) as Uint8Array;
        for (let i = 0; i < v.length; i += 16) v[i] = (p * 7 + i) & 0xff;
      }
      const expected = pw.memoryDigest(mem, core) as string;
      expect(probe['verified']).toBe(true);
      expect(probe['srcDigest']).toBe(expected);
      expect(probe['dstDigest']).toBe(expected);
      expect(probe['reportDigest']).toBe(expected);
      // only files of the browser build were fetched: no node:* scheme, nothing outside dist/
      const fetched = server.requests.filter((r) => r !== '/probe.html' && r !== '/favicon.ico');
      expect(fetched.length).toBeGreaterThan(5);
      expect(fetched.filter((r) => !r.startsWith('/dist/') || !r.endsWith('.js'))).toEqual([]);
      expect(errors).toEqual([]);
      await page.close();
    }, 60_000);
  });
});
