import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { createCore, Arena } from '../src/core/core.js';

describe('core heap', () => {
  it('blocks never overlap, are 16-byte aligned, and zeroed blocks are zero even when reused', async () => {
    const core = await createCore();
    fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 200_000 }), fc.boolean()), { maxLength: 60 }), (ops) => {
      const live: { ptr: number; size: number }[] = [];
      for (const [doAlloc, size, zeroed] of ops) {
        if (doAlloc || live.length === 0) {
          const ptr = zeroed ? core.allocZeroed(size) : core.alloc(size);
          expect(ptr % 16).toBe(0);
          const u8 = core.u8();
          if (zeroed) expect(u8.subarray(ptr, ptr + size).every((b) => b === 0)).toBe(true);
          for (const b of live) expect(ptr + size <= b.ptr || b.ptr + b.size <= ptr).toBe(true);
          u8.fill(0xab, ptr, ptr + size); // dirty it so reuse must clear
          live.push({ ptr, size });
        } else {
          const b = live.splice(size % live.length, 1)[0]!;
          core.release(b.ptr, b.size);
        }
      }
      for (const b of live) core.release(b.ptr, b.size);
    }), { seed: 3, numRuns: 60 });
  });

  it('views are rebuilt after memory.grow and arenas only grow', async () => {
    const core = await createCore();
    const before = core.u8();
    const a = new Arena(core, 100);
    const p1 = a.ensure(50);
    expect(a.ensure(80)).toBe(p1);
    a.ensure(64 * 1024 * 1024);
    expect(core.byteLength).toBeGreaterThan(64 * 1024 * 1024);
    expect(before.byteLength).toBe(0); // detached by growth
    expect(core.u8().byteLength).toBe(core.byteLength);
    a.dispose();
  });
});
