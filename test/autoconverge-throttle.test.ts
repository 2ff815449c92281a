/**
 * Auto-converge under the real engine: a guest that dirties memory faster than the (capped) link
 * drains it is throttled through the source's throttle hook by growing percentages (QEMU's
 * cpu-throttle-initial 20, increment 10), and the report states the throttle applied.
 */
import { describe, it, expect } from 'vitest';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { SimulatedGuest } from '../src/sim/guest.js';
import { fillInitial } from '../src/sim/content.js';

async function run(autoConverge: boolean, extra: Record<string, unknown> = {}) {
  const pages = 256;
  const src = GuestMemory.inCore(await createCore(), pages, 4096);
  fillInitial(src, 'mixed', 5);
  // 5000 page writes/s over 256 pages against a ~1000 pages/s link (raw pages: the compressing
  // codecs would carry this content fast enough to converge): the dirty set never shrinks
  const guest = new SimulatedGuest(src, { workload: 'uniform', ratePagesPerSec: 5000, seed: 11 });
  const dst = GuestMemory.inCore(await createCore(), pages, 4096);
  const calls: number[] = [];
  const hooks = guest.hooks();
  const [a, b] = memoryPair();
  const source = new MigrationSource(src, guest.dirtyLog, a, {
    autoConverge, codecs: 'raw', downtimeLimitMs: 1, stallRounds: 1, maxRounds: 14, maxBandwidthBytesPerSec: 4e6, windowBytes: 128 * 1024, ...extra,
  }, { ...hooks, throttle: (pct) => { calls.push(pct); hooks.throttle(pct); } });
  guest.start();
  const [rs, rt] = await Promise.all([source.migrate(), new MigrationTarget(dst).run(b)]);
  guest.stop();
  return { rs, rt, calls, guest, same: Buffer.compare(src.pages(0, pages)!, dst.pages(0, pages)!) === 0 };
}

describe('auto-converge', () => {
  it('throttles a non-converging guest by growing percentages and reports the last one', async () => {
    const { rs, rt, calls, guest, same } = await run(true);
    expect(rs.verified && rt.verified && same).toBe(true);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls[0]).toBe(20);
    for (let i = 1; i < calls.length; i++) expect(calls[i]).toBe(Math.min(99, calls[i - 1]! + 10));
    expect(rs.throttlePct).toBe(calls[calls.length - 1]);
    expect(guest.throttle).toBe(rs.throttlePct);
    // the throttle in force is recorded per round and never goes down
    const perRound = rs.rounds.map((r) => r.throttlePct);
    for (let i = 1; i < perRound.length; i++) expect(perRound[i]).toBeGreaterThanOrEqual(perRound[i - 1]!);
    expect(perRound[perRound.length - 1]).toBe(rs.throttlePct);
    expect((rs.options as { autoConverge: boolean }).autoConverge).toBe(true);
  });

  it('custom steps: initial 50, increment 25, capped at 90', async () => {
    const { rs, calls } = await run(true, { throttleInitialPct: 50, throttleIncrementPct: 25, throttleMaxPct: 90 });
    expect(calls.slice(0, 3)).toEqual([50, 75, 90].slice(0, calls.length));
    expect(calls.every((c) => c <= 90)).toBe(true);
    expect(rs.throttlePct).toBe(calls[calls.length - 1]);
  });

  it('without auto-converge the hook is never called and throttlePct is 0', async () => {
    const { rs, calls, same } = await run(false);
    expect(same).toBe(true);
    expect(calls).toEqual([]);
    expect(rs.throttlePct).toBe(0);
    expect(rs.converged).toBe(false);
  });
});
