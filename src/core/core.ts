/**
 * A loaded core instance with a small heap manager over its linear memory.
 *
 * Layout: [static data | heap managed here ...]. Blocks are 16-byte aligned; freed blocks go on
 * a free list (first fit, coalesced). Memory only grows; after any growth every JS view of the old
 * buffer is detached, so callers get views through `u8()` / `view()`, which rebuild lazily, and
 * must not hold a view across a call that may allocate.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { CoreExports } from './exports.js';
import { instantiateCore } from './loader.js';

const WASM_PAGE = 65536;
const ALIGN = 16;
/** wasm32 limit: 65536 pages of 64 KiB. */
export const MAX_CORE_BYTES = 4 * 1024 * 1024 * 1024;

interface FreeBlock { ptr: number; size: number }

/** One instance of the wasm core plus its heap. */
export class Core {
  /** The raw exports; call them with pointers from {@link alloc}. */
  readonly exports: CoreExports;
  private top: number;
  /** Lowest address that was never part of an allocation. */
  private neverUsed: number;
  private free: FreeBlock[] = [];
  private u8View: Uint8Array;
  private dv: DataView;

  constructor(exports: CoreExports) {
    this.exports = exports;
    this.top = alignUp(exports.heapBase() >>> 0);
    this.neverUsed = this.top;
    this.u8View = new Uint8Array(exports.memory.buffer);
    this.dv = new DataView(exports.memory.buffer);
  }

  /** Current byte view of all linear memory (rebuilt after growth). */
  u8(): Uint8Array {
    if (this.u8View.buffer !== this.exports.memory.buffer) this.refresh();
    return this.u8View;
  }

  /** Current DataView of all linear memory (rebuilt after growth). */
  view(): DataView {
    if (this.dv.buffer !== this.exports.memory.buffer) this.refresh();
    return this.dv;
  }

  private refresh(): void {
    this.u8View = new Uint8Array(this.exports.memory.buffer);
    this.dv = new DataView(this.exports.memory.buffer);
  }

  /** Bytes of linear memory now. */
  get byteLength(): number {
    return this.exports.memory.buffer.byteLength;
  }

  /**
   * Allocate `size` bytes (16-byte aligned). Contents are undefined.
   * @throws PagewireError WASM_FAILED when linear memory cannot grow that far
   */
  alloc(size: number): number {
    if (!(size >= 0) || !Number.isSafeInteger(size)) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `pagewire: allocation size must be a whole number of bytes, got ${String(size)}`);
    }
    const need = alignUp(Math.max(size, 1));
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.size >= need) {
        const ptr = b.ptr;
        if (b.size === need) this.free.splice(i, 1);
        else { b.ptr += need; b.size -= need; }
        return ptr;
      }
    }
    const ptr = this.top;
    const end = ptr + need;
    if (end > MAX_CORE_BYTES) {
      throw new PagewireError(ErrorCode.WASM_FAILED, `pagewire: core memory would exceed 4 GiB (asked ${size} bytes)`);
    }
    const have = this.exports.memory.buffer.byteLength;
    if (end > have) {
      // Grow geometrically (at least 1/8 more) so repeated small growths stay rare. Plain
      // arithmetic: byte counts reach 2^32, beyond what 32-bit operators (>>>, &) can hold.
      const want = Math.min(MAX_CORE_BYTES, Math.max(end, have + Math.floor(have / 8)));
      const pages = Math.ceil((want - have) / WASM_PAGE);
      try {
        this.exports.memory.grow(pages);
      } catch (cause) {
        throw new PagewireError(ErrorCode.WASM_FAILED, `pagewire: core memory could not grow to ${want} bytes`, { cause });
      }
    }
    this.top = end;
    if (end > this.neverUsed) this.neverUsed = end;
    return ptr;
  }

  /**
   * Allocate `size` zeroed bytes. Memory above the heap top has never been written (wasm memory
   * starts and grows zeroed), so only blocks reused from the free list are cleared.
   */
  allocZeroed(size: number): number {
    const clean = this.neverUsed;
    const ptr = this.alloc(size);
    // bytes at or above `clean` were never handed out, hence still zero
    const dirtyEnd = Math.min(ptr + size, clean);
    if (dirtyEnd > ptr) this.u8().fill(0, ptr, dirtyEnd);
    return ptr;
  }

  /** Return a block from {@link alloc}. */
  release(ptr: number, size: number): void {
    const blk: FreeBlock = { ptr, size: alignUp(Math.max(size, 1)) };
    if (blk.ptr + blk.size === this.top) { this.top = blk.ptr; this.trimTop(); return; }
    // Insert sorted by address and coalesce with neighbours.
    let i = 0;
    while (i < this.free.length && this.free[i]!.ptr < ptr) i++;
    this.free.splice(i, 0, blk);
    const next = this.free[i + 1];
    if (next && blk.ptr + blk.size === next.ptr) { blk.size += next.size; this.free.splice(i + 1, 1); }
    const prev = this.free[i - 1];
    if (prev && prev.ptr + prev.size === blk.ptr) { prev.size += blk.size; this.free.splice(i, 1); }
  }

  private trimTop(): void {
    const last = this.free[this.free.length - 1];
    if (last && last.ptr + last.size === this.top) { this.top = last.ptr; this.free.pop(); }
  }
}

/**
 * A growable scratch block in core memory: `ensure(n)` returns a pointer to at least n bytes,
 * growing geometrically and never shrinking. Contents are not preserved across growth.
 */
export class Arena {
  ptr = 0;
  size = 0;
  constructor(private readonly core: Core, initial = 0) {
    if (initial > 0) this.ensure(initial);
  }

  /** Pointer to at least `n` bytes. */
  ensure(n: number): number {
    if (n <= this.size) return this.ptr;
    const size = Math.max(n, this.size * 2, 4096);
    if (this.size > 0) this.core.release(this.ptr, this.size);
    this.ptr = this.core.alloc(size);
    this.size = size;
    return this.ptr;
  }

  /** Give the block back. */
  dispose(): void {
    if (this.size > 0) this.core.release(this.ptr, this.size);
    this.size = 0;
    this.ptr = 0;
  }
}

/**
 * `n` rounded up to the heap's 16-byte alignment. Byte counts and addresses go up to 2^32 (a full
 * wasm32 memory), so this uses floating-point arithmetic, exact for integers below 2^53: 32-bit
 * operators would wrap at 2^31 (negative) and 2^32 (zero).
 */
export function alignUp(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

let shared: Core | undefined;
let sharedPromise: Promise<Core> | undefined;

/**
 * The process-wide (per realm) core used by the one-shot API. Loads it once; concurrent callers
 * share one instantiation. The core is warmed up so first real calls run in the optimised tier.
 */
export function loadSharedCore(): Promise<Core> {
  sharedPromise ??= instantiateCore().then((exports) => {
    shared = new Core(exports);
    return shared;
  }, (err: unknown) => {
    sharedPromise = undefined;
    throw err;
  });
  return sharedPromise;
}

/** The shared core after `ready()`. @throws PagewireError NOT_READY before. */
export function sharedCore(): Core {
  if (!shared) throw new PagewireError(ErrorCode.NOT_READY, 'pagewire: call `await ready()` before using the core');
  return shared;
}

/** Create a separate core instance with its own linear memory (e.g. one per migration endpoint). */
export async function createCore(): Promise<Core> {
  return new Core(await instantiateCore());
}
