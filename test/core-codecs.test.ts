// XBZRLE and RLE properties (fast-check, fixed seed), an independent byte-at-a-time model of
// QEMU's portable XBZRLE encoder and decoder as oracle, adversarial pages, random and truncated
// streams into the decoders, zero-page detection, edge sizes and the memory.grow path.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ready, isZeroPage, zeroPages, xbzrleEncode, xbzrleEncodeInto, xbzrleDecode, xbzrleMaxEncodedSize,
  rleEncode, rleEncodeInto, rleDecode, rleMaxEncodedSize, PagewireError, ErrorCode,
} from '../src/index.js';
import { sharedCore } from '../src/core/core.js';

const SEED = 20261122;
const RUNS = 300;

// ---- oracles -------------------------------------------------------------------------------

function ulebSmall(out: number[], n: number): void {
  if (n < 0x80) out.push(n);
  else out.push((n & 0x7f) | 0x80, n >> 7);
}

/** QEMU's portable encoder, byte at a time, same overflow checks (from QEMU-FACTS.md). */
function modelEncode(oldP: Uint8Array, newP: Uint8Array, limit: number): number[] | -1 | 0 {
  const slen = newP.length;
  const out: number[] = [];
  let i = 0;
  while (i < slen) {
    if (out.length + 2 > limit) return -1;
    let z = 0;
    while (i < slen && oldP[i] === newP[i]) { z++; i++; }
    if (z === slen) return 0;
    if (i === slen) return out;
    ulebSmall(out, z);
    if (out.length + 2 > limit) return -1;
    const start = i;
    while (i < slen && oldP[i] !== newP[i]) i++;
    const nz = i - start;
    if (nz > 0x3fff) return -1;
    ulebSmall(out, nz);
    if (out.length + nz > limit) return -1;
    for (let k = start; k < i; k++) out.push(newP[k]!);
  }
  return out;
}

/** QEMU's decoder rules; returns the new page or null on reject (never partial). */
function modelDecode(enc: Uint8Array, page: Uint8Array): Uint8Array | null {
  const out = page.slice();
  let i = 0;
  let d = 0;
  const read = (): number => {
    const b0 = enc[i]!;
    if (!(b0 & 0x80)) { i += 1; return b0; }
    const b1 = enc[i + 1]!;
    if (b1 & 0x80) return -1;
    i += 2;
    return (b0 & 0x7f) | (b1 << 7);
  };
  while (i < enc.length) {
    if (enc.length - i < 2) return null;
    const first = i === 0;
    const z = read();
    if (z < 0 || (!first && z === 0)) return null;
    d += z;
    if (d > page.length) return null;
    if (enc.length - i < 2) return null;
    const nz = read();
    if (nz <= 0) return null;
    if (d + nz > page.length || i + nz > enc.length) return null;
    out.set(enc.subarray(i, i + nz), d);
    d += nz;
    i += nz;
  }
  return out;
}

/** Reference RLE decoder from the grammar in assembly/rle.ts; null on reject. */
function modelRleDecode(enc: Uint8Array, outLen: number): Uint8Array | null {
  const out = new Uint8Array(outLen);
  let i = 0;
  let d = 0;
  while (i < enc.length) {
    if (d === outLen) return null;
    let v = 0;
    let k = 0;
    for (;;) {
      if (i + k >= enc.length) return null;
      const b = enc[i + k]!;
      k++;
      if (k === 5 && b > 0x0f) return null;
      v += (b & 0x7f) * 2 ** (7 * (k - 1));
      if (!(b & 0x80)) {
        if (k > 1 && b === 0) return null;
        break;
      }
    }
    i += k;
    const kind = v % 4;
    const count = Math.floor(v / 4);
    if (count === 0 || kind === 3) return null;
    const produced = kind === 2 ? count * 8 : count;
    const payload = kind === 0 ? count : kind === 1 ? 1 : 8;
    if (d + produced > outLen || i + payload > enc.length) return null;
    if (kind === 0) out.set(enc.subarray(i, i + count), d);
    else if (kind === 1) out.fill(enc[i]!, d, d + count);
    else for (let r = 0; r < count; r++) out.set(enc.subarray(i, i + 8), d + r * 8);
    d += produced;
    i += payload;
  }
  return d === outLen ? out : null;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof PagewireError) return e.code;
    throw e;
  }
  return undefined;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

// ---- generators ----------------------------------------------------------------------------

const XBZ_SIZES = [8, 16, 64, 256, 1024, 4096, 8192, 16384];

/** An old page and a new page made of random edits (bytes, runs, words, every-other-byte). */
const pagePair = fc.record({
  sizeIdx: fc.integer({ min: 0, max: XBZ_SIZES.length - 1 }),
  oldSeed: fc.integer(),
  fill: fc.constantFrom('zero', 'random', 'pattern'),
  edits: fc.array(fc.record({
    kind: fc.constantFrom('byte', 'run', 'word', 'alternate'),
    at: fc.nat(),
    len: fc.integer({ min: 1, max: 600 }),
    value: fc.integer({ min: 0, max: 255 }),
  }), { maxLength: 12 }),
}).map(({ sizeIdx, oldSeed, fill, edits }) => {
  const n = XBZ_SIZES[sizeIdx]!;
  const oldP = new Uint8Array(n);
  let x = oldSeed | 1;
  for (let i = 0; i < n; i++) {
    if (fill === 'random') { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; oldP[i] = x & 0xff; }
    else if (fill === 'pattern') oldP[i] = (i * 31) & 0xff;
  }
  const newP = oldP.slice();
  for (const e of edits) {
    const at = e.at % n;
    if (e.kind === 'byte') newP[at] = e.value;
    else if (e.kind === 'run') for (let i = at; i < Math.min(n, at + e.len); i++) newP[i] = (newP[i]! + 1 + e.value) & 0xff;
    else if (e.kind === 'word') for (let i = at & ~7; i < Math.min(n, (at & ~7) + 8); i++) newP[i] = e.value;
    else for (let i = at; i < Math.min(n, at + e.len * 2); i += 2) newP[i] = newP[i]! ^ 0x5a;
  }
  return { oldP, newP };
});

/** Pages of runs of repeated bytes and words with literal noise (the RLE target), any length. */
const runPage = fc.record({
  len: fc.oneof(fc.constantFrom(0, 1, 7, 8, 9, 15, 16, 17, 39, 40, 41, 4095, 4096, 4097), fc.integer({ min: 0, max: 9000 })),
  parts: fc.array(fc.record({
    kind: fc.constantFrom('byte', 'word', 'noise', 'alternate', 'short'),
    len: fc.integer({ min: 1, max: 700 }),
    value: fc.integer({ min: 0, max: 255 }),
    word: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 }),
  }), { minLength: 1, maxLength: 20 }),
}).map(({ len, parts }) => {
  const a = new Uint8Array(len);
  let p = 0;
  let k = 0;
  while (p < len) {
    const part = parts[k++ % parts.length]!;
    const end = Math.min(len, p + part.len);
    for (let i = p; i < end; i++) {
      const r = i - p;
      a[i] = part.kind === 'byte' ? part.value
        : part.kind === 'word' ? part.word[r & 7]!
          : part.kind === 'noise' ? (i * 2654435761) >>> 24
            : part.kind === 'alternate' ? (r & 1 ? part.value : 0)
              : (r % 7 < 6 ? part.value : r);
    }
    p = end;
  }
  return a;
});

beforeAll(async () => {
  await ready();
});

// ---- XBZRLE --------------------------------------------------------------------------------

describe('XBZRLE properties', () => {
  it('encodes exactly as the model of QEMU\'s portable encoder, for any limit', () => {
    fc.assert(fc.property(pagePair, fc.integer({ min: 0, max: 20000 }), ({ oldP, newP }, limitSeed) => {
      // Limits around the interesting boundary: exact size, +-1, +-2, and random.
      const full = modelEncode(oldP, newP, 1 << 20);
      const exact = Array.isArray(full) ? full.length : 0;
      for (const limit of [exact - 2, exact - 1, exact, exact + 1, exact + 2, limitSeed % (2 * newP.length + 3), newP.length]) {
        if (limit < 0) continue;
        const want = modelEncode(oldP, newP, limit);
        const got = xbzrleEncode(oldP, newP, limit);
        if (want === -1) expect(got).toBeNull();
        else if (want === 0) expect(got!.length).toBe(0);
        else expect(Array.from(got!)).toEqual(want);
      }
    }), { seed: SEED, numRuns: RUNS });
  });

  it('round-trips: decode(old, encode(old, new)) == new', () => {
    fc.assert(fc.property(pagePair, ({ oldP, newP }) => {
      const enc = xbzrleEncode(oldP, newP, xbzrleMaxEncodedSize(newP.length));
      if (newP.length < 16384) expect(enc).not.toBeNull();
      if (enc === null) return;
      const page = oldP.slice();
      xbzrleDecode(enc, page);
      expect(same(page, newP)).toBe(true);
    }), { seed: SEED, numRuns: RUNS });
  });

  it('handles adversarial pages: alternating bytes, all different, all same', () => {
    for (const n of [8, 4096, 8192, 16384]) {
      const zero = new Uint8Array(n);
      const alt = new Uint8Array(n).map((_, i) => (i & 1 ? 0 : 0xff));
      const allDiff = new Uint8Array(n).fill(1);
      const same7 = new Uint8Array(n).fill(7);
      for (const [name, p] of [['alternate', alt], ['all different', allDiff], ['all same', same7]] as const) {
        const want = modelEncode(zero, p, n);
        const got = xbzrleEncode(zero, p);
        expect(got === null ? -1 : got.length, `${name} ${n}`).toBe(Array.isArray(want) ? want.length : want);
        // With room enough it round-trips (except a fully changed 16 KiB page: no run length for it).
        const big = xbzrleEncode(zero, p, xbzrleMaxEncodedSize(n));
        if (n === 16384 && name !== 'alternate') {
          expect(big).toBeNull();
          continue;
        }
        const page = zero.slice();
        xbzrleDecode(big!, page);
        expect(same(page, p), `${name} ${n}`).toBe(true);
      }
      expect(xbzrleEncode(same7, same7)!.length).toBe(0);
    }
  });

  it('gives up on every-other-byte pages at exactly the model\'s boundary', () => {
    const n = 4096;
    const oldP = new Uint8Array(n);
    const newP = new Uint8Array(n).map((_, i) => (i & 1 ? 0 : 1));
    const full = modelEncode(oldP, newP, 1 << 20) as number[];
    expect(full.length).toBe(3 * 2048);
    for (const limit of [n, full.length - 3, full.length - 2, full.length - 1, full.length, full.length + 1]) {
      const want = modelEncode(oldP, newP, limit);
      const got = xbzrleEncode(oldP, newP, limit);
      expect(got === null ? -1 : got.length, `limit ${limit}`).toBe(Array.isArray(want) ? want.length : want);
    }
  });

  it('decoder: random bytes give the model\'s page or XBZRLE_CORRUPT, never a trap, page untouched on reject', () => {
    fc.assert(fc.property(
      fc.uint8Array({ maxLength: 64 }), fc.constantFrom(8, 16, 64, 4096), fc.integer({ min: 0, max: 255 }),
      (enc, n, fill) => {
        const page = new Uint8Array(n).fill(fill);
        const want = modelDecode(enc, page);
        const code = codeOf(() => xbzrleDecode(enc, page));
        if (want === null) {
          expect(code).toBe(ErrorCode.XBZRLE_CORRUPT);
          expect(page.every((b) => b === fill)).toBe(true);
        } else {
          expect(code).toBeUndefined();
          expect(same(page, want)).toBe(true);
        }
      }), { seed: SEED, numRuns: 3000 });
  });

  it('decoder: every truncation and every bit flip of valid streams follows the model', () => {
    fc.assert(fc.property(pagePair, fc.nat(), ({ oldP, newP }, flipAt) => {
      const enc = xbzrleEncode(oldP, newP, xbzrleMaxEncodedSize(newP.length));
      if (enc === null || enc.length === 0) return;
      const cuts = enc.length > 40 ? [0, 1, 2, 3, enc.length - 2, enc.length - 1, flipAt % enc.length] : [...enc.keys()];
      for (const cut of cuts) {
        const t = enc.subarray(0, cut);
        const page = oldP.slice();
        const want = modelDecode(t, oldP);
        const code = codeOf(() => xbzrleDecode(t, page));
        expect(code).toBe(want === null ? ErrorCode.XBZRLE_CORRUPT : undefined);
        expect(same(page, want ?? oldP)).toBe(true);
      }
      const flipped = enc.slice();
      flipped[flipAt % enc.length]! ^= 1 << (flipAt % 8);
      const page = oldP.slice();
      const want = modelDecode(flipped, oldP);
      expect(codeOf(() => xbzrleDecode(flipped, page))).toBe(want === null ? ErrorCode.XBZRLE_CORRUPT : undefined);
      expect(same(page, want ?? oldP)).toBe(true);
    }), { seed: SEED, numRuns: 150 });
  });

  it('accepts the non-minimal length form QEMU accepts and rejects a continued second byte', () => {
    const page = new Uint8Array(16);
    xbzrleDecode(Uint8Array.of(0x85, 0x00, 0x01, 0xaa), page); // zrun 5 written as 85 00
    expect(page[5]).toBe(0xaa);
    expect(codeOf(() => xbzrleDecode(Uint8Array.of(0x85, 0x80, 0x01, 0xaa), new Uint8Array(16)))).toBe(ErrorCode.XBZRLE_CORRUPT);
    // Empty input changes nothing.
    const p2 = new Uint8Array(8).fill(3);
    xbzrleDecode(new Uint8Array(0), p2);
    expect(p2.every((b) => b === 3)).toBe(true);
  });

  it('edge sizes: 0 and multiples of 8 work; other lengths and bad limits throw INVALID_ARGUMENT', () => {
    expect(xbzrleEncode(new Uint8Array(0), new Uint8Array(0))!.length).toBe(0);
    const p8 = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    expect(Array.from(xbzrleEncode(new Uint8Array(8), p8, 16)!)).toEqual([0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(xbzrleEncode(new Uint8Array(8), p8)).toBeNull(); // 10 bytes > limit 8
    for (const n of [1, 7, 9, 4095, 4097, 65537, 16392]) {
      expect(codeOf(() => xbzrleEncode(new Uint8Array(n), new Uint8Array(n))), `len ${n}`).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(codeOf(() => xbzrleDecode(new Uint8Array(0), new Uint8Array(n))), `len ${n}`).toBe(ErrorCode.INVALID_ARGUMENT);
    }
    expect(codeOf(() => xbzrleEncode(new Uint8Array(8), new Uint8Array(16)))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => xbzrleEncode(new Uint8Array(8), new Uint8Array(8), -1))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => xbzrleEncode(new Uint8Array(8), new Uint8Array(8), 1.5))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => xbzrleEncode(new Uint8Array(8), new Uint8Array(8), NaN))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => xbzrleEncode(null as unknown as Uint8Array, new Uint8Array(8)))).toBe(ErrorCode.INVALID_ARGUMENT);
    // A huge limit behaves as "enough".
    expect(xbzrleEncode(new Uint8Array(8), p8, Number.MAX_SAFE_INTEGER)!.length).toBe(10);
    // Limits below 2 overflow even for identical pages (QEMU checks space before scanning).
    expect(xbzrleEncode(p8, p8, 1)).toBeNull();
    expect(xbzrleEncode(p8, p8, 2)!.length).toBe(0);
  });

  it('16 KiB pages: a 16383-byte run encodes, a fully changed page overflows at any limit', () => {
    const oldP = new Uint8Array(16384);
    const newP = new Uint8Array(16384).fill(9);
    expect(xbzrleEncode(oldP, newP, 1 << 20)).toBeNull();
    newP[16383] = 0;
    const enc = xbzrleEncode(oldP, newP, 1 << 20)!;
    expect(enc.length).toBe(1 + 2 + 16383);
    const page = oldP.slice();
    xbzrleDecode(enc, page);
    expect(same(page, newP)).toBe(true);
  });

  it('encodeInto writes only within out and returns QEMU\'s results', () => {
    const oldP = new Uint8Array(64);
    const newP = oldP.slice();
    newP[10] = 1;
    const buf = new Uint8Array(32).fill(0xcc);
    expect(xbzrleEncodeInto(oldP, newP, buf.subarray(0, 3))).toBe(-1);
    // Unchanged bytes follow the literal: QEMU wants 2 spare bytes before scanning them.
    expect(xbzrleEncodeInto(oldP, newP, buf.subarray(0, 4))).toBe(-1);
    expect(buf.subarray(3).every((b) => b === 0xcc)).toBe(true);
    expect(xbzrleEncodeInto(oldP, newP, buf.subarray(0, 5))).toBe(3);
    expect(Array.from(buf.subarray(0, 5))).toEqual([10, 1, 1, 0xcc, 0xcc]);
    expect(xbzrleEncodeInto(oldP, oldP, buf)).toBe(0);
  });

  it('rejects over-long streams before copying them', () => {
    expect(codeOf(() => xbzrleDecode(new Uint8Array(4096 * 4), new Uint8Array(4096)))).toBe(ErrorCode.XBZRLE_CORRUPT);
  });
});

// ---- RLE -----------------------------------------------------------------------------------

describe('RLE properties', () => {
  it('round-trips pages of runs and noise within rleMaxEncodedSize', () => {
    fc.assert(fc.property(runPage, (page) => {
      const enc = rleEncode(page);
      expect(enc.length).toBeLessThanOrEqual(rleMaxEncodedSize(page.length));
      const out = new Uint8Array(page.length).fill(0x33);
      rleDecode(enc, out);
      expect(same(out, page)).toBe(true);
      const model = modelRleDecode(enc, page.length);
      expect(model && same(model, page)).toBe(true);
    }), { seed: SEED, numRuns: RUNS });
  });

  it('round-trips arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), (page) => {
      const enc = rleEncode(page);
      expect(enc.length).toBeLessThanOrEqual(rleMaxEncodedSize(page.length));
      const out = new Uint8Array(page.length);
      rleDecode(enc, out);
      expect(same(out, page)).toBe(true);
    }), { seed: SEED, numRuns: RUNS });
  });

  it('compresses the ME2 case: byte runs and word runs cost a few bytes', () => {
    expect(rleEncode(new Uint8Array(4096)).length).toBe(4); // head 3 bytes + the byte
    expect(rleEncode(new Uint8Array(4096).fill(0xab)).length).toBe(4);
    const words = new Uint8Array(4096);
    const dv = new DataView(words.buffer);
    for (let i = 0; i < 4096; i += 8) dv.setBigUint64(i, 0x0123456789abcdefn, true);
    expect(rleEncode(words).length).toBe(2 + 8);
    const mixed = new Uint8Array(4096);
    mixed.fill(0xff, 1000, 3000);
    mixed.set([1, 2, 3, 4, 5], 3000);
    expect(rleEncode(mixed).length).toBeLessThan(20);
  });

  it('handles adversarial pages: alternating bytes, all different, all same', () => {
    for (const n of [0, 1, 7, 8, 9, 4095, 4096, 65537]) {
      const pages = [
        new Uint8Array(n).map((_, i) => (i & 1 ? 0x55 : 0xaa)),
        new Uint8Array(n).map((_, i) => (i * 167 + (i >> 8)) & 0xff),
        new Uint8Array(n).fill(0x42),
      ];
      for (const p of pages) {
        const enc = rleEncode(p);
        expect(enc.length).toBeLessThanOrEqual(rleMaxEncodedSize(n));
        const out = new Uint8Array(n);
        rleDecode(enc, out);
        expect(same(out, p)).toBe(true);
      }
    }
  });

  it('decoder: random bytes give the model\'s output or RLE_CORRUPT, out untouched on reject', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 80 }), (enc, n) => {
      const out = new Uint8Array(n).fill(0x77);
      const want = modelRleDecode(enc, n);
      const code = codeOf(() => rleDecode(enc, out));
      if (want === null) {
        expect(code).toBe(ErrorCode.RLE_CORRUPT);
        expect(out.every((b) => b === 0x77)).toBe(true);
      } else {
        expect(code).toBeUndefined();
        expect(same(out, want)).toBe(true);
      }
    }), { seed: SEED, numRuns: 5000 });
  });

  it('decoder: every truncation of a valid stream is rejected, and so is a wrong output size', () => {
    fc.assert(fc.property(runPage, (page) => {
      const enc = rleEncode(page);
      const step = Math.max(1, Math.floor(enc.length / 50));
      for (let cut = 0; cut < enc.length; cut += step) {
        const out = new Uint8Array(page.length);
        expect(codeOf(() => rleDecode(enc.subarray(0, cut), out))).toBe(ErrorCode.RLE_CORRUPT);
      }
      expect(codeOf(() => rleDecode(enc, new Uint8Array(page.length + 1)))).toBe(ErrorCode.RLE_CORRUPT);
      if (page.length > 0) expect(codeOf(() => rleDecode(enc, new Uint8Array(page.length - 1)))).toBe(ErrorCode.RLE_CORRUPT);
    }), { seed: SEED, numRuns: 100 });
  });

  it('regressions: named malformed streams', () => {
    const c = (bytes: number[], n: number) => codeOf(() => rleDecode(Uint8Array.from(bytes), new Uint8Array(n)));
    expect(c([0x05, 0x00], 1)).toBeUndefined(); // BYTE x1 of 0x00
    expect(c([0x03, 0x00], 1)).toBe(ErrorCode.RLE_CORRUPT); // kind 3
    expect(c([0x01, 0x00], 1)).toBe(ErrorCode.RLE_CORRUPT); // count 0
    expect(c([0x85, 0x00, 0x00], 1)).toBe(ErrorCode.RLE_CORRUPT); // non-minimal head
    expect(c([0xff, 0xff, 0xff, 0xff, 0x1f], 1)).toBe(ErrorCode.RLE_CORRUPT); // head past 32 bits
    expect(c([0x05, 0x00, 0x05, 0x00], 1)).toBe(ErrorCode.RLE_CORRUPT); // trailing op
    const w2 = new Uint8Array(16);
    rleDecode(Uint8Array.of(0x0a, 1, 2, 3, 4, 5, 6, 7, 8), w2); // WORD x2: head 2 << 2 | 2
    expect(Array.from(w2)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(c([0x0a, 1, 2, 3, 4, 5, 6, 7], 16)).toBe(ErrorCode.RLE_CORRUPT); // truncated word
    expect(c([0xfd, 0xff, 0xff, 0xff, 0x0f, 0x00], 100)).toBe(ErrorCode.RLE_CORRUPT); // huge BYTE run past the end
    expect(c([], 0)).toBeUndefined();
    expect(c([], 1)).toBe(ErrorCode.RLE_CORRUPT);
  });

  it('edge sizes and rleEncodeInto', () => {
    for (const n of [0, 1, 7, 8, 9, 4095, 4096, 65537]) {
      const p = new Uint8Array(n).map((_, i) => (i % 100 < 50 ? 0 : i & 0xff));
      const enc = rleEncode(p);
      const out = new Uint8Array(n);
      rleDecode(enc, out);
      expect(same(out, p), `len ${n}`).toBe(true);
      const buf = new Uint8Array(rleMaxEncodedSize(n));
      expect(rleEncodeInto(p, buf)).toBe(enc.length);
      expect(same(buf.subarray(0, enc.length), enc)).toBe(true);
      if (enc.length > 0) expect(rleEncodeInto(p, new Uint8Array(enc.length - 1))).toBe(-1);
    }
    expect(rleMaxEncodedSize(0)).toBe(0);
    expect(rleMaxEncodedSize(31)).toBe(32);
    expect(rleMaxEncodedSize(32)).toBe(34);
    expect(codeOf(() => rleEncode('x' as unknown as Uint8Array))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => rleDecode(new Uint8Array(10), new Uint8Array(4)))).toBe(ErrorCode.RLE_CORRUPT);
  });
});

// ---- zero pages ----------------------------------------------------------------------------

describe('zero pages', () => {
  it('isZeroPage finds a single non-zero byte at every position', () => {
    for (const n of [1, 7, 8, 9, 63, 64, 65, 4095, 4096]) {
      const p = new Uint8Array(n);
      expect(isZeroPage(p)).toBe(true);
      for (let i = 0; i < n; i++) {
        p[i] = 0x80;
        expect(isZeroPage(p), `len ${n} at ${i}`).toBe(false);
        p[i] = 0;
      }
    }
    expect(isZeroPage(new Uint8Array(0))).toBe(true);
    const big = new Uint8Array(300_000);
    expect(isZeroPage(big)).toBe(true);
    big[299_999] = 1;
    expect(isZeroPage(big)).toBe(false);
  });

  it('zeroPages flags exactly the all-zero pages', () => {
    fc.assert(fc.property(fc.constantFrom(512, 4096, 65536), fc.array(fc.option(fc.nat(), { nil: undefined }), { maxLength: 70 }),
      (pageSize, marks) => {
        const data = new Uint8Array(pageSize * marks.length);
        marks.forEach((m, k) => { if (m !== undefined) data[k * pageSize + (m % pageSize)] = 1 + (m % 255); });
        const flags = zeroPages(data, pageSize);
        expect(Array.from(flags)).toEqual(marks.map((m) => (m === undefined ? 1 : 0)));
      }), { seed: SEED, numRuns: 60 });
  });

  it('rejects bad page sizes and partial pages with INVALID_ARGUMENT', () => {
    for (const ps of [0, 1, 100, 4095, 131072]) expect(codeOf(() => zeroPages(new Uint8Array(8192), ps))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => zeroPages(new Uint8Array(4097), 4096))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => isZeroPage(undefined as unknown as Uint8Array))).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});

// ---- unaligned views -----------------------------------------------------------------------

describe('unaligned inputs', () => {
  it('give the same results as aligned copies', () => {
    for (const shift of [1, 3, 7]) {
      const backing = new Uint8Array(3 * 4096 + 16);
      const oldP = backing.subarray(shift, shift + 4096);
      const newP = backing.subarray(4096 + 8 + shift, 4096 + 8 + shift + 4096);
      for (let i = 0; i < 4096; i++) oldP[i] = (i * 13) & 0xff;
      newP.set(oldP);
      newP.fill(0, 100, 140);
      newP[4000] ^= 0xff;
      const enc = xbzrleEncode(oldP, newP)!;
      expect(same(enc, xbzrleEncode(oldP.slice(), newP.slice())!)).toBe(true);
      const target = backing.subarray(2 * 4096 + 8 + shift, 2 * 4096 + 8 + shift + 4096);
      target.set(oldP);
      xbzrleDecode(enc.slice(), target);
      expect(same(target, newP)).toBe(true);
      const r = rleEncode(newP);
      expect(same(r, rleEncode(newP.slice()))).toBe(true);
      target.fill(1);
      rleDecode(r, target);
      expect(same(target, newP)).toBe(true);
      const zeros = new Uint8Array(2 * 4096 + shift).subarray(shift);
      zeros[5000] = 1;
      expect(Array.from(zeroPages(zeros, 4096))).toEqual([1, 0]);
    }
  });
});

// ---- result ownership ----------------------------------------------------------------------

describe('results', () => {
  it('stay the caller\'s: later calls never change earlier results (pooled or not)', () => {
    const oldP = new Uint8Array(4096);
    const kept: { enc: Uint8Array; copy: Uint8Array }[] = [];
    for (let k = 0; k < 400; k++) {
      const newP = oldP.slice();
      newP.fill(k & 0xff, 100, 100 + (k * 37) % 3000);
      newP[4000] = 1 + (k % 200);
      const enc = k % 2 ? xbzrleEncode(oldP, newP)! : rleEncode(newP);
      kept.push({ enc, copy: enc.slice() });
    }
    for (const { enc, copy } of kept) expect(same(enc, copy)).toBe(true);
    // Pooled views do not overlap.
    const byBuffer = new Map<ArrayBufferLike, [number, number][]>();
    for (const { enc } of kept) {
      const list = byBuffer.get(enc.buffer) ?? [];
      list.push([enc.byteOffset, enc.byteOffset + enc.length]);
      byBuffer.set(enc.buffer, list);
    }
    expect([...byBuffer.values()].some((l) => l.length > 1)).toBe(true);
    for (const list of byBuffer.values()) {
      list.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < list.length; i++) expect(list[i]![0]).toBeGreaterThanOrEqual(list[i - 1]![1]);
    }
  });
});

// ---- memory.grow ---------------------------------------------------------------------------

describe('memory growth', () => {
  it('keeps working after the core memory grows (stale views rebuilt)', () => {
    const core = sharedCore();
    const before = core.byteLength;
    const page = new Uint8Array(before + 65537).map((_, i) => (i % 1000 < 500 ? 0 : (i * 13) & 0xff));
    const enc = rleEncode(page);
    expect(core.byteLength).toBeGreaterThan(before);
    const out = new Uint8Array(page.length);
    rleDecode(enc, out);
    expect(same(out, page)).toBe(true);
    // Other functions still see current memory.
    const oldP = new Uint8Array(4096);
    const newP = oldP.slice();
    newP[100] = 1;
    expect(Array.from(xbzrleEncode(oldP, newP)!)).toEqual([100, 1, 1]);
    expect(isZeroPage(oldP)).toBe(true);
  });
});
