/**
 * Dirty logs: which pages the guest wrote since the last dirty sync.
 *
 * The migration engine calls `start()` when the migration starts (round 0 sends every page), then
 * `sync()` once per round: it returns the sorted indices of the pages dirtied since the previous
 * sync (or since `start()`) and clears them, like KVM's KVM_GET_DIRTY_LOG (sync-and-clear). `stop()`
 * ends tracking after the final sync.
 *
 * Implementations:
 * - {@link BitmapDirtyLog}: one bit per page in `Uint32Array` words (bit `p & 31` of word `p >>> 5`,
 *   the layout of KVM's dirty bitmap on a little-endian host), filled by a hypervisor or anyone via
 *   `mark` / `markRange` / `setBitmap` / `orWords`, or written directly, also from another thread
 *   over a SharedArrayBuffer with `Atomics.or` (sync then clears each word with `Atomics.exchange`).
 * - {@link WriteTrackingDirtyLog}: a bitmap log that a simulated guest tells about each write.
 * - `HashScanDirtyLog` (hash-scan-log.ts): for endpoints without a hypervisor log, compares per-page
 *   xxHash64 values against the previous sync.
 */
import { PagewireError, ErrorCode } from '../errors.js';

/** What the migration engine needs from a dirty log. */
export interface DirtyLog {
  /** Pages tracked (the guest's page count). */
  readonly pageCount: number;
  /** Whether tracking runs (between `start()` and `stop()`). */
  readonly tracking: boolean;
  /** Begin tracking (migration start): forgets anything recorded before. */
  start(): void;
  /**
   * Sorted indices of the pages dirtied since the last sync (or `start()`); clears them.
   * @returns a new array the caller owns
   */
  sync(): Uint32Array;
  /** End tracking. */
  stop(): void;
  /** Report every page at the next sync (e.g. after the target lost its copy). */
  markAll(): void;
  /** How many pages the next sync would report, without clearing. */
  peekCount(): number;
}

/** Options of {@link BitmapDirtyLog}. */
export interface BitmapDirtyLogOptions {
  /**
   * The bitmap words to use in place (at least `ceil(pageCount / 32)` words), e.g. a view of a
   * SharedArrayBuffer another thread writes. Default: a new zeroed `Uint32Array`.
   */
  words?: Uint32Array;
  /**
   * Use `Atomics` for every access (needed when another thread writes the words). Default: true
   * when `words` lives in a SharedArrayBuffer.
   */
  atomic?: boolean;
}

/** Number of 32-bit words a bitmap of `pageCount` pages needs. */
export function bitmapWords(pageCount: number): number {
  return Math.ceil(pageCount / 32);
}

/**
 * Write the indices of the set bits of `words` (ascending) into `out` starting at `outIndex`, and
 * clear those words. Bit `b` of word `i` is page `i * 32 + b`. Zero words cost one load.
 * @param atomic clear with `Atomics.exchange` (words shared with another thread)
 * @returns the index in `out` after the last written entry
 */
export function drainBits(words: Uint32Array, out: Uint32Array, outIndex = 0, atomic = false): number {
  let k = outIndex;
  const n = words.length;
  for (let i = 0; i < n; i++) {
    let x = words[i]!;
    if (x === 0) continue;
    if (atomic) x = Atomics.exchange(words, i, 0);
    else words[i] = 0;
    const base = i * 32;
    if (x === 0xffffffff) {
      for (let b = 0; b < 32; b++) out[k++] = base + b; // a fully dirty word (markAll, big writes)
      continue;
    }
    while (x !== 0) {
      const low = x & -x; // lowest set bit
      out[k++] = base + 31 - Math.clz32(low);
      x ^= low;
    }
  }
  return k;
}

/** Set bits of a 32-bit word (SWAR popcount, Hacker's Delight 5-2). */
export function popcount32(v: number): number {
  let x = v >>> 0;
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Set bits in `words`. */
export function popcountWords(words: Uint32Array): number {
  let c = 0;
  for (let i = 0; i < words.length; i++) {
    const x = words[i]!;
    if (x !== 0) c += popcount32(x);
  }
  return c;
}

function checkCount(pageCount: number): void {
  if (!Number.isInteger(pageCount) || pageCount <= 0 || pageCount > 2 ** 32) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `dirty log page count must be a whole number in 1..2^32, got ${String(pageCount)}`);
  }
}

function outOfRange(page: number, pageCount: number): PagewireError {
  return new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `page ${String(page)} is outside the dirty log (0..${pageCount - 1})`);
}

/**
 * A dirty bitmap, one bit per page, filled by whoever sees the writes (a hypervisor's dirty log,
 * a write-protect fault handler, a simulated guest) and drained by the migration engine's `sync()`.
 * Marks are recorded at any time; `start()` clears what came before.
 */
export class BitmapDirtyLog implements DirtyLog {
  readonly pageCount: number;
  /** The bitmap: bit `p & 31` of `words[p >>> 5]` is page p. Write it directly if that suits. */
  readonly words: Uint32Array;
  /** Whether every access uses `Atomics`. */
  readonly atomic: boolean;
  private active = false;
  /** Atomic sync output scratch, allocated on first use (a sync returns a copy of its prefix). */
  private scratch: Uint32Array | null = null;
  /** Mask of the valid bits of the last word. */
  private readonly tailMask: number;

  /**
   * @param pageCount pages tracked
   * @param options bitmap words to use in place; atomic access
   * @throws PagewireError INVALID_ARGUMENT for a bad page count or too few words
   */
  constructor(pageCount: number, options: BitmapDirtyLogOptions = {}) {
    checkCount(pageCount);
    this.pageCount = pageCount;
    const need = bitmapWords(pageCount);
    if (options.words && options.words.length < need) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `dirty bitmap of ${pageCount} pages needs ${need} words, got ${options.words.length}`);
    }
    this.words = options.words ? options.words.subarray(0, need) : new Uint32Array(need);
    const shared = typeof SharedArrayBuffer !== 'undefined' && this.words.buffer instanceof SharedArrayBuffer;
    this.atomic = options.atomic ?? shared;
    const tail = pageCount & 31;
    this.tailMask = tail === 0 ? 0xffffffff : ((1 << tail) >>> 0) - 1;
  }

  /**
   * A log over a new SharedArrayBuffer bitmap (atomic): hand `log.words.buffer` to the threads
   * that write, and have them set bits with `Atomics.or(words, p >>> 5, 1 << (p & 31))`.
   */
  static shared(pageCount: number): BitmapDirtyLog {
    checkCount(pageCount);
    return new BitmapDirtyLog(pageCount, { words: new Uint32Array(new SharedArrayBuffer(bitmapWords(pageCount) * 4)), atomic: true });
  }

  get tracking(): boolean {
    return this.active;
  }

  start(): void {
    this.clear();
    this.active = true;
  }

  stop(): void {
    this.active = false;
  }

  /** Clear every bit. */
  clear(): void {
    if (this.atomic) for (let i = 0; i < this.words.length; i++) Atomics.store(this.words, i, 0);
    else this.words.fill(0);
  }

  /**
   * Mark page `page` dirty.
   * @throws PagewireError PAGE_OUT_OF_RANGE
   */
  mark(page: number): void {
    if (!(page >= 0 && page < this.pageCount)) throw outOfRange(page, this.pageCount);
    const w = page >>> 5;
    const bit = (1 << (page & 31)) >>> 0;
    if (this.atomic) Atomics.or(this.words, w, bit);
    else this.words[w]! |= bit;
  }

  /**
   * Mark pages [first, first + count) dirty, a word at a time.
   * @throws PagewireError PAGE_OUT_OF_RANGE
   */
  markRange(first: number, count: number): void {
    if (!(first >= 0 && count >= 0 && first + count <= this.pageCount) || !Number.isInteger(first) || !Number.isInteger(count)) {
      throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `pages ${first}..${first + count - 1} are outside the dirty log (0..${this.pageCount - 1})`);
    }
    let p = first;
    const end = first + count;
    while (p < end) {
      const w = p >>> 5;
      const lo = p & 31;
      const hi = Math.min(32, lo + (end - p)); // exclusive bit
      const mask = hi - lo === 32 ? 0xffffffff : (((1 << (hi - lo)) - 1) << lo) >>> 0;
      if (this.atomic) Atomics.or(this.words, w, mask);
      else this.words[w]! |= mask;
      p += hi - lo;
    }
  }

  /**
   * Mark each page of `pages` dirty.
   * @throws PagewireError PAGE_OUT_OF_RANGE (pages before the bad one stay marked)
   */
  markList(pages: ArrayLike<number>): void {
    for (let i = 0; i < pages.length; i++) this.mark(pages[i]!);
  }

  markAll(): void {
    const last = this.words.length - 1;
    if (this.atomic) {
      for (let i = 0; i < last; i++) Atomics.store(this.words, i, 0xffffffff);
      Atomics.or(this.words, last, this.tailMask);
    } else {
      this.words.fill(0xffffffff, 0, last);
      this.words[last]! |= this.tailMask;
    }
  }

  /**
   * Replace the bitmap with `words` (a hypervisor's freshly fetched dirty log). Bits beyond
   * `pageCount` are ignored.
   * @throws PagewireError INVALID_ARGUMENT when `words` has the wrong length
   */
  setBitmap(words: Uint32Array): void {
    if (words.length !== this.words.length) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `dirty bitmap must have ${this.words.length} words, got ${words.length}`);
    }
    const last = this.words.length - 1;
    if (this.atomic) {
      for (let i = 0; i < last; i++) Atomics.store(this.words, i, words[i]!);
    } else {
      this.words.set(words.subarray(0, last));
    }
    this.storeWord(last, words[last]! & this.tailMask);
  }

  /**
   * OR a bitmap into the log: bit b of `words[i]` marks page `firstPage + i * 32 + b` (a memory
   * slot's own dirty bitmap). Fast when `firstPage` is a multiple of 32; bits past the log's end
   * must be zero.
   * @throws PagewireError PAGE_OUT_OF_RANGE when a set bit lies outside the log
   */
  orWords(words: Uint32Array, firstPage = 0): void {
    if (!Number.isInteger(firstPage) || firstPage < 0 || firstPage >= this.pageCount) throw outOfRange(firstPage, this.pageCount);
    const shift = firstPage & 31;
    const w0 = firstPage >>> 5;
    const n = this.words.length;
    for (let i = 0; i < words.length; i++) {
      const x = words[i]!;
      if (x === 0) continue;
      const lo = (x << shift) >>> 0;
      const hi = shift === 0 ? 0 : x >>> (32 - shift);
      const a = w0 + i;
      if (a >= n || (a === n - 1 && (lo & ~this.tailMask) !== 0) || (hi !== 0 && (a + 1 >= n || (a + 1 === n - 1 && (hi & ~this.tailMask) !== 0)))) {
        throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `dirty bitmap word ${i} at page ${firstPage} marks pages outside the log (0..${this.pageCount - 1})`);
      }
      this.orWord(a, lo);
      if (hi !== 0) this.orWord(a + 1, hi);
    }
  }

  /** Whether page `page` is marked (no range check beyond the array's). */
  isDirty(page: number): boolean {
    const x = this.atomic ? Atomics.load(this.words, page >>> 5) : this.words[page >>> 5]!;
    return (x & (1 << (page & 31))) !== 0;
  }

  peekCount(): number {
    if (!this.atomic) return popcountWords(this.words);
    let c = 0;
    for (let i = 0; i < this.words.length; i++) c += popcount32(Atomics.load(this.words, i));
    return c;
  }

  sync(): Uint32Array {
    if (!this.atomic) {
      // no other writer: count, then drain into an array of exactly that size
      const out = new Uint32Array(popcountWords(this.words));
      drainBits(this.words, out, 0, false);
      return out;
    }
    // bits may arrive between a count and the drain: drain into page-count scratch, then copy
    let out = this.scratch;
    if (!out) out = this.scratch = new Uint32Array(this.pageCount);
    const n = drainBits(this.words, out, 0, true);
    return out.slice(0, n);
  }

  /**
   * Like {@link sync}, into a caller's array of at least `pageCount` entries (no allocation).
   * @returns the number of indices written
   * @throws PagewireError INVALID_ARGUMENT when `out` is too short
   */
  syncInto(out: Uint32Array): number {
    if (out.length < this.pageCount) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `syncInto needs room for ${this.pageCount} indices, got ${out.length}`);
    return drainBits(this.words, out, 0, this.atomic);
  }

  private storeWord(i: number, v: number): void {
    if (this.atomic) Atomics.store(this.words, i, v);
    else this.words[i] = v;
  }

  private orWord(i: number, v: number): void {
    if (this.atomic) Atomics.or(this.words, i, v);
    else this.words[i]! |= v;
  }
}

/**
 * The dirty log of a simulated guest: the guest reports each write with {@link noteWrite}
 * (page index) or {@link noteBytes} (guest-physical byte range). A {@link BitmapDirtyLog} with a
 * write counter.
 */
export class WriteTrackingDirtyLog extends BitmapDirtyLog {
  /** Writes reported since construction (each `noteWrite` counts one). */
  writesNoted = 0;

  /**
   * The guest wrote page `page`.
   * @throws PagewireError PAGE_OUT_OF_RANGE
   */
  noteWrite(page: number): void {
    this.writesNoted++;
    this.mark(page);
  }

  /**
   * The guest wrote `byteLength` bytes at guest byte offset `byteOffset`: marks every page the
   * range touches.
   * @param pageSize bytes per page (a power of two)
   * @throws PagewireError PAGE_OUT_OF_RANGE
   */
  noteBytes(byteOffset: number, byteLength: number, pageSize: number): void {
    if (byteLength <= 0) return;
    const first = Math.floor(byteOffset / pageSize);
    const last = Math.floor((byteOffset + byteLength - 1) / pageSize);
    this.writesNoted++;
    this.markRange(first, last - first + 1);
  }
}
