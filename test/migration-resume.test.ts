import { describe, it, expect } from 'vitest';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { FaultInjector, parseFaultSpec } from '../src/migration/faults.js';
import { ErrorCode, PagewireError } from '../src/errors.js';
import { SetDirtyLog, TimerGuest, makeMemories, MemoryLink, sameMemory } from './helpers/engine.js';

async function run(spec: string, opts: { pages?: number; secret?: string } = {}) {
  const pages = opts.pages ?? 4096;
  const { src, dst } = await makeMemories(pages);
  const log = new SetDirtyLog(pages);
  const guest = new TimerGuest(src, log, 20);
  const link = new MemoryLink();
  const inj = new FaultInjector(spec);
  link.wrap = (t) => inj.wrap(t);
  let resumed = 0;
  const source = new MigrationSource(src, log, link.connect, {
    downtimeLimitMs: 1, batchPages: 64, windowBytes: 1 << 20, retryBackoffMs: 5, maxRounds: 5, secret: opts.secret,
    onPhase: (p) => inj.onPhase(p),
  }, {
    pause: () => { guest.paused = true; }, resume: () => { guest.paused = false; resumed++; },
    // the timer guest cannot write while a round keeps the event loop busy: dirty a few pages at
    // the end of every round, so no round ends with nothing dirty (the policy would switch over
    // before the round a fault is injected in)
    onRound: (_r: number, before: boolean) => {
      if (!before) return;
      for (let i = 0; i < 8; i++) {
        const w = guest.writes++;
        const p = (w * 7919 + 5) % pages;
        src.page(p)[(w * 8) % 4096] = (w * 31) & 0xff;
        log.set.add(p);
      }
    },
  });
  const target = new MigrationTarget(dst, { resumeDeadlineMs: 5000, secret: opts.secret });
  try {
    const [rs, rt] = await Promise.all([source.migrate(), target.run(link.accept)]);
    return { rs, rt, src, dst, inj, link, resumed };
  } finally {
    guest.stop();
  }
}

describe('resume after a dropped link', () => {
  it('parses fault specs and refuses bad ones with INVALID_ARGUMENT', () => {
    expect(parseFaultSpec('drop@round2,stall@round1:3s,corrupt@complete').map((f) => [f.kind, f.phase, f.durationMs]))
      .toEqual([['drop', 'round2', 0], ['stall', 'round1', 3000], ['corrupt', 'complete', 0]]);
    for (const bad of ['drop@round', 'stall@round1', 'drop@round1:3s', 'explode@round1', 'drop@nowhere']) {
      expect(() => parseFaultSpec(bad)).toThrowError(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    }
  });

  for (const spec of ['drop@handshake', 'drop@round0', 'drop@round2', 'drop@stop-and-copy', 'drop@complete', 'corrupt@round1', 'drop@round0,drop@round1']) {
    it(`survives ${spec} with verified memory`, async () => {
      const { rs, rt, src, dst, inj, link } = await run(spec);
      expect(inj.fired.length).toBeGreaterThan(0);
      expect(rs.verified).toBe(true);
      expect(rt.verified).toBe(true);
      expect(sameMemory(src, dst)).toBe(true);
      if (spec.startsWith('corrupt')) {
        expect(rt.corruptionsDetected + rs.corruptionsDetected).toBeGreaterThan(0);
      }
      if (spec !== 'drop@handshake') expect(link.connections).toBeGreaterThan(1);
      // Only the unacknowledged window (plus pages dirtied meanwhile) is sent again, not the memory.
      expect(rs.resentBytes).toBeLessThan(src.byteLength / 2);
    });
  }

  // With a secret every frame is authenticated with keys of its connection: a reconnect derives
  // new keys, sequence numbers continue, and an accidental flip (checksum) is still resumed.
  for (const spec of ['drop@round2', 'drop@complete', 'corrupt@round1']) {
    it(`with a secret, survives ${spec} with verified memory (new frame keys per connection)`, async () => {
      const { rs, rt, src, dst, inj, link } = await run(spec, { secret: 's3cret' });
      expect(inj.fired.length).toBeGreaterThan(0);
      expect(rs.verified && rt.verified).toBe(true);
      expect(sameMemory(src, dst)).toBe(true);
      expect(link.connections).toBeGreaterThan(1);
      if (spec.startsWith('corrupt')) expect(rt.corruptionsDetected + rs.corruptionsDetected).toBeGreaterThan(0);
    });
  }

  it('fails cleanly when the target never comes back, and resumes the paused guest', async () => {
    const pages = 1024;
    const { src, dst } = await makeMemories(pages);
    const log = new SetDirtyLog(pages);
    const link = new MemoryLink();
    let attempts = 0;
    let first = true;
    const inj = new FaultInjector('drop@stop-and-copy');
    let paused = false;
    let resumedHook = 0;
    const source = new MigrationSource(src, log, async () => {
      attempts++;
      if (!first) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'connection refused');
      first = false;
      return inj.wrap(await link.connect());
    }, { downtimeLimitMs: 1000, retryBackoffMs: 1, maxRetries: 3, onPhase: (p) => inj.onPhase(p) },
    { pause: () => { paused = true; }, resume: () => { paused = false; resumedHook++; } });
    const target = new MigrationTarget(dst, { resumeDeadlineMs: 300 });
    const [s, t] = await Promise.allSettled([source.migrate(), target.run(link.accept)]);
    expect(s.status).toBe('rejected');
    expect((s as PromiseRejectedResult).reason.code).toBe(ErrorCode.RESUME_FAILED);
    expect(t.status).toBe('rejected');
    expect(paused).toBe(false);
    expect(resumedHook).toBe(1);
    expect(attempts).toBe(4);
  });
});
