import { describe, it, expect } from 'vitest';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource, type DirtyLogLike } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { PageSet } from '../src/memory/page-set.js';

class SetDirtyLog implements DirtyLogLike {
  set: PageSet;
  on = false;
  constructor(n: number) { this.set = new PageSet(n); }
  start() { this.on = true; }
  stop() { this.on = false; }
  sync() { return this.set.drain(); }
}

describe('pre-copy over an in-memory pair', () => {
  it('migrates a guest that keeps writing, verified', async () => {
    const srcCore = await createCore();
    const dstCore = await createCore();
    const pages = 2048;
    const src = GuestMemory.inCore(srcCore, pages);
    for (let p = 0; p < pages; p += 3) src.page(p).fill(p & 0xff);
    const dst = GuestMemory.inCore(dstCore, pages);
    const log = new SetDirtyLog(pages);
    let writes = 0;
    let paused = false;
    const timer = setInterval(() => {
      if (paused) return;
      for (let i = 0; i < 50; i++) {
        const p = (writes * 7919) % pages;
        src.page(p)[writes % 4096] = writes & 0xff;
        log.set.add(p);
        writes++;
      }
    }, 1);
    const [a, b] = memoryPair();
    const source = new MigrationSource(src, log, a, { downtimeLimitMs: 50 }, { pause: () => { paused = true; }, resume: () => { paused = false; } });
    let ran = false;
    const target = new MigrationTarget(dst, {}, { guestMayRun: () => { ran = true; } });
    const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
    clearInterval(timer);
    expect(rs.verified).toBe(true);
    expect(rt.verified).toBe(true);
    expect(ran).toBe(true);
    expect(Buffer.compare(src.pages(0, pages)!, dst.pages(0, pages)!)).toBe(0);
    expect(rs.rounds.length).toBeGreaterThanOrEqual(2);
    expect(rs.rounds[rs.rounds.length - 1]!.final).toBe(true);
  });
});
