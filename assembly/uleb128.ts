// ULEB128 lengths (unsigned little-endian base 128: seven bits per byte, low group first, top bit
// set on every byte but the last). Two flavours:
//  - "small" ULEB128, QEMU's XBZRLE lengths (migration/xbzrle.c, util/cutils.c uleb128_*_small):
//    n < 128 is one byte; 128 <= n <= 16383 is two bytes `(n & 0x7f) | 0x80`, `n >> 7`; a second
//    byte with its top bit set is invalid. The decoder accepts non-minimal forms (`85 00`), as QEMU's.
//  - u32 ULEB128 for the RLE format: 1..5 bytes, minimal form only, value < 2^32.
// Callers check the space before writing and the input bounds before reading.

/** Largest value a small ULEB128 can hold (14 bits). */
export const ULEB_SMALL_MAX: u32 = 0x3fff;

/** Bytes `ulebSmallWrite` uses for `n` (n <= 16383). */
// @ts-ignore: decorator
@inline export function ulebSmallSize(n: u32): i32 {
  return n < 0x80 ? 1 : 2;
}

/** Write `n` (<= 16383) as a small ULEB128 at `p`; returns the bytes written (1 or 2). */
// @ts-ignore: decorator
@inline export function ulebSmallWrite(p: usize, n: u32): i32 {
  if (n < 0x80) {
    store<u8>(p, <u8>n);
    return 1;
  }
  store<u8>(p, <u8>((n & 0x7f) | 0x80));
  store<u8>(p, <u8>(n >> 7), 1);
  return 2;
}

/** Bytes a u32 ULEB128 of `n` takes (1..5). */
// @ts-ignore: decorator
@inline export function ulebSize(n: u32): i32 {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** Write `n` as a minimal u32 ULEB128 at `p`; returns the bytes written (1..5). */
// @ts-ignore: decorator
@inline export function ulebWrite(p: usize, n: u32): i32 {
  let k = 0;
  while (n >= 0x80) {
    store<u8>(p + <usize>k, <u8>((n & 0x7f) | 0x80));
    n >>= 7;
    k++;
  }
  store<u8>(p + <usize>k, <u8>n);
  return k + 1;
}
