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
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { GuestMemory } from './guest-memory.js';

/** Default distance ahead of the stream, bytes (64 MiB). */
export const DEFAULT_PREFAULT_AHEAD_BYTES = 64 * 1024 * 1024;

/** Options of {@link startPrefault}. */
export interface PrefaultOptions {
  /** How far ahead of the stream the worker may touch, bytes (default 64 MiB). */
  aheadBytes?: number;
  /** Start the worker even when {@link hugePagesLikely} (default false: then no worker). */
  always?: boolean;
}

/**
 * Whether this process's large allocations get transparent huge pages: Linux, glibc asked for them
 * (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which bin/pagewire.js sets) and THP not switched off.
 * Then a fresh target faults 2 MiB at a time and a pre-fault thread does not pay for itself; measured
 * on this 2-core VM (`simulate --prefault on`, tcp, medians of 4): 32 MiB corpus guest at 1 Gbit/s
 * 256-276 ms with the thread against 225-237 ms without; 128 MiB and 512 MiB idle guests even. With
 * 4 KiB pages the thread wins (128 MiB: 665 against 937 ms).
 */
export function hugePagesLikely(): boolean {
  if (process.platform !== 'linux' || !/glibc\.malloc\.hugetlb=[12]/.test(process.env['GLIBC_TUNABLES'] ?? '')) return false;
  try {
    return !readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').includes('[never]');
  } catch {
    return false;
  }
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

// The worker's whole program (an eval'd CommonJS script: no file to locate next to the build). It
// boots, says so, then waits for its memory in one message: a worker can start before the guest's
// size is known (see preparePrefault) and its start-up stays out of the migration.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
parentPort.once('message', ({ control, regions, pageSize, aheadPages }) => {
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
});
parentPort.postMessage('up');
`;

/** A started worker that waits for its memory; resolves when it is up (or failed: then the
 *  target faults its pages itself). */
interface Spare {
  worker: Worker;
  up: Promise<void>;
}

let spare: Spare | null = null;
let started = 0;

/** Pre-fault threads this thread has started so far (prepared ones included). */
export function prefaultThreadsStarted(): number {
  return started;
}

function spawnWorker(): Spare {
  started++;
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  worker.unref();
  // a worker that fails only stops pre-faulting: the target writes (and faults) the pages itself
  worker.on('error', () => undefined);
  const up = new Promise<void>((resolve) => {
    worker.once('message', () => resolve());
    worker.once('exit', () => resolve());
  });
  return { worker, up };
}

/**
 * Start the next pre-fault worker now and wait until it is up: a thread's start-up is 50-100 ms of
 * CPU here, which a target pays before the migration this way instead of inside it. The next
 * {@link startPrefault} in this thread takes this worker.
 */
export function preparePrefault(): Promise<void> {
  if (hugePagesLikely()) return Promise.resolve();
  spare ??= spawnWorker();
  return spare.up;
}

/**
 * Start a worker that pre-faults `memory` ahead of the stream.
 * @returns the worker's handle, or null when the memory is not shared external regions or huge pages
 *   make the worker pointless (see {@link hugePagesLikely}; `always` overrides)
 */
export function startPrefault(memory: GuestMemory, options: PrefaultOptions = {}): Prefaulter | null {
  if (memory.placement !== 'external' || (options.always !== true && hugePagesLikely())) return null;
  const views = memory.regionViews();
  if (!views.every((v) => v.buffer instanceof SharedArrayBuffer && v.byteOffset % 4 === 0)) return null;
  const control = new SharedArrayBuffer(16);
  const ctl = new Int32Array(control);
  const aheadPages = Math.max(1, Math.floor((options.aheadBytes ?? DEFAULT_PREFAULT_AHEAD_BYTES) / memory.pageSize));
  const { worker } = spare ?? spawnWorker();
  spare = null;
  worker.postMessage({ control, pageSize: memory.pageSize, aheadPages, regions: views.map((v) => ({ buffer: v.buffer, byteOffset: v.byteOffset, byteLength: v.byteLength })) });
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
