/**
 * The host's event loop keeps running while a migration runs in the same thread (issue 17): over
 * memoryPair every await of a migration resolves as a microtask, so before the source yielded a
 * setInterval writer fired 0 times during a 150-312 ms migration. The source gives the event loop
 * a turn every `yieldIntervalMs` of work (default 4 ms) before a frame leaves; the target, fed by
 * the source, then catches up in the same turn.
 */
import { describe, expect, it } from 'vitest';
import { createCore } from '../src/core/core.js';
import { ErrorCode } from '../src/errors.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource, type SourceOptions } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { DEFAULT_YIELD_INTERVAL_MS, EventLoopTurns } from '../src/migration/common.js';

const PAGES = 8192; // 32 MiB: 32 PAGES frames of 256 pages

const noDirtyLog = { start(): void {}, stop(): void {}, sync: (): Uint32Array => new Uint32Array(0) };

/**
 * Migrates PAGES pages over memoryPair while a 1 ms setInterval counts its calls.
 * @returns the timer's calls between the start of the migration and its end
 */
async function timerDuringMigration(source: SourceOptions): Promise<{ fires: number; verified: boolean }> {
  const src = GuestMemory.inCore(await createCore(), PAGES);
  for (let p = 0; p < PAGES; p++) src.page(p).fill((p * 13) & 0xff, 0, 64 + (p % 7) * 512);
  const dst = GuestMemory.inCore(await createCore(), PAGES);
  const [a, b] = memoryPair();
  let fires = 0;
  let counting = false;
  const timer = setInterval(() => { if (counting) fires++; }, 1);
  try {
    const m = new MigrationSource(src, noDirtyLog, a, { codecs: 'raw', ...source });
    const t = new MigrationTarget(dst);
    counting = true;
    const [rs, rt] = await Promise.all([m.migrate(), t.run(b)]);
    counting = false;
    return { fires, verified: rs.verified && rt.verified };
  } finally {
    clearInterval(timer);
  }
}

describe('event loop turns during a migration over memoryPair', () => {
  it('a setInterval timer fires while the pages flow (the default interval)', async () => {
    const r = await timerDuringMigration({});
    expect(r.verified).toBe(true);
    // 32 MiB take well over 8 ms anywhere; each 4 ms of work lets the 1 ms timer run
    expect(r.fires).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('the turns are what lets the timer run: with yieldIntervalMs Infinity it starves again', async () => {
    const r = await timerDuringMigration({ yieldIntervalMs: Infinity });
    expect(r.verified).toBe(true);
    expect(r.fires).toBeLessThanOrEqual(1); // at most once, during the handshake
  }, 60_000);

  it('refuses a negative or NaN interval with INVALID_ARGUMENT', async () => {
    const mem = GuestMemory.inCore(await createCore(), 4);
    const [a] = memoryPair();
    for (const bad of [-1, Number.NaN]) {
      expect(() => new MigrationSource(mem, noDirtyLog, a, { yieldIntervalMs: bad })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
      expect(() => new EventLoopTurns(bad)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    }
  });
});

describe('EventLoopTurns (injected clock)', () => {
  it('asks for a turn only once the interval has passed, and counts again from the turn', async () => {
    let now = 100;
    const turns = new EventLoopTurns(4, () => now);
    expect(turns.due()).toBeNull();
    now = 103.9;
    expect(turns.due()).toBeNull();
    now = 104;
    const turn = turns.due();
    expect(turn).toBeInstanceOf(Promise);
    now = 110;
    await turn;
    // the interval counts from the end of the turn (110), not from when it was asked for
    now = 113;
    expect(turns.due()).toBeNull();
    now = 114;
    expect(turns.due()).toBeInstanceOf(Promise);
  });

  it('Infinity never yields; 0 yields at every call; the default is 4 ms', async () => {
    let now = 0;
    const never = new EventLoopTurns(Infinity, () => now);
    const always = new EventLoopTurns(0, () => now);
    now = 1e12;
    expect(never.due()).toBeNull();
    await always.due();
    await always.due();
    expect(DEFAULT_YIELD_INTERVAL_MS).toBe(4);
  });

});
