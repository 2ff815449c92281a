/**
 * The source's delta cache: for up to `cacheBytes / pageSize` pages, the exact bytes the TARGET
 * holds (what was last sent), in core memory, used as XBZRLE bases, for "unchanged since last
 * sent" detection and as the only pages duplicates may refer to.
 *
 * Layout (state block read by assembly/batch.ts): a map word per guest page (0 unknown, a zero
 * mark when the target holds a zero page, else slot + 1), per slot its page, xxh64, CLOCK
 * reference bit and data, and a direct-mapped hash index for duplicates (lossy: a candidate is
 * always re-checked by hash and byte-for-byte).
 *
 * Eviction: CLOCK (second chance) over all slots: a slot used (hit, duplicate source) since the
 * hand last passed survives one more sweep. Fully associative, unlike QEMU's direct-mapped cache.
 * Counted per encoder: hits, misses, overflows (XBZRLE did not fit), evictions, inserts.
 *
 * Consistency: an entry exists only while its bytes equal what the target holds. After a link
 * drop, `forget(pages)` the pages whose delivery is unknown (or `clear()`), so no delta or
 * duplicate reference is ever made against a version the target may not have.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Core } from '../core/core.js';
import {
  ENC_HAND, ENC_HINDEX, ENC_HMASK, ENC_MAP, ENC_PAGE_COUNT, ENC_PAGE_SIZE, ENC_SCRATCH, ENC_SLOTS, ENC_SLOT_DATA,
  ENC_SLOT_HASH, ENC_SLOT_PAGE, ENC_SLOT_REF, ENC_STATE_BYTES,
} from '../core/layout.js';

/** Default cache size: QEMU's xbzrle-cache-size default. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

/** Delta cache state in a core. */
export class DeltaCache {
  /** Pointer of the state block. */
  readonly st: number;
  /** Slots (pages the cache can hold). */
  readonly slots: number;
  private readonly blocks: [number, number][] = [];
  private readonly ptrs: { map: number; slotPage: number; refs: number; hindex: number; hsize: number };
  private idxArena = 0;
  private idxArenaSize = 0;

  /**
   * @param core the core holding guest pages (or the encoder's own)
   * @param pageCount guest pages
   * @param pageSize bytes per page
   * @param cacheBytes data bytes (rounded down to whole pages, at least one, at most pageCount)
   */
  constructor(private readonly core: Core, readonly pageCount: number, readonly pageSize: number, readonly cacheBytes = DEFAULT_CACHE_BYTES) {
    if (!Number.isInteger(cacheBytes) || cacheBytes < 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'cacheBytes must be a non-negative integer');
    // never more slots than guest pages; at least one
    this.slots = Math.max(1, Math.min(pageCount, Math.floor(cacheBytes / pageSize)));
    let hsize = 16;
    while (hsize < this.slots * 4) hsize *= 2;
    const a = (n: number): number => { const p = core.alloc(n); this.blocks.push([p, n]); return p; };
    this.st = a(ENC_STATE_BYTES);
    const map = a(pageCount * 4);
    const slotPage = a(this.slots * 4);
    const refs = a(this.slots);
    const hash = a(this.slots * 8);
    const hindex = a(hsize * 4);
    const data = a(this.slots * pageSize);
    const scratch = a(2 * pageSize + 64);
    this.ptrs = { map, slotPage, refs, hindex, hsize };
    const dv = core.view();
    const st = this.st;
    for (let i = 0; i < ENC_STATE_BYTES; i += 4) dv.setUint32(st + i, 0, true);
    dv.setUint32(st + ENC_PAGE_SIZE, pageSize, true);
    dv.setUint32(st + ENC_PAGE_COUNT, pageCount, true);
    dv.setUint32(st + ENC_MAP, map, true);
    dv.setUint32(st + ENC_SLOTS, this.slots, true);
    dv.setUint32(st + ENC_SLOT_PAGE, slotPage, true);
    dv.setUint32(st + ENC_SLOT_DATA, data, true);
    dv.setUint32(st + ENC_SLOT_REF, refs, true);
    dv.setUint32(st + ENC_SLOT_HASH, hash, true);
    dv.setUint32(st + ENC_HINDEX, hindex, true);
    dv.setUint32(st + ENC_HMASK, hsize - 1, true);
    dv.setUint32(st + ENC_HAND, 0, true);
    dv.setUint32(st + ENC_SCRATCH, scratch, true);
    this.clear();
  }

  /** Forget everything (the target's state is unknown: after a reconnect without acknowledgements). */
  clear(): void {
    const u8 = this.core.u8();
    const p = this.ptrs;
    u8.fill(0, p.map, p.map + this.pageCount * 4);
    u8.fill(0xff, p.slotPage, p.slotPage + this.slots * 4);
    u8.fill(0, p.refs, p.refs + this.slots);
    u8.fill(0, p.hindex, p.hindex + p.hsize * 4);
    this.core.view().setUint32(this.st + ENC_HAND, 0, true);
  }

  /** Forget these pages (their delivery is unknown): no delta, "unchanged" or reference against them. */
  forget(pages: ArrayLike<number>): void {
    const n = pages.length;
    if (n === 0) return;
    if (this.idxArenaSize < n * 4) {
      // `pages` may be a view of this core's memory, which the allocation below may detach
      pages = Array.from(pages);
      if (this.idxArenaSize) this.core.release(this.idxArena, this.idxArenaSize);
      this.idxArenaSize = Math.max(n * 4, 4096);
      this.idxArena = this.core.alloc(this.idxArenaSize);
    }
    const u32 = new Uint32Array(this.core.exports.memory.buffer, this.idxArena, n);
    for (let i = 0; i < n; i++) {
      const p = pages[i]!;
      u32[i] = Number.isInteger(p) && p >= 0 && p < this.pageCount ? p : 0xffffffff;
    }
    this.core.exports.cacheForget(this.st, this.idxArena, n);
  }

  /** Pages held now. */
  used(): number {
    return this.core.exports.cacheUsed(this.st);
  }

  /** Release the core memory. */
  dispose(): void {
    if (this.idxArenaSize) this.core.release(this.idxArena, this.idxArenaSize);
    this.idxArenaSize = 0;
    for (const [p, n] of this.blocks.reverse()) this.core.release(p, n);
    this.blocks.length = 0;
  }
}
