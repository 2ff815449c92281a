// xxHash64 against the reference (xxhash-wasm's h64): every length 0..300, pages, chunked large
// buffers, several seeds including ones above 2^63.
import xxhashWasm from 'xxhash-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { ready, xxh64, hashPages, PagewireError, ErrorCode } from '../src/index.js';
import { CHUNK_BYTES } from '../src/core/api.js';

const SEEDS = [0n, 1n, 0x9e3779b1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 63n + 12345n, 2n ** 64n - 1n];
let h64: (data: Uint8Array, seed?: bigint) => bigint;

/** Deterministic pseudo-random bytes (xorshift32). */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function expectCode(fn: () => unknown, code: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PagewireError);
  expect((err as PagewireError).code).toBe(code);
}

beforeAll(async () => {
  await ready();
  h64 = (await xxhashWasm()).h64Raw;
});

describe('xxh64', () => {
  it('equals xxhash-wasm h64 on every length 0..300 and several seeds', () => {
    for (let n = 0; n <= 300; n++) {
      const data = bytes(n, n + 7);
      for (const seed of SEEDS) expect(xxh64(data, seed), `len ${n} seed ${seed}`).toBe(h64(data, seed));
    }
  });

  it('defaults the seed to 0 and returns an unsigned 64-bit value', () => {
    const data = bytes(100, 3);
    expect(xxh64(data)).toBe(h64(data, 0n));
    let sawHigh = false;
    for (let n = 0; n < 64; n++) {
      const h = xxh64(bytes(n, n));
      expect(h >= 0n && h < 2n ** 64n).toBe(true);
      if (h >= 2n ** 63n) sawHigh = true;
    }
    expect(sawHigh).toBe(true);
  });

  it('matches the published empty-input value', () => {
    expect(xxh64(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
  });

  it('hashes buffers larger than a chunk (streaming path) and subarrays at odd offsets', () => {
    for (const n of [CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 31, 3 * CHUNK_BYTES + 33]) {
      const data = bytes(n, n);
      for (const seed of [0n, 2n ** 64n - 1n]) expect(xxh64(data, seed), `len ${n}`).toBe(h64(data, seed));
    }
    const big = bytes(70_000, 9);
    const sub = big.subarray(3, 65_540);
    expect(xxh64(sub, 5n)).toBe(h64(sub.slice(), 5n));
  });

  it('rejects bad arguments with INVALID_ARGUMENT', () => {
    expectCode(() => xxh64([1, 2, 3] as unknown as Uint8Array), ErrorCode.INVALID_ARGUMENT);
    expectCode(() => xxh64(new Uint8Array(1), -1n), ErrorCode.INVALID_ARGUMENT);
    expectCode(() => xxh64(new Uint8Array(1), 2n ** 64n), ErrorCode.INVALID_ARGUMENT);
    expectCode(() => xxh64(new Uint8Array(1), 'x' as unknown as bigint), ErrorCode.INVALID_ARGUMENT);
  });
});

describe('hashPages', () => {
  it('equals xxhash-wasm h64 per page for every page size and several seeds', () => {
    for (const pageSize of [512, 1024, 4096, 16384, 65536]) {
      const count = Math.max(1, Math.min(40, (CHUNK_BYTES * 2.5) / pageSize));
      const data = bytes(pageSize * count, pageSize);
      for (const seed of [0n, 42n, 2n ** 63n + 1n]) {
        const got = hashPages(data, pageSize, seed);
        expect(got).toBeInstanceOf(BigUint64Array);
        expect(got.length).toBe(count);
        for (let k = 0; k < count; k++) {
          expect(got[k], `page ${k} of ${pageSize}`).toBe(h64(data.subarray(k * pageSize, (k + 1) * pageSize), seed));
        }
      }
    }
  });

  it('spans several chunks (batches larger than the arena)', () => {
    const pageSize = 4096;
    const count = (CHUNK_BYTES / pageSize) * 3 + 5;
    const data = bytes(pageSize * count, 77);
    const got = hashPages(data, pageSize);
    for (let k = 0; k < count; k += 7) expect(got[k]).toBe(h64(data.subarray(k * pageSize, (k + 1) * pageSize), 0n));
    expect(got[count - 1]).toBe(h64(data.subarray((count - 1) * pageSize), 0n));
  });

  it('gives equal hashes to equal pages and handles an empty buffer', () => {
    const data = new Uint8Array(4096 * 3);
    data.fill(7, 4096, 8192);
    const got = hashPages(data, 4096);
    expect(got[0]).toBe(got[2]);
    expect(got[0]).not.toBe(got[1]);
    expect(hashPages(new Uint8Array(0), 4096).length).toBe(0);
  });

  it('rejects bad page sizes and partial pages with INVALID_ARGUMENT', () => {
    const data = new Uint8Array(8192);
    for (const ps of [0, 256, 511, 1000, 3000, 4095, 131072, -4096, 4096.5, NaN]) {
      expectCode(() => hashPages(data, ps), ErrorCode.INVALID_ARGUMENT);
    }
    expectCode(() => hashPages(new Uint8Array(4097), 4096), ErrorCode.INVALID_ARGUMENT);
    expectCode(() => hashPages(data, 4096, -5n), ErrorCode.INVALID_ARGUMENT);
  });
});
