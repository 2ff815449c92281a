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
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { serveStatic, type StaticServer } from './static-server.js';
import { BROWSER, ROOT, launch, noteSkip, openPage } from './chromium.js';

const SKIP = BROWSER.skip;
const ARTIFACTS = join(ROOT, 'test', 'artifacts');

noteSkip('browser end-to-end tests');

let browser: Browser | null = null;

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

    /** Tick labels of each chart (the y-axis values and the x-axis label) and its "empty" note. */
    type ChartTexts = Record<string, { ticks: string[]; yTicks: string[]; empty: string | null }>;
    function chartTexts(): ChartTexts {
      const out: ChartTexts = {};
      for (const id of ['chart-pages', 'chart-wire', 'chart-bandwidth', 'chart-downtime']) {
        const svg = document.getElementById(id)!;
        const texts = (sel: string): string[] => [...svg.querySelectorAll(sel)].map((t) => t.textContent ?? '');
        out[id] = { ticks: texts('text.tick'), yTicks: texts('text.tick.y'), empty: svg.querySelector('text.empty')?.textContent ?? null };
      }
      return out;
    }

    /**
     * Records, in the page, every text the status line shows and the charts as they are right
     * after Start (the first draw, before any worker reported anything).
     */
    async function recordPage(page: Page): Promise<void> {
      await page.evaluate(`(() => {
        const w = window;
        w.__statuses = [];
        const status = document.getElementById('status');
        new MutationObserver(() => w.__statuses.push(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true });
        const chartTexts = ${chartTexts.toString()};
        const pages = document.getElementById('chart-pages');
        const mo = new MutationObserver(() => { w.__chartsAtStart = chartTexts(); mo.disconnect(); });
        document.getElementById('start').addEventListener('click', () => mo.observe(pages, { childList: true }), { once: true });
      })()`);
    }

    async function runMigration(page: Page, choice: Record<string, string>): Promise<{ state: string; sim: Record<string, any> }> {
      await page.goto(server.url + '/');
      await recordPage(page);
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

    const MIB = 1024 * 1024;
    /** "21.7 MiB", "873 B", "12 KiB", "1.20 GiB" -> bytes. */
    function parseBytes(text: string): number {
      const m = /^([\d.]+) (B|KiB|MiB|GiB)$/.exec(text.trim());
      if (!m) throw new Error(`not a byte figure: ${text}`);
      return Number(m[1]) * { B: 1, KiB: 1024, MiB: MIB, GiB: 1024 * MIB }[m[2] as 'B'];
    }
    /** "875 ms", "2.18 s" -> ms. */
    function parseMs(text: string): number {
      const m = /^([\d.]+) (ms|s)$/.exec(text.trim());
      if (!m) throw new Error(`not a duration: ${text}`);
      return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
    }

    /** What every finished run must show, whatever the engine (the issue 17 list). */
    async function expectConsistentPage(page: Page, sim: Record<string, any>): Promise<void> {
      const rep = sim['source'].report;
      // Charts right after Start: a grid and a note, no made-up scale ("1,1,1,0,0" before).
      const atStart = await page.evaluate(() => (window as unknown as { __chartsAtStart?: ChartTexts }).__chartsAtStart);
      expect(atStart).toBeDefined();
      for (const [id, c] of Object.entries(atStart!)) {
        expect(c.empty ?? '(no note)', id).toMatch(/^(no|none|estimated)/);
        expect(c.ticks.filter((t) => /\d/.test(t)), id).toEqual([]);
      }
      // Charts at the end: no two y-axis ticks read the same, and no empty note on the round charts.
      const atEnd = await page.evaluate(chartTexts);
      for (const id of ['chart-pages', 'chart-wire', 'chart-bandwidth']) {
        const values = atEnd[id]!.yTicks;
        expect(values.length, id).toBeGreaterThanOrEqual(5);
        expect(new Set(values).size, `${id}: ${values.join('|')}`).toBe(values.length);
        expect(atEnd[id]!.empty, id).toBeNull();
      }
      // The status line never showed a round before the first one, nor a figure it did not have.
      const statuses = await page.evaluate(() => (window as unknown as { __statuses: string[] }).__statuses);
      expect(statuses.length).toBeGreaterThan(3);
      for (const st of statuses) {
        expect(st).not.toMatch(/round -1/i);
        expect(st).not.toMatch(/expected downtime 0\.0 ms/);
        expect(st).not.toMatch(/(^|\D)0\.0 MB\/s/);
      }
      // "Done in" is the total time of the summary.
      const status = (await page.locator('#status').textContent()) ?? '';
      const done = /^Done in ([\d.]+ m?s):/.exec(status);
      expect(done, status).not.toBeNull();
      const total = (await page.locator('#sum-total').textContent()) ?? '';
      expect(total.startsWith(`${done![1]} `)).toBe(true);
      expect(Math.abs(parseMs(done![1]!) - rep.totalTimeMs)).toBeLessThanOrEqual(Math.max(10, rep.totalTimeMs * 0.01));
      // Status and summary agree on convergence.
      const converged = (await page.locator('#sum-converged').textContent()) ?? '';
      if (sim['config'].engine === 'postcopy') {
        expect(converged).toMatch(/^not applicable/);
        expect(status).toMatch(/post-copy \(convergence does not apply\)/);
      } else if (rep.converged) {
        expect(converged).toMatch(/^yes/);
        expect(status).toMatch(/, converged\.$/);
      }
      expect(status).not.toMatch(rep.converged || sim['config'].engine === 'postcopy' ? /did not converge/ : /, converged/);
      // The codec line ends with the bytes after LZ4, which are the wire bytes less frame headers.
      const codecs = (await page.locator('#sum-codecs').textContent()) ?? '';
      const after = /; ([\d.]+ (?:B|KiB|MiB|GiB)) (?:after LZ4|in all \(no LZ4\))$/.exec(codecs);
      expect(after, codecs).not.toBeNull();
      const payload = parseBytes(after![1]!);
      expect(payload).toBeLessThanOrEqual(rep.wireBytes * 1.01);
      expect(payload).toBeGreaterThanOrEqual(rep.wireBytes * 0.97);
      const lz4 = rep.codecStats?.lz4;
      if (lz4?.pages > 0) expect(codecs).toMatch(/then LZ4 on the records of/);
      // The link samples count every byte the source wrote (frames, handshake), no fewer.
      const delivered = sim['source'].extra.deliveredBytes;
      expect(delivered).toBeGreaterThanOrEqual(rep.wireBytes);
      expect(delivered).toBeLessThan(rep.wireBytes + 64 * 1024);
      // The bandwidth chart has the delivered rate, whatever the mode.
      expect(sim['throughput'].length).toBeGreaterThanOrEqual(2);
      expect(sim['throughput'].some(([, v]: [number, number]) => v > 0)).toBe(true);
      expect(await page.locator('#chart-bandwidth path.data[data-series="delivered"]').count()).toBe(1);
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
      await expectConsistentPage(page, sim);
      // with an estimate, the status said so; before round 0 ended, it said when it would have one
      const statuses = await page.evaluate(() => (window as unknown as { __statuses: string[] }).__statuses);
      expect(statuses.some((x) => /^Round 0: .*expected downtime known after round 0$/.test(x))).toBe(true);
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
      await expectConsistentPage(page, sim);
      // no pre-copy round: no estimate, and the page says so instead of "0.0 ms"
      expect(await page.locator('#sum-downtime').textContent()).toMatch(/no estimate/);
      expect(await page.locator('#chart-downtime text.empty').textContent()).toMatch(/post-copy/);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'simulator-postcopy.png'), fullPage: true });
      expect(errors).toEqual([]);
      await page.close();
    }, 120_000);

    it('every choice of every select is shown whole (no cut text)', async () => {
      const { page, errors } = await openPage(browser!);
      await page.goto(server.url + '/');
      const cut = await page.evaluate(() => {
        const out: string[] = [];
        for (const sel of document.querySelectorAll('select')) {
          const span = document.createElement('span');
          span.style.font = getComputedStyle(sel).font;
          span.style.whiteSpace = 'pre';
          document.body.append(span);
          for (const o of sel.options) {
            span.textContent = o.text;
            // room for the text plus the padding and the drop-down arrow
            if (span.getBoundingClientRect().width + 16 > sel.clientWidth) out.push(`${sel.id}: "${o.text}" needs ${span.getBoundingClientRect().width.toFixed(0)} px, select ${sel.clientWidth} px`);
          }
          span.remove();
        }
        return out;
      });
      expect(cut).toEqual([]);
      expect(errors).toEqual([]);
      await page.close();
    }, 60_000);

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
        (_path, text) => text.replaceAll(`from 'pagewire'`, `from '/dist/index.js'`).replaceAll(`from 'pagewire/sim'`, `from '/dist/sim/index.js'`));
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
  // the simulator subpath is browser-safe too
  const sim = await import('/dist/sim/index.js');
  out.sim = [typeof sim.SimulatedGuest, typeof sim.shapeTransport, typeof sim.simulateMigration];
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

    it('loads (with pagewire/sim) in Chromium without Buffer/process/node:* and matches Node on xxh64 and a migration digest', async () => {
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
      expect(probe['sim']).toEqual(['function', 'function', 'function']);
      // only files of the browser build were fetched: no node:* scheme, nothing outside dist/
      const fetched = server.requests.filter((r) => r !== '/probe.html' && r !== '/favicon.ico');
      expect(fetched.length).toBeGreaterThan(5);
      expect(fetched.filter((r) => !r.startsWith('/dist/') || !r.endsWith('.js'))).toEqual([]);
      expect(errors).toEqual([]);
      await page.close();
    }, 60_000);
  });
});
