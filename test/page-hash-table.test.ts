/**
 * The incremental memory digest: per-page hash tables kept current by the encoder (pages as
 * encoded) and the decoder (pages as written) must equal a full hash of memory whenever every
 * change was reported, in both placements, and pages never reported are hashed at the digest.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { PageHashTable } from '../src/memory/page-hash-table.js';
import { PageEncoder } from '../src/codec/encoder.js';
import { PageDecoder } from '../src/codec/decoder.js';
import { memoryDigest, pageHashes } from '../src/memory/digest.js';
import { PagewireError } from '../src/errors.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { memoryPair } from '../src/transport/memory.js';
import { SetDirtyLog, TimerGuest, makeMemories, sameMemory } from './helpers/engine.js';

const PAGES = 96;

async function memoryIn(placement: 'core' | 'external'): Promise<GuestMemory> {
  if (placement === 'core') return GuestMemory.inCore(await createCore(), PAGES);
  return GuestMemory.allocateExternal({ pageSize: 4096, regions: [{ name: 'a', pageCount: 40 }, { name: 'b', pageCount: PAGES - 40 }] });
}

/** Content by kind: zero, a run, a small edit of a shared pattern (XBZRLE, dup), noise. */
function write(memory: GuestMemory, page: number, kind: number, salt: number): void {
  const v = memory.page(page);
  if (kind === 0) v.fill(0);
  else if (kind === 1) v.fill(salt & 0xff);
  else if (kind === 2) { for (let i = 0; i < v.length; i++) v[i] = (i >> 4) & 0xff; v[salt % 4096] ^= 0x5a; }
  else for (let i = 0; i < v.length; i++) v[i] = (Math.imul(i + salt, 2654435761) >>> 13) & 0xff;
}

const edits = fc.array(fc.array(fc.tuple(fc.integer({ min: 0, max: PAGES - 1 }), fc.integer({ min: 0, max: 3 }), fc.nat(1 << 20)), { maxLength: 40 }), { minLength: 1, maxLength: 4 });

describe('page hash tables', () => {
  for (const [srcPlace, dstPlace, codecs] of [['core', 'external', 'all'], ['external', 'core', 'all'], ['core', 'core', 'qemu'], ['external', 'external', 'raw']] as const) {
    it(`encoder and decoder tables equal full hashes round after round (${srcPlace} -> ${dstPlace}, ${codecs})`, async () => {
      await fc.assert(fc.asyncProperty(edits, async (rounds) => {
        const src = await memoryIn(srcPlace);
        const dst = await memoryIn(dstPlace);
        for (let p = 0; p < PAGES; p++) write(src, p, p % 4, p);
        const enc = await PageEncoder.create(src, { codecs });
        const dec = await PageDecoder.create(dst, enc.codecNames());
        const sent = new PageHashTable(src, enc.coreInstance);
        const got = new PageHashTable(dst, dec.coreInstance);
        enc.trackHashes(sent);
        dec.trackHashes(got);
        try {
          // round 0: every page; then only the pages each round dirtied
          let dirty = Uint32Array.from({ length: PAGES }, (_, i) => i);
          for (const round of [...rounds, []]) {
            for (let i = 0; i < dirty.length; i += 32) dec.apply(enc.encode(dirty, i, Math.min(32, dirty.length - i)).slice());
            expect(sent.pendingPages).toBe(0);
            expect(sent.digest()).toBe(memoryDigest(src, enc.coreInstance));
            expect(got.digest()).toBe(memoryDigest(dst, dec.coreInstance));
            expect(got.digest()).toBe(sent.digest());
            const set = new Set<number>();
            for (const [p, kind, salt] of round) { write(src, p, kind, salt); set.add(p); }
            dirty = Uint32Array.from([...set]);
          }
          expect(got.hashes()).toEqual(pageHashes(dst, dec.coreInstance));
        } finally {
          sent.dispose();
          got.dispose();
          enc.dispose();
          dec.dispose();
        }
      }), { seed: 13, numRuns: 12 });
    });
  }

  it('the encoder writes hashes into a table in its core; once the table is disposed it writes nothing there', async () => {
    const src = await memoryIn('core');
    for (let p = 0; p < PAGES; p++) write(src, p, p % 4, p);
    const enc = await PageEncoder.create(src, { codecs: 'all' });
    const core = enc.coreInstance;
    const table = new PageHashTable(src, core);
    enc.trackHashes(table);
    const all = Uint32Array.from({ length: PAGES }, (_, i) => i);
    enc.encode(all);
    expect(table.pendingPages).toBe(0);
    expect(table.hashes()).toEqual(pageHashes(src, core));
    const at = table.tableIn(core);
    expect(at).toBeGreaterThan(0);
    table.dispose();
    expect(table.tableIn(core)).toBe(0);
    // the freed block is someone else's now: the encoder must leave it alone
    const other = core.alloc(PAGES * 8);
    core.u8().fill(0xa5, other, other + PAGES * 8);
    for (let p = 0; p < PAGES; p++) write(src, p, (p + 1) % 4, p + 99);
    enc.encode(all);
    expect(core.u8().subarray(other, other + PAGES * 8).every((b) => b === 0xa5)).toBe(true);
    enc.dispose();
  });

  it('pages never reported are hashed at the digest; update() reads memory as it is', async () => {
    for (const placement of ['core', 'external'] as const) {
      const m = await memoryIn(placement);
      const core = m.core ?? (await createCore());
      for (let p = 0; p < PAGES; p += 3) write(m, p, 3, p);
      const t = new PageHashTable(m, core);
      expect(t.pendingPages).toBe(PAGES);
      expect(t.digest()).toBe(memoryDigest(m, core));
      expect(t.pendingPages).toBe(0);
      write(m, 5, 3, 99);
      expect(t.digest()).not.toBe(memoryDigest(m, core)); // not reported: the table keeps the old hash
      t.update([5]);
      expect(t.digest()).toBe(memoryDigest(m, core));
      t.invalidate();
      expect(t.pendingPages).toBe(PAGES);
      t.dispose();
    }
  });

  it('assumeZero() gives the pages never reported the zero page\'s hash without reading them; reported pages keep theirs', async () => {
    for (const placement of ['core', 'external'] as const) {
      const m = await memoryIn(placement);
      const core = m.core ?? (await createCore());
      const t = new PageHashTable(m, core);
      // pages 4 and 9 written and reported; the rest of memory is zero, as assumed
      write(m, 4, 1, 7);
      write(m, 9, 1, 8);
      t.update([4, 9]);
      t.assumeZero();
      expect(t.pendingPages).toBe(0);
      expect(t.digest()).toBe(memoryDigest(m, core));
      // the assumption is taken as given: a non-zero page never reported makes the digest wrong
      write(m, 20, 1, 9);
      expect(t.digest()).not.toBe(memoryDigest(m, core));
      t.dispose();
    }
  });

  it('an index outside the guest is a typed error and nothing is written', async () => {
    const m = await memoryIn('core');
    const t = new PageHashTable(m, m.core!);
    const before = t.digest();
    let err: unknown;
    try {
      t.update([1, 2, PAGES]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PagewireError);
    expect((err as PagewireError).code).toBe('PAGE_OUT_OF_RANGE');
    // the core refuses too, before writing: a list with a bad index leaves the table as it was
    const core = m.core!;
    const ex = core.exports;
    const idx = core.alloc(8);
    core.view().setUint32(idx, 3, true);
    core.view().setUint32(idx + 4, 0xffffffff, true);
    const table = core.alloc(PAGES * 8);
    core.u8().fill(0xee, table, table + PAGES * 8);
    expect(ex.hashPageList(m.basePtr, 4096, idx, 0, 2, PAGES, table)).toBeLessThan(0);
    expect(core.u8().subarray(table, table + PAGES * 8).every((b) => b === 0xee)).toBe(true);
    expect(t.digest()).toBe(before);
  });
});

describe('the incremental digest in whole migrations', () => {
  it('a guest writing during pre-copy: both sides report the digest a full hash of their memory gives', async () => {
    const { src, dst } = await makeMemories(1024);
    const log = new SetDirtyLog(1024);
    const guest = new TimerGuest(src, log, 2);
    const [a, b] = memoryPair();
    const source = new MigrationSource(src, log, a, { downtimeLimitMs: 50 }, { pause: () => { guest.paused = true; } });
    const target = new MigrationTarget(dst);
    const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
    guest.stop();
    expect(guest.writes).toBeGreaterThan(0);
    expect(rs.verified).toBe(true);
    expect(rs.rounds.length).toBeGreaterThan(1);
    expect(rs.digest).toBe(memoryDigest(src, src.core!));
    expect(rt.digest).toBe(memoryDigest(dst, dst.core!));
    expect(sameMemory(src, dst)).toBe(true);
  });
});
