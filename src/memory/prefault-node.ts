/**
 * Pre-faulting a fresh target's guest memory on another thread (Node worker_threads).
 *
 * On a fresh target every page's first write is a page fault (the kernel zero-fills and maps
 * it; on VMs whose own memory is backed lazily, 10-16 us per 4 KiB page, about 0.3-0.4 GB/s).
 * A target that applies the stream on one thread pays that inside `decode`. Here a worker
 * touches the pages a bounded distance ahead of the stream instead, so the decoding thread finds
 * them mapped:
 *
 *   control (Int32Array on a SharedArrayBuffer):
 *     [0] cursor   the page after the highest one the stream has written (the target sets it)
 *     [1] stop     non-zero: the worker ends
 *     [2] touched  the worker's position: every page before it was touched, by it or the stream
 *   worker: touch pages [max(next, cursor), min(cursor + distance, pageCount)), 256 at a time;
 *     when there is nothing to touch, Atomics.wait on the cursor
 *
 * A touch is `Atomics.or(word, 0)`: a write access (so the kernel maps a private page, where a
 * read would map the shared zero page and fault again at the real write) that leaves the word's
 * value as it is even when the decoding thread writes the same word at the same time.
 *
 * Round 0 sends pages in ascending order, so the pages ahead of the cursor are the next ones the
 * stream writes. Pages the stream never writes (zero pages a fresh target skips) still become
 * resident once the cursor passes them: the cost of a plain copy, no more.
 *
 * Guest memory must be external regions on SharedArrayBuffers (GuestMemory.allocateExternal(...,
 * true) / forLayout({ shared: true })); the worker does nothing for other memory.
 */
import { Worker } from 'node:worker_threads';
import type { GuestMemory } from './guest-memory.js';

/** Default distance ahead of the stream, bytes (64 MiB). */
export const DEFAULT_PREFAULT_AHEAD_BYTES = 64 * 1024 * 1024;

/** Options of {@link startPrefault}. */
export interface PrefaultOptions {
  /** How far ahead of the stream the worker may touch, bytes (default 64 MiB). */
  aheadBytes?: number;
}

/** A running pre-fault worker. */
export interface Prefaulter {
  /**
   * The stream wrote these pages: the worker may touch up to `aheadBytes` past the highest one.
   * Cheap (a scan of the list, one atomic store); call it after every applied frame.
   */
  advance(pages: ArrayLike<number>): void;
  /** Pages the worker has touched so far (its position). */
  readonly touchedPages: number;
  /** End the worker (idempotent). */
  stop(): Promise<void>;
}

const CURSOR = 0;
const STOP = 1;
const TOUCHED = 2;

// The worker's whole program (an eval'd CommonJS script: no file to locate next to the build).
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { control, regions, pageSize, aheadPages } = workerData;
const ctl = new Int32Array(control);
const words = regions.map((r) => new Int32Array(r.buffer, r.byteOffset, r.byteLength >> 2));
const firsts = [];
let total = 0;
for (const r of regions) { firsts.push(total); total += r.byteLength / pageSize; }
const wordsPerPage = pageSize >> 2;
let next = 0;
let r = 0;
for (;;) {
  if (Atomics.load(ctl, ${STOP}) !== 0 || next >= total) break;
  const cursor = Atomics.load(ctl, ${CURSOR});
  // behind the stream: the pages before the cursor were written (and faulted) already
  if (next < cursor) { next = Math.min(total, cursor); Atomics.store(ctl, ${TOUCHED}, next); continue; }
  const limit = Math.min(total, cursor + aheadPages);
  if (next >= limit) { Atomics.wait(ctl, ${CURSOR}, cursor, 1000); continue; }
  const end = Math.min(limit, next + 256);
  for (; next < end; next++) {
    while (r + 1 < firsts.length && next >= firsts[r + 1]) r++;
    while (r > 0 && next < firsts[r]) r--;
    Atomics.or(words[r], (next - firsts[r]) * wordsPerPage, 0);
  }
  Atomics.store(ctl, ${TOUCHED}, next);
}
`;

/**
 * Start a worker that pre-faults `memory` ahead of the stream.
 * @returns the worker's handle, or null when the memory is not shared external regions (nothing to do)
 */
export function startPrefault(memory: GuestMemory, options: PrefaultOptions = {}): Prefaulter | null {
  if (memory.placement !== 'external') return null;
  const views = memory.regionViews();
  if (!views.every((v) => v.buffer instanceof SharedArrayBuffer && v.byteOffset % 4 === 0)) return null;
  const control = new SharedArrayBuffer(16);
  const ctl = new Int32Array(control);
  const aheadPages = Math.max(1, Math.floor((options.aheadBytes ?? DEFAULT_PREFAULT_AHEAD_BYTES) / memory.pageSize));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { control, pageSize: memory.pageSize, aheadPages, regions: views.map((v) => ({ buffer: v.buffer, byteOffset: v.byteOffset, byteLength: v.byteLength })) },
  });
  worker.unref();
  // a worker that fails only stops pre-faulting: the target writes (and faults) the pages itself
  worker.on('error', () => undefined);
  let cursor = 0;
  let stopped: Promise<void> | null = null;
  return {
    advance(pages: ArrayLike<number>): void {
      let hi = cursor;
      for (let k = 0; k < pages.length; k++) if (pages[k]! >= hi) hi = pages[k]! + 1;
      if (hi === cursor) return;
      cursor = hi;
      Atomics.store(ctl, CURSOR, hi);
      Atomics.notify(ctl, CURSOR);
    },
    get touchedPages(): number {
      return Atomics.load(ctl, TOUCHED);
    },
    stop(): Promise<void> {
      stopped ??= (async () => {
        Atomics.store(ctl, STOP, 1);
        Atomics.notify(ctl, CURSOR);
        await worker.terminate();
      })();
      return stopped;
    },
  };
}
