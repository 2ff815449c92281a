import { describe, it, expect, beforeAll, afterEach, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createCore, type Core } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { BitmapDirtyLog } from '../src/memory/dirty-log.js';
import { SimulatedGuest } from '../src/sim/guest.js';
import { fillInitial } from '../src/sim/content.js';
import { corpusFromBytes, diffPages } from '../src/sim/corpus.js';
import { loadCorpus } from '../src/sim/corpus-node.js';
import type { HotSetWorkload } from '../src/sim/workloads.js';
import type { PagewireError } from '../src/errors.js';

const code = (f: () => unknown): string => { try { f(); } catch (e) { return (e as PagewireError).code; } return 'none'; };

function snapshotOf(m: GuestMemory): Uint8Array {
  const out = new Uint8Array(m.byteLength);
  for (let p = 0; p < m.pageCount; p++) out.set(m.page(p), p * m.pageSize);
  return out;
}

let core: Core;
beforeAll(async () => { core = await createCore(); });
afterEach(() => { vi.useRealTimers(); });

describe('SimulatedGuest on a simulated clock', () => {
  it('makes exactly rate x time writes however the time is sliced', () => {
    const mem = GuestMemory.external(new ArrayBuffer(256 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'uniform', ratePagesPerSec: 1234, seed: 3 });
    expect(g.advanceBy(1000)).toBe(1234);
    for (let i = 0; i < 10_000; i++) g.advanceBy(0.1); // another second in 0.1 ms slices
    expect(g.stats.writes).toBe(2468);
    for (let i = 0; i < 3; i++) g.advanceBy(1000 / 3);
    expect(g.stats.writes).toBe(3702);
    expect(g.stats.runMs).toBeCloseTo(3000, 6);
  });

  it('rateBytesPerSec is page writes times the page size', () => {
    const mem = GuestMemory.external(new ArrayBuffer(64 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'uniform', rateBytesPerSec: 8 * 1024 * 1024 });
    expect(g.ratePagesPerSec).toBe(2048);
    expect(g.advanceBy(500)).toBe(1024);
    expect(g.stats.bytesWritten).toBe(1024 * 64); // default write size: a cache line
  });

  it('reports every page whose bytes change to the dirty log (and only written pages)', () => {
    const mem = GuestMemory.inCore(core, 512, 4096);
    fillInitial(mem, 'mixed', 5);
    for (const writeSize of ['word', 'line', 'run', 'page', 4096 - 8] as const) {
      const g = new SimulatedGuest(mem, { workload: 'zipf', ratePagesPerSec: 2000, writeSize, seed: 9 });
      g.dirtyLog.start();
      const before = snapshotOf(mem);
      g.advanceBy(100);
      const dirty = Array.from(g.dirtyLog.sync());
      const changed = Array.from(diffPages(before, snapshotOf(mem), 4096));
      expect(changed.length).toBeGreaterThan(0);
      expect(changed.every((p) => dirty.includes(p))).toBe(true);
      expect(dirty.length).toBeLessThanOrEqual(200);
    }
  });

  it('pause stops writes until resume; time paused is not made up', () => {
    const mem = GuestMemory.external(new ArrayBuffer(128 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'hotset', ratePagesPerSec: 1000 });
    g.dirtyLog.start();
    g.advanceBy(100);
    expect(g.stats.writes).toBe(100);
    g.pause();
    expect(g.running).toBe(false);
    g.dirtyLog.sync();
    const before = snapshotOf(mem);
    expect(g.advanceBy(5000)).toBe(0);
    expect(g.dirtyLog.sync().length).toBe(0);
    expect(Buffer.compare(before, snapshotOf(mem))).toBe(0);
    g.resume();
    expect(g.advanceBy(100)).toBe(100);
  });

  it('throttle reduces the write rate by its percentage', () => {
    const mem = GuestMemory.external(new ArrayBuffer(128 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'uniform', ratePagesPerSec: 1000 });
    g.setThrottle(20);
    expect(g.advanceBy(1000)).toBe(800);
    g.hooks().throttle(70);
    expect(g.throttle).toBe(70);
    expect(g.advanceBy(1000)).toBe(300);
    g.setThrottle(0);
    expect(g.advanceBy(1000)).toBe(1000);
    expect(code(() => g.setThrottle(100))).toBe('INVALID_ARGUMENT');
    expect(code(() => g.setThrottle(-1))).toBe('INVALID_ARGUMENT');
  });

  it('idle writes a few pages at a low rate whatever the configured rate', () => {
    const mem = GuestMemory.external(new ArrayBuffer(4096 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'idle', ratePagesPerSec: 1e6 });
    g.dirtyLog.start();
    expect(g.advanceBy(10_000)).toBe(100);
    expect(g.dirtyLog.sync().length).toBeLessThanOrEqual(16);
  });

  it('hot set writes concentrate the dirty set', () => {
    const mem = GuestMemory.external(new ArrayBuffer(10_000 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'hotset', ratePagesPerSec: 10_000, hotFraction: 0.05, hotWriteFraction: 0.9 });
    g.dirtyLog.start();
    g.advanceBy(1000);
    const dirty = g.dirtyLog.sync();
    const wl = g.workload as HotSetWorkload;
    const hot = Array.from(dirty).filter((p) => wl.isHot(p)).length;
    expect(hot).toBe(500); // 9000 writes into 500 hot pages reach them all
    expect(dirty.length - hot).toBeGreaterThan(850); // ~1000 cold writes, few repeats
    expect(dirty.length - hot).toBeLessThanOrEqual(1000);
  });

  it('is deterministic for a seed', () => {
    const run = (seed: number): Uint8Array => {
      const mem = GuestMemory.external(new ArrayBuffer(64 * 4096));
      fillInitial(mem, 'mixed', 1);
      new SimulatedGuest(mem, { workload: 'zipf', ratePagesPerSec: 5000, seed }).advanceBy(200);
      return snapshotOf(mem);
    };
    expect(Buffer.compare(run(4), run(4))).toBe(0);
    expect(Buffer.compare(run(4), run(5))).not.toBe(0);
  });

  it('nextAccess follows the workload without writing', () => {
    const mem = GuestMemory.external(new ArrayBuffer(100 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'sequential', stride: 7 });
    g.dirtyLog.start();
    expect([g.nextAccess(), g.nextAccess(), g.nextAccess()]).toEqual([0, 7, 14]);
    expect(g.dirtyLog.sync().length).toBe(0);
    expect(g.stats.writes).toBe(0);
  });

  it('reports to a caller-supplied bitmap log; rejects bad options', () => {
    const mem = GuestMemory.external(new ArrayBuffer(64 * 4096));
    const log = BitmapDirtyLog.shared(64);
    const g = new SimulatedGuest(mem, { workload: 'uniform', ratePagesPerSec: 1000, dirtyLog: log });
    log.start();
    g.advanceBy(10);
    expect(log.peekCount()).toBeGreaterThan(0);
    expect(code(() => new SimulatedGuest(mem, { dirtyLog: new BitmapDirtyLog(63) }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new SimulatedGuest(mem, { writeSize: 12 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new SimulatedGuest(mem, { ratePagesPerSec: -1 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new SimulatedGuest(mem, { workload: 'corpus' }))).toBe('INVALID_ARGUMENT');
    expect(code(() => g.advanceBy(-1))).toBe('INVALID_ARGUMENT');
    expect(code(() => g.writePage(64))).toBe('PAGE_OUT_OF_RANGE');
  });
});

describe('SimulatedGuest in real time', () => {
  it('writes on its timer at the configured rate and stops when paused or stopped', () => {
    vi.useFakeTimers();
    const mem = GuestMemory.external(new ArrayBuffer(256 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'uniform', ratePagesPerSec: 2000, sliceMs: 5, now: () => Date.now() });
    g.start();
    expect(g.started).toBe(true);
    vi.advanceTimersByTime(100);
    expect(g.stats.writes).toBe(200);
    g.pause();
    vi.advanceTimersByTime(100);
    expect(g.stats.writes).toBe(200);
    g.resume();
    vi.advanceTimersByTime(50);
    expect(g.stats.writes).toBe(300);
    g.stop();
    vi.advanceTimersByTime(100);
    expect(g.stats.writes).toBe(300);
  });

  it('drops time beyond maxCatchUpMs when the thread was busy', () => {
    let now = 0;
    vi.useFakeTimers();
    const mem = GuestMemory.external(new ArrayBuffer(256 * 4096));
    const g = new SimulatedGuest(mem, { workload: 'uniform', ratePagesPerSec: 1000, sliceMs: 5, maxCatchUpMs: 20, now: () => now });
    g.start();
    now = 1000; // the thread was blocked for a second
    vi.advanceTimersByTime(5);
    expect(g.stats.writes).toBe(20);
    g.stop();
  });
});

// ---------------------------------------------------------------------------------------------
// Corpus replay

const corpusRoot = resolve(__dirname, '../.cache/corpus');
const unpack = resolve(__dirname, '../../shared/corpus/unpack.mjs');

describe('corpus replay', () => {
  beforeAll(() => {
    if (!existsSync(join(corpusRoot, 'vm-redis', '.verified'))) {
      execFileSync(process.execPath, [unpack, corpusRoot, 'vm-redis'], { stdio: 'ignore' });
    }
  });

  it('reproduces every snapshot byte for byte and fills the dirty log with dirty-K', async () => {
    const corpus = loadCorpus(join(corpusRoot, 'vm-redis'));
    expect(corpus.pageSize).toBe(4096);
    expect(corpus.snapshotCount).toBe(5);
    // two placements: in a core, and external split over two regions
    const memories = [
      GuestMemory.inCore(await createCore(), corpus.pageCount, corpus.pageSize),
      GuestMemory.external([new ArrayBuffer(3000 * 4096), new ArrayBuffer((corpus.pageCount - 3000) * 4096)]),
    ];
    // each image read once (a 32 MiB read costs 0.1-0.3 s here, far more on a loaded machine)
    const images = [0, 1, 2, 3, 4].map((k) => corpus.snapshot(k));
    for (const mem of memories) {
      const g = new SimulatedGuest(mem, { workload: 'corpus', corpus });
      const hooks = g.hooks();
      g.dirtyLog.start();
      // region by region (no page-by-page copy of 32 MiB per snapshot)
      const sameAs = (img: Uint8Array): boolean => mem.regions.every((r) => {
        const v = mem.pages(r.firstPage, r.pageCount)!;
        return Buffer.compare(v, img.subarray(r.firstPage * 4096, (r.firstPage + r.pageCount) * 4096)) === 0;
      });
      expect(sameAs(images[0]!)).toBe(true);
      g.start(); // no timed writes in replay
      expect(g.advanceBy(10_000)).toBe(0);
      for (let k = 1; k < 5; k++) {
        expect(g.done).toBe(false);
        expect(hooks.onRound(k - 1, false)).toBe('continue');
        hooks.onRound(k - 1, true); // = advance()
        expect(g.stats.snapshot).toBe(k);
        expect(sameAs(images[k]!)).toBe(true);
        expect(Array.from(g.dirtyLog.sync())).toEqual(Array.from(corpus.dirty(k)));
      }
      expect(g.done).toBe(true);
      expect(hooks.onRound(4, false)).toBe('switchover');
      expect(g.advance()).toBe(false);
      expect(g.dirtyLog.sync().length).toBe(0);
      g.stop();
    }
  }, 180_000); // 160 MiB of images read: at load 20 under nice 15 this test took 87 s

  it('dirty-K lists equal the content diff of consecutive snapshots (corpusFromBytes computes them)', () => {
    const files = loadCorpus(corpusRoot + '/vm-redis');
    const snaps = [0, 1, 2].map((k) => files.snapshot(k).slice());
    const computed = corpusFromBytes({ name: 'x', snapshots: snaps });
    for (const k of [1, 2]) expect(Array.from(computed.dirty(k))).toEqual(Array.from(files.dirty(k)));
    // nextAccess cycles through the dirty lists
    const mem = GuestMemory.external(new ArrayBuffer(files.pageCount * 4096));
    const g = new SimulatedGuest(mem, { workload: 'corpus', corpus: computed });
    const d1 = computed.dirty(1);
    expect([g.nextAccess(), g.nextAccess()]).toEqual([d1[0], d1[1]]);
  });

  it('reads each snapshot\'s changed pages once, before replay: advance() reads no file and no whole image', () => {
    // the loader's positional reads give exactly the dirty pages of each image
    const files = loadCorpus(join(corpusRoot, 'vm-redis'));
    for (let k = 1; k < 5; k++) {
      const d = files.dirty(k);
      const img = files.snapshot(k);
      const got = files.changedPages!(k);
      expect(got.byteLength).toBe(d.length * 4096);
      for (let i = 0; i < d.length; i++) {
        if (Buffer.compare(got.subarray(i * 4096, (i + 1) * 4096), img.subarray(d[i]! * 4096, (d[i]! + 1) * 4096)) !== 0) expect.fail(`snapshot ${k}, page ${d[i]!}`);
      }
    }
    // a counting source over small images: reads after construction are what advance() does
    // inside a migration
    const pages = 64;
    const images = [0, 1, 2, 3, 4].map((k) => {
      const img = new Uint8Array(pages * 4096);
      for (let p = 0; p < pages; p++) if (p % (k + 2) !== 0) img.fill(p + 7 * k, p * 4096, p * 4096 + 100);
      return img;
    });
    const bytes = corpusFromBytes({ snapshots: images });
    const counted = (preloadBytes: number | undefined, withChanged: boolean) => {
      const reads: string[] = [];
      const src = {
        name: 'counted', pageSize: 4096, pageCount: pages, snapshotCount: 5,
        snapshot: (k: number) => { reads.push(`snapshot-${k}`); return bytes.snapshot(k); },
        dirty: (k: number) => bytes.dirty(k),
        ...(withChanged ? { changedPages: (k: number) => { reads.push(`changed-${k}`); return bytes.changedPages!(k); } } : {}),
      };
      const mem = GuestMemory.external(new ArrayBuffer(pages * 4096));
      const g = new SimulatedGuest(mem, { workload: 'corpus', corpus: src, ...(preloadBytes === undefined ? {} : { corpusPreloadBytes: preloadBytes }) });
      const atStart = reads.splice(0);
      g.dirtyLog.start();
      for (let k = 1; k < 5; k++) {
        expect(bytes.dirty(k).length).toBeGreaterThan(0);
        g.advance();
        expect(Buffer.compare(mem.pages(0, pages)!, images[k]!)).toBe(0);
        expect(Array.from(g.dirtyLog.sync())).toEqual(Array.from(bytes.dirty(k)));
      }
      return { atStart, during: reads };
    };
    expect(counted(undefined, true)).toEqual({ atStart: ['snapshot-0', 'changed-1', 'changed-2', 'changed-3', 'changed-4'], during: [] });
    // without changedPages the images are read once each, up front, and cut down to their changed pages
    expect(counted(undefined, false)).toEqual({ atStart: ['snapshot-0', 'snapshot-1', 'snapshot-2', 'snapshot-3', 'snapshot-4'], during: [] });
    // over the preload budget: the rest is read at advance(), still only the changed pages
    const budget = (bytes.dirty(1).length + bytes.dirty(2).length) * 4096;
    expect(counted(budget, true)).toEqual({ atStart: ['snapshot-0', 'changed-1', 'changed-2'], during: ['changed-3', 'changed-4'] });
  }, 120_000); // 128 MiB of images read

  it('rejects a corpus of another size and bad dirty lists', () => {
    const c = corpusFromBytes({ snapshots: [new Uint8Array(8192), new Uint8Array(8192)] });
    const mem = GuestMemory.external(new ArrayBuffer(3 * 4096));
    expect(code(() => new SimulatedGuest(mem, { workload: 'corpus', corpus: c }))).toBe('INVALID_ARGUMENT');
    expect(code(() => corpusFromBytes({ snapshots: [new Uint8Array(8192), new Uint8Array(8192)], dirty: [undefined, Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0)] }))).toBe('SNAPSHOT_CORRUPT');
    expect(code(() => corpusFromBytes({ snapshots: [new Uint8Array(8192), new Uint8Array(8192)], dirty: [undefined, Uint8Array.of(9, 0, 0, 0)] }))).toBe('SNAPSHOT_CORRUPT');
    expect(code(() => corpusFromBytes({ snapshots: [] }))).toBe('INVALID_ARGUMENT');
    expect(code(() => loadCorpus(resolve(__dirname, 'fixtures')))).toBe('INVALID_ARGUMENT');
    expect(code(() => c.snapshot(2))).toBe('INVALID_ARGUMENT');
  });
});
