// Page codec batch entry points (src/codec): one call encodes a batch of pages into page records,
// one call applies a block of records. The record format is documented in docs/RECORDS.md; the
// JS side (src/codec/encoder.ts, decoder.ts) frames blocks, adds LZ4 and keeps statistics.
//
// Record (inside a block):
//   head  u8: bits 0..2 codec (0 ZERO, 1 RAW, 2 DUP, 3 XBZRLE, 4 RLE; 5..7 invalid),
//             bit 3 NEXT (page = previous record's page + 1; the first record's "previous" is -1),
//             bits 4..7 must be 0
//   page  u32 ULEB128, only when NEXT is clear
//   ZERO   nothing                      the page becomes all zero
//   RAW    pageSize bytes
//   DUP    ULEB128 ref page             the page becomes a copy of the target's page `ref` (ref != page)
//   XBZRLE ULEB128 len (1..pageSize), len bytes of QEMU XBZRLE against the target's current page
//   RLE    ULEB128 len (1..), len bytes of pagewire RLE (assembly/rle.ts) decoding to pageSize bytes
//
// Encoder state (EncState, u32 fields at `st`, offsets in ./layout.ts, filled by src/codec/delta-cache.ts):
//   the delta cache: per guest page a map word (0 = target's version unknown, ZERO_MARK = the
//   target holds a zero page, else slot + 1), per slot its page (EMPTY = free), its xxh64, a
//   CLOCK reference bit and pageSize bytes of data (what the target holds of that page); a
//   direct-mapped hash index (hash & mask -> slot + 1, lossy, always re-verified) for duplicates.
// Invariant: map[p] == s + 1  <=>  slotPage[s] == p, and slot s's data equals the target's page p
// as of the end of the records written so far.
import { xxh64 } from './xxhash';
import { isZero } from './zero';
import { xbzrleEncode, xbzrleDecode, XBZRLE_MAX_PAGE } from './xbzrle';
import { rleEncode, rleDecode } from './rle';

import {
  CODEC_ZERO as C_ZERO, CODEC_RAW as C_RAW, CODEC_DUP as C_DUP, CODEC_XBZRLE as C_XBZRLE, CODEC_RLE as C_RLE, HEAD_NEXT,
  F_ZERO, F_RAW, F_DUP, F_XBZRLE, F_RLE, F_CACHE, F_FINAL, F_XB_ACTIVE,
  ENC_PAGE_SIZE as S_PAGE_SIZE, ENC_PAGE_COUNT as S_PAGE_COUNT, ENC_MAP as S_MAP, ENC_SLOTS as S_SLOTS,
  ENC_SLOT_PAGE as S_SLOT_PAGE, ENC_SLOT_DATA as S_SLOT_DATA, ENC_SLOT_REF as S_SLOT_REF, ENC_SLOT_HASH as S_SLOT_HASH,
  ENC_HINDEX as S_HINDEX, ENC_HMASK as S_HMASK, ENC_HAND as S_HAND, ENC_SCRATCH as S_SCRATCH, ENC_STATS as S_STATS,
  ENC_DIGEST as S_DIGEST, ENC_ZERO_HASH as S_ZERO_HASH,
  ENC_STAT_UNCHANGED as ST_UNCHANGED, ENC_STAT_HITS as ST_HITS, ENC_STAT_MISSES as ST_MISSES,
  ENC_STAT_OVERFLOWS as ST_OVERFLOWS, ENC_STAT_EVICTIONS as ST_EVICTIONS, ENC_STAT_INSERTS as ST_INSERTS,
  ENC_STATE_BYTES, ENC_EMPTY as EMPTY, ENC_ZERO_MARK as ZERO_MARK,
  DEC_PAGE_SIZE as D_PAGE_SIZE, DEC_PAGE_COUNT as D_PAGE_COUNT, DEC_BASE as D_BASE, DEC_MASK as D_MASK,
  DEC_TABLE as D_TABLE, DEC_PAGES as D_PAGES, DEC_ERR_AT as D_ERR_AT, DEC_MAX_REC as D_MAX_REC, DEC_DONE as D_DONE,
  DEC_SCAN_ENTRY_BYTES,
} from './layout';
import {
  STATUS_OVERFLOW, STATUS_BAD_ARGUMENT,
  STATUS_RECORD_CORRUPT as DEC_RECORD_CORRUPT, STATUS_PAGE_OUT_OF_RANGE as DEC_PAGE_OUT_OF_RANGE,
  STATUS_CODEC_NOT_NEGOTIATED as DEC_CODEC_NOT_NEGOTIATED, STATUS_XBZRLE_CORRUPT as DEC_XBZRLE_CORRUPT,
  STATUS_RLE_CORRUPT as DEC_RLE_CORRUPT,
} from './status';

// @ts-ignore: decorator
@inline function f(st: usize, off: i32): u32 { return load<u32>(st + <usize>off); }
// @ts-ignore: decorator
@inline function setf(st: usize, off: i32, v: u32): void { store<u32>(st + <usize>off, v); }
// @ts-ignore: decorator
@inline function bump(st: usize, off: i32, v: u32): void { store<u32>(st + <usize>off, load<u32>(st + <usize>off) + v); }

/** Whether `len` bytes (a multiple of 64) at a and b are equal. */
function pageEq(a: usize, b: usize, len: i32): bool {
  let i: usize = 0;
  const n = <usize>len;
  while (i < n) {
    const x = v128.or(v128.xor(v128.load(a + i), v128.load(b + i)), v128.xor(v128.load(a + i, 16), v128.load(b + i, 16)));
    const y = v128.or(v128.xor(v128.load(a + i, 32), v128.load(b + i, 32)), v128.xor(v128.load(a + i, 48), v128.load(b + i, 48)));
    if (v128.any_true(v128.or(x, y))) return false;
    i += 64;
  }
  return true;
}

// @ts-ignore: decorator
@inline function ulebWrite32(p: usize, v: u32): i32 {
  let n = 0;
  while (v >= 0x80) {
    store<u8>(p + <usize>n, <u8>(v | 0x80));
    v >>= 7;
    n++;
  }
  store<u8>(p + <usize>n, <u8>v);
  return n + 1;
}

/** Write a record head (+ page) at `p`; returns bytes written. */
// @ts-ignore: decorator
@inline function writeHead(p: usize, codec: u32, page: u32, prev: u32): i32 {
  if (page == prev + 1) {
    store<u8>(p, <u8>(codec | HEAD_NEXT));
    return 1;
  }
  store<u8>(p, <u8>codec);
  return 1 + ulebWrite32(p + 1, page);
}

/** Drop page p's cache entry or zero mark. */
function unmap(st: usize, p: u32): void {
  const mapAt = <usize>f(st, S_MAP) + (<usize>p << 2);
  const m = load<u32>(mapAt);
  if (m != 0 && m != ZERO_MARK) store<u32>(<usize>f(st, S_SLOT_PAGE) + (<usize>(m - 1) << 2), EMPTY);
  store<u32>(mapAt, 0);
}

/** A slot for page p (which has none): CLOCK second chance over all slots. */
function takeSlot(st: usize, p: u32): u32 {
  const slots = f(st, S_SLOTS);
  const refs = <usize>f(st, S_SLOT_REF);
  const slotPage = <usize>f(st, S_SLOT_PAGE);
  let s: u32;
  if (slots >= f(st, S_PAGE_COUNT)) {
    s = p; // a slot per guest page: slot p only ever holds page p, so it is free; no eviction
  } else {
    let h = f(st, S_HAND);
    for (;;) {
      if (load<u8>(refs + <usize>h) == 0 || load<u32>(slotPage + (<usize>h << 2)) == EMPTY) break;
      store<u8>(refs + <usize>h, 0);
      h = h + 1 == slots ? 0 : h + 1;
    }
    s = h;
    setf(st, S_HAND, h + 1 == slots ? 0 : h + 1);
  }
  const old = load<u32>(slotPage + (<usize>s << 2));
  if (old != EMPTY) {
    store<u32>(<usize>f(st, S_MAP) + (<usize>old << 2), 0);
    bump(st, ST_EVICTIONS, 1);
  }
  store<u32>(slotPage + (<usize>s << 2), p);
  store<u32>(<usize>f(st, S_MAP) + (<usize>p << 2), s + 1);
  store<u8>(refs + <usize>s, 0);
  bump(st, ST_INSERTS, 1);
  return s;
}

/** Store page content `src` (hash h) as slot s's data and index it. */
// @ts-ignore: decorator
@inline function fillSlot(st: usize, s: u32, src: usize, h: u64, flags: u32): void {
  const ps = f(st, S_PAGE_SIZE);
  memory.copy(<usize>f(st, S_SLOT_DATA) + <usize>s * <usize>ps, src, <usize>ps);
  if (flags & F_DUP) {
    store<u64>(<usize>f(st, S_SLOT_HASH) + (<usize>s << 3), h);
    store<u32>(<usize>f(st, S_HINDEX) + ((<usize>(<u32>h & f(st, S_HMASK))) << 2), s + 1);
  }
}

/**
 * Encode `count` pages into records at `outPtr` (at most `outLimit` bytes; the caller provides
 * count * (pageSize + 6) bytes, the worst case). Page k has index load<u32>(idxPtr + 4k) (checked
 * < pageCount by the caller) and its bytes at load<u32>(ptrPtr + 4k). `flags`: enable mask and
 * F_CACHE / F_FINAL / F_XB_ACTIVE. Per-call statistics land at st + ENC_STATS.
 * @returns bytes written, STATUS_OVERFLOW when outLimit is too small, STATUS_BAD_ARGUMENT when
 *   a page needs RAW and F_RAW is clear
 */
export function encodeBatch(st: usize, idxPtr: usize, ptrPtr: usize, count: i32, outPtr: usize, outLimit: i32, flags: u32): i32 {
  memory.fill(st + S_STATS, 0, ENC_STATE_BYTES - S_STATS);
  const ps = f(st, S_PAGE_SIZE);
  const psz = <i32>ps;
  const map = <usize>f(st, S_MAP);
  const slotData = <usize>f(st, S_SLOT_DATA);
  const slotPage = <usize>f(st, S_SLOT_PAGE);
  const slotHash = <usize>f(st, S_SLOT_HASH);
  const refs = <usize>f(st, S_SLOT_REF);
  const scratch = <usize>f(st, S_SCRATCH);
  const scratch2 = scratch + <usize>ps;
  const useCache = (flags & F_CACHE) != 0;
  const canXb = (flags & F_XBZRLE) != 0 && (flags & F_XB_ACTIVE) != 0 && psz <= XBZRLE_MAX_PAGE;
  const final = (flags & F_FINAL) != 0;
  // the memory digest's per-page hashes, written as pages are encoded (the dup hash when there is one)
  const digest = <usize>f(st, S_DIGEST);
  const zeroHash = load<u64>(st + <usize>S_ZERO_HASH);
  const dupHash = useCache && (flags & F_DUP) != 0;
  let o = 0;
  let prev: u32 = EMPTY; // previous page + 1 == 0 for page 0
  for (let k = 0; k < count; k++) {
    if (o + psz + 6 > outLimit) return STATUS_OVERFLOW;
    const p = load<u32>(idxPtr + (<usize>k << 2));
    const src = <usize>load<u32>(ptrPtr + (<usize>k << 2));
    const rec = outPtr + <usize>o;
    const m = useCache ? load<u32>(map + (<usize>p << 2)) : 0;

    if ((flags & F_ZERO) && isZero(src, <usize>ps)) {
      if (digest != 0) store<u64>(digest + (<usize>p << 3), zeroHash);
      if (m == ZERO_MARK) { bump(st, ST_UNCHANGED, 1); continue; }
      const n = writeHead(rec, C_ZERO, p, prev);
      o += n;
      bump(st, S_STATS + 0, 1); bump(st, S_STATS + 4, n);
      prev = p;
      if (useCache) {
        unmap(st, p);
        store<u32>(map + (<usize>p << 2), ZERO_MARK);
      }
      continue;
    }

    const hit = m != 0 && m != ZERO_MARK;
    const s = hit ? m - 1 : 0;
    const old = slotData + <usize>s * <usize>ps;
    let h: u64 = 0;
    if (useCache) {
      if (hit) bump(st, ST_HITS, 1); else bump(st, ST_MISSES, 1);
      if (flags & F_DUP) h = xxh64(src, <usize>ps, 0);
    }
    if (digest != 0) {
      if (!dupHash) h = xxh64(src, <usize>ps, 0); // (h is used for the dup index only with dupHash)
      store<u64>(digest + (<usize>p << 3), h);
    }

    let codec: u32 = C_RAW;
    let plen: i32 = psz;       // payload bytes (after head and length)
    let pay: usize = src;      // where the payload is
    let ref: u32 = 0;
    let xb = -2;
    if (hit) {
      if (canXb) {
        xb = xbzrleEncode(old, src, psz, scratch, psz - 8);
        if (xb == 0) { // identical: the target has it
          bump(st, ST_UNCHANGED, 1);
          store<u8>(refs + <usize>s, 1);
          continue;
        }
        if (xb > 0) { codec = C_XBZRLE; plen = xb; pay = scratch; }
        else bump(st, ST_OVERFLOWS, 1);
      } else if (pageEq(old, src, psz)) {
        bump(st, ST_UNCHANGED, 1);
        store<u8>(refs + <usize>s, 1);
        continue;
      }
    }
    if ((flags & F_DUP) && useCache && plen > 8) {
      const b = load<u32>(<usize>f(st, S_HINDEX) + ((<usize>(<u32>h & f(st, S_HMASK))) << 2));
      if (b != 0) {
        const t = b - 1;
        const q = load<u32>(slotPage + (<usize>t << 2));
        if (q != EMPTY && q != p && load<u64>(slotHash + (<usize>t << 3)) == h &&
            pageEq(slotData + <usize>t * <usize>ps, src, psz)) {
          codec = C_DUP; ref = q; plen = 0;
          store<u8>(refs + <usize>t, 1);
        }
      }
    }
    if ((flags & F_RLE) && plen > 64) {
      // RLE is for pages of long runs: give up early (a quarter of a page) so that pages
      // without runs cost little; what RLE leaves is LZ4's job
      const lim = plen < (psz >> 2) ? plen - 2 : (psz >> 2);
      const r = rleEncode(src, psz, scratch2, lim);
      if (r > 0) { codec = C_RLE; plen = r; pay = scratch2; }
    }
    if (codec == C_RAW && !(flags & F_RAW)) return STATUS_BAD_ARGUMENT; // RAW is always enabled by the JS side

    let n = writeHead(rec, codec, p, prev);
    if (codec == C_DUP) {
      n += ulebWrite32(rec + <usize>n, ref);
    } else if (codec != C_RAW) {
      n += ulebWrite32(rec + <usize>n, <u32>plen);
    }
    if (plen > 0) memory.copy(rec + <usize>n, pay, <usize>plen);
    n += plen;
    o += n;
    bump(st, S_STATS + (<i32>codec << 3), 1);
    bump(st, S_STATS + (<i32>codec << 3) + 4, n);
    prev = p;

    if (useCache) {
      if (hit) {
        fillSlot(st, s, src, h, flags);
        store<u8>(refs + <usize>s, 1);
      } else if (!final) {
        if (m == ZERO_MARK) store<u32>(map + (<usize>p << 2), 0);
        const ns = takeSlot(st, p);
        fillSlot(st, ns, src, h, flags);
      } else if (m == ZERO_MARK) {
        store<u32>(map + (<usize>p << 2), 0);
      }
    }
  }
  return o;
}

/** Forget what the target holds of `count` pages listed at `idxPtr` (indices >= pageCount ignored). */
export function cacheForget(st: usize, idxPtr: usize, count: i32): void {
  const pc = f(st, S_PAGE_COUNT);
  for (let k = 0; k < count; k++) {
    const p = load<u32>(idxPtr + (<usize>k << 2));
    if (p < pc) unmap(st, p);
  }
}

/** Pages currently cached (slots in use). */
export function cacheUsed(st: usize): i32 {
  const slots = f(st, S_SLOTS);
  const slotPage = <usize>f(st, S_SLOT_PAGE);
  let n = 0;
  for (let s: u32 = 0; s < slots; s++) if (load<u32>(slotPage + (<usize>s << 2)) != EMPTY) n++;
  return n;
}

// ---- Decoder -------------------------------------------------------------------------------

/** Read a u32 ULEB128 at p (bounded by end). Value in low 32 bits, bytes in bits 32..39; 0 on error. */
function readUleb(p: usize, end: usize): u64 {
  let v: u64 = 0;
  let shift: u64 = 0;
  let i: usize = 0;
  while (i < 5) {
    if (p + i >= end) return 0;
    const b = <u64>load<u8>(p + i);
    v |= (b & 0x7f) << shift;
    i++;
    if ((b & 0x80) == 0) {
      if (v > 0xffffffff) return 0;
      return v | (<u64>i << 32);
    }
    shift += 7;
  }
  return 0;
}

/**
 * Walk the records of a block of `len` bytes at `blk`. With apply = false only the structure is
 * validated (page ranges, codecs, lengths) and (page, ref, codec) triples are written at the table
 * (ref = EMPTY when none). With apply = true the records are applied; payloads are validated
 * before the page is written (a rejected payload leaves its page untouched).
 * @returns the number of records, or a negative status (the failing record's offset at st + DEC_ERR_AT)
 */
function walk(st: usize, blk: usize, len: i32, apply: bool): i32 {
  const ps = f(st, D_PAGE_SIZE);
  const psz = <i32>ps;
  const pc = f(st, D_PAGE_COUNT);
  const mask = f(st, D_MASK);
  const base = <usize>f(st, D_BASE);
  const table = <usize>f(st, D_TABLE);
  const pagesOut = <usize>f(st, D_PAGES);
  const end = blk + <usize>len;
  let p = blk;
  let prev: u32 = EMPTY;
  const maxRec = <i32>f(st, D_MAX_REC);
  let k = 0;
  while (p < end) {
    setf(st, D_ERR_AT, <u32>(p - blk));
    setf(st, D_DONE, <u32>k);
    if (k >= maxRec) return DEC_RECORD_CORRUPT;
    const head = <u32>load<u8>(p);
    p++;
    const codec = head & 7;
    if ((head & 0xf0) != 0 || codec > C_RLE) return DEC_RECORD_CORRUPT;
    if (((mask >> codec) & 1) == 0) return DEC_CODEC_NOT_NEGOTIATED;
    let page: u32;
    if (head & HEAD_NEXT) {
      page = prev + 1;
    } else {
      const v = readUleb(p, end);
      if (v == 0) return DEC_RECORD_CORRUPT;
      page = <u32>v;
      p += <usize>(v >> 32);
    }
    if (page >= pc) return DEC_PAGE_OUT_OF_RANGE;
    let ref: u32 = EMPTY;
    let plen = 0;
    if (codec == C_RAW) {
      plen = psz;
    } else if (codec == C_DUP) {
      const v = readUleb(p, end);
      if (v == 0) return DEC_RECORD_CORRUPT;
      ref = <u32>v;
      p += <usize>(v >> 32);
      if (ref >= pc) return DEC_PAGE_OUT_OF_RANGE;
      if (ref == page) return DEC_RECORD_CORRUPT;
    } else if (codec != C_ZERO) {
      const v = readUleb(p, end);
      if (v == 0) return DEC_RECORD_CORRUPT;
      plen = <i32><u32>v;
      p += <usize>(v >> 32);
      if (plen <= 0) return DEC_RECORD_CORRUPT;
      if (codec == C_XBZRLE && (plen > psz || psz > XBZRLE_MAX_PAGE)) return DEC_XBZRLE_CORRUPT;
    }
    if (<usize>plen > end - p) return DEC_RECORD_CORRUPT;
    if (!apply) {
      const t = table + <usize>k * <usize>DEC_SCAN_ENTRY_BYTES;
      store<u32>(t, page);
      store<u32>(t, ref, 4);
      store<u32>(t, codec, 8);
    } else {
      const dst = base + <usize>page * <usize>ps;
      const rsrc: usize = codec == C_DUP ? base + <usize>ref * <usize>ps : 0;
      if (codec == C_ZERO) {
        memory.fill(dst, 0, <usize>ps);
      } else if (codec == C_RAW) {
        memory.copy(dst, p, <usize>ps);
      } else if (codec == C_DUP) {
        memory.copy(dst, rsrc, <usize>ps);
      } else if (codec == C_XBZRLE) {
        if (xbzrleDecode(p, plen, dst, psz) < 0) return DEC_XBZRLE_CORRUPT;
      } else {
        if (rleDecode(p, plen, dst, psz) < 0) return DEC_RLE_CORRUPT;
      }
      store<u32>(pagesOut + (<usize>k << 2), page);
      store<u8>(table + <usize>k, <u8>codec); // codec per record, for statistics
    }
    p += <usize>plen;
    prev = page;
    k++;
  }
  return k;
}

/** Validate a block's structure and list (page, ref, codec) per record at the table. */
export function decodeScan(st: usize, blk: usize, len: i32): i32 {
  return walk(st, blk, len, false);
}

/** Apply a block of records (see walk). */
export function decodeApply(st: usize, blk: usize, len: i32): i32 {
  return walk(st, blk, len, true);
}
