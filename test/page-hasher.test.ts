// The page hasher and the contiguous-run helper (src/memory/): every way guest pages are hashed
// (in place in the core, staged from regions, a list in any order, plain bytes) gives xxhash-wasm's
// h64 of each page, across region boundaries and batch boundaries; GuestMemory.run never crosses a
// region; a raw image written run by run reads back byte for byte.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import xxhash from 'xxhash-wasm';
import { createCore, type Core } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { PageHasher, stagePages } from '../src/memory/page-hasher.js';
import { memoryDigest, pageHashes } from '../src/memory/digest.js';
import { loadMemoryImage, writeRawImage } from '../src/memory/dump-node.js';
import { ErrorCode, PagewireError } from '../src/errors.js';

const PS = 4096;
let core: Core;
let h64: (data: Uint8Array, seed?: bigint) => bigint;
let dir: string;

beforeAll(async () => {
  core = await createCore();
  h64 = (await xxhash()).h64Raw;
  dir = mkdtempSync(join(tmpdir(), 'pw-hasher-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Regions of the given page counts, every page different. */
function external(pages: number[], salt: number): { mem: GuestMemory; bytes: Uint8Array } {
  const total = pages.reduce((a, b) => a + b, 0);
  const bytes = new Uint8Array(total * PS);
  for (let i = 0; i < bytes.length; i += 4) new DataView(bytes.buffer).setUint32(i, Math.imul(i + salt, 2654435761) >>> 0, true);
  let at = 0;
  const bufs = pages.map((n) => { const b = bytes.slice(at * PS, (at + n) * PS); at += n; return b; });
  return { mem: GuestMemory.external(bufs, PS), bytes };
}

function oracle(bytes: Uint8Array, page: number, seed = 0n): bigint {
  return h64(bytes.subarray(page * PS, (page + 1) * PS), seed);
}

describe('GuestMemory.run', () => {
  it('is the longest view from a page, cut at its region\'s end, never empty, and range-checked', () => {
    const { mem, bytes } = external([3, 1, 5], 1);
    expect(mem.run(0, 100).byteLength).toBe(3 * PS);
    expect(mem.run(1, 100).byteLength).toBe(2 * PS);
    expect(mem.run(3, 100).byteLength).toBe(PS);
    expect(mem.run(4, 2).byteLength).toBe(2 * PS);
    expect(mem.run(8, 9).byteLength).toBe(PS);
    expect(mem.run(5, 1)).toEqual(bytes.subarray(5 * PS, 6 * PS));
    for (const [first, n] of [[-1, 1], [9, 1], [0, 0], [1.5, 1]] as const) {
      let err: unknown;
      try { mem.run(first, n); } catch (e) { err = e; }
      expect(err instanceof PagewireError && err.code, `${first},${n}`).toBe(ErrorCode.PAGE_OUT_OF_RANGE);
    }
    const inCore = GuestMemory.inCore(core, [{ name: 'a', pageCount: 2 }, { name: 'b', pageCount: 2 }], PS);
    expect(inCore.run(1, 10).byteLength).toBe(3 * PS); // one buffer in the core: no cut
  });
});

describe('PageHasher', () => {
  it('hashes any range of a many-region memory as xxhash-wasm does, for any batch size and seed (property)', () => {
    const { mem, bytes } = external([2, 7, 1, 4, 9], 7);
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 22 }), fc.integer({ min: 1, max: 23 }), fc.integer({ min: 1, max: 8 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      (first, count, batchPages, seed) => {
        count = Math.min(count, 23 - first);
        const hasher = new PageHasher(core, batchPages * PS);
        try {
          const out = new BigUint64Array(23);
          hasher.hash(mem, first, count, seed, out);
          for (let p = 0; p < 23; p++) expect(out[p]).toBe(p >= first && p < first + count ? oracle(bytes, p, seed) : 0n);
        } finally {
          hasher.dispose();
        }
      },
    ), { seed: 12, numRuns: 60 });
  });

  it('gives the same hashes in place in the core, staged, as a shuffled list, and from plain bytes', () => {
    const { mem, bytes } = external([5, 11, 3], 3);
    const inCore = GuestMemory.inCore(core, 19, PS);
    inCore.pages(0, 19)!.set(bytes);
    const expected = BigUint64Array.from({ length: 19 }, (_, p) => oracle(bytes, p, 5n));
    const hasher = new PageHasher(core, 4 * PS);
    try {
      expect(hasher.hashAll(mem, 5n)).toEqual(expected);
      expect(hasher.hashAll(inCore, 5n)).toEqual(expected);
      const list = [18, 0, 7, 6, 5, 12, 3];
      for (const m of [mem, inCore]) {
        const out = new BigUint64Array(19);
        hasher.hashList(m, list, 5n, out);
        for (let p = 0; p < 19; p++) expect(out[p]).toBe(list.includes(p) ? expected[p] : 0n);
      }
      const fromBytes = new BigUint64Array(19);
      hasher.hashBytes(bytes, PS, 5n, fromBytes);
      expect(fromBytes).toEqual(expected);
    } finally {
      hasher.dispose();
    }
    // the digest is xxh64 over the little-endian page hashes, wherever the pages live
    const seed0 = pageHashes(mem, core);
    const digest = h64(new Uint8Array(seed0.buffer)).toString(16).padStart(16, '0');
    expect(memoryDigest(mem, core)).toBe(digest);
    expect(memoryDigest(inCore, core)).toBe(digest);
  });

  it('stagePages copies a range across regions into the core byte for byte', () => {
    const { mem, bytes } = external([1, 2, 3], 9);
    const dst = core.alloc(5 * PS);
    stagePages(mem, 1, 5, core, dst);
    expect(core.u8().subarray(dst, dst + 5 * PS)).toEqual(bytes.subarray(PS, 6 * PS));
    core.release(dst, 5 * PS);
  });
});

describe('writeRawImage', () => {
  it('writes every region in order: loadMemoryImage reads the same bytes back', async () => {
    const { mem, bytes } = external([3, 1, 6], 11);
    const path = join(dir, 'img.raw');
    await writeRawImage(mem, path);
    const img = await loadMemoryImage(path, { pageSize: PS });
    expect(img.memory.pageCount).toBe(10);
    expect(new Uint8Array(Buffer.concat(img.memory.regionViews()))).toEqual(bytes);
  });
});
