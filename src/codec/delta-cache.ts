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

/** Slots (never more than guest pages; at least one) and duplicate-index entries (a power of two >= 4 per slot). */
function dimensions(pageCount: number, pageSize: number, cacheBytes: number): { slots: number; hsize: number } {
  const slots = Math.max(1, Math.min(pageCount, Math.floor(cacheBytes / pageSize)));
  let hsize = 16;
  while (hsize < slots * 4) hsize *= 2;
  return { slots, hsize };
}

/** Bytes of core memory a cache of these dimensions takes (its blocks, each 16-byte aligned). */
export function deltaCacheCoreBytes(pageCount: number, pageSize: number, cacheBytes = DEFAULT_CACHE_BYTES): number {
  const { slots, hsize } = dimensions(pageCount, pageSize, cacheBytes);
  const a16 = (n: number): number => Math.ceil(n / 16) * 16;
  return a16(ENC_STATE_BYTES) + a16(pageCount * 4) + a16(slots * 4) + a16(slots) + a16(slots * 8) + a16(hsize * 4) + a16(slots * pageSize) + a16(2 * pageSize + 64);
}

/**
 * Fault in, ahead of a migration, the core memory a delta cache (plus `extraBytes` of encoder
 * arenas) will take: allocate it, write it, hand it back to the core's free list, where the cache
 * of an encoder created later in this core finds it. On our VMs the first write to fresh memory
 * costs 8-12 us of CPU per 4 KiB page (a 32 MiB cache: ~8k faults, 60-100 ms of CPU, 300 ms of
 * wall time at load 15), paid in round 0 otherwise. For a caller that owns the guest's setup
 * (a simulator, a host that reserves migration memory when it starts a guest); the cost is the
 * caller's, outside any migration report, and should be reported by it.
 * @returns bytes written
 */
export function prefaultDeltaCache(core: Core, pageCount: number, pageSize: number, cacheBytes = DEFAULT_CACHE_BYTES, extraBytes = 0): number {
  const n = deltaCacheCoreBytes(pageCount, pageSize, cacheBytes) + extraBytes;
  const p = core.alloc(n);
  core.u8().fill(0, p, p + n);
  core.release(p, n);
  return n;
}

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
    const { slots, hsize } = dimensions(pageCount, pageSize, cacheBytes);
    this.slots = slots;
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
