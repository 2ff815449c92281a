/**
 * Parallel channels in real Chromium: a page (served with COOP/COEP, so cross-origin isolated)
 * migrates a SharedArrayBuffer guest that keeps writing, over 2 channels, with module Web
 * Workers on both sides: ParallelMigrationSource with webChannelSpawner and WorkerParallelTarget
 * with webTargetChannelSpawner, linked by MessageChannels (the target's coordinator, on the page,
 * routes each connection to its channel's worker by the HELLO). The worker scripts are the
 * page's own one-line modules importing the package's `pagewire/workers/*` entries, resolved
 * through the exports map's "browser" condition as a bundler would, with no bundler; then the same
 * page bundled by Vite in a consumer project (worker scripts `import 'pagewire/workers/...'`).
 * Skipped with a notice without Chromium; run (and failing) with PAGEWIRE_REQUIRE_BROWSER=1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { serveStatic, type StaticServer } from './static-server.js';
import { BROWSER, ROOT, launch, noteSkip, openPage } from './chromium.js';

noteSkip('browser parallel-channel tests');

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, string> | string> };
/** 'pagewire/x' -> the URL path of the file the exports map's "browser" condition names (dist/ is served at /dist/). */
function browserPath(spec: string): string {
  const entry = PKG.exports[spec === 'pagewire' ? '.' : `./${spec.slice('pagewire/'.length)}`];
  const file = typeof entry === 'object' ? entry['browser'] : undefined;
  if (file === undefined || !file.startsWith('./dist/')) throw new Error(`package.json exports no browser file for ${spec}`);
  return file.slice(1);
}

const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

/**
 * The page's code: `window.runParallel(options)` runs one parallel migration and resolves with
 * what it saw. `pagewire` is where the package root is imported from; the spawners' arguments are
 * expressions (a worker script URL, or a function that starts the worker).
 */
const pageScript = (pagewire: string, sourceWorker: string, targetWorker: string): string => `import * as pw from '${pagewire}';

/** A guest writing perMs pages per ms while not paused; every write lands in the dirty log. */
function writingGuest(mem, perMs) {
  const n = mem.pageCount;
  const marked = new Uint8Array(n);
  let dirty = [];
  let writes = 0, paused = false, last = performance.now();
  const land = () => {
    const now = performance.now();
    if (paused) { last = now; return; }
    const due = Math.min(n, Math.floor((now - last) * perMs));
    if (due <= 0) return;
    last += due / perMs;
    for (let i = 0; i < due; i++) {
      const w = writes++;
      const p = (w * 7919 + (w >>> 5)) % n;
      const v = mem.page(p);
      v[(w * 40) % v.length] = (w * 31 + 1) & 0xff;
      if (!marked[p]) { marked[p] = 1; dirty.push(p); }
    }
  };
  const timer = setInterval(land, 1);
  return {
    log: { start() {}, stop() {}, sync() { land(); dirty.sort((a, b) => a - b); const out = Uint32Array.from(dirty); for (const p of dirty) marked[p] = 0; dirty = []; return out; } },
    pause() { land(); paused = true; },
    resume() { paused = false; last = performance.now(); },
    stop() { clearInterval(timer); },
    get writes() { return writes; },
  };
}

window.runParallel = async ({ channels, sourceSecret, targetSecret, direct = false, pages = 4096, writesPerMs = 20 }) => {
  const out = { isolated: self.crossOriginIsolated === true, spawned: { source: 0, target: 0 }, events: [] };
  const layout = { pageSize: 4096, regions: [{ name: 'low', pageCount: 1000 }, { name: 'high', pageCount: pages - 1000 }] };
  let src;
  try {
    src = pw.GuestMemory.allocateExternal(layout, true);
  } catch (e) {
    out.allocError = { code: e.code, message: e.message };
    return out;
  }
  for (let p = 0; p < src.pageCount; p++) {
    if (p % 5 === 0) continue; // zero pages
    const v = src.page(p);
    let x = p * 2654435761 >>> 0;
    for (let i = 0; i < v.length; i += p % 3 === 0 ? 1 : 64) { x = (x * 1103515245 + 12345) >>> 0; v[i] = x >>> 24; }
  }
  const guest = writingGuest(src, writesPerMs);
  const chans = Array.from({ length: channels }, () => new MessageChannel());
  let next = 0;
  const accept = (signal) => next < channels
    ? Promise.resolve(pw.messagePortTransport(chans[next++].port2))
    : new Promise((_, reject) => signal?.addEventListener('abort', () => reject(new Error('done')), { once: true }));
  const sourceSpawn = pw.webChannelSpawner(${sourceWorker});
  const targetSpawn = pw.webTargetChannelSpawner(${targetWorker});
  let deviceState = null, ran = 0, paused = 0, resumed = 0;
  const target = new pw.WorkerParallelTarget(channels, {
    spawn: (init) => { out.spawned.target++; return targetSpawn(init); }, ...(targetSecret ? { secret: targetSecret } : {}),
  }, { deviceState: (s) => { deviceState = Array.from(s); }, guestMayRun: () => { ran++; } });
  target.on('drop', (d) => out.events.push('drop ' + d.error));
  // routed: the page's end of each link is accepted, its HELLO read and piped to the worker;
  // direct: source worker k gets a port whose other end is at target worker k
  const link = direct ? (k) => ({ kind: 'port', port: target.connectPort(k) }) : (k) => ({ kind: 'port', port: chans[k].port1 });
  const source = new pw.ParallelMigrationSource(src, guest.log, {
    channels, spawn: (init, t) => { out.spawned.source++; return sourceSpawn(init, t); },
    link, downtimeLimitMs: 50, ...(sourceSecret ? { secret: sourceSecret } : {}),
  }, { pause: () => { paused++; guest.pause(); }, resume: () => { resumed++; guest.resume(); }, deviceState: () => Uint8Array.of(7, 8, 9) });
  const t0 = performance.now();
  const targetRun = target.run(direct ? undefined : accept);
  let targetSettled = false;
  targetRun.then(() => { targetSettled = true; }, () => { targetSettled = true; });
  const [rs] = await Promise.allSettled([source.migrate()]);
  if (rs.status === 'rejected') {
    // a target keeps waiting for a source that can prove itself; its embedder stops it
    await new Promise((r) => setTimeout(r, 300));
    out.targetWaiting = !targetSettled;
    target.abort('the source failed: ' + rs.reason?.code);
  }
  const [rt] = await Promise.allSettled([targetRun]);
  out.ms = performance.now() - t0;
  out.accepted = next;
  guest.stop();
  out.writes = guest.writes;
  out.hooks = { deviceState, ran, paused, resumed };
  const brief = (r) => r.status === 'fulfilled'
    ? { ok: true, verified: r.value.verified, digest: r.value.digest, channels: r.value.channels, guestPages: r.value.guestPages, rounds: r.value.rounds?.length, wireBytes: r.value.wireBytes }
    : { ok: false, code: r.reason?.code, message: String(r.reason?.message ?? r.reason) };
  out.source = brief(rs);
  out.target = brief(rt);
  const core = await pw.createCore();
  out.sourceDigest = pw.memoryDigest(src, core);
  const dst = target.guestMemory;
  if (dst) {
    out.targetDigest = pw.memoryDigest(dst, core);
    out.targetRegions = dst.regions.map((r) => r.name);
    out.targetShared = dst.regionViews().map((v) => v.buffer instanceof SharedArrayBuffer);
    let differing = 0;
    for (let p = 0; p < src.pageCount; p++) {
      const a = src.page(p), b = dst.page(p);
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) { differing++; break; }
    }
    out.differingPages = differing;
    out.targetPages = dst.pageCount;
  }
  return out;
};
window.pageReady = true;
`;

/** The page without a bundler: the source's workers by URL, the target's from a function. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>parallel channels</title><link rel="icon" href="data:,"><script type="module">
${pageScript(browserPath('pagewire'), `'/w/channel.js'`, `() => new Worker(new URL('/w/target-channel.js', import.meta.url), { type: 'module' })`)}
</script>`;

/** The embedder's worker scripts: one line each, importing the package's worker entries. */
const WORKERS = {
  '/w/channel.js': `import '${browserPath('pagewire/workers/channel')}';\n`,
  '/w/target-channel.js': `import '${browserPath('pagewire/workers/target-channel')}';\n`,
};

type RunResult = Record<string, any>;

async function runParallel(page: Page, url: string, options: Record<string, unknown>): Promise<RunResult> {
  await page.goto(url);
  await page.waitForFunction(() => (window as unknown as { pageReady?: boolean }).pageReady === true, undefined, { timeout: 30_000 });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the page's parallel migration did not settle within ${RUN_DEADLINE_MS} ms`)), RUN_DEADLINE_MS);
  });
  try {
    return await Promise.race([page.evaluate((o) => (window as unknown as { runParallel(o: unknown): Promise<RunResult> }).runParallel(o), options), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Longest a page's migration may take (16 MiB takes 3-7 s here on a loaded 2-core machine). */
const RUN_DEADLINE_MS = 60_000;

/** What a 2-channel run of the page must show: verified, the same bytes, one worker per channel on each side. */
function expectVerifiedParallel(r: RunResult): void {
  expect(r['isolated'], 'the page is not cross-origin isolated (no SharedArrayBuffer): the server must send COOP same-origin and COEP require-corp').toBe(true);
  expect(r['allocError']).toBeUndefined();
  expect(r['source'], JSON.stringify(r)).toMatchObject({ ok: true, verified: true, channels: 2, guestPages: 4096 });
  expect(r['target'], JSON.stringify(r)).toMatchObject({ ok: true, verified: true, channels: 2, guestPages: 4096 });
  // the guest wrote during the migration, so there were rounds after round 0
  expect(r['writes']).toBeGreaterThan(0);
  expect(r['source'].rounds).toBeGreaterThanOrEqual(2);
  // same bytes: the reports' digests, the memories' digests and a page-by-page comparison
  expect(r['target'].digest).toBe(r['source'].digest);
  expect(r['targetDigest']).toBe(r['sourceDigest']);
  expect(r['source'].digest).toBe(r['sourceDigest']);
  expect(r['targetPages']).toBe(4096);
  expect(r['differingPages']).toBe(0);
  // each side ran one module worker per channel; the target's parts were allocated by its workers
  // (shared buffers, one part per channel, split across the source's regions)
  expect(r['spawned']).toEqual({ source: 2, target: 2 });
  expect(r['targetRegions']).toEqual(['c0:low', 'c0:high', 'c1:high']);
  expect(r['targetShared']).toEqual([true, true, true]);
  // one pause, no resume on the source; device state from channel 0; the target guest ran once
  expect(r['hooks']).toEqual({ deviceState: [7, 8, 9], ran: 1, paused: 1, resumed: 0 });
  expect(r['events']).toEqual([]);
}

describe.skipIf(BROWSER.skip)('parallel channels in Chromium (Web Workers on both sides)', () => {
  let browser: Browser | null = null;
  let isolated: StaticServer;

  beforeAll(async () => {
    browser = await launch();
    isolated = await serveStatic({ '/dist/': join(ROOT, 'dist') }, { '/channels.html': PAGE, ...WORKERS }, undefined, ISOLATION);
  }, 60_000);

  afterAll(async () => {
    await isolated?.close();
    await browser?.close();
  });

  it('2 channels: a writing 16 MiB guest migrates verified, byte-identical, the target decoding in 2 workers', async () => {
    const { page, errors } = await openPage(browser!);
    const r = await runParallel(page, isolated.url + '/channels.html', { channels: 2 });
    expectVerifiedParallel(r);
    expect(r['accepted']).toBe(2);
    const worker = (p: string): number => isolated.requests.filter((x) => x === p).length;
    expect(worker('/w/target-channel.js')).toBeGreaterThanOrEqual(1);
    expect(worker('/dist/migration/target-channel-worker-web.js')).toBeGreaterThanOrEqual(1);
    expect(worker('/dist/migration/channel-worker-web.js')).toBeGreaterThanOrEqual(1);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('2 channels linked directly (target.connectPort(k) as source worker k\'s link): verified, byte-identical, nothing routed through the page', async () => {
    const { page, errors } = await openPage(browser!);
    const r = await runParallel(page, isolated.url + '/channels.html', { channels: 2, direct: true });
    expectVerifiedParallel(r);
    expect(r['accepted']).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('a source the target refuses (wrong secret): the source fails and its guest keeps running; the target waits until aborted, its guest never runs', async () => {
    const { page, errors } = await openPage(browser!);
    const r = await runParallel(page, isolated.url + '/channels.html', { channels: 2, sourceSecret: 'right', targetSecret: 'other' });
    expect(r['isolated']).toBe(true);
    expect(r['source'], JSON.stringify(r)).toMatchObject({ ok: false, code: 'AUTH_FAILED' });
    expect(r['hooks'].paused).toBe(0);
    // a stranger's connection ends only itself: the target was still waiting for the right source
    expect(r['targetWaiting']).toBe(true);
    expect(r['target'], JSON.stringify(r)).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(r['target'].message).toMatch(/the source failed: AUTH_FAILED/);
    expect(r['hooks'].ran).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('bundled by Vite from the package (exports map, worker scripts importing pagewire/workers/*): the same migration verifies', async () => {
    // a consumer project whose node_modules/pagewire is this package, built as an embedder would
    const work = mkdtempSync(join(tmpdir(), 'pagewire-vite-'));
    try {
      mkdirSync(join(work, 'node_modules'));
      symlinkSync(ROOT, join(work, 'node_modules', 'pagewire'), 'dir');
      writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'embedder', private: true, type: 'module' }));
      writeFileSync(join(work, 'vite.config.js'), `export default { logLevel: 'error', worker: { format: 'es' }, build: { target: 'es2022', outDir: 'dist' } };\n`);
      writeFileSync(join(work, 'index.html'), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="./main.js"></script>\n');
      const worker = (file: string): string => `() => new Worker(new URL('./${file}', import.meta.url), { type: 'module' })`;
      writeFileSync(join(work, 'main.js'), pageScript('pagewire', worker('channel-worker.js'), worker('target-channel-worker.js')));
      writeFileSync(join(work, 'channel-worker.js'), `import 'pagewire/workers/channel';\n`);
      writeFileSync(join(work, 'target-channel-worker.js'), `import 'pagewire/workers/target-channel';\n`);
      const vite = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
      const b = spawnSync(process.execPath, [vite, 'build'], { cwd: work, encoding: 'utf8', timeout: 120_000 });
      expect(b.status, `vite build: ${b.stdout}${b.stderr}`).toBe(0);
      // the worker entries survive tree-shaking (package.json lists them in sideEffects)
      const assets = readdirSync(join(work, 'dist', 'assets'));
      for (const name of ['channel-worker', 'target-channel-worker']) {
        const file = assets.find((f) => f.startsWith(`${name}-`) && f.endsWith('.js'));
        expect(file, assets.join(' ')).toBeDefined();
        expect(statSync(join(work, 'dist', 'assets', file!)).size, `${file} is (nearly) empty: the bundler dropped the worker entry`).toBeGreaterThan(20_000);
      }
      const server = await serveStatic({ '/': join(work, 'dist') }, {}, undefined, ISOLATION);
      try {
        const { page, errors } = await openPage(browser!);
        const r = await runParallel(page, server.url + '/', { channels: 2 });
        expectVerifiedParallel(r);
        expect(errors).toEqual([]);
        await page.close();
      } finally {
        await server.close();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 180_000);

  it('without cross-origin isolation shared guest memory is refused with a typed error naming COOP/COEP', async () => {
    const plain = await serveStatic({ '/dist/': join(ROOT, 'dist') }, { '/channels.html': PAGE, ...WORKERS });
    try {
      const { page, errors } = await openPage(browser!);
      const r = await runParallel(page, plain.url + '/channels.html', { channels: 2 });
      expect(r['isolated']).toBe(false);
      expect(r['allocError']?.code).toBe('INVALID_ARGUMENT');
      expect(r['allocError']?.message).toMatch(/cross-origin isolated.*Cross-Origin-Embedder-Policy: require-corp/);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await plain.close();
    }
  }, 60_000);
});
