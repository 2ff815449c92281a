/**
 * Dirty-frequency reordering: the order is ascending by dirty count, hot pages are held back
 * until the final round, and no dirty page is ever lost (property over random dirty histories,
 * then end to end under the real engine).
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { DirtyFrequencyOrder } from '../src/migration/reorder.js';
import { PageSet } from '../src/memory/page-set.js';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { makeMemories, SetDirtyLog, TimerGuest, sameMemory } from './helpers/engine.js';

const SEED = 20261122;

describe('DirtyFrequencyOrder', () => {
  it('orders by ascending dirty count, ties by page index, and holds hot pages back', () => {
    const o = new DirtyFrequencyOrder(8, { holdRounds: 2 });
    o.noteDirty([1, 2, 3]);
    o.noteDirty([2, 3, 5]);
    o.noteDirty([3, 6]);
    // counts: 1:1 2:2 3:3 5:1 6:1; hot (dirty at both of the last 2 syncs): 3
    const r = o.order(Uint32Array.of(0, 1, 2, 3, 5, 6), false);
    expect(Array.from(r.send)).toEqual([0, 1, 5, 6, 2]);
    expect(Array.from(r.held)).toEqual([3]);
    const f = o.order(Uint32Array.of(0, 1, 2, 3, 5, 6), true);
    expect(Array.from(f.send)).toEqual([0, 1, 5, 6, 2, 3]);
    expect(f.held).toHaveLength(0);
  });

  it('holds back at most maxHeldFraction of a round', () => {
    const o = new DirtyFrequencyOrder(10, { holdRounds: 1, maxHeldFraction: 0.3 });
    o.noteDirty([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const r = o.order(Uint32Array.from({ length: 10 }, (_, i) => i), false);
    expect(r.held).toHaveLength(3);
    expect(r.send).toHaveLength(7);
  });

  it('rejects bad options', () => {
    expect(() => new DirtyFrequencyOrder(4, { holdRounds: 33 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new DirtyFrequencyOrder(4, { maxHeldFraction: 2 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('never loses a dirty page: the source model ends with every dirtied page sent after its last write', () => {
    const pages = 64;
    fc.assert(fc.property(
      fc.array(fc.uniqueArray(fc.integer({ min: 0, max: pages - 1 }), { maxLength: pages }), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 0, max: 4 }),
      (history, holdRounds) => {
        const o = new DirtyFrequencyOrder(pages, { holdRounds });
        const pending = new PageSet(pages);
        pending.fill();
        // lastWrite[p]: round of the guest's last write; lastSent[p]: round it was last sent
        const lastWrite = new Int32Array(pages).fill(-1);
        const lastSent = new Int32Array(pages).fill(-2);
        const rounds = history.length;
        for (let k = 0; k <= rounds; k++) {
          const final = k === rounds;
          const drained = pending.drain();
          const { send, held } = o.order(drained, final);
          // a partition of what was drained
          const seen = new Set<number>();
          for (const p of send) { if (seen.has(p)) return false; seen.add(p); lastSent[p] = k; }
          for (const p of held) { if (seen.has(p)) return false; seen.add(p); }
          if (seen.size !== drained.length || !drained.every((p) => seen.has(p))) return false;
          if (final && held.length > 0) return false;
          // ascending counts
          for (let i = 1; i < send.length; i++) if (o.counts[send[i - 1]!]! > o.counts[send[i]!]!) return false;
          pending.addAll(held);
          if (!final) {
            const dirty = Uint32Array.from(history[k]!);
            for (const p of dirty) lastWrite[p] = k;
            pending.addAll(dirty);
            o.noteDirty(dirty);
          }
        }
        // every page was sent at least once, and after (or in the round of... no: after) its last write
        for (let p = 0; p < pages; p++) {
          if (lastSent[p]! < 0) return false;
          if (lastWrite[p]! >= 0 && lastSent[p]! <= lastWrite[p]!) return false;
        }
        return pending.size === 0;
      },
    ), { seed: SEED, numRuns: 500 });
  });
});

describe('reorder under the real engine', () => {
  it('a guest that keeps writing migrates verified with reorder on', async () => {
    const pages = 2048;
    const { src, dst } = await makeMemories(pages);
    const log = new SetDirtyLog(pages);
    const guest = new TimerGuest(src, log, 30);
    const [a, b] = memoryPair();
    const source = new MigrationSource(src, log, a, { reorder: true, downtimeLimitMs: 30, maxRounds: 8 }, { pause: () => { guest.paused = true; }, resume: () => { guest.paused = false; } });
    const target = new MigrationTarget(dst);
    const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
    guest.stop();
    expect(rs.verified && rt.verified).toBe(true);
    expect(sameMemory(src, dst)).toBe(true);
  });

  it('holding hot pages back sends fewer pages than in-order on a hot-set workload (same rounds)', async () => {
    const pages = 1024;
    const run = async (reorder: boolean) => {
      const { src, dst } = await makeMemories(pages);
      const log = new SetDirtyLog(pages);
      let w = 0;
      // before each sync: the hot set (pages 0..99) and 20 cold pages are written
      const onRound = (round: number, before: boolean): 'switchover' | 'continue' | void => {
        if (before) {
          for (let p = 0; p < 100; p++) { src.page(p)[w % 4096] = w & 0xff; log.set.add(p); w++; }
          for (let i = 0; i < 20; i++) { const p = 100 + ((round * 20 + i) * 37) % (pages - 100); src.page(p)[0] = w++ & 0xff; log.set.add(p); }
          return;
        }
        return round >= 5 ? 'switchover' : 'continue';
      };
      const [a, b] = memoryPair();
      const source = new MigrationSource(src, log, a, { reorder, reorderOptions: { maxHeldFraction: 1 }, downtimeLimitMs: 10_000 }, { onRound });
      const [rs, rt] = await Promise.all([source.migrate(), new MigrationTarget(dst).run(b)]);
      expect(rs.verified && rt.verified).toBe(true);
      expect(sameMemory(src, dst)).toBe(true);
      return rs;
    };
    const inOrder = await run(false);
    const reordered = await run(true);
    expect(reordered.rounds).toHaveLength(inOrder.rounds.length);
    const sent = (r: typeof inOrder) => r.rounds.reduce((n, x) => n + x.pages, 0);
    // rounds 2..5 hold the 100 hot pages back; the final round sends them once
    expect(sent(reordered)).toBe(sent(inOrder) - 4 * 100);
    expect(reordered.wireBytes).toBeLessThan(inOrder.wireBytes);
  });
});
