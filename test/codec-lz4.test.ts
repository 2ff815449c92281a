import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import * as oracle from 'lz4-wasm-nodejs';
import { loadLz4, lz4Compress, lz4Decompress } from '../src/codec/lz4.js';
import { PagewireError } from '../src/errors.js';

function sample(n: number, seed: number): Uint8Array {
  // compressible but varied: words from a small vocabulary plus noise
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x & 7) === 0 ? x >>> 24 : 'pagewire'.charCodeAt(i & 7);
  }
  return out;
}

function code(fn: () => unknown): string {
  try { fn(); } catch (e) { expect(e).toBeInstanceOf(PagewireError); return (e as PagewireError).code; }
  return 'none';
}

describe('lz4 (our loader of lz4-wasm)', () => {
  beforeAll(async () => { await loadLz4(); });

  it('produces the same bytes as lz4-wasm-nodejs and round-trips both ways', () => {
    for (const n of [0, 1, 17, 4096, 65536, 300000]) {
      const data = sample(n, n + 1);
      const ours = lz4Compress(data);
      const theirs = oracle.compress(data);
      expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
      expect(Buffer.from(oracle.decompress(ours)).equals(Buffer.from(data))).toBe(true);
      expect(Buffer.from(lz4Decompress(theirs, n)).equals(Buffer.from(data))).toBe(true);
    }
  });

  it('round-trips random data (property)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), (d) => {
      const c = lz4Compress(d);
      expect(Buffer.from(c).equals(Buffer.from(oracle.compress(d)))).toBe(true);
      expect(Buffer.from(lz4Decompress(c, d.byteLength)).equals(Buffer.from(d))).toBe(true);
    }), { seed: 42, numRuns: 200 });
  });

  it('rejects a declared length other than the expected one before decompressing', () => {
    const c = lz4Compress(sample(4096, 3));
    expect(code(() => lz4Decompress(c, 4095))).toBe('LZ4_CORRUPT');
    const huge = c.slice(); huge[3] = 0x7f; // declares ~2 GiB
    expect(code(() => lz4Decompress(huge, 4096))).toBe('LZ4_CORRUPT');
    expect(code(() => lz4Decompress(new Uint8Array(2), 0))).toBe('LZ4_CORRUPT');
  });

  it('turns corrupt blocks into LZ4_CORRUPT (never a trap), and keeps working after', () => {
    const data = sample(8192, 9);
    const c = lz4Compress(data);
    fc.assert(fc.property(fc.integer({ min: 4, max: c.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), (pos, x) => {
      const bad = c.slice(); bad[pos] ^= x;
      let out: Uint8Array | undefined;
      try { out = lz4Decompress(bad, 8192); } catch (e) {
        expect(e).toBeInstanceOf(PagewireError); expect((e as PagewireError).code).toBe('LZ4_CORRUPT'); return;
      }
      expect(out.byteLength).toBe(8192); // a mutation may still decode (to other bytes)
    }), { seed: 7, numRuns: 300 });
    expect(code(() => lz4Decompress(c.subarray(0, c.byteLength - 5), 8192))).toBe('LZ4_CORRUPT');
    expect(Buffer.from(lz4Decompress(c, 8192)).equals(Buffer.from(data))).toBe(true);
  });
});
