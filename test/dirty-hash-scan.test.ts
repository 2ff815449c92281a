import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { createCore, loadSharedCore, type Core } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { HashScanDirtyLog } from '../src/memory/hash-scan-log.js';
import { fillInitial } from '../src/sim/content.js';

/** Pages whose bytes differ between a saved copy and the memory now (the naive oracle). */
function changedPages(before: Uint8Array[], mem: GuestMemory): number[] {
  const out: number[] = [];
  for (let p = 0; p < mem.pageCount; p++) {
    const a = before[p]!;
    const b = mem.page(p);
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) { out.push(p); break; }
  }
  return out;
}

function copyPages(mem: GuestMemory): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let p = 0; p < mem.pageCount; p++) out.push(mem.page(p).slice());
  return out;
}

let core: Core;
beforeAll(async () => { core = await createCore(); });

const placements: [string, () => Promise<GuestMemory>][] = [
  ['core (in place)', async () => GuestMemory.inCore(core, 300, 4096)],
  ['external, three regions', async () => GuestMemory.external([new ArrayBuffer(100 * 1024), new ArrayBuffer(37 * 1024), new SharedArrayBuffer(63 * 1024)], 1024)],
];

describe.each(placements)('HashScanDirtyLog, memory %s', (_name, make) => {
  it('finds exactly the pages whose bytes changed, round after round', async () => {
    const mem = await make();
    fillInitial(mem, 'mixed', 7);
    // a small batch forces several core calls per region
    const log = mem.core ? new HashScanDirtyLog(mem, undefined, { batchPages: 17 }) : await HashScanDirtyLog.create(mem, { batchPages: 17 });
    expect(log.inPlace).toBe(mem.core !== null);
    log.start();
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: mem.pageCount - 1 }), fc.integer({ min: 0, max: mem.pageSize - 1 }), fc.integer({ min: 0, max: 255 }), fc.boolean()), { maxLength: 60 }),
      (writes) => {
        const before = copyPages(mem);
        for (const [p, off, v, same] of writes) {
          const page = mem.page(p);
          page[off] = same ? page[off]! : v; // `same` rewrites identical bytes: not a change
        }
        const want = changedPages(before, mem);
        expect(log.peekCount()).toBe(want.length);
        expect(Array.from(log.sync())).toEqual(want);
        expect(log.sync().length).toBe(0);
      },
    ), { seed: 99, numRuns: 40 });
    log.stop();
    log.dispose();
  });

  it('reports every page before the first start and after markAll', async () => {
    const mem = await make();
    const log = await HashScanDirtyLog.create(mem);
    expect(log.sync().length).toBe(mem.pageCount);
    expect(log.sync().length).toBe(0);
    log.markAll();
    expect(log.sync().length).toBe(mem.pageCount);
    log.start();
    mem.page(mem.pageCount - 1)[0] ^= 1;
    expect(Array.from(log.sync())).toEqual([mem.pageCount - 1]);
    log.dispose();
  });
});

describe('HashScanDirtyLog with a separate hashing core', () => {
  it('copies pages of another core\'s memory into its own staging arena', async () => {
    const shared = await loadSharedCore();
    const mem = GuestMemory.inCore(core, 64, 4096);
    const log = new HashScanDirtyLog(mem, shared);
    expect(log.inPlace).toBe(false);
    log.start();
    mem.page(7)[4095] = 9;
    mem.page(63)[0] = 1;
    expect(Array.from(log.sync())).toEqual([7, 63]);
    log.dispose();
  });
});
