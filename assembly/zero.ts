// Zero-page detection, 64 bytes (four v128) per step, word and byte tail after. A zero page costs
// a few bytes on the wire (QEMU's "duplicate" pages, RAM_SAVE_FLAG_ZERO).

/** Whether the `len` bytes at `ptr` are all zero. */
export function isZero(ptr: usize, len: usize): bool {
  let p = ptr;
  const end = ptr + len;
  if (len >= 64) {
    const end64 = end - 64;
    while (p <= end64) {
      const a = v128.or(v128.load(p), v128.load(p, 16));
      const b = v128.or(v128.load(p, 32), v128.load(p, 48));
      if (v128.any_true(v128.or(a, b))) return false;
      p += 64;
    }
  }
  while (p + 8 <= end) {
    if (load<u64>(p) != 0) return false;
    p += 8;
  }
  while (p < end) {
    if (load<u8>(p) != 0) return false;
    p++;
  }
  return true;
}

/**
 * Check `count` pages of `pageSize` bytes at `ptr`; writes 1 (zero page) or 0 per page at
 * `outPtr + k`.
 * @returns the number of zero pages
 */
export function zeroPages(ptr: usize, pageSize: usize, count: i32, outPtr: usize): i32 {
  let zeros = 0;
  let p = ptr;
  for (let k = 0; k < count; k++) {
    const z = isZero(p, pageSize);
    store<u8>(outPtr + <usize>k, <u8>z);
    zeros += <i32>z;
    p += pageSize;
  }
  return zeros;
}
