/**
 * Memory digest: xxh64 (seed 0) over the little-endian array of per-page xxh64 hashes (seed 0),
 * pages in guest order, 16 lowercase hex chars. Hashed by the {@link PageHasher} (in place when
 * the guest memory lives in the core, staged per batch otherwise). {@link PageHashTable} keeps the
 * same digest current incrementally.
 */
import { Arena, type Core } from '../core/core.js';
import type { GuestMemory } from './guest-memory.js';
import { PageHasher } from './page-hasher.js';

/** Per-page xxh64 hashes (seed 0) of all of `memory`, computed in `core`. */
export function pageHashes(memory: GuestMemory, core: Core): BigUint64Array {
  const hasher = new PageHasher(core);
  try {
    return hasher.hashAll(memory, 0n);
  } finally {
    hasher.dispose();
  }
}

/** The memory digest (16 hex chars): xxh64 over the per-page hashes. */
export function memoryDigest(memory: GuestMemory, core: Core): string {
  const hasher = new PageHasher(core);
  const hashes = new Arena(core);
  try {
    const ptr = hashes.ensure(memory.pageCount * 8);
    hasher.hashToCore(memory, 0, memory.pageCount, 0n, ptr);
    return hex64(core.exports.xxh64(ptr, memory.pageCount * 8, 0n));
  } finally {
    hashes.dispose();
    hasher.dispose();
  }
}

/** Digest of an array of per-page hashes (what {@link memoryDigest} computes from memory). */
export function digestOfHashes(hashes: BigUint64Array, core: Core): string {
  const a = new Arena(core);
  try {
    const ptr = a.ensure(hashes.byteLength);
    core.u8().set(new Uint8Array(hashes.buffer, hashes.byteOffset, hashes.byteLength), ptr);
    return hex64(core.exports.xxh64(ptr, hashes.byteLength, 0n));
  } finally {
    a.dispose();
  }
}

/** A 64-bit hash (as the core returns it: signed) as the digest's 16 lowercase hex chars. */
export function hex64(signed: bigint): string {
  return BigInt.asUintN(64, signed).toString(16).padStart(16, '0');
}
