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
// Encoder state (EncState, u32 fields at `st`, laid out by src/codec/delta-cache.ts):
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

// Codec ids on the wire.
const C_ZERO: u32 = 0;
const C_RAW: u32 = 1;
const C_DUP: u32 = 2;
const C_XBZRLE: u32 = 3;
const C_RLE: u32 = 4;
const HEAD_NEXT: u32 = 8;

// Enable-mask bits (flags): which codecs may be used / accepted.
const F_ZERO: u32 = 1 << 0;
const F_RAW: u32 = 1 << 1;
const F_DUP: u32 = 1 << 2;
const F_XBZRLE: u32 = 1 << 3;
const F_RLE: u32 = 1 << 4;
// Encoder-only flags.
const F_CACHE: u32 = 1 << 8;    // use and update the delta cache
const F_FINAL: u32 = 1 << 9;    // final stage: no new cache entries (existing ones still kept exact)
const F_XB_ACTIVE: u32 = 1 << 10; // XBZRLE allowed in this call (QEMU: only after the first pass)

const EMPTY: u32 = 0xffffffff;
const ZERO_MARK: u32 = 0xffffffff;

// EncState field offsets (bytes).
const S_PAGE_SIZE = 0;
const S_PAGE_COUNT = 4;
const S_MAP = 8;
const S_SLOTS = 12;
const S_SLOT_PAGE = 16;
const S_SLOT_DATA = 20;
const S_SLOT_REF = 24;    // u8 per slot
const S_SLOT_HASH = 28;   // u64 per slot
const S_HINDEX = 32;      // u32 per bucket
const S_HMASK = 36;
const S_HAND = 40;
const S_SCRATCH = 44;     // 2 * pageSize bytes
// Per-call statistics (u32, cleared at the start of every encodeBatch), from byte 64.
const S_STATS = 64;
// stats: [codec 0..4] pages at 64 + 8c, out bytes at 68 + 8c; then:
const ST_UNCHANGED = 104;
const ST_HITS = 108;
const ST_MISSES = 112;
const ST_OVERFLOWS = 116;
const ST_EVICTIONS = 120;
const ST_INSERTS = 124;
/** Bytes of an EncState. */
const ENC_STATE_BYTES: i32 = 128;

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
 * F_CACHE / F_FINAL / F_XB_ACTIVE. Per-call statistics land at st + 64.
 * @returns bytes written, or -1 when outLimit is too small
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
  let o = 0;
  let prev: u32 = EMPTY; // previous page + 1 == 0 for page 0
  for (let k = 0; k < count; k++) {
    if (o + psz + 6 > outLimit) return -1;
    const p = load<u32>(idxPtr + (<usize>k << 2));
    const src = <usize>load<u32>(ptrPtr + (<usize>k << 2));
    const rec = outPtr + <usize>o;
    const m = useCache ? load<u32>(map + (<usize>p << 2)) : 0;

    if ((flags & F_ZERO) && isZero(src, <usize>ps)) {
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
    if (codec == C_RAW && !(flags & F_RAW)) return -2; // RAW is always enabled by the JS side

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

// DecState field offsets.
const D_PAGE_SIZE = 0;
const D_PAGE_COUNT = 4;
const D_BASE = 8;       // mode 0: page p at base + p * pageSize
const D_MASK = 12;      // accepted codecs (F_ZERO | F_RAW | ...)
const D_MODE = 16;      // 0 direct, 1 table
const D_TABLE = 20;     // mode 1: per record (target ptr, ref ptr); scan output: (page, ref, codec)
const D_PAGES = 24;     // u32 per record: the page written (apply output)
const D_ERR_AT = 28;    // offset of the failing record
const D_MAX_REC = 32;   // most records a block may hold (table and page-list capacity)
const D_DONE = 36;      // records fully processed (on error: those before the failing one)
/** Bytes of a DecState. */
const DEC_STATE_BYTES: i32 = 40;

// Decoder results (negative).
const DEC_RECORD_CORRUPT: i32 = -100;
const DEC_PAGE_OUT_OF_RANGE: i32 = -101;
const DEC_CODEC_NOT_NEGOTIATED: i32 = -102;
const DEC_XBZRLE_CORRUPT: i32 = -103;
const DEC_RLE_CORRUPT: i32 = -104;

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
 * @returns the number of records, or a DEC_* status (the failing record's offset at st + 28)
 */
function walk(st: usize, blk: usize, len: i32, apply: bool): i32 {
  const ps = f(st, D_PAGE_SIZE);
  const psz = <i32>ps;
  const pc = f(st, D_PAGE_COUNT);
  const mask = f(st, D_MASK);
  const mode = f(st, D_MODE);
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
      const t = table + <usize>k * 12;
      store<u32>(t, page);
      store<u32>(t, ref, 4);
      store<u32>(t, codec, 8);
    } else {
      let dst: usize;
      let rsrc: usize = 0;
      if (mode == 0) {
        dst = base + <usize>page * <usize>ps;
        if (codec == C_DUP) rsrc = base + <usize>ref * <usize>ps;
      } else {
        dst = <usize>load<u32>(table + (<usize>k << 3));
        rsrc = <usize>load<u32>(table + (<usize>k << 3), 4);
      }
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
      if (mode == 0) store<u8>(table + <usize>k, <u8>codec); // codec per record, for statistics
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
