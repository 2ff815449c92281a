/**
 * Skip pages the target already has: the target advertises two hashes per non-zero page after
 * WELCOME, the source skips confirmed pages in round 0; the final digest still covers them, so a
 * target whose advertised page is wrong fails verification (or is repaired with verify: 'full').
 */
import { describe, it, expect } from 'vitest';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { PageSet } from '../src/memory/page-set.js';
import { ErrorCode, PagewireError } from '../src/errors.js';
import {
  KnownPagesCollector, encodeKnownPages, hashAllPages, parseKnownPages, KNOWN_PAGES_SEED,
} from '../src/migration/known-pages.js';
import { makeMemories, SetDirtyLog, TimerGuest, sameMemory } from './helpers/engine.js';

/** Target memory = an older snapshot of the source: `changed` pages differ afterwards. */
async function olderSnapshot(pages: number, changed: number) {
  const { src, dst } = await makeMemories(pages);
  dst.pages(0, pages)!.set(src.pages(0, pages)!);
  for (let i = 0; i < changed; i++) {
    const p = (i * 7) % pages;
    src.page(p)[100] = (src.page(p)[100]! + 1) & 0xff;
  }
  return { src, dst };
}

describe('known pages', () => {
  it('skips, in round 0, the pages an older snapshot on the target already holds; verified', async () => {
    const pages = 2048;
    const { src, dst } = await olderSnapshot(pages, 300);
    const log = new SetDirtyLog(pages);
    const guest = new TimerGuest(src, log, 5);
    guest.paused = true; // it starts writing with round 0, after the source hashed its pages
    // what the target holds unchanged and non-zero now is what round 0 must skip, exactly
    let held = 0;
    for (let p = 0; p < pages; p++) if (dst.page(p).some((b) => b !== 0) && dst.page(p).every((b, i) => b === src.page(p)[i])) held++;
    expect(held).toBeGreaterThan(pages / 2);
    const [a, b] = memoryPair();
    const source = new MigrationSource(src, log, a, { knownPages: true, downtimeLimitMs: 50, onPhase: (phase) => { if (phase === 'round0') guest.paused = false; } },
      { pause: () => { guest.paused = true; }, resume: () => { guest.paused = false; } });
    const target = new MigrationTarget(dst, { advertiseKnownPages: true });
    const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
    guest.stop();
    expect(rs.verified && rt.verified).toBe(true);
    expect(sameMemory(src, dst)).toBe(true);
    expect(rs.knownPagesSkipped).toBe(held);
    expect(rs.rounds[0]!.pages).toBe(pages - rs.knownPagesSkipped!);
  });

  it('a target that does not advertise answers with an empty list: nothing skipped, no wait', async () => {
    const pages = 512;
    const { src, dst } = await olderSnapshot(pages, 10);
    const [a, b] = memoryPair();
    const source = new MigrationSource(src, new SetDirtyLog(pages), a, { knownPages: true, handshakeTimeoutMs: 60_000 });
    const [rs, rt] = await Promise.all([source.migrate(), new MigrationTarget(dst).run(b)]);
    expect(rs.verified && rt.verified).toBe(true);
    expect(rs.knownPagesSkipped).toBe(0);
    expect(rs.rounds[0]!.pages).toBe(pages);
  });

  it('a skipped page that is wrong on the target fails verification; the source guest resumes', async () => {
    const pages = 512;
    const { src, dst } = await olderSnapshot(pages, 10);
    const [a, b] = memoryPair();
    let resumed = 0;
    const source = new MigrationSource(src, new SetDirtyLog(pages), a, { knownPages: true }, { resume: () => { resumed++; } });
    const target = new MigrationTarget(dst, { advertiseKnownPages: true });
    // after advertising, the target's copy of page 1 changes (a stale cache, a hash collision)
    target.on('phase', (ev) => { if (ev.phase === 'handshake') dst.page(1)[5]! ^= 0xff; });
    const [rs, rt] = await Promise.allSettled([source.migrate(), target.run(b)]);
    expect(rs.status).toBe('rejected');
    expect(((rs as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.VERIFY_FAILED);
    expect(((rt as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.VERIFY_FAILED);
    expect(resumed).toBe(1);
  });

  it('with verify: full the wrong skipped page is repaired', async () => {
    const pages = 512;
    const { src, dst } = await olderSnapshot(pages, 10);
    const [a, b] = memoryPair();
    const source = new MigrationSource(src, new SetDirtyLog(pages), a, { knownPages: true, verify: 'full' });
    const target = new MigrationTarget(dst, { advertiseKnownPages: true });
    target.on('phase', (ev) => { if (ev.phase === 'handshake') dst.page(1)[5]! ^= 0xff; });
    const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
    expect(rs.verified && rt.verified).toBe(true);
    expect(rs.repairedPages).toBe(1);
    expect(sameMemory(src, dst)).toBe(true);
  });
});

describe('known-pages frames and confirmation', () => {
  it('a page is skipped only when both independent hashes match', async () => {
    const core = await createCore();
    const mem = GuestMemory.inCore(core, 4, 4096);
    for (let p = 0; p < 4; p++) mem.page(p).fill(p + 1);
    const h0 = hashAllPages(mem, core, 0n);
    const h1 = hashAllPages(mem, core, KNOWN_PAGES_SEED);
    expect(h0[0]).not.toBe(h1[0]);
    const c = new KnownPagesCollector(4);
    const bad1 = h1.slice();
    bad1[2] = bad1[2]! ^ 1n; // first hash matches, second does not
    const bad0 = h0.slice();
    bad0[3] = bad0[3]! ^ 1n;
    c.onFrame(encodeKnownPages(Uint32Array.of(0, 1), h0.subarray(0, 2), h1.subarray(0, 2), false));
    c.onFrame(encodeKnownPages(Uint32Array.of(2, 3), BigUint64Array.of(h0[2]!, bad0[3]!), BigUint64Array.of(bad1[2]!, h1[3]!), true));
    await c.wait(1000);
    const pending = new PageSet(4);
    pending.fill();
    expect(c.skipMatching(mem, core, pending)).toBe(2);
    expect([0, 1, 2, 3].map((p) => pending.has(p))).toEqual([false, false, true, true]);
    expect(() => c.onFrame(encodeKnownPages(new Uint32Array(0), new BigUint64Array(0), new BigUint64Array(0), true))).toThrow(expect.objectContaining({ code: ErrorCode.PROTOCOL_VIOLATION }));
  });

  it('hashes match between core and external placements', async () => {
    const core = await createCore();
    const a = GuestMemory.inCore(core, 5, 4096);
    const b = GuestMemory.external([new ArrayBuffer(2 * 4096), new ArrayBuffer(3 * 4096)], 4096);
    for (let p = 0; p < 5; p++) { a.page(p).fill(p * 3); b.page(p).fill(p * 3); }
    expect(hashAllPages(b, core, KNOWN_PAGES_SEED)).toEqual(hashAllPages(a, core, KNOWN_PAGES_SEED));
  });

  it('corrupt frames are typed errors', () => {
    const good = encodeKnownPages(Uint32Array.of(1), BigUint64Array.of(1n), BigUint64Array.of(2n), true);
    expect(parseKnownPages(good, 4).pages[0]).toBe(1);
    for (let cut = 0; cut < good.length; cut++) {
      expect(() => parseKnownPages(good.subarray(0, cut), 4)).toThrow(PagewireError);
    }
    expect(() => parseKnownPages(good, 1)).toThrow(expect.objectContaining({ code: ErrorCode.PAGE_OUT_OF_RANGE }));
    const flags = good.slice();
    flags[0] = 3;
    expect(() => parseKnownPages(flags, 4)).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_CORRUPT }));
  });

  it('the collector times out when no answer comes', async () => {
    await expect(new KnownPagesCollector(4).wait(10)).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
  });
});
