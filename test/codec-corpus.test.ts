import { describe, it, expect, beforeAll } from 'vitest';
import { loadCorpus, type Corpus } from './helpers/corpus.js';
import { PageEncoder, type EncoderOptions } from '../src/codec/encoder.js';
import { PageDecoder } from '../src/codec/decoder.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { createCore } from '../src/core/core.js';

type Placement = 'core' | 'external';

async function makeMemory(placement: Placement, bytes: number, pageSize: number): Promise<GuestMemory> {
  if (placement === 'core') return GuestMemory.inCore(await createCore(), bytes / pageSize, pageSize);
  // two regions, to exercise region splitting
  const pages = bytes / pageSize;
  const a = Math.floor(pages / 3);
  return GuestMemory.allocateExternal({ pageSize, regions: [{ name: 'lo', pageCount: a }, { name: 'hi', pageCount: pages - a }] });
}

function fill(mem: GuestMemory, data: Uint8Array): void {
  for (let p = 0; p < mem.pageCount; p++) mem.page(p).set(data.subarray(p * mem.pageSize, (p + 1) * mem.pageSize));
}

function equals(mem: GuestMemory, data: Uint8Array): boolean {
  for (let p = 0; p < mem.pageCount; p++) {
    const a = mem.page(p);
    const b = data.subarray(p * mem.pageSize, (p + 1) * mem.pageSize);
    if (!Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)) return false;
  }
  return true;
}

/** Replay a corpus: round 0 = every page of snapshot 0, round k = dirty-k against snapshot k. */
async function replay(c: Corpus, opts: EncoderOptions, srcPlace: Placement, dstPlace: Placement, decoderCodecs?: string[]) {
  const bytes = c.snapshots[0]!.byteLength;
  const src = await makeMemory(srcPlace, bytes, c.pageSize);
  const dst = await makeMemory(dstPlace, bytes, c.pageSize);
  const enc = await PageEncoder.create(src, opts);
  const dec = await PageDecoder.create(dst, decoderCodecs ?? enc.codecNames());
  const wire: number[] = [];
  for (let k = 0; k < c.snapshots.length; k++) {
    fill(src, c.snapshots[k]!);
    const idx = k === 0 ? Uint32Array.from({ length: src.pageCount }, (_, i) => i) : c.dirty[k]!;
    // in two calls, to cross call boundaries too
    const half = idx.length >> 1;
    let total = 0;
    for (const [s, n] of [[0, half], [half, idx.length - half]] as const) {
      const out = enc.encode(idx, s, n, { final: k === c.snapshots.length - 1 });
      total += out.byteLength;
      dec.apply(out.slice());
    }
    wire.push(total);
    expect(equals(dst, c.snapshots[k]!), `${c.name} round ${k}`).toBe(true);
  }
  const stats = enc.stats;
  enc.dispose();
  dec.dispose();
  return { wire, stats };
}

describe('codec pipeline on the real corpus', () => {
  let corpora: Corpus[];
  beforeAll(() => { corpora = [loadCorpus('vm-redis'), loadCorpus('proc-redis')]; });

  it('full codec choice, both placements each side: target equals every snapshot', async () => {
    for (const c of corpora) {
      const r1 = await replay(c, { codecs: 'all' }, 'core', 'external');
      const r2 = await replay(c, { codecs: 'all' }, 'external', 'core');
      expect(r2.wire).toEqual(r1.wire); // placement does not change the bytes
      const s = r1.stats;
      expect(s.codecs.zero.pages).toBeGreaterThan(0);
      expect(s.codecs.xbzrle.pages).toBeGreaterThan(0);
      expect(s.cache.hits).toBeGreaterThan(0);
      expect(s.lz4.pages).toBeGreaterThan(0);
      // every page given is counted under exactly one record codec or 'unchanged'
      expect(Object.values(s.codecs).reduce((n, c) => n + c.pages, 0)).toBe(s.pages);
    }
  }, 120_000);

  it('presets raw and qemu, and tiny caches (every page misses)', async () => {
    const c = corpora[0]!;
    const raw = await replay(c, { codecs: 'raw' }, 'core', 'core');
    expect(raw.stats.codecs.raw.pages).toBe(raw.stats.pages);
    const qemu = await replay(c, { codecs: 'qemu' }, 'core', 'core');
    expect(qemu.stats.codecs.xbzrle.pages).toBeGreaterThan(0);
    const tiny = await replay(c, { codecs: 'all', cacheBytes: 4096 }, 'core', 'external');
    expect(tiny.stats.cache.slots).toBe(1);
    expect(tiny.stats.cache.evictions).toBeGreaterThan(0);
    const tinyQ = await replay(c, { codecs: 'qemu', cacheBytes: 2 * 4096 }, 'external', 'core');
    expect(tinyQ.stats.cache.misses).toBeGreaterThan(0);
  }, 120_000);

  it('with each codec disabled in turn', async () => {
    const c = corpora[1]!;
    const all = ['zero', 'dup', 'xbzrle', 'rle', 'lz4'];
    for (const off of all) {
      const codecs = all.filter((n) => n !== off);
      const r = await replay(c, { codecs }, 'core', 'core');
      expect(off === 'lz4' ? r.stats.lz4.pages : r.stats.codecs[off as 'zero'].pages, off).toBe(0);
    }
  }, 120_000);
});
