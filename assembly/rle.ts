// RLE: pagewire's run-length encoding of one page (or any buffer), aimed at pages made of long
// runs of a repeated byte or a repeated 8-byte word (the ME2 case: Ma et al., 2013, run-length
// encoding of migrated memory). Not compatible with anything else; the format is ours.
//
// Grammar:
//   stream = op*                        the ops' outputs, in order, are exactly the buffer
//   op     = head payload
//   head   = ULEB128(count << 2 | kind) u32, minimal form, 1..5 bytes; count >= 1
//   kind 0  LIT   payload = count bytes          output: those bytes
//   kind 1  BYTE  payload = 1 byte b             output: count copies of b
//   kind 2  WORD  payload = 8 bytes w            output: count copies of w (8 * count bytes)
//   kind 3        reserved: invalid
// An empty buffer encodes to an empty stream. A buffer holds at most 2^30 - 1 bytes.
//
// Encoder (greedy, left to right): a byte run of >= 8 equal bytes becomes BYTE; otherwise two or
// more equal consecutive words (at any offset) become WORD; everything between runs is LIT. Run
// starts are found 16 candidate positions at a time with v128 compares of the buffer against
// itself shifted by 1 and by 8 bytes. If the greedy stream does not fit the limit the buffer is
// sent as one LIT op, so the encoding never exceeds `rleMaxEncodedSize(len)` = len + the head of
// one LIT op (at most 5 bytes).
//
// Decoder: validates the whole stream first (head form, kind, count >= 1, input bounds, output
// bounds, output exactly filled, no trailing bytes), then writes. It never writes outside
// [outPtr, outPtr + outLen) and leaves the output untouched when it rejects.
import {
  STATUS_OVERFLOW, STATUS_TRUNCATED, STATUS_BAD_LENGTH, STATUS_ZERO_RUN, STATUS_PAST_END,
  STATUS_BAD_OP, STATUS_INCOMPLETE, STATUS_TRAILING, STATUS_BAD_ARGUMENT,
} from './status';
import { ulebSize, ulebWrite } from './uleb128';

/** Op kinds (low two bits of the head). */
export const RLE_LIT: u32 = 0;
export const RLE_BYTE: u32 = 1;
export const RLE_WORD: u32 = 2;

/** Largest buffer the format describes (count << 2 must fit in a u32). */
export const RLE_MAX_LEN: i32 = (1 << 30) - 1;

/** Shortest byte run worth a BYTE op. */
// @ts-ignore: decorator
@inline const MIN_BYTE_RUN: i32 = 8;

/** Largest encoding of `len` bytes: one LIT op. */
export function rleMaxEncodedSize(len: i32): i32 {
  return len <= 0 ? 0 : ulebSize(<u32>len << 2) + len;
}

/** Run kind found by the last findRunStart (RLE_BYTE or RLE_WORD). */
let foundKind: u32 = 0;

/** Keep bits j where bits j..j+6 of m are all set. */
// @ts-ignore: decorator
@inline function seven(m: u32): u32 {
  const a = m & (m >> 1); // 2 in a row
  const b = a & (a >> 2); // 4 in a row
  return b & (a >> 4) & (m >> 6); // 4 + 2 + 1 = 7 in a row
}

/** Keep bits j where bits j..j+7 of m are all set. */
// @ts-ignore: decorator
@inline function eight(m: u32): u32 {
  const a = m & (m >> 1);
  const b = a & (a >> 2);
  return b & (b >> 4);
}

/**
 * First position p >= i where a byte run of >= 8 starts (sets foundKind = RLE_BYTE) or two equal
 * consecutive words start (RLE_WORD); len when there is none.
 */
function findRunStart(src: usize, i: i32, len: i32): i32 {
  while (i + 40 <= len) {
    const p = src + <usize>i;
    const lo = v128.load(p);
    const hi = v128.load(p, 16);
    // Bit k: byte p+k equals byte p+k+1 (k < 32).
    const e1 = <u32>i8x16.bitmask(i8x16.eq(lo, v128.load(p, 1))) |
      (<u32>i8x16.bitmask(i8x16.eq(hi, v128.load(p, 17))) << 16);
    // Bit k: byte p+k equals byte p+k+8.
    const e8 = <u32>i8x16.bitmask(i8x16.eq(lo, v128.load(p, 8))) |
      (<u32>i8x16.bitmask(i8x16.eq(hi, v128.load(p, 24))) << 16);
    const byteStarts = seven(e1) & 0xffff;
    const wordStarts = eight(e8) & 0xffff;
    const any = byteStarts | wordStarts;
    if (any != 0) {
      const k = ctz<u32>(any);
      foundKind = (byteStarts >> k) & 1 ? RLE_BYTE : RLE_WORD;
      return i + <i32>k;
    }
    i += 16;
  }
  while (i + 8 <= len) {
    const w = load<u64>(src + <usize>i);
    if (w == <u64>load<u8>(src + <usize>i) * 0x0101010101010101) {
      foundKind = RLE_BYTE;
      return i;
    }
    if (i + 16 <= len && w == load<u64>(src + <usize>i, 8)) {
      foundKind = RLE_WORD;
      return i;
    }
    i++;
  }
  return len;
}

/** Length of the run of byte `b` starting at j. */
// @ts-ignore: decorator
@inline function byteRun(src: usize, j: i32, len: i32, b: u8): i32 {
  const s = i8x16.splat(b);
  let q = j;
  while (q + 16 <= len) {
    const m = i8x16.bitmask(i8x16.eq(v128.load(src + <usize>q), s));
    if (m != 0xffff) return q + ctz<i32>(~m) - j;
    q += 16;
  }
  while (q < len && load<u8>(src + <usize>q) == b) q++;
  return q - j;
}

/** Number of consecutive copies of word `w` starting at j. */
// @ts-ignore: decorator
@inline function wordRun(src: usize, j: i32, len: i32, w: u64): i32 {
  const s = i64x2.splat(w);
  let q = j;
  while (q + 16 <= len) {
    if (!i8x16.all_true(i8x16.eq(v128.load(src + <usize>q), s))) break;
    q += 16;
  }
  while (q + 8 <= len && load<u64>(src + <usize>q) == w) q += 8;
  return (q - j) >> 3;
}

/** Write one LIT op for [from, to) at out + d if it fits; returns the new d or -1. */
// @ts-ignore: decorator
@inline function putLiteral(src: usize, from: i32, to: i32, out: usize, d: i32, limit: i32): i32 {
  const n = to - from;
  if (n == 0) return d;
  const head = <u32>n << 2 | RLE_LIT;
  if (<i64>d + <i64>ulebSize(head) + <i64>n > <i64>limit) return -1;
  d += ulebWrite(out + <usize>d, head);
  memory.copy(out + <usize>d, src + <usize>from, <usize>n);
  return d + n;
}

/** Greedy encoding; -1 when it does not fit `limit`. */
function encodeRuns(src: usize, len: i32, out: usize, limit: i32): i32 {
  let d = 0;
  let lit = 0; // start of the pending literal
  let i = 0;
  while (i < len) {
    const j = findRunStart(src, i, len);
    if (j >= len) break;
    if (foundKind == RLE_BYTE) {
      const b = load<u8>(src + <usize>j);
      const r = byteRun(src, j, len, b);
      d = putLiteral(src, lit, j, out, d, limit);
      if (d < 0) return -1;
      const head = <u32>r << 2 | RLE_BYTE;
      if (<i64>d + <i64>ulebSize(head) + 1 > <i64>limit) return -1;
      d += ulebWrite(out + <usize>d, head);
      store<u8>(out + <usize>d, b);
      d += 1;
      i = j + r;
    } else {
      const w = load<u64>(src + <usize>j);
      const n = wordRun(src, j, len, w);
      d = putLiteral(src, lit, j, out, d, limit);
      if (d < 0) return -1;
      const head = <u32>n << 2 | RLE_WORD;
      if (<i64>d + <i64>ulebSize(head) + 8 > <i64>limit) return -1;
      d += ulebWrite(out + <usize>d, head);
      store<u64>(out + <usize>d, w);
      d += 8;
      i = j + (n << 3);
    }
    lit = i;
  }
  return putLiteral(src, lit, len, out, d, limit);
}

/**
 * RLE-encode `len` bytes at `srcPtr` into at most `limit` bytes at `outPtr`.
 * @returns the encoded length (0 for len 0), STATUS_OVERFLOW (-1) when even one LIT op does not
 *   fit `limit`, or STATUS_BAD_ARGUMENT for len outside 0..RLE_MAX_LEN
 */
export function rleEncode(srcPtr: usize, len: i32, outPtr: usize, limit: i32): i32 {
  if (<u32>len > <u32>RLE_MAX_LEN) return STATUS_BAD_ARGUMENT;
  if (len == 0) return 0;
  const d = encodeRuns(srcPtr, len, outPtr, limit);
  if (d >= 0) return d;
  const head = <u32>len << 2 | RLE_LIT;
  if (<i64>ulebSize(head) + <i64>len > <i64>limit) return STATUS_OVERFLOW;
  const h = ulebWrite(outPtr, head);
  memory.copy(outPtr + <usize>h, srcPtr, <usize>len);
  return h + len;
}

/** Parsed head of the last readHead: value, and the bytes it took. */
let headValue: u32 = 0;

/** Read a minimal u32 ULEB128 at in + i (inLen bounds); returns its size or a negative status. */
// @ts-ignore: decorator
@inline function readHead(inPtr: usize, i: i32, inLen: i32): i32 {
  let v: u32 = 0;
  let shift: u32 = 0;
  let k = 0;
  while (true) {
    if (i + k >= inLen) return STATUS_TRUNCATED;
    const b = <u32>load<u8>(inPtr + <usize>(i + k));
    k++;
    if (k == 5) {
      if (b > 0x0f) return STATUS_BAD_LENGTH; // continuation or bits past 32
    }
    v |= (b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      if (k > 1 && b == 0) return STATUS_BAD_LENGTH; // non-minimal
      headValue = v;
      return k;
    }
    shift += 7;
  }
  return STATUS_BAD_LENGTH;
}

/**
 * Check an RLE stream of `inLen` bytes at `inPtr` for an output of `outLen` bytes, writing nothing.
 * @returns outLen, or a negative status
 */
export function rleCheck(inPtr: usize, inLen: i32, outLen: i32): i32 {
  if (inLen < 0 || outLen < 0) return STATUS_BAD_ARGUMENT;
  let i = 0;
  let d: i64 = 0;
  while (i < inLen) {
    if (d == <i64>outLen) return STATUS_TRAILING;
    const h = readHead(inPtr, i, inLen);
    if (h < 0) return h;
    i += h;
    const kind = headValue & 3;
    const count = <i64>(headValue >> 2);
    if (count == 0) return STATUS_ZERO_RUN;
    let produced: i64;
    let payload: i32;
    if (kind == RLE_LIT) {
      produced = count;
      payload = <i32>min<i64>(count, 0x7fffffff);
    } else if (kind == RLE_BYTE) {
      produced = count;
      payload = 1;
    } else if (kind == RLE_WORD) {
      produced = count << 3;
      payload = 8;
    } else {
      return STATUS_BAD_OP;
    }
    if (d + produced > <i64>outLen) return STATUS_PAST_END;
    if (<i64>i + <i64>payload > <i64>inLen) return STATUS_TRUNCATED;
    d += produced;
    i += payload;
  }
  return d == <i64>outLen ? outLen : STATUS_INCOMPLETE;
}

/**
 * Decode the RLE stream of `inLen` bytes at `inPtr` into exactly `outLen` bytes at `outPtr`.
 * The whole stream is validated first: a rejected stream leaves the output untouched.
 * @returns outLen, or a negative status
 */
export function rleDecode(inPtr: usize, inLen: i32, outPtr: usize, outLen: i32): i32 {
  const ok = rleCheck(inPtr, inLen, outLen);
  if (ok < 0) return ok;
  let i = 0;
  let d = 0;
  while (i < inLen) {
    i += readHead(inPtr, i, inLen);
    const kind = headValue & 3;
    const count = <i32>(headValue >> 2);
    const dst = outPtr + <usize>d;
    if (kind == RLE_LIT) {
      memory.copy(dst, inPtr + <usize>i, <usize>count);
      i += count;
      d += count;
    } else if (kind == RLE_BYTE) {
      memory.fill(dst, load<u8>(inPtr + <usize>i), <usize>count);
      i += 1;
      d += count;
    } else {
      const w = load<u64>(inPtr + <usize>i);
      const s = i64x2.splat(w);
      const n = count << 3;
      let q = 0;
      while (q + 16 <= n) {
        v128.store(dst + <usize>q, s);
        q += 16;
      }
      if (q < n) store<u64>(dst + <usize>q, w);
      i += 8;
      d += n;
    }
  }
  return ok;
}
