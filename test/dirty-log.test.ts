import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Worker } from 'node:worker_threads';
import {
  BitmapDirtyLog, WriteTrackingDirtyLog, bitmapWords, drainBits, popcount32, popcountWords,
} from '../src/memory/dirty-log.js';
import { PagewireError } from '../src/errors.js';

const FC = { seed: 4242, numRuns: 300 };

type Op =
  | { t: 'mark'; p: number }
  | { t: 'range'; first: number; count: number }
  | { t: 'all' }
  | { t: 'or'; firstPage: number; words: number[] }
  | { t: 'set'; words: number[] }
  | { t: 'sync' }
  | { t: 'peek' }
  | { t: 'start' };

const opArb = (n: number): fc.Arbitrary<Op> => {
  const page = fc.integer({ min: 0, max: n - 1 });
  return fc.oneof(
    { weight: 6, arbitrary: page.map((p): Op => ({ t: 'mark', p })) },
    { weight: 2, arbitrary: fc.tuple(page, fc.integer({ min: 0, max: 80 })).map(([first, c]): Op => ({ t: 'range', first, count: Math.min(c, n - first) })) },
    { weight: 1, arbitrary: fc.constant<Op>({ t: 'all' }) },
    { weight: 2, arbitrary: fc.tuple(page, fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 4 })).map(([firstPage, words]): Op => ({ t: 'or', firstPage, words })) },
    { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: bitmapWords(n), maxLength: bitmapWords(n) }).map((words): Op => ({ t: 'set', words })) },
    { weight: 3, arbitrary: fc.constant<Op>({ t: 'sync' }) },
    { weight: 1, arbitrary: fc.constant<Op>({ t: 'peek' }) },
    { weight: 1, arbitrary: fc.constant<Op>({ t: 'start' }) },
  );
};

/** Run ops against the log and a Set model; every sync and peek must agree. */
function checkAgainstModel(n: number, ops: Op[], log: BitmapDirtyLog): void {
  const model = new Set<number>();
  const setBits = (base: number, w: number, limit: boolean): boolean => {
    for (let b = 0; b < 32; b++) {
      if ((w >>> b) & 1) {
        const p = base + b;
        if (p >= n) { if (limit) return false; continue; }
        model.add(p);
      }
    }
    return true;
  };
  log.start();
  for (const op of ops) {
    switch (op.t) {
      case 'mark': log.mark(op.p); model.add(op.p); break;
      case 'range': log.markRange(op.first, op.count); for (let i = 0; i < op.count; i++) model.add(op.first + i); break;
      case 'all': log.markAll(); for (let i = 0; i < n; i++) model.add(i); break;
      case 'or': {
        // out-of-range bits must throw without corrupting the model comparison: check first
        const inRange = op.words.every((w, i) => {
          for (let b = 0; b < 32; b++) if (((w >>> b) & 1) && op.firstPage + i * 32 + b >= n) return false;
          return true;
        });
        if (!inRange) {
          expect(() => log.orWords(Uint32Array.from(op.words), op.firstPage)).toThrow(PagewireError);
          // words before the bad one may have been applied: resync the model from a peek
          const got = log.sync();
          model.clear();
          got.forEach((p) => model.add(p));
          got.forEach((p) => log.mark(p));
          break;
        }
        log.orWords(Uint32Array.from(op.words), op.firstPage);
        op.words.forEach((w, i) => setBits(op.firstPage + i * 32, w, false));
        break;
      }
      case 'set':
        log.setBitmap(Uint32Array.from(op.words));
        model.clear();
        op.words.forEach((w, i) => setBits(i * 32, w, false));
        break;
      case 'sync': {
        const got = Array.from(log.sync());
        expect(got).toEqual([...model].sort((a, b) => a - b));
        model.clear();
        break;
      }
      case 'peek': expect(log.peekCount()).toBe(model.size); break;
      case 'start': log.start(); model.clear(); break;
    }
  }
  expect(Array.from(log.sync())).toEqual([...model].sort((a, b) => a - b));
  expect(log.sync().length).toBe(0);
}

describe('BitmapDirtyLog', () => {
  it('sync equals a Set model under any sequence of marks, ranges, ORs and syncs', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 300 }).chain((n) => fc.tuple(fc.constant(n), fc.array(opArb(n), { maxLength: 40 }))), ([n, ops]) => {
      checkAgainstModel(n, ops, new BitmapDirtyLog(n));
    }), FC);
  });

  it('the atomic path over a SharedArrayBuffer agrees with the same model', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 200 }).chain((n) => fc.tuple(fc.constant(n), fc.array(opArb(n), { maxLength: 30 }))), ([n, ops]) => {
      const log = BitmapDirtyLog.shared(n);
      expect(log.atomic).toBe(true);
      checkAgainstModel(n, ops, log);
    }), { ...FC, numRuns: 150 });
  });

  it('start forgets earlier marks; marks are recorded before start too', () => {
    const log = new BitmapDirtyLog(100);
    log.mark(5);
    expect(log.peekCount()).toBe(1);
    log.start();
    expect(log.tracking).toBe(true);
    expect(log.sync().length).toBe(0);
    log.mark(99);
    log.mark(0);
    log.mark(99);
    expect(Array.from(log.sync())).toEqual([0, 99]);
    log.stop();
    expect(log.tracking).toBe(false);
  });

  it('markAll sets exactly pageCount bits, including a partial last word', () => {
    for (const n of [1, 31, 32, 33, 64, 65, 1000]) {
      const log = new BitmapDirtyLog(n);
      log.markAll();
      expect(log.peekCount()).toBe(n);
      const s = log.sync();
      expect(s.length).toBe(n);
      expect(s[n - 1]).toBe(n - 1);
    }
  });

  it('rejects pages outside the log with PAGE_OUT_OF_RANGE and bad sizes with INVALID_ARGUMENT', () => {
    const log = new BitmapDirtyLog(40);
    const code = (f: () => void): string => { try { f(); } catch (e) { return (e as PagewireError).code; } return 'none'; };
    expect(code(() => log.mark(40))).toBe('PAGE_OUT_OF_RANGE');
    expect(code(() => log.mark(-1))).toBe('PAGE_OUT_OF_RANGE');
    expect(code(() => log.mark(Number.NaN))).toBe('PAGE_OUT_OF_RANGE');
    expect(code(() => log.markRange(30, 11))).toBe('PAGE_OUT_OF_RANGE');
    expect(code(() => log.orWords(Uint32Array.of(0, 0x100), 0))).toBe('PAGE_OUT_OF_RANGE');
    expect(code(() => log.setBitmap(new Uint32Array(3)))).toBe('INVALID_ARGUMENT');
    expect(code(() => log.syncInto(new Uint32Array(39)))).toBe('INVALID_ARGUMENT');
    expect(code(() => new BitmapDirtyLog(0))).toBe('INVALID_ARGUMENT');
    expect(code(() => new BitmapDirtyLog(64, { words: new Uint32Array(1) }))).toBe('INVALID_ARGUMENT');
  });

  it('setBitmap ignores bits beyond pageCount', () => {
    const log = new BitmapDirtyLog(33);
    log.setBitmap(Uint32Array.of(0x80000001, 0xffffffff));
    expect(Array.from(log.sync())).toEqual([0, 31, 32]);
  });

  it('syncInto writes into the caller array without allocating a result', () => {
    const log = new BitmapDirtyLog(1000);
    log.markRange(10, 3);
    log.mark(999);
    const out = new Uint32Array(1000);
    expect(log.syncInto(out)).toBe(4);
    expect(Array.from(out.subarray(0, 4))).toEqual([10, 11, 12, 999]);
    expect(log.syncInto(out)).toBe(0);
  });

  it('drainBits and popcount on edge words', () => {
    const w = Uint32Array.of(0, 0xffffffff, 0x80000000, 1);
    expect(popcountWords(w)).toBe(34);
    expect(popcount32(0xffffffff)).toBe(32);
    expect(popcount32(0)).toBe(0);
    const out = new Uint32Array(64);
    const n = drainBits(w, out, 2);
    expect(n).toBe(36);
    expect(out[2]).toBe(32);
    expect(out[33]).toBe(63);
    expect(out[34]).toBe(95);
    expect(out[35]).toBe(96);
    expect(Array.from(w)).toEqual([0, 0, 0, 0]);
  });

  it('a worker thread marking with Atomics.or loses no page across concurrent syncs', async () => {
    const n = 50_000;
    const log = BitmapDirtyLog.shared(n);
    log.start();
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const words = new Uint32Array(workerData.buffer);
      const n = workerData.n;
      for (let round = 0; round < 4; round++) {
        for (let p = round; p < n; p += 4) Atomics.or(words, p >>> 5, 1 << (p & 31));
      }
      parentPort.postMessage('done');
    `;
    const worker = new Worker(code, { eval: true, workerData: { buffer: log.words.buffer, n } });
    const seen = new Uint8Array(n);
    let syncs = 0;
    let finished = false;
    const done = new Promise<void>((resolve, reject) => {
      worker.on('message', () => { finished = true; resolve(); });
      worker.on('error', reject);
    });
    while (!finished) {
      for (const p of log.sync()) seen[p] = 1;
      syncs++;
      await new Promise((r) => setImmediate(r));
    }
    await done;
    for (const p of log.sync()) seen[p] = 1;
    await worker.terminate();
    expect(syncs).toBeGreaterThan(0);
    expect(seen.every((v) => v === 1)).toBe(true);
  });
});

describe('WriteTrackingDirtyLog', () => {
  it('noteWrite and noteBytes mark the pages written and count writes', () => {
    const log = new WriteTrackingDirtyLog(16);
    log.start();
    log.noteWrite(3);
    log.noteWrite(3);
    log.noteBytes(4096 * 5 - 1, 2, 4096); // straddles pages 4 and 5
    log.noteBytes(4096 * 9, 4096 * 2, 4096); // pages 9 and 10
    log.noteBytes(0, 0, 4096); // nothing
    expect(log.writesNoted).toBe(4);
    expect(Array.from(log.sync())).toEqual([3, 4, 5, 9, 10]);
  });
});
