/**
 * The source's `linkBytesPerSec` hint reaches the encoder: on a link far faster than LZ4, 'auto'
 * stops compressing (it would only make the encoder the bottleneck); without the hint it
 * compresses whatever saves bytes. A bad value is INVALID_ARGUMENT.
 */
import { describe, it, expect } from 'vitest';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { fillInitial } from '../src/sim/content.js';
import { ErrorCode, PagewireError } from '../src/errors.js';
import { SetDirtyLog, sameMemory } from './helpers/engine.js';

async function run(linkBytesPerSec?: number) {
  const pages = 8192;
  const src = GuestMemory.inCore(await createCore(), pages, 4096);
  fillInitial(src, 'mixed', 2);
  const dst = GuestMemory.inCore(await createCore(), pages, 4096);
  const [a, b] = memoryPair();
  const source = new MigrationSource(src, new SetDirtyLog(pages), a, linkBytesPerSec ? { linkBytesPerSec } : {});
  const [rs, rt] = await Promise.all([source.migrate(), new MigrationTarget(dst).run(b)]);
  expect(rs.verified && rt.verified && sameMemory(src, dst)).toBe(true);
  return (rs.codecStats as { lz4: { pages: number } }).lz4.pages;
}

describe('link bandwidth hint', () => {
  it('a 100 GB/s link turns LZ4 off after the first probes; no hint compresses', async () => {
    const without = await run();
    const fast = await run(100e9);
    expect(without).toBeGreaterThan(4096);
    expect(fast).toBeLessThan(without / 4);
  });

  it('rejects a non-positive hint', () => {
    const m = GuestMemory.allocateExternal({ pageSize: 4096, regions: [{ name: 'ram', pageCount: 1 }] });
    const [a] = memoryPair();
    let err: unknown;
    try { new MigrationSource(m, new SetDirtyLog(1), a, { linkBytesPerSec: -5 }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(PagewireError);
    expect((err as PagewireError).code).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});
