// The core's LZ4 block compressor and decoder (assembly/lz4.ts) against lz4-wasm as the oracle, both
// ways; round-trip properties; every corruption and truncation of a block yields LZ4_CORRUPT and
// never a write outside the output range.
import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import * as oracle from 'lz4-wasm-nodejs';
import { ready } from '../src/core/api.js';
import { sharedCore, type Core } from '../src/core/core.js';
import { coreLz4Compress, coreLz4Decompress, lz4BlockCompress, lz4BlockDecompress, lz4MaxCompressedSize } from '../src/codec/lz4.js';
import { PagewireError } from '../src/errors.js';
import { loadCorpus } from './helpers/corpus.js';

/** Compressible bytes: words from a small vocabulary, numbers, runs and noise (seeded xorshift). */
function sample(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  const next = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  let i = 0;
  while (i < n) {
    const r = next();
    const kind = r & 3;
    const len = Math.min(n - i, 1 + ((r >>> 8) & 31));
    for (let k = 0; k < len; k++) {
      out[i + k] = kind === 0 ? next() & 0xff : kind === 1 ? 0 : kind === 2 ? 'pagewire'.charCodeAt(k & 7) : (r >>> 16) & 0xff;
    }
    i += len;
  }
  return out;
}

function code(fn: () => unknown): string {
  try { fn(); } catch (e) { expect(e).toBeInstanceOf(PagewireError); return (e as PagewireError).code; }
  return 'none';
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('core LZ4 (assembly/lz4.ts)', () => {
  let core: Core;
  beforeAll(async () => { await ready(); core = sharedCore(); });

  it('writes blocks lz4-wasm decodes, and decodes lz4-wasm blocks (edge sizes)', () => {
    for (const n of [0, 1, 7, 8, 9, 12, 13, 14, 15, 16, 17, 31, 4095, 4096, 65535, 65536, 65537, 300000]) {
      for (const data of [sample(n, n + 1), new Uint8Array(n).fill(0x61), Uint8Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 24)]) {
        const ours = lz4BlockCompress(data);
        expect(ours.byteLength).toBeLessThanOrEqual(lz4MaxCompressedSize(n));
        expect(same(oracle.decompress(ours), data), `oracle decodes ours, n=${n}`).toBe(true);
        expect(same(lz4BlockDecompress(oracle.compress(data), n), data), `we decode the oracle's, n=${n}`).toBe(true);
        expect(same(lz4BlockDecompress(ours, n), data)).toBe(true);
      }
    }
  });

  it('compresses real pages to within 5% of lz4-wasm at the encoder\'s acceleration (1), 15% at 2', () => {
    const c = loadCorpus('vm-redis');
    const block = c.snapshots[0]!.subarray(4096 * 2048, 4096 * 2304); // 256 pages
    const theirs = oracle.compress(block).byteLength;
    for (const [accel, bound] of [[1, 1.05], [2, 1.15]] as const) {
      const ours = lz4BlockCompress(block, accel);
      expect(ours.byteLength / theirs).toBeLessThan(bound);
      expect(same(oracle.decompress(ours), block)).toBe(true);
    }
  });

  it('round-trips random and compressible bytes with any acceleration (property, both oracles)', () => {
    fc.assert(fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.tuple(fc.nat(20000), fc.nat()).map(([n, s]) => sample(n, s))),
      fc.integer({ min: 1, max: 70 }),
      (d, accel) => {
        const c = lz4BlockCompress(d, accel);
        expect(c.byteLength).toBeLessThanOrEqual(lz4MaxCompressedSize(d.byteLength));
        expect(same(oracle.decompress(c), d)).toBe(true);
        expect(same(lz4BlockDecompress(c, d.byteLength), d)).toBe(true);
        const t = oracle.compress(d);
        expect(same(lz4BlockDecompress(t, d.byteLength), d)).toBe(true);
      },
    ), { seed: 1414, numRuns: 300 });
  });

  it('keeps offsets under 64 KiB where table positions wrap (repeats 65535, 65536, 65537 bytes apart)', () => {
    // the table keeps positions modulo 64 KiB: a repeat 65536 bytes back aliases to offset 0 and one
    // 65537 back to offset 1 (tag hits whose bytes differ); only the 65535 one is a usable match
    for (const period of [65535, 65536, 65537]) {
      const data = new Uint8Array(3 * 65536 + 1000);
      let x = period;
      for (let i = 0; i < period; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; data[i] = x & 0xff; }
      for (let i = period; i < data.length; i++) data[i] = data[i - period]!;
      const ours = lz4BlockCompress(data);
      expect(same(oracle.decompress(ours), data), `period ${period}`).toBe(true);
      expect(same(lz4BlockDecompress(ours, data.length), data)).toBe(true);
      if (period === 65535) expect(ours.byteLength).toBeLessThan(0.5 * data.length);
      else expect(ours.byteLength).toBeGreaterThan(0.99 * data.length);
    }
  });

  it('works at unaligned offsets in core memory and reports overflow for a too-small output', () => {
    const data = sample(10000, 5);
    const src = core.alloc(data.byteLength + 16);
    const cap = lz4MaxCompressedSize(data.byteLength);
    const dst = core.alloc(cap + 16);
    const back = core.alloc(data.byteLength + 16);
    try {
      for (const off of [1, 3, 7]) {
        core.u8().set(data, src + off);
        const n = coreLz4Compress(core, src + off, data.byteLength, dst + off, cap);
        expect(n).toBeGreaterThan(0);
        expect(same(oracle.decompress(core.u8().slice(dst + off, dst + off + n)), data)).toBe(true);
        coreLz4Decompress(core, dst + off, n, back + off, data.byteLength);
        expect(same(core.u8().subarray(back + off, back + off + data.byteLength), data)).toBe(true);
        expect(coreLz4Compress(core, src + off, data.byteLength, dst + off, n - 1)).toBe(-1);
        expect(coreLz4Compress(core, src + off, data.byteLength, dst + off, 4)).toBe(-1);
      }
      expect(code(() => coreLz4Compress(core, src, data.byteLength, dst, cap, 0))).toBe('INVALID_ARGUMENT');
      expect(code(() => lz4BlockCompress(data, 1.5))).toBe('INVALID_ARGUMENT');
    } finally {
      core.release(back, data.byteLength + 16);
      core.release(dst, cap + 16);
      core.release(src, data.byteLength + 16);
    }
  });

  it('is deterministic: the same input gives the same block whatever was compressed before', () => {
    const a = sample(50000, 11);
    const first = lz4BlockCompress(a);
    lz4BlockCompress(sample(70000, 12));
    expect(same(lz4BlockCompress(a), first)).toBe(true);
  });

  it('turns every truncation and random corruption into LZ4_CORRUPT, never writing outside the output', () => {
    const data = sample(6000, 21);
    const block = lz4BlockCompress(data);
    const n = data.byteLength;
    const src = core.alloc(block.byteLength);
    const dst = core.alloc(n + 64);
    const guard = (): void => { core.u8().fill(0xa5, dst + n, dst + n + 64); };
    const guardIntact = (): boolean => core.u8().subarray(dst + n, dst + n + 64).every((b) => b === 0xa5);
    try {
      for (let cut = 0; cut < block.byteLength; cut++) {
        core.u8().set(block.subarray(0, cut), src);
        guard();
        expect(code(() => coreLz4Decompress(core, src, cut, dst, n)), `cut ${cut}`).toBe('LZ4_CORRUPT');
        expect(guardIntact()).toBe(true);
      }
      fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: block.byteLength - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (flips) => {
        const bad = block.slice();
        for (const [pos, x] of flips) bad[pos]! ^= x;
        core.u8().set(bad, src);
        guard();
        const c = code(() => coreLz4Decompress(core, src, bad.byteLength, dst, n));
        expect(['none', 'LZ4_CORRUPT']).toContain(c); // a flip inside literals still decodes (to other bytes)
        expect(guardIntact()).toBe(true);
      }), { seed: 77, numRuns: 400 });
      // random bytes with a plausible header
      fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.integer({ min: 0, max: 5000 }), (body, len) => {
        const bad = new Uint8Array(4 + body.byteLength);
        new DataView(bad.buffer).setUint32(0, len, true);
        bad.set(body, 4);
        expect(['none', 'LZ4_CORRUPT']).toContain(code(() => lz4BlockDecompress(bad, len)));
      }), { seed: 78, numRuns: 400 });
    } finally {
      core.release(dst, n + 64);
      core.release(src, block.byteLength);
    }
  });

  it('rejects named malformed blocks', () => {
    const hdr = (len: number, ...body: number[]): Uint8Array => Uint8Array.from([len & 255, (len >> 8) & 255, 0, 0, ...body]);
    expect(code(() => lz4BlockDecompress(hdr(4, 0x40, 1, 2, 3, 4), 5))).toBe('LZ4_CORRUPT'); // declared 4, expected 5
    expect(code(() => lz4BlockDecompress(hdr(8, 0x00, 0x01, 0x00), 8))).toBe('LZ4_CORRUPT'); // offset 1 with no output yet
    expect(code(() => lz4BlockDecompress(hdr(8, 0x10, 0x61, 0x00, 0x00), 8))).toBe('LZ4_CORRUPT'); // offset 0
    expect(code(() => lz4BlockDecompress(hdr(8, 0x10, 0x61, 0x02, 0x00), 8))).toBe('LZ4_CORRUPT'); // offset 2 > 1 byte written
    expect(code(() => lz4BlockDecompress(hdr(3, 0x20, 0x61, 0x62), 3))).toBe('LZ4_CORRUPT'); // ends short of 3 bytes
    expect(code(() => lz4BlockDecompress(hdr(1, 0x20, 0x61, 0x62), 1))).toBe('LZ4_CORRUPT'); // literals past the end
    expect(code(() => lz4BlockDecompress(hdr(20, 0x1f, 0x61, 0x01, 0x00, 0xff, 0xff), 20))).toBe('LZ4_CORRUPT'); // match length past the end
    expect(code(() => lz4BlockDecompress(hdr(300, 0xf0, 0xff, 0xff, 0xff), 300))).toBe('LZ4_CORRUPT'); // literal length ext past the end
    expect(code(() => lz4BlockDecompress(hdr(9, 0x14, 0x61, 0x01, 0x00, 0x00), 9))).toBe('none'); // 'a' + overlapping match of 8: valid
    expect(same(lz4BlockDecompress(hdr(9, 0x14, 0x61, 0x01, 0x00, 0x00), 9), new Uint8Array(9).fill(0x61))).toBe(true);
  });
});
