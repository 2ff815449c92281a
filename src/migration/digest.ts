/**
 * Memory digest: xxh64 (seed 0) over the little-endian array of per-page xxh64 hashes (seed 0),
 * pages in guest order. Computed in the core, in batches, in place when the guest memory lives in
 * core memory; copied per batch otherwise. 16 lowercase hex chars.
 */
import { Arena, type Core } from '../core/core.js';
import type { GuestMemory } from '../memory/guest-memory.js';

type HashPages = (ptr: number, pageSize: number, count: number, seed: bigint, outPtr: number) => number;
type Xxh64 = (ptr: number, len: number, seed: bigint) => bigint;

const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Per-page hashes of all of `memory` into a new BigUint64Array... kept in core memory:
 * returns the pointer and releases nothing; use {@link memoryDigest} for the digest.
 */
export function memoryDigest(memory: GuestMemory, core: Core): string {
  const ex = core.exports as unknown as { hashPages: HashPages; xxh64: Xxh64 };
  const pageSize = memory.pageSize;
  const n = memory.pageCount;
  const hashes = new Arena(core);
  const staging = new Arena(core);
  try {
    const hPtr = hashes.ensure(n * 8);
    if (memory.core === core) {
      ex.hashPages(memory.basePtr, pageSize, n, 0n, hPtr);
    } else {
      const per = Math.max(1, Math.floor(BATCH_BYTES / pageSize));
      const sPtr = staging.ensure(per * pageSize);
      for (let first = 0; first < n; first += per) {
        const count = Math.min(per, n - first);
        const u8 = core.u8();
        for (let i = 0; i < count; ) {
          // copy the longest contiguous run available from this page on
          const run = contiguousRun(memory, first + i, count - i);
          u8.set(run, sPtr + i * pageSize);
          i += run.byteLength / pageSize;
        }
        ex.hashPages(sPtr, pageSize, count, 0n, hPtr + first * 8);
      }
    }
    const d = BigInt.asUintN(64, ex.xxh64(hPtr, n * 8, 0n));
    return d.toString(16).padStart(16, '0');
  } finally {
    staging.dispose();
    hashes.dispose();
  }
}

function contiguousRun(memory: GuestMemory, first: number, count: number): Uint8Array {
  let c = count;
  for (;;) {
    const v = memory.pages(first, c);
    if (v) return v;
    c = Math.max(1, c >> 1);
  }
}
