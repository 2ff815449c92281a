// xxHash64 (Yann Collet, https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md):
// seeded, any length, little-endian reads; and a batch form hashing every page of a buffer.
// Values equal the reference (xxhash-wasm's h64) for the same bytes and seed.
import { STATUS_BAD_ARGUMENT } from './status';

// @ts-ignore: decorator
@inline const P1: u64 = 0x9E3779B185EBCA87;
// @ts-ignore: decorator
@inline const P2: u64 = 0xC2B2AE3D27D4EB4F;
// @ts-ignore: decorator
@inline const P3: u64 = 0x165667B19E3779F9;
// @ts-ignore: decorator
@inline const P4: u64 = 0x85EBCA77C2B2AE63;
// @ts-ignore: decorator
@inline const P5: u64 = 0x27D4EB2F165667C5;

// @ts-ignore: decorator
@inline function round(acc: u64, input: u64): u64 {
  return rotl<u64>(acc + input * P2, 31) * P1;
}

// @ts-ignore: decorator
@inline function merge(acc: u64, val: u64): u64 {
  return (acc ^ round(0, val)) * P1 + P4;
}

// @ts-ignore: decorator
@inline function avalanche(h: u64): u64 {
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

/** Mix the tail (< 32 bytes at `p`, `n` bytes) into `h` and finish. */
// @ts-ignore: decorator
@inline function finish(h: u64, p: usize, n: usize): u64 {
  while (n >= 8) {
    h = rotl<u64>(h ^ round(0, load<u64>(p)), 27) * P1 + P4;
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    h = rotl<u64>(h ^ (<u64>load<u32>(p) * P1), 23) * P2 + P3;
    p += 4;
    n -= 4;
  }
  while (n > 0) {
    h = rotl<u64>(h ^ (<u64>load<u8>(p) * P5), 11) * P1;
    p++;
    n--;
  }
  return avalanche(h);
}

/**
 * xxHash64 of `len` bytes at `ptr` with `seed`.
 * @returns the 64-bit hash (JS receives it as a signed BigInt)
 */
export function xxh64(ptr: usize, len: usize, seed: u64): u64 {
  let p = ptr;
  const end = ptr + len;
  let h: u64;
  if (len >= 32) {
    let v1 = seed + P1 + P2;
    let v2 = seed + P2;
    let v3 = seed;
    let v4 = seed - P1;
    const limit = end - 32;
    do {
      v1 = round(v1, load<u64>(p));
      v2 = round(v2, load<u64>(p, 8));
      v3 = round(v3, load<u64>(p, 16));
      v4 = round(v4, load<u64>(p, 24));
      p += 32;
    } while (p <= limit);
    h = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = seed + P5;
  }
  h += <u64>len;
  return finish(h, p, end - p);
}

/**
 * Streaming xxHash64 over chunks, for buffers copied into the core piece by piece.
 * State at `state` (48 bytes, 8-aligned): v1..v4, seed, total length.
 */
export function xxh64Init(state: usize, seed: u64): void {
  store<u64>(state, seed + P1 + P2);
  store<u64>(state, seed + P2, 8);
  store<u64>(state, seed, 16);
  store<u64>(state, seed - P1, 24);
  store<u64>(state, seed, 32);
  store<u64>(state, 0, 40);
}

/** Feed `len` bytes (a multiple of 32) at `ptr` into the streaming state. */
export function xxh64Update(state: usize, ptr: usize, len: usize): void {
  let v1 = load<u64>(state);
  let v2 = load<u64>(state, 8);
  let v3 = load<u64>(state, 16);
  let v4 = load<u64>(state, 24);
  let p = ptr;
  const end = ptr + (len & ~(<usize>31));
  while (p < end) {
    v1 = round(v1, load<u64>(p));
    v2 = round(v2, load<u64>(p, 8));
    v3 = round(v3, load<u64>(p, 16));
    v4 = round(v4, load<u64>(p, 24));
    p += 32;
  }
  store<u64>(state, v1);
  store<u64>(state, v2, 8);
  store<u64>(state, v3, 16);
  store<u64>(state, v4, 24);
  store<u64>(state, load<u64>(state, 40) + <u64>(len & ~(<usize>31)), 40);
}

/** Feed the last `len` bytes (any length) at `ptr` and return the hash of everything fed. */
export function xxh64Digest(state: usize, ptr: usize, len: usize): u64 {
  const whole = len & ~(<usize>31);
  if (whole > 0) xxh64Update(state, ptr, whole);
  const total = load<u64>(state, 40) + <u64>(len - whole);
  let h: u64;
  if (total >= 32) {
    const v1 = load<u64>(state);
    const v2 = load<u64>(state, 8);
    const v3 = load<u64>(state, 16);
    const v4 = load<u64>(state, 24);
    h = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = load<u64>(state, 32) + P5;
  }
  h += total;
  return finish(h, ptr + whole, len - whole);
}

/**
 * Hash `count` pages of `pageSize` bytes at `ptr`, writing one u64 (little-endian) per page at
 * `outPtr + 8 * k`.
 */
export function hashPages(ptr: usize, pageSize: usize, count: i32, seed: u64, outPtr: usize): void {
  let p = ptr;
  let o = outPtr;
  for (let k = 0; k < count; k++) {
    store<u64>(o, xxh64(p, pageSize, seed));
    p += pageSize;
    o += 8;
  }
}

/**
 * Keep a per-page hash table current (the incremental memory digest, src/memory/page-hash-table.ts):
 * for each k < count, `table[idx[k]] = xxh64(page, seed 0)` where the page is at `ptrs[k]` when
 * `ptrs` is not 0, else at `base + idx[k] * pageSize`. Indices and pointers are u32 arrays.
 * Returns count, or STATUS_BAD_ARGUMENT (before writing anything) when an index is >= pageCount,
 * so the table is never written outside its pageCount entries.
 */
export function hashPageList(base: usize, pageSize: usize, idx: usize, ptrs: usize, count: i32, pageCount: u32, table: usize): i32 {
  for (let k = 0; k < count; k++) {
    if (load<u32>(idx + (<usize>k << 2)) >= pageCount) return STATUS_BAD_ARGUMENT;
  }
  for (let k = 0; k < count; k++) {
    const page = load<u32>(idx + (<usize>k << 2));
    const at: usize = ptrs != 0 ? <usize>load<u32>(ptrs + (<usize>k << 2)) : base + <usize>page * pageSize;
    store<u64>(table + (<usize>page << 3), xxh64(at, pageSize, 0));
  }
  return count;
}
