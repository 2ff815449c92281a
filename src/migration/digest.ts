/**
 * Memory digest: xxh64 (seed 0) over the little-endian array of per-page xxh64 hashes (seed 0),
 * pages in guest order. Computed in the core, in batches, in place when the guest memory lives in
 * core memory; copied per batch otherwise. 16 lowercase hex chars.
 */
import { Arena, type Core } from '../core/core.js';
import type { GuestMemory } from '../memory/guest-memory.js';


const BATCH_BYTES = 4 * 1024 * 1024;

/** Per-page xxh64 hashes (seed 0) of all of `memory`, computed in `core`. */
export function pageHashes(memory: GuestMemory, core: Core): BigUint64Array {
  const out = new BigUint64Array(memory.pageCount);
  withPageHashes(memory, core, (ptr, n) => {
    out.set(new BigUint64Array(core.exports.memory.buffer, ptr, n));
  });
  return out;
}

/** The memory digest (16 hex chars): xxh64 over the per-page hashes. */
export function memoryDigest(memory: GuestMemory, core: Core): string {
  const ex = core.exports;
  let d = 0n;
  withPageHashes(memory, core, (ptr, n) => { d = BigInt.asUintN(64, ex.xxh64(ptr, n * 8, 0n)); });
  return d.toString(16).padStart(16, '0');
}

/** Digest of an array of per-page hashes (what {@link memoryDigest} computes from memory). */
export function digestOfHashes(hashes: BigUint64Array, core: Core): string {
  const ex = core.exports;
  const a = new Arena(core);
  try {
    const ptr = a.ensure(hashes.byteLength);
    core.u8().set(new Uint8Array(hashes.buffer, hashes.byteOffset, hashes.byteLength), ptr);
    return BigInt.asUintN(64, ex.xxh64(ptr, hashes.byteLength, 0n)).toString(16).padStart(16, '0');
  } finally {
    a.dispose();
  }
}

/** Compute all page hashes into a core arena and hand (pointer, count) to `use`. */
function withPageHashes(memory: GuestMemory, core: Core, use: (ptr: number, n: number) => void): void {
  const ex = core.exports;
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
    use(hPtr, n);
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
