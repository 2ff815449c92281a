import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { PageEncoder, type EncoderOptions } from '../src/codec/encoder.js';
import { PageDecoder } from '../src/codec/decoder.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { createCore, type Core } from '../src/core/core.js';
import { PagewireError } from '../src/errors.js';
import { loadLz4 } from '../src/codec/lz4.js';
import type { EncoderLike, DecoderLike } from '../src/codec/adapter.js';

const PS = 512;
let srcCore: Core;
let dstCore: Core;

beforeAll(async () => {
  srcCore = await createCore();
  dstCore = await createCore();
  await loadLz4();
});

function mem(core: Core | null, pages: number): GuestMemory {
  if (core) return GuestMemory.inCore(core, pages, PS);
  const a = Math.max(1, pages >> 1);
  return GuestMemory.allocateExternal({ pageSize: PS, regions: [{ name: 'a', pageCount: a }, { name: 'b', pageCount: pages - a }] });
}

function snapshot(m: GuestMemory): Uint8Array {
  const out = new Uint8Array(m.pageCount * PS);
  for (let p = 0; p < m.pageCount; p++) out.set(m.page(p), p * PS);
  return out;
}

/** A mutation of one page: the kinds of change real memory sees. */
const mutation = fc.record({
  kind: fc.constantFrom('bytes', 'zero', 'copy', 'run', 'random'),
  page: fc.nat(),
  other: fc.nat(),
  at: fc.nat({ max: PS - 1 }),
  len: fc.integer({ min: 1, max: 64 }),
  byte: fc.integer({ min: 0, max: 255 }),
  seed: fc.integer(),
});
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function apply(m: GuestMemory, mu: Mutation, dirty: Set<number>): void {
  const p = mu.page % m.pageCount;
  const pg = m.page(p);
  if (mu.kind === 'bytes') pg.fill(mu.byte, mu.at, Math.min(PS, mu.at + mu.len));
  else if (mu.kind === 'zero') pg.fill(0);
  else if (mu.kind === 'copy') pg.set(m.page(mu.other % m.pageCount).slice());
  else if (mu.kind === 'run') pg.fill(mu.byte);
  else { let x = mu.seed | 1; for (let i = 0; i < PS; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; pg[i] = x & 0xff; } }
  dirty.add(p);
}

const optionsArb = fc.record({
  codecs: fc.oneof(fc.constantFrom('raw', 'qemu', 'all'), fc.subarray(['zero', 'dup', 'xbzrle', 'rle', 'lz4'])),
  cacheBytes: fc.constantFrom(PS, 3 * PS, 64 * 1024 * 1024),
  batchPages: fc.integer({ min: 1, max: 20 }),
  lz4: fc.constantFrom('auto', 'always', 'never'),
}) as fc.Arbitrary<EncoderOptions>;

/** Records of a whole memory (a valid stream to mutate). */
async function validStream(pages: number, seed: number, codecs: EncoderOptions['codecs']): Promise<{ first: Uint8Array; second: Uint8Array }> {
  const src = mem(srcCore, pages);
  let x = seed | 1;
  for (let p = 0; p < pages; p++) {
    const pg = src.page(p);
    if (p % 4 === 0) pg.fill(0);
    else if (p % 4 === 1) pg.fill(p);
    else for (let i = 0; i < PS; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; pg[i] = (x & 3) === 0 ? x & 0xff : i & 0x0f; }
  }
  const enc = await PageEncoder.create(src, { codecs, batchPages: 5 });
  const all = Uint32Array.from({ length: pages }, (_, i) => i);
  const first = enc.encode(all).slice();
  for (let p = 2; p < pages; p += 3) { src.page(p)[7] ^= 0x55; src.page(p)[300] ^= 1; }
  for (let p = 1; p < pages; p += 5) src.page(p).set(src.page((p + 2) % pages).slice());
  const second = enc.encode(all).slice();
  enc.dispose();
  return { first, second };
}

describe('codec properties', () => {
  it('random memories and random dirtying: the target equals the source after every round', async () => {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 2, max: 24 }), optionsArb, fc.boolean(), fc.boolean(),
      fc.array(fc.array(mutation, { maxLength: 30 }), { minLength: 1, maxLength: 5 }),
      fc.boolean(),
      async (pages, opts, srcIn, dstIn, rounds, shuffle) => {
        const src = mem(srcIn ? srcCore : null, pages);
        const dst = mem(dstIn ? dstCore : null, pages);
        for (let p = 0; p < pages; p++) { src.page(p).fill(p % 3 === 0 ? 0 : p); dst.page(p).fill(0xee); }
        const enc = await PageEncoder.create(src, opts);
        const dec = await PageDecoder.create(dst, enc.codecNames());
        try {
          let dirty = Array.from({ length: pages }, (_, i) => i);
          for (let r = 0; r <= rounds.length; r++) {
            if (shuffle) dirty.reverse();
            const idx = Uint32Array.from(dirty);
            dec.apply(enc.encode(idx, 0, idx.length, { final: r === rounds.length }).slice());
            expect(Buffer.from(snapshot(dst)).equals(Buffer.from(snapshot(src)))).toBe(true);
            if (r === rounds.length) break;
            const set = new Set<number>();
            for (const mu of rounds[r]!) apply(src, mu, set);
            // dirty-log false positives: also list a few unchanged pages
            set.add(0); set.add(pages - 1);
            dirty = [...set];
          }
          expect(enc.stats.pages).toBeGreaterThan(0);
        } finally { enc.dispose(); dec.dispose(); }
      }), { seed: 1, numRuns: 120 });
  }, 120_000);

  it('forget() and resetCache() keep later rounds exact when the target missed a payload', async () => {
    const pages = 12;
    const src = mem(srcCore, pages);
    const dst = mem(dstCore, pages);
    for (let p = 0; p < pages; p++) src.page(p).fill(p + 1);
    const enc = await PageEncoder.create(src, { codecs: 'all' });
    const dec = await PageDecoder.create(dst, enc.codecNames());
    const all = Uint32Array.from({ length: pages }, (_, i) => i);
    dec.apply(enc.encode(all).slice());
    src.page(3)[10] = 99; src.page(4).set(src.page(5).slice());
    enc.encode(Uint32Array.of(3, 4)); // lost on the link
    enc.forget([3, 4]);
    src.page(3)[11] = 98;
    dec.apply(enc.encode(Uint32Array.of(3, 4)).slice());
    expect(Buffer.from(snapshot(dst)).equals(Buffer.from(snapshot(src)))).toBe(true);
    src.page(6)[0] = 1;
    enc.encode(Uint32Array.of(6)); // lost
    enc.resetCache();
    dec.apply(enc.encode(all).slice());
    expect(Buffer.from(snapshot(dst)).equals(Buffer.from(snapshot(src)))).toBe(true);
    enc.dispose(); dec.dispose();
  });

  it('mutated and random record streams: PagewireError or a result, never a trap, never a write outside the pages named', async () => {
    const pages = 16;
    const streams = [
      await validStream(pages, 5, 'all'),
      await validStream(pages, 9, ['zero', 'xbzrle', 'rle']),
      await validStream(pages, 11, ['dup', 'xbzrle', 'lz4']),
    ];
    const decoders = [mem(dstCore, pages), mem(null, pages)].map((m) => ({ m, d: PageDecoder.create(m) }));
    const decs = await Promise.all(decoders.map(async ({ m, d }) => ({ m, d: await d })));
    const mutate = fc.record({
      which: fc.nat({ max: 2 }), second: fc.boolean(),
      edits: fc.array(fc.record({ op: fc.constantFrom('flip', 'set', 'cut', 'insert', 'delete'), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
      random: fc.option(fc.uint8Array({ maxLength: 600 }), { freq: 4 }),
      dst: fc.nat({ max: 1 }),
    });
    await fc.assert(fc.asyncProperty(mutate, async (m) => {
      let bytes: Uint8Array;
      if (m.random) bytes = Uint8Array.of(1, ...m.random);
      else {
        const s = streams[m.which]!;
        let b = [...(m.second ? s.second : s.first)];
        for (const e of m.edits) {
          const at = b.length ? e.at % b.length : 0;
          if (e.op === 'flip') b[at] = (b[at] ?? 0) ^ (1 << (e.v & 7));
          else if (e.op === 'set') b[at] = e.v;
          else if (e.op === 'cut') b = b.slice(0, at);
          else if (e.op === 'insert') b.splice(at, 0, e.v);
          else b.splice(at, 1);
        }
        bytes = Uint8Array.from(b);
      }
      const { m: target, d } = decs[m.dst]!;
      for (let p = 0; p < pages; p++) target.page(p).fill(0xa0 + p);
      const before = snapshot(target);
      try {
        d.apply(bytes);
      } catch (e) {
        if (!(e instanceof PagewireError)) throw e;
      }
      const named = new Set(d.lastPages());
      const after = snapshot(target);
      for (let p = 0; p < pages; p++) {
        if (named.has(p)) continue;
        expect(Buffer.from(after.subarray(p * PS, (p + 1) * PS)).equals(Buffer.from(before.subarray(p * PS, (p + 1) * PS))), `page ${p} written but not named`).toBe(true);
      }
    }), { seed: 3, numRuns: 1500 });
    // the valid streams still decode exactly after all that
    for (const { m: target, d } of decs) {
      for (const s of streams) { d.apply(s.first); d.apply(s.second); }
      expect(target.pageCount).toBe(pages);
    }
  }, 120_000);

  it('rejects codecs that were not negotiated, out-of-range pages and bad versions with stable codes', async () => {
    const pages = 8;
    const s = await validStream(pages, 5, 'all');
    const code = (fn: () => unknown): string => { try { fn(); } catch (e) { expect(e).toBeInstanceOf(PagewireError); return (e as PagewireError).code; } return 'none'; };
    const small = await PageDecoder.create(mem(dstCore, pages), ['raw']);
    expect(code(() => small.apply(s.first))).toBe('CODEC_NOT_NEGOTIATED');
    const tiny = await PageDecoder.create(mem(dstCore, 4), ['zero', 'raw', 'dup', 'xbzrle', 'rle', 'lz4']);
    expect(code(() => tiny.apply(Uint8Array.of(1, 0, 2, 0x00, 7)))).toBe('PAGE_OUT_OF_RANGE');
    expect(code(() => tiny.apply(Uint8Array.of(2)))).toBe('RECORD_CORRUPT');
    expect(code(() => tiny.apply(Uint8Array.of(1, 0, 2, 0x05, 0)))).toBe('RECORD_CORRUPT');
    expect(code(() => tiny.apply(Uint8Array.of(1, 1, 10, 3, 1, 2, 3)))).toBe('LZ4_CORRUPT');
    expect(code(() => tiny.apply(Uint8Array.of(1, 0, 4, 0x03 | 8, 2, 0x80, 0x7f)))).toBe('XBZRLE_CORRUPT');
    expect(tiny.apply(Uint8Array.of(1))).toBe(0);
  });

  it('every page size 512..65536 (XBZRLE only up to 16 KiB) and the migration layer\'s interfaces', async () => {
    for (const ps of [1024, 4096, 16384, 32768, 65536]) {
      const pages = 9;
      const src = GuestMemory.inCore(srcCore, pages, ps);
      const dst = GuestMemory.allocateExternal({ pageSize: ps, regions: [{ name: 'r', pageCount: pages }] });
      for (let p = 0; p < pages; p++) src.page(p).fill(p & 1 ? 0 : p, 0, ps >> 1);
      const enc: EncoderLike = await PageEncoder.create(src, { codecs: 'all', batchPages: 4 });
      const dec: DecoderLike = await PageDecoder.create(dst, enc.codecNames());
      const all = Uint32Array.from({ length: pages }, (_, i) => i);
      for (let r = 0; r < 3; r++) {
        dec.apply(enc.encode(all, 0, pages).slice());
        expect(dec.lastPages().length).toBeLessThanOrEqual(pages);
        for (let p = 0; p < pages; p++) expect(Buffer.from(dst.page(p)).equals(Buffer.from(src.page(p))), `ps ${ps} page ${p}`).toBe(true);
        for (let p = 0; p < pages; p += 2) src.page(p)[(r * 977) % ps] ^= 0x5a;
      }
      const s = (enc as PageEncoder).stats;
      if (ps <= 16384) expect(s.codecs.xbzrle.pages).toBeGreaterThan(0);
      else expect(s.codecs.xbzrle.pages).toBe(0);
      enc.dispose(); dec.dispose();
    }
  });

  it("'all' makes no RLE trials in the first pass on a fast link, and does after it, on slower links and when listed", async () => {
    const pages = 64;
    const src = GuestMemory.inCore(await createCore(), pages, 4096);
    // pages of long runs with a few odd bytes: RLE's case
    for (let p = 0; p < pages; p++) { const v = src.page(p); v.fill(p + 1); for (let i = 0; i < 4096; i += 512) v[i] = 0xee; }
    const all = Uint32Array.from({ length: pages }, (_, i) => i);
    const fast = await PageEncoder.create(src, { codecs: 'all', linkBytesPerSec: 10e9 / 8 });
    fast.encode(all);
    expect(fast.stats.codecs.rle.pages).toBe(0);
    fast.resetCache(); // the target holds nothing usable: every page is sent again, after the first pass
    fast.encode(all);
    expect(fast.stats.codecs.rle.pages).toBe(pages);
    // no link figure: the measured send rate decides
    const measured = await PageEncoder.create(src, { codecs: 'all' });
    measured.encode(all, 0, 32);
    expect(measured.stats.codecs.rle.pages).toBe(32); // unknown rate: RLE
    measured.setSendRate(10e9 / 8);
    measured.encode(all, 32, 32);
    expect(measured.stats.codecs.rle.pages).toBe(32);
    const slow = await PageEncoder.create(src, { codecs: 'all', linkBytesPerSec: 1e9 / 8 });
    slow.encode(all);
    expect(slow.stats.codecs.rle.pages).toBe(pages);
    const listed = await PageEncoder.create(src, { codecs: ['zero', 'rle', 'lz4'], linkBytesPerSec: 10e9 / 8 });
    listed.encode(all);
    expect(listed.stats.codecs.rle.pages).toBe(pages); // a list that names RLE gets it
    for (const e of [fast, measured, slow, listed]) e.dispose();
  });

  it('builds its payload in core memory: records() stays current when that memory grows, and long calls grow the payload', async () => {
    const pages = 600; // more than two batches of 256: the payload outgrows one batch's worst case
    const core = await createCore();
    const src = GuestMemory.inCore(core, pages, 4096);
    let x = 12345;
    for (let p = 0; p < pages; p++) { const v = src.page(p); for (let i = 0; i < 4096; i += 4) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; v[i] = x >>> 24; } }
    const enc = await PageEncoder.create(src, { codecs: ['zero', 'xbzrle'] });
    const all = Uint32Array.from({ length: pages }, (_, i) => i);
    const view = enc.encode(all);
    expect(view.buffer).toBe(core.exports.memory.buffer); // in place: no JS copy of the payload
    const copy = view.slice();
    expect(copy.byteLength).toBeGreaterThan(pages * 4096);
    core.alloc(64 << 20); // the core's memory grows: views taken before are detached
    expect(view.byteLength).toBe(0);
    expect(Buffer.from(enc.records()).equals(Buffer.from(copy))).toBe(true);
    const dst = GuestMemory.inCore(await createCore(), pages, 4096);
    const dec = await PageDecoder.create(dst, enc.codecNames());
    dec.apply(enc.records());
    for (let p = 0; p < pages; p++) expect(Buffer.from(dst.page(p)).equals(Buffer.from(src.page(p)))).toBe(true);
  });

  it('accepts a payload and page lists that are views of the decoder\'s / encoder\'s own core memory', async () => {
    const pages = 96;
    const core = await createCore();
    const src = GuestMemory.inCore(core, pages, 4096);
    for (let p = 0; p < pages; p++) src.page(p).fill(p * 7 + 1);
    const enc = await PageEncoder.create(src, { codecs: ['zero', 'xbzrle'] });
    const all = Uint32Array.from({ length: pages }, (_, i) => i);
    const payload = enc.encode(all).slice();
    const dcore = await createCore();
    const dst = GuestMemory.inCore(dcore, pages, 4096);
    const dec = await PageDecoder.create(dst, enc.codecNames());
    const at = dcore.alloc(payload.byteLength);
    dcore.u8().set(payload, at);
    const before = dcore.byteLength;
    dec.apply(dcore.u8().subarray(at, at + payload.byteLength));
    expect(dcore.byteLength).toBe(before); // plain blocks in the decoder's core are applied in place, not copied
    for (let p = 0; p < pages; p++) expect(dst.page(p)[0]).toBe((p * 7 + 1) & 0xff);
    // forget() with a list in the encoder's core
    const lp = core.alloc(pages * 4);
    new Uint32Array(core.exports.memory.buffer, lp, pages).set(all);
    enc.forget(new Uint32Array(core.exports.memory.buffer, lp, pages));
    src.page(3)[5] = 0;
    const rawBefore = enc.stats.codecs.raw.pages;
    const again = enc.encode(Uint32Array.of(3));
    expect(enc.stats.codecs.raw.pages).toBe(rawBefore + 1); // forgotten: sent whole, not as a delta
    dec.apply(again.slice());
    expect(Buffer.from(dst.page(3)).equals(Buffer.from(src.page(3)))).toBe(true);
  });
});
