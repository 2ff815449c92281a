/**
 * Verification: the digest catches memory that differs however it got there (here: a target page
 * damaged behind the protocol's back), and the optional full pass repairs it.
 */
import { describe, it, expect } from 'vitest';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { ErrorCode } from '../src/errors.js';
import { SetDirtyLog, makeMemories, sameMemory } from './helpers/engine.js';

async function run(verify: 'memory' | 'full') {
  const { src, dst } = await makeMemories(512);
  const [a, b] = memoryPair();
  let ran = false;
  let resumed = 0;
  let paused = 0;
  const source = new MigrationSource(src, new SetDirtyLog(512), a, { verify }, { pause: () => { paused++; }, resume: () => { resumed++; } });
  // Damage pages on the target after round 0 arrived (nothing re-sends them: the guest is idle).
  source.on('phase', (p) => { if (p.phase === 'complete') { dst.page(7)[100] ^= 0xff; dst.page(300)[0] ^= 1; } });
  const target = new MigrationTarget(dst, {}, { guestMayRun: () => { ran = true; } });
  const [s, t] = await Promise.allSettled([source.migrate(), target.run(b)]);
  return { s, t, src, dst, ran, resumed, paused };
}

describe('verification', () => {
  it('a damaged target page fails the memory digest (verify: memory): VERIFY_FAILED on both sides, target guest never runs, source resumes', async () => {
    const r = await run('memory');
    expect(r.s.status).toBe('rejected');
    expect((r.s as PromiseRejectedResult).reason.code).toBe(ErrorCode.VERIFY_FAILED);
    expect((r.t as PromiseRejectedResult).reason.code).toBe(ErrorCode.VERIFY_FAILED);
    expect(r.ran).toBe(false);
    expect(r.resumed).toBe(r.paused);
  });

  it('the full verification pass re-sends exactly the differing pages and verifies', async () => {
    const r = await run('full');
    expect(r.s.status).toBe('fulfilled');
    const rep = (r.s as PromiseFulfilledResult<any>).value;
    expect(rep.verified).toBe(true);
    expect(rep.repairedPages).toBe(2);
    expect(r.ran).toBe(true);
    expect(sameMemory(r.src, r.dst)).toBe(true);
  });
});
