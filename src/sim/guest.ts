/**
 * A simulated guest: writes into its guest memory while a migration runs, and tells its dirty log
 * about every write (as KVM's write-protect faults tell the dirty bitmap).
 *
 * Two clocks:
 * - real time: `start()` runs a timer in the same thread (every `sliceMs`, default 5 ms) that
 *   performs the writes due for the time elapsed, so writes interleave with an async migration in
 *   the same process. If the thread was busy for longer than `maxCatchUpMs` (default 100 ms), the
 *   excess is dropped, as vCPUs that did not get the CPU do not write.
 * - simulated time: `advanceBy(ms)` performs exactly the writes due for `ms` more milliseconds,
 *   without timers (for benchmarks on a virtual clock).
 * Write counts are exact: after t ms at rate R writes/s (in one rate segment) the guest has made
 * floor(R * t / 1000) writes, however t was sliced.
 *
 * Rate: `ratePagesPerSec` page writes per second, or `rateBytesPerSec` = page writes per second
 * times the page size (the dirty rate as QEMU states it: pages dirtied per second x page size,
 * counting a page again each time it is written). The write size only sets how many bytes of the
 * page each write changes. The unique dirty pages per round are fewer when writes repeat pages
 * (hot set, Zipf). `setThrottle(pct)` (auto-converge) scales the rate by (1 - pct/100).
 *
 * Corpus replay (`workload: 'corpus'`): no timed writes. The memory starts as snapshot 0;
 * `advance()` (called by the migration engine before each round's dirty sync, via `hooks()`)
 * makes the memory snapshot k and marks dirty-k in the dirty log; `done` after the last snapshot.
 * The constructor reads the changed pages of every snapshot (up to `corpusPreloadBytes`), so
 * `advance()` during a migration copies only those pages from memory: no file reads, no whole
 * images inside the migration's clock.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { WriteTrackingDirtyLog, type DirtyLog } from '../memory/dirty-log.js';
import { Prng } from './prng.js';
import { ContentGenerator, PageCursor } from './content.js';
import { createWorkload, type Workload, type WorkloadKind, type WorkloadOptions } from './workloads.js';
import { gatherPages, type CorpusSource } from './corpus.js';

/** Named write sizes: a word (8 bytes), a cache line (64), a run (512), a whole page. */
export type WriteSize = 'word' | 'line' | 'run' | 'page';

/** A dirty log a guest can report writes to. */
export interface WriteSink {
  mark(page: number): void;
}

/** Options of {@link SimulatedGuest}. */
export interface SimulatedGuestOptions extends WorkloadOptions {
  /** What the guest touches (default `hotset`), or `corpus` replay (needs `corpus`). */
  workload?: WorkloadKind | 'corpus';
  /** Page writes per second (default 1000 unless `rateBytesPerSec` is given). Ignored by `idle`. */
  ratePagesPerSec?: number;
  /** Page writes per second times the page size. Ignored by `idle`. */
  rateBytesPerSec?: number;
  /** `idle` workload: page writes per second (default 10). */
  idleRatePagesPerSec?: number;
  /** Bytes changed per write: a named size or a multiple of 8 up to the page size (default `line`). */
  writeSize?: WriteSize | number;
  /** PRNG seed (default 1). */
  seed?: number;
  /** The dirty log that hears about writes (default: a new {@link WriteTrackingDirtyLog}). */
  dirtyLog?: DirtyLog & WriteSink;
  /** Corpus to replay (workload `corpus`). */
  corpus?: CorpusSource;
  /** Corpus replay: bytes of changed pages read up front (default 512 MiB; later snapshots are read at `advance()`). */
  corpusPreloadBytes?: number;
  /** Real-time mode: timer period, ms (default 5). */
  sliceMs?: number;
  /** Real-time mode: most elapsed time made up for in one slice, ms (default 100). */
  maxCatchUpMs?: number;
  /** Real-time mode: clock in ms (default `performance.now`). */
  now?: () => number;
}

/** Hooks a migration source takes (structurally a `SourceHooks`). */
export interface GuestHooks {
  pause(): void;
  resume(): void;
  throttle(pct: number): void;
  onRound(round: number, before: boolean): void | 'switchover' | 'continue';
}

/** Counters of a simulated guest. */
export interface GuestStats {
  /** Writes made (each touches one page). */
  writes: number;
  /** Bytes written. */
  bytesWritten: number;
  /** Milliseconds the guest has run (not paused): real or simulated. */
  runMs: number;
  /** Corpus replay: the current snapshot, else -1. */
  snapshot: number;
}

const WRITE_SIZES: Record<WriteSize, number> = { word: 8, line: 64, run: 512, page: -1 };

/** A guest that writes into its memory according to a workload. */
export class SimulatedGuest {
  readonly memory: GuestMemory;
  /** The dirty log the guest reports writes to; hand it to the migration source. */
  readonly dirtyLog: DirtyLog & WriteSink;
  /** The page chooser (null for corpus replay). */
  readonly workload: Workload | null;
  /** Bytes changed per write. */
  readonly writeBytes: number;
  private readonly kind: WorkloadKind | 'corpus';
  private readonly rng: Prng;
  private readonly gen: ContentGenerator;
  private readonly cursor: PageCursor;
  private readonly tracking: WriteTrackingDirtyLog | null;
  private readonly corpus: CorpusSource | null;
  private readonly sliceMs: number;
  private readonly maxCatchUpMs: number;
  private readonly now: () => number;
  private baseRate: number;
  private throttlePct = 0;
  private paused = false;
  private timer: ReturnType<typeof setInterval> | null = null;
  private lastTick = 0;
  // exact write accounting within one rate segment
  private segMs = 0;
  private segWrites = 0;
  private readonly st: GuestStats = { writes: 0, bytesWritten: 0, runMs: 0, snapshot: -1 };
  // corpus access order for nextAccess()
  private accessList: Uint32Array | null = null;
  private accessIndex = 0;
  private accessK = 0;
  // corpus replay: changed[k] = the pages of dirty(k) as snapshot k holds them (until replayed)
  private readonly changed: (Uint8Array | undefined)[] = [];

  /**
   * @param memory the guest memory to write (corpus replay overwrites it with snapshot 0 now)
   * @param options workload, rate, write size, seed, dirty log
   * @throws PagewireError INVALID_ARGUMENT for bad options or a corpus of another size
   */
  constructor(memory: GuestMemory, options: SimulatedGuestOptions = {}) {
    this.memory = memory;
    this.kind = options.workload ?? 'hotset';
    this.rng = new Prng(options.seed ?? 1);
    this.gen = new ContentGenerator(memory.pageSize, this.rng);
    this.cursor = new PageCursor(memory);
    this.dirtyLog = options.dirtyLog ?? new WriteTrackingDirtyLog(memory.pageCount);
    if (this.dirtyLog.pageCount !== memory.pageCount) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `dirty log tracks ${this.dirtyLog.pageCount} pages, the memory has ${memory.pageCount}`);
    }
    this.tracking = this.dirtyLog instanceof WriteTrackingDirtyLog ? this.dirtyLog : null;
    this.writeBytes = resolveWriteSize(options.writeSize ?? 'line', memory.pageSize);
    this.sliceMs = positive(options.sliceMs ?? 5, 'sliceMs');
    this.maxCatchUpMs = positive(options.maxCatchUpMs ?? 100, 'maxCatchUpMs');
    this.now = options.now ?? (() => performance.now());
    if (this.kind === 'corpus') {
      const c = options.corpus;
      if (!c) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'workload corpus needs a corpus');
      if (c.pageSize !== memory.pageSize || c.pageCount !== memory.pageCount) {
        throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `corpus ${c.name} has ${c.pageCount} pages of ${c.pageSize} bytes, the memory ${memory.pageCount} of ${memory.pageSize}`);
      }
      this.corpus = c;
      this.workload = null;
      this.baseRate = 0;
      this.loadSnapshot(0);
      let budget = nonNegative(options.corpusPreloadBytes ?? 512 * 1024 * 1024, 'corpusPreloadBytes');
      for (let k = 1; k < c.snapshotCount; k++) {
        const bytes = c.dirty(k).length * c.pageSize;
        if (bytes > budget) break;
        budget -= bytes;
        this.changed[k] = touchPages(this.changedPages(k), c.pageSize);
      }
    } else {
      this.corpus = null;
      this.workload = createWorkload(this.kind, memory.pageCount, this.rng, options);
      if (this.kind === 'idle') this.baseRate = nonNegative(options.idleRatePagesPerSec ?? 10, 'idleRatePagesPerSec');
      else if (options.ratePagesPerSec !== undefined) this.baseRate = nonNegative(options.ratePagesPerSec, 'ratePagesPerSec');
      else if (options.rateBytesPerSec !== undefined) this.baseRate = nonNegative(options.rateBytesPerSec, 'rateBytesPerSec') / memory.pageSize;
      else this.baseRate = 1000;
    }
  }

  /** Page writes per second now (after throttling). */
  get ratePagesPerSec(): number {
    return this.baseRate * (1 - this.throttlePct / 100);
  }

  /** The throttle applied, percent. */
  get throttle(): number {
    return this.throttlePct;
  }

  /** Whether the guest runs (not paused). */
  get running(): boolean {
    return !this.paused;
  }

  /** Whether the real-time timer is on. */
  get started(): boolean {
    return this.timer !== null;
  }

  /** Corpus replay: whether the last snapshot has been reached (always false otherwise). */
  get done(): boolean {
    return this.corpus !== null && this.st.snapshot === this.corpus.snapshotCount - 1;
  }

  /** Counters (a copy). */
  get stats(): GuestStats {
    return { ...this.st };
  }

  /** Start writing in real time (no-op for corpus replay, which is driven by `advance()`). */
  start(): void {
    if (this.timer || this.corpus) return;
    this.lastTick = this.now();
    const t = setInterval(() => this.tick(), this.sliceMs);
    (t as { unref?: () => void }).unref?.(); // a guest alone does not keep Node running
    this.timer = t;
  }

  /** Stop the real-time timer. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Stop the vCPUs: no writes until `resume()` (the migration's pause hook). */
  pause(): void {
    if (this.paused) return;
    if (this.timer) this.tick(); // writes due up to now happen before the pause
    this.paused = true;
  }

  /** Let the vCPUs run again. Time paused is not made up for. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.lastTick = this.now();
  }

  /**
   * Auto-converge: slow the guest's writes by `pct` percent (0..99, QEMU's range).
   * @throws PagewireError INVALID_ARGUMENT
   */
  setThrottle(pct: number): void {
    if (!(typeof pct === 'number' && pct >= 0 && pct <= 99)) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `throttle must be 0..99 percent, got ${String(pct)}`);
    }
    if (this.timer) this.tick();
    this.throttlePct = pct;
    this.newSegment();
  }

  /**
   * Change the write rate.
   * @param ratePagesPerSec page writes per second, >= 0
   * @throws PagewireError INVALID_ARGUMENT
   */
  setRate(ratePagesPerSec: number): void {
    nonNegative(ratePagesPerSec, 'ratePagesPerSec');
    if (this.timer) this.tick();
    this.baseRate = ratePagesPerSec;
    this.newSegment();
  }

  /**
   * Simulated clock: let `ms` milliseconds pass and make exactly the writes due for them (none
   * while paused).
   * @returns the number of writes made
   * @throws PagewireError INVALID_ARGUMENT for a negative or non-finite `ms`
   */
  advanceBy(ms: number): number {
    if (!(ms >= 0 && Number.isFinite(ms))) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `advanceBy needs a finite ms >= 0, got ${String(ms)}`);
    return this.run(ms);
  }

  /**
   * Make `n` writes now, as the workload chooses (ignores pause and rate).
   * @returns n
   */
  write(n: number): number {
    const wl = this.workload;
    if (!wl) return 0;
    for (let i = 0; i < n; i++) this.writePage(wl.next());
    return n;
  }

  /**
   * Write page `page` once (`writeSize` bytes of realistic content) and report it.
   * @throws PagewireError PAGE_OUT_OF_RANGE
   */
  writePage(page: number): void {
    if (!(page >= 0 && page < this.memory.pageCount)) {
      throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `page ${page} is outside guest memory (0..${this.memory.pageCount - 1})`);
    }
    const ps = this.memory.pageSize;
    const len = this.writeBytes;
    const at = len >= ps ? 0 : this.rng.below((ps - len) / 8 + 1) * 8;
    const cur = this.cursor;
    cur.locate(page);
    this.gen.writeSpan(cur.buf, cur.off + at, len);
    if (this.tracking) this.tracking.noteWrite(page);
    else this.dirtyLog.mark(page);
    this.st.writes++;
    this.st.bytesWritten += len;
  }

  /**
   * The next page the workload touches, without writing (post-copy: the target's guest faults on
   * it when it is missing). Corpus replay: the pages of dirty-1, dirty-2, ... in order, cycling.
   */
  nextAccess(): number {
    if (this.workload) return this.workload.next();
    const c = this.corpus!;
    if (c.snapshotCount < 2) return this.rng.below(this.memory.pageCount);
    while (!this.accessList || this.accessIndex >= this.accessList.length) {
      this.accessList = c.dirty(1 + (this.accessK++ % (c.snapshotCount - 1)));
      this.accessIndex = 0;
      if (this.accessList.length === 0 && this.accessK > c.snapshotCount) return this.rng.below(this.memory.pageCount);
    }
    return this.accessList[this.accessIndex++]!;
  }

  /**
   * Corpus replay: make the memory snapshot k+1 and mark dirty-(k+1) in the dirty log. Call it
   * before each round's dirty sync (round 0 sends snapshot 0). Other workloads: nothing.
   * @returns true if the memory moved to a new snapshot, false when there was none left
   */
  advance(): boolean {
    const c = this.corpus;
    if (!c || this.done) return false;
    const k = this.st.snapshot + 1;
    const dirty = c.dirty(k);
    const bytes = this.changed[k] ?? this.changedPages(k);
    this.changed[k] = undefined; // replayed once
    // pages not in dirty-k are the same in snapshots k-1 and k: only the changed ones are copied
    const ps = this.memory.pageSize;
    const cur = this.cursor;
    for (let i = 0; i < dirty.length; i++) {
      cur.locate(dirty[i]!);
      cur.buf.set(bytes.subarray(i * ps, (i + 1) * ps), cur.off);
      this.dirtyLog.mark(dirty[i]!);
    }
    this.st.snapshot = k;
    this.st.writes += dirty.length;
    this.st.bytesWritten += dirty.length * this.memory.pageSize;
    return true;
  }

  /**
   * Hooks for `MigrationSource`: pause/resume/throttle drive this guest; in real time,
   * `onRound(round, true)` makes the writes due up to now before the dirty sync; for corpus replay,
   * `onRound(round, true)` advances to the next snapshot and `onRound(round, false)` asks for
   * another round ('continue') until the last snapshot is in memory, then for the switch-over
   * ('switchover'): one snapshot per round whatever the convergence policy thinks.
   */
  hooks(): GuestHooks {
    return {
      pause: () => this.pause(),
      resume: () => this.resume(),
      throttle: (pct: number) => this.setThrottle(pct),
      onRound: (_round: number, before: boolean) => {
        if (!this.corpus) {
          // a real-time guest: the writes due up to now land before the dirty sync (a hypervisor's
          // dirty log is continuous; the timer's slices would otherwise hide a short round's writes)
          if (before && this.timer) this.tick();
          return undefined;
        }
        if (before) { this.advance(); return undefined; }
        return this.done ? 'switchover' : 'continue';
      },
    };
  }

  private tick(): void {
    const now = this.now();
    const dt = Math.min(Math.max(0, now - this.lastTick), this.maxCatchUpMs);
    this.lastTick = now;
    this.run(dt);
  }

  /** Let `ms` of guest time pass: the writes due in this rate segment. */
  private run(ms: number): number {
    if (this.paused || this.corpus) return 0;
    this.st.runMs += ms;
    this.segMs += ms;
    // the epsilon absorbs float error in summed slices (0.1 + 0.2 ...); writes are whole numbers
    const x = (this.ratePagesPerSec * this.segMs) / 1000;
    const due = Math.floor(x + Math.max(1e-9, x * 1e-12));
    const n = due - this.segWrites;
    this.segWrites = due;
    return n > 0 ? this.write(n) : 0;
  }

  private newSegment(): void {
    this.segMs = 0;
    this.segWrites = 0;
  }

  /** Snapshot k's changed pages, from the corpus's own reader or cut out of the whole image. */
  private changedPages(k: number): Uint8Array {
    const c = this.corpus!;
    const pages = c.dirty(k);
    for (let i = 0; i < pages.length; i++) {
      if (!(pages[i]! < this.memory.pageCount)) throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `corpus ${c.name}: dirty-${k} lists page ${pages[i]!}, outside the guest's ${this.memory.pageCount} pages`);
    }
    const bytes = c.changedPages ? c.changedPages(k) : gatherPages(c.snapshot(k), pages, c.pageSize);
    if (bytes.byteLength !== pages.length * c.pageSize) {
      throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `corpus ${c.name}: snapshot ${k} gave ${bytes.byteLength} bytes of changed pages for ${pages.length} pages`);
    }
    return bytes;
  }

  private loadSnapshot(k: number): void {
    const c = this.corpus!;
    const img = c.snapshot(k);
    const ps = this.memory.pageSize;
    for (const r of this.memory.regions) {
      const dst = this.memory.pages(r.firstPage, r.pageCount)!;
      dst.set(img.subarray(r.firstPage * ps, (r.firstPage + r.pageCount) * ps));
    }
    this.st.snapshot = k;
  }
}

/** Keeps {@link touchPages}' reads from being optimised away. */
let touched = 0;

/**
 * Read one byte of every page of `b` and return `b`. On the VMs we measure, a buffer that read(2)
 * filled costs about 5 us per 4 KiB page at its first access from JS (a fault-like cost the page
 * fault counters do not show; a buffer JS wrote itself does not pay it): the corpus replay's
 * preloaded pages paid it inside the migration, in `advance()` (vm-redis corpus: 5-7 ms per round
 * of ~1000 pages before, 0.3-0.5 ms after).
 */
function touchPages(b: Uint8Array, pageSize: number): Uint8Array {
  let x = 0;
  for (let o = 0; o < b.byteLength; o += pageSize) x ^= b[o]!;
  touched ^= x;
  return b;
}

function resolveWriteSize(w: WriteSize | number, pageSize: number): number {
  if (typeof w === 'string') {
    const v = WRITE_SIZES[w];
    if (v === undefined) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `write size must be word, line, run, page or a byte count, got "${w}"`);
    return v < 0 ? pageSize : Math.min(v, pageSize);
  }
  if (!Number.isInteger(w) || w < 8 || w % 8 !== 0 || w > pageSize) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `write size must be a multiple of 8 in 8..${pageSize} bytes, got ${String(w)}`);
  }
  return w;
}

function positive(v: number, name: string): number {
  if (!(typeof v === 'number' && v > 0 && Number.isFinite(v))) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${name} must be a positive number, got ${String(v)}`);
  return v;
}

function nonNegative(v: number, name: string): number {
  if (!(typeof v === 'number' && v >= 0 && Number.isFinite(v))) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${name} must be a number >= 0, got ${String(v)}`);
  return v;
}
