/**
 * Faulting the delta cache's memory in before a migration (src/codec/delta-cache.ts
 * prefaultDeltaCache, `simulate --cache-prefault`): the encoder created afterwards allocates
 * inside the prefaulted block (the core does not grow), encodes as before, and the CLI reports
 * the time it took outside the migration (cachePrefaultMs).
 */
import { describe, it, expect } from 'vitest';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { PageEncoder, encoderArenaBytes } from '../src/codec/encoder.js';
import { PageDecoder } from '../src/codec/decoder.js';
import { prefaultDeltaCache, deltaCacheCoreBytes } from '../src/codec/delta-cache.js';
import { runCli } from './helpers/cli.js';

const PS = 4096;
const PAGES = 512;
const EXTRA = encoderArenaBytes(PS, 256);

async function guest(): Promise<GuestMemory> {
  const mem = GuestMemory.inCore(await createCore(), PAGES, PS);
  for (let p = 0; p < PAGES; p++) {
    const pg = mem.page(p);
    if (p % 5 === 0) continue; // zero pages
    for (let i = 0; i < PS; i += 8) pg[i] = (p * 31 + i) & 0xff;
  }
  return mem;
}

describe('prefaultDeltaCache', () => {
  it('the cache and the encoder arenas land in the prefaulted block; without it the core grows', async () => {
    const cacheBytes = 256 * PS;
    const plain = await guest();
    const before = plain.core!.byteLength;
    (await PageEncoder.create(plain, { codecs: 'all', cacheBytes, lz4: 'always' })).dispose();
    expect(plain.core!.byteLength).toBeGreaterThan(before);

    const mem = await guest();
    const n = prefaultDeltaCache(mem.core!, PAGES, PS, cacheBytes, EXTRA);
    expect(n).toBe(deltaCacheCoreBytes(PAGES, PS, cacheBytes) + EXTRA);
    expect(n).toBeGreaterThan(cacheBytes);
    const grown = mem.core!.byteLength;
    const enc = await PageEncoder.create(mem, { codecs: 'all', cacheBytes, lz4: 'always' });
    expect(mem.core!.byteLength).toBe(grown);

    // encodes and decodes as usual (the prefaulted bytes' contents play no part)
    const dst = GuestMemory.inCore(await createCore(), PAGES, PS);
    const dec = await PageDecoder.create(dst, enc.codecNames());
    const all = Uint32Array.from({ length: PAGES }, (_, i) => i);
    for (let round = 0; round < 2; round++) {
      if (round === 1) for (let p = 1; p < PAGES; p += 7) mem.page(p)[100] ^= 0x5a;
      for (let i = 0; i < PAGES; i += 64) dec.apply(enc.encode(all, i, 64));
    }
    for (let p = 0; p < PAGES; p++) expect(Buffer.from(dst.page(p)).equals(Buffer.from(mem.page(p)))).toBe(true);
    expect(enc.stats.cache.hits).toBeGreaterThan(0);
    enc.dispose();
  });
});

describe('pagewire simulate --cache-prefault', () => {
  const run = async (args: string[]) => runCli(['simulate', '--json', '--size', '4MiB', '--link', '0', '--seed', '2', ...args]);
  it('reports the prefault time outside the migration; off, raw: none; a bad value is a usage error', async () => {
    const on = JSON.parse((await run(['--codecs', 'all'])).stdout) as { cachePrefaultMs: number; verified: boolean };
    expect(on.verified).toBe(true);
    expect(on.cachePrefaultMs).toBeGreaterThan(0);
    const off = JSON.parse((await run(['--codecs', 'all', '--cache-prefault', 'off'])).stdout) as { cachePrefaultMs: number; verified: boolean };
    expect(off.verified).toBe(true);
    expect(off.cachePrefaultMs).toBe(0);
    expect((JSON.parse((await run(['--codecs', 'raw'])).stdout) as { cachePrefaultMs: number }).cachePrefaultMs).toBe(0);
    const bad = await run(['--cache-prefault', 'maybe']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--cache-prefault must be on or off/);
  }, 60_000);
});
