/**
 * Guests of any size: the core heap's arithmetic at 2^31 and 2^32, in-core guests placed above
 * 2 GiB, and guests made of several external regions (how guests larger than one core travel).
 * Large blocks are reserved, not touched: only the pages a test writes cost memory.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { alignUp, createCore, MAX_CORE_BYTES } from '../src/core/core.js';
import { GuestMemory, IN_CORE_LIMIT_BYTES, MAX_REGION_BYTES, splitRegions } from '../src/memory/guest-memory.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { memoryPair } from '../src/transport/memory.js';
import { PagewireError } from '../src/errors.js';
import { SetDirtyLog } from './helpers/engine.js';

const GiB = 1024 * 1024 * 1024;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PagewireError);
    return (err as PagewireError).code;
  }
  return 'no error';
}

/** Fill pages with content every codec has something to do with (zero, runs, text-like, random). */
function fill(memory: GuestMemory, seed: number): void {
  let s = seed >>> 0;
  for (let p = 0; p < memory.pageCount; p++) {
    const v = memory.page(p);
    const kind = p % 4;
    if (kind === 0) continue;
    for (let i = 0; i < v.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      v[i] = kind === 1 ? (i >> 6) & 0xff : kind === 2 ? (s >>> 24) & 0x3f : s >>> 24;
    }
  }
}

async function migrate(src: GuestMemory, dst: GuestMemory | ((l: Parameters<typeof GuestMemory.forLayout>[0]) => Promise<GuestMemory>)): Promise<{ verified: boolean; target: MigrationTarget }> {
  const [a, b] = memoryPair();
  const source = new MigrationSource(src, new SetDirtyLog(src.pageCount), a, { downtimeLimitMs: 1000 });
  const target = new MigrationTarget(dst);
  const [rep] = await Promise.all([source.migrate(), target.run(b)]);
  return { verified: rep.verified, target };
}

function sameContent(a: GuestMemory, b: GuestMemory): boolean {
  if (a.pageCount !== b.pageCount) return false;
  for (let p = 0; p < a.pageCount; p++) if (Buffer.compare(a.page(p), b.page(p)) !== 0) return false;
  return true;
}

describe('heap arithmetic at the 32-bit edges', () => {
  it('alignUp is exact where 32-bit operators wrap', () => {
    const cases: [number, number][] = [
      [0, 0], [1, 16], [15, 16], [16, 16], [17, 32],
      [2 ** 31 - 1, 2 ** 31], [2 ** 31, 2 ** 31], [2 ** 31 + 1, 2 ** 31 + 16],
      [2 ** 32 - 17, 2 ** 32 - 16], [2 ** 32 - 1, 2 ** 32], [2 ** 32, 2 ** 32], [2 ** 32 + 1, 2 ** 32 + 16],
    ];
    for (const [n, want] of cases) expect(alignUp(n)).toBe(want);
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (n) => {
      const a = alignUp(n);
      return a % 16 === 0 && a >= n && a - n < 16;
    }), { seed: 13, numRuns: 2000 });
  });

  it('blocks of 2 GiB and more are aligned, sized and never overlap the next block', async () => {
    const core = await createCore();
    const big = core.alloc(2.5 * GiB);
    expect(big % 16).toBe(0);
    const small = core.alloc(100);
    expect(small).toBeGreaterThanOrEqual(big + 2.5 * GiB);
    expect(core.byteLength).toBeGreaterThanOrEqual(small + 100);
    const u8 = core.u8();
    u8[big + 2.5 * GiB - 1] = 0x5a;
    u8.fill(0xa5, small, small + 100);
    expect(u8[big + 2.5 * GiB - 1]).toBe(0x5a);
    // a block that would end past 4 GiB is refused with a typed error, nothing is handed out
    expect(codeOf(() => core.alloc(MAX_CORE_BYTES - small))).toBe('WASM_FAILED');
    expect(codeOf(() => core.alloc(-1))).toBe('INVALID_ARGUMENT');
    // released blocks above 2 GiB are reused at the same address
    core.release(small, 100);
    expect(core.alloc(100)).toBe(small);
  });

  it('an in-core guest of 3 GiB has its full size and the next allocation lies above it', async () => {
    const core = await createCore();
    const pages = IN_CORE_LIMIT_BYTES / 4096;
    const m = GuestMemory.inCore(core, pages);
    expect(m.byteLength).toBe(3 * GiB);
    const next = core.alloc(4096);
    expect(next).toBeGreaterThanOrEqual(m.basePtr + 3 * GiB);
    m.page(pages - 1).fill(7);
    core.u8().fill(9, next, next + 4096);
    expect(m.page(pages - 1).every((b) => b === 7)).toBe(true);
    expect(m.page(pages - 2).every((b) => b === 0)).toBe(true);
  });

  it('guests that do not fit one core are refused with a typed error before any allocation', async () => {
    const core = await createCore();
    const before = core.byteLength;
    expect(codeOf(() => GuestMemory.inCore(core, (4 * GiB) / 4096))).toBe('WASM_FAILED');
    expect(codeOf(() => GuestMemory.inCore(core, (6 * GiB) / 4096))).toBe('WASM_FAILED');
    expect(core.byteLength).toBe(before);
    expect(codeOf(() => GuestMemory.allocateExternal({ pageSize: 4096, regions: [{ name: 'big', pageCount: MAX_REGION_BYTES / 4096 + 1 }] }))).toBe('INVALID_ARGUMENT');
  });
});

describe('layouts of guests larger than one core', () => {
  it('splitRegions covers the guest exactly with regions of at most the given size', () => {
    expect(splitRegions(GiB).regions).toEqual([{ name: 'ram', pageCount: GiB / 4096 }]);
    const six = splitRegions(6 * GiB);
    expect(six.regions.map((r) => r.name)).toEqual(['ram0', 'ram1', 'ram2', 'ram3', 'ram4', 'ram5']);
    expect(six.regions.every((r) => r.pageCount === GiB / 4096)).toBe(true);
    const odd = splitRegions(GiB + 4096);
    expect(odd.regions.map((r) => r.pageCount)).toEqual([GiB / 4096, 1]);
    fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 22 }), fc.integer({ min: 1, max: 40 }), (perRegion, regions) => {
      const pages = Math.max(1, perRegion * regions - (regions > 1 ? perRegion >> 1 : 0)); // some last regions partial
      const l = splitRegions(pages * 4096, 4096, perRegion * 4096);
      const total = l.regions.reduce((n, r) => n + r.pageCount, 0);
      return total === pages && l.regions.every((r) => r.pageCount >= 1 && r.pageCount <= perRegion);
    }), { seed: 13, numRuns: 300 });
    expect(codeOf(() => splitRegions(4097))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => splitRegions(0))).toBe('INVALID_ARGUMENT');
  });

  it('forLayout places a guest in the core up to the limit and in external regions above it', async () => {
    const core = await createCore();
    const small = GuestMemory.forLayout({ pageSize: 4096, regions: [{ name: 'ram', pageCount: 16 }] }, { core });
    expect(small.placement).toBe('core');
    const shared = GuestMemory.forLayout({ pageSize: 4096, regions: [{ name: 'ram', pageCount: 16 }] }, { core, shared: true });
    expect(shared.placement).toBe('external');
    expect(shared.regionViews()[0]!.buffer).toBeInstanceOf(SharedArrayBuffer);
    const over = GuestMemory.forLayout({ pageSize: 4096, regions: [{ name: 'a', pageCount: 16 }, { name: 'b', pageCount: 8 }] }, { core, inCoreLimitBytes: 64 * 1024 });
    expect(over.placement).toBe('external');
    expect(over.regions.map((r) => r.firstPage)).toEqual([0, 16]);
  });
});

describe('migrations at the edges', () => {
  it('an in-core guest placed above 2 GiB in both cores migrates with every codec, verified', async () => {
    const srcCore = await createCore();
    const dstCore = await createCore();
    srcCore.alloc(2 * GiB + 4096); // push both guests past 2^31
    dstCore.alloc(2 * GiB + 8192);
    const src = GuestMemory.inCore(srcCore, 512);
    const dst = GuestMemory.inCore(dstCore, 512);
    expect(src.basePtr).toBeGreaterThan(2 ** 31);
    expect(dst.basePtr).toBeGreaterThan(2 ** 31);
    fill(src, 1);
    const { verified } = await migrate(src, dst);
    expect(verified).toBe(true);
    expect(sameContent(src, dst)).toBe(true);
  });

  it('a guest of several external regions migrates into a target that sizes its memory from the layout', async () => {
    const layout = splitRegions(300 * 4096, 4096, 64 * 4096); // 5 regions: 64+64+64+64+44 pages
    expect(layout.regions).toHaveLength(5);
    const src = GuestMemory.allocateExternal(layout);
    fill(src, 2);
    const { verified, target } = await migrate(src, async (l) => GuestMemory.forLayout(l, { core: await createCore(), inCoreLimitBytes: 64 * 4096 }));
    expect(verified).toBe(true);
    const dst = target.guestMemory!;
    expect(dst.placement).toBe('external');
    expect(dst.regions.map((r) => r.pageCount)).toEqual([64, 64, 64, 64, 44]);
    expect(sameContent(src, dst)).toBe(true);
  });
});
