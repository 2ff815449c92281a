/**
 * Convergence end to end (real engine, in-memory shaped links): an idle guest converges in few
 * rounds; a guest that dirties faster than the link does not, and the configured policy applies;
 * the measured downtime follows the model.
 */
import { describe, it, expect } from 'vitest';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { shapedPair } from '../src/transport/shaped.js';
import { memoryPair } from '../src/transport/memory.js';
import { ErrorCode } from '../src/errors.js';
import { SetDirtyLog, TimerGuest, makeMemories, sameMemory } from './helpers/engine.js';

describe('convergence', () => {
  it('an idle guest converges right after the first pass', async () => {
    const { src, dst } = await makeMemories(2048);
    const [a, b] = memoryPair();
    const [rs] = await Promise.all([new MigrationSource(src, new SetDirtyLog(2048), a).migrate(), new MigrationTarget(dst).run(b)]);
    expect(rs.converged).toBe(true);
    expect(rs.rounds.length).toBe(2); // round 0 + an empty stop-and-copy round
    expect(rs.rounds[1]!.pages).toBe(0);
    expect(sameMemory(src, dst)).toBe(true);
  });

  const fastGuest = async (onNonConvergence: 'fail' | 'switchover') => {
    const pages = 256;
    const { src, dst } = await makeMemories(pages);
    const log = new SetDirtyLog(pages);
    // The guest rewrites every page before each dirty sync, whatever the machine's load: each
    // round has 1 MiB of raw pages dirty, 500 ms at 2 MiB/s against a 20 ms limit. (A timer guest
    // starves on a loaded machine and lets the migration converge.) Raw pages: XBZRLE would carry
    // these one-word writes in a few bytes each and converge.
    const guest = { paused: false, writes: 0 };
    const dirtyAll = (): void => {
      if (guest.paused) return;
      for (let p = 0; p < pages; p++) {
        const w = guest.writes++;
        src.page(p)[(w * 8) % src.pageSize] = (w * 31) & 0xff;
        log.set.add(p);
      }
    };
    const [a, b] = shapedPair({ bandwidthBytesPerSec: 2 * 1024 * 1024 });
    let paused = 0;
    let resumed = 0;
    const source = new MigrationSource(src, log, a, { codecs: 'raw', downtimeLimitMs: 20, maxRounds: 6, stallRounds: 2, onNonConvergence },
      {
        pause: () => { paused++; guest.paused = true; },
        resume: () => { resumed++; guest.paused = false; },
        onRound: (_round, before) => { if (before) dirtyAll(); },
      });
    const target = new MigrationTarget(dst);
    const res = await Promise.allSettled([source.migrate(), target.run(b)]);
    return { res, paused, resumed, guest, src, dst };
  };

  it('a guest dirtying faster than the link does not converge; policy "fail" fails cleanly, guest running', async () => {
    const { res, paused, guest } = await fastGuest('fail');
    expect(res[0].status).toBe('rejected');
    expect((res[0] as PromiseRejectedResult).reason.code).toBe(ErrorCode.NOT_CONVERGED);
    expect(res[1].status).toBe('rejected');
    expect(paused).toBe(0);
    expect(guest.paused).toBe(false);
  });

  it('policy "switchover" forces the switch-over: verified but not converged', async () => {
    const { res, src, dst } = await fastGuest('switchover');
    expect(res[0].status).toBe('fulfilled');
    const rs = (res[0] as PromiseFulfilledResult<any>).value;
    expect(rs.verified).toBe(true);
    expect(rs.converged).toBe(false);
    expect(rs.reason).toMatch(/not converging/);
    expect(sameMemory(src, dst)).toBe(true);
  });

  it('the measured downtime follows the model (expected downtime) on a rate-limited link', async () => {
    const pages = 4096;
    const { src, dst } = await makeMemories(pages);
    const log = new SetDirtyLog(pages);
    const guest = new TimerGuest(src, log, 1);
    const [a, b] = shapedPair({ bandwidthBytesPerSec: 32 * 1024 * 1024, delayMs: 2 });
    const limit = 150;
    const source = new MigrationSource(src, log, a, { downtimeLimitMs: limit }, { pause: () => { guest.paused = true; } });
    const [rs] = await Promise.all([source.migrate(), new MigrationTarget(dst).run(b)]);
    guest.stop();
    expect(rs.converged).toBe(true);
    expect(rs.expectedDowntimeMs).toBeLessThanOrEqual(limit);
    // within the model's error: generous bounds for a shared, noisy machine
    expect(rs.downtimeMs).toBeLessThan(limit * 2 + 200);
  });
});
