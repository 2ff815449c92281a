// XBZRLE: XOR-based zero run-length encoding of a page against the version the receiver already
// holds (Svärd et al., VEE 2011), byte-compatible with QEMU (migration/xbzrle.c, the portable
// encoder; facts in ../shared/QEMU-FACTS.md, golden vectors in ../shared/vectors/).
//
// Grammar (lengths are "small" ULEB128, see uleb128.ts):
//   page  = zrun nzrun | zrun nzrun page
//   zrun  = length                 bytes equal in old and new; only the first may be 0
//   nzrun = length byte{length}    changed bytes, copied from the new page; length >= 1
// Runs are maximal and the stream ends right after the last literal (no trailing zrun).
// Identical pages encode to nothing (result 0).
//
// Encoder overflow rule (QEMU's portable encoder, reproduced exactly): it fails (-1) when it is
// about to scan a zero run with fewer than 2 output bytes free, when fewer than 2 bytes are free
// after writing a zero-run length, or when a literal block does not fit. Space is checked before
// every write, so nothing is ever written at or past `outPtr + limit`.
//
// Scanning is a v128 at a time (16 bytes), then a u64, then bytes. On pages whose changes are
// dense (many short runs) the encoder checks, once, a lower bound of the output still to come
// (changed bytes + 2 length bytes per remaining run), stopping as soon as it passes the space
// left; when it does, the result is -1 whatever the details (QEMU's encoder never succeeds past
// its limit), so it gives up early instead of crawling run by run.
//
// Decoder: validates the whole stream first (QEMU's acceptance rules: at least 2 input bytes at
// every run length, no 2-byte length with a continuation bit in its second byte, no zero run but
// the first, no zero changed run, no run past the page or input end), then applies it in place.
// A rejected stream leaves the page untouched.
import {
  STATUS_OVERFLOW, STATUS_TRUNCATED, STATUS_BAD_LENGTH, STATUS_ZERO_RUN, STATUS_PAST_END,
  STATUS_BAD_ARGUMENT,
} from './status';
import { ULEB_SMALL_MAX, ulebSmallWrite } from './uleb128';

/** Largest page XBZRLE handles: a run of 16384 bytes has no small-ULEB128 length. */
export const XBZRLE_MAX_PAGE: i32 = 16384;

/** Runs emitted before the encoder checks whether the rest can still fit... */
// @ts-ignore: decorator
@inline const DENSE_CHECK_RUNS: i32 = 32;
/** ...or fewer runs, when they are packed into the first bytes of the page. */
// @ts-ignore: decorator
@inline const EARLY_CHECK_RUNS: i32 = 8;
// @ts-ignore: decorator
@inline const EARLY_CHECK_BYTES: i32 = 256;

/** First index in [i, len) where old and new differ, or len. */
// @ts-ignore: decorator
@inline function findDiff(o: usize, n: usize, i: i32, len: i32): i32 {
  // Most zero runs of real pages are short: look at the first 16 bytes before striding by 64.
  if (i + 16 <= len) {
    const eq = i8x16.bitmask(i8x16.eq(v128.load(o + <usize>i), v128.load(n + <usize>i)));
    if (eq != 0xffff) return i + ctz<i32>(~eq);
    i += 16;
  }
  while (i + 64 <= len) {
    const a = v128.or(
      v128.xor(v128.load(o + <usize>i), v128.load(n + <usize>i)),
      v128.xor(v128.load(o + <usize>i, 16), v128.load(n + <usize>i, 16)));
    const b = v128.or(
      v128.xor(v128.load(o + <usize>i, 32), v128.load(n + <usize>i, 32)),
      v128.xor(v128.load(o + <usize>i, 48), v128.load(n + <usize>i, 48)));
    if (v128.any_true(v128.or(a, b))) break;
    i += 64;
  }
  while (i + 16 <= len) {
    const eq = i8x16.bitmask(i8x16.eq(v128.load(o + <usize>i), v128.load(n + <usize>i)));
    if (eq != 0xffff) return i + ctz<i32>(~eq);
    i += 16;
  }
  while (i + 8 <= len) {
    const x = load<u64>(o + <usize>i) ^ load<u64>(n + <usize>i);
    if (x != 0) return i + <i32>(ctz<u64>(x) >> 3);
    i += 8;
  }
  while (i < len && load<u8>(o + <usize>i) == load<u8>(n + <usize>i)) i++;
  return i;
}

/** First index in [i, len) where old and new are equal, or len. */
// @ts-ignore: decorator
@inline function findEqual(o: usize, n: usize, i: i32, len: i32): i32 {
  while (i + 16 <= len) {
    const eq = i8x16.bitmask(i8x16.eq(v128.load(o + <usize>i), v128.load(n + <usize>i)));
    if (eq != 0) return i + ctz<i32>(eq);
    i += 16;
  }
  while (i + 8 <= len) {
    const x = load<u64>(o + <usize>i) ^ load<u64>(n + <usize>i);
    // Lowest zero byte of x (exact for the lowest one; see "haszero", Bit Twiddling Hacks).
    const z = (x - 0x0101010101010101) & ~x & 0x8080808080808080;
    if (z != 0) return i + <i32>(ctz<u64>(z) >> 3);
    i += 8;
  }
  while (i < len && load<u8>(o + <usize>i) != load<u8>(n + <usize>i)) i++;
  return i;
}

/**
 * Whether [i, len) (with old[i] == new[i]) certainly needs more than `budget` output bytes: every
 * changed byte is a literal and every changed run needs at least one zero-run length byte and one
 * length byte. Stops as soon as that lower bound passes the budget.
 */
function exceedsBudget(o: usize, n: usize, i: i32, len: i32, budget: i32): bool {
  let need = 0;
  let prev: u32 = 0; // 1 when the byte before the current block differs
  while (i + 64 <= len) {
    for (let k = 0; k < 64; k += 16) {
      const p = <usize>(i + k);
      const diff = ~i8x16.bitmask(i8x16.eq(v128.load(o + p), v128.load(n + p))) & 0xffff;
      // changed bytes + 2 per run start (a changed byte after an unchanged one)
      need += popcnt<i32>(diff) + 2 * popcnt<i32>(diff & ~((diff << 1) | prev));
      prev = diff >> 15;
    }
    if (need > budget) return true;
    i += 64;
  }
  while (i < len) {
    const d: u32 = load<u8>(o + <usize>i) != load<u8>(n + <usize>i) ? 1 : 0;
    need += d + 2 * (d & ~prev);
    prev = d;
    i++;
  }
  return need > budget;
}

/** Copy `len` bytes (short literals inline: bulk copies cost more than they move). */
// @ts-ignore: decorator
@inline function copyLiteral(dst: usize, src: usize, len: i32): void {
  if (len > 32) {
    memory.copy(dst, src, <usize>len);
    return;
  }
  let k = 0;
  while (k + 8 <= len) {
    store<u64>(dst + <usize>k, load<u64>(src + <usize>k));
    k += 8;
  }
  while (k < len) {
    store<u8>(dst + <usize>k, load<u8>(src + <usize>k));
    k++;
  }
}

/**
 * Encode the new page at `newPtr` against the old page at `oldPtr` (both `len` bytes,
 * 0 <= len <= 16384) into at most `limit` bytes at `outPtr`.
 * Bytes of [outPtr + result, outPtr + limit) may be overwritten (short literals are copied 16
 * bytes at a time); nothing at or past `outPtr + limit` ever is.
 * @returns the encoded length; 0 when the pages are identical; STATUS_OVERFLOW (-1) when the
 *   encoding does not fit in `limit` (at exactly QEMU's portable encoder's boundaries);
 *   STATUS_BAD_ARGUMENT for a length out of range.
 */
export function xbzrleEncode(oldPtr: usize, newPtr: usize, len: i32, outPtr: usize, limit: i32): i32 {
  if (<u32>len > <u32>XBZRLE_MAX_PAGE) return STATUS_BAD_ARGUMENT;
  let d = 0;
  let i = 0;
  let runs = 0;
  while (i < len) {
    if (d + 2 > limit) return STATUS_OVERFLOW;
    if (runs == DENSE_CHECK_RUNS || (runs == EARLY_CHECK_RUNS && i <= EARLY_CHECK_BYTES)) {
      // Many runs so far: check whether the rest can possibly fit.
      if (exceedsBudget(oldPtr, newPtr, i, len, limit - d)) return STATUS_OVERFLOW;
    }
    let j = findDiff(oldPtr, newPtr, i, len);
    if (j == len) return i == 0 ? 0 : d; // identical page, or no literal after the last zero run
    d += ulebSmallWrite(outPtr + <usize>d, <u32>(j - i));
    i = j;
    if (d + 2 > limit) return STATUS_OVERFLOW;
    j = findEqual(oldPtr, newPtr, i, len);
    const nz = j - i;
    if (<u32>nz > ULEB_SMALL_MAX) return STATUS_OVERFLOW; // only a fully changed 16 KiB page
    d += ulebSmallWrite(outPtr + <usize>d, <u32>nz);
    if (d + nz > limit) return STATUS_OVERFLOW;
    if (nz <= 16 && i + 16 <= len && d + 16 <= limit) {
      // One v128 copy; the bytes past the literal stay below the limit and are overwritten or
      // past the result.
      v128.store(outPtr + <usize>d, v128.load(newPtr + <usize>i));
    } else {
      copyLiteral(outPtr + <usize>d, newPtr + <usize>i, nz);
    }
    d += nz;
    i = j;
    runs++;
  }
  return d;
}

/** Read a small ULEB128 at `p` (2 bytes readable). Returns value | (bytes << 16), or -1. */
// @ts-ignore: decorator
@inline function readSmall(p: usize): i32 {
  const b0 = <i32>load<u8>(p);
  if ((b0 & 0x80) == 0) return b0 | (1 << 16);
  const b1 = <i32>load<u8>(p, 1);
  if ((b1 & 0x80) != 0) return -1;
  return (b0 & 0x7f) | (b1 << 7) | (2 << 16);
}

/**
 * Check an XBZRLE stream of `inLen` bytes at `inPtr` against a page of `pageLen` bytes without
 * writing anything.
 * @returns the page bytes the stream covers (end of its last literal), or a negative status
 */
export function xbzrleCheck(inPtr: usize, inLen: i32, pageLen: i32): i32 {
  if (inLen < 0 || pageLen < 0) return STATUS_BAD_ARGUMENT;
  let i = 0;
  let d = 0;
  while (i < inLen) {
    if (inLen - i < 2) return STATUS_TRUNCATED;
    let v = readSmall(inPtr + <usize>i);
    if (v < 0) return STATUS_BAD_LENGTH;
    let count = v & 0xffff;
    if (i != 0 && count == 0) return STATUS_ZERO_RUN;
    i += v >>> 16;
    d += count;
    if (d > pageLen) return STATUS_PAST_END;
    if (inLen - i < 2) return STATUS_TRUNCATED;
    v = readSmall(inPtr + <usize>i);
    if (v < 0) return STATUS_BAD_LENGTH;
    count = v & 0xffff;
    if (count == 0) return STATUS_ZERO_RUN;
    i += v >>> 16;
    if (d + count > pageLen) return STATUS_PAST_END;
    if (i + count > inLen) return STATUS_TRUNCATED;
    d += count;
    i += count;
  }
  return d;
}

/**
 * Apply the XBZRLE stream of `inLen` bytes at `inPtr` to the page of `pageLen` bytes at
 * `pagePtr`, in place. The whole stream is validated first: a rejected stream leaves the page
 * untouched.
 * @returns the page bytes the stream covers (as QEMU's decoder), or a negative status
 */
export function xbzrleDecode(inPtr: usize, inLen: i32, pagePtr: usize, pageLen: i32): i32 {
  const covered = xbzrleCheck(inPtr, inLen, pageLen);
  if (covered < 0) return covered;
  let i = 0;
  let d = 0;
  while (i < inLen) {
    let v = readSmall(inPtr + <usize>i);
    i += v >>> 16;
    d += v & 0xffff;
    v = readSmall(inPtr + <usize>i);
    i += v >>> 16;
    const count = v & 0xffff;
    copyLiteral(pagePtr + <usize>d, inPtr + <usize>i, count);
    d += count;
    i += count;
  }
  return covered;
}
