import { describe, it, expect } from 'vitest';
import { decide, ConvergencePolicy, DEFAULT_POLICY, expectedDowntimeMs, stalledRounds, type RoundSample, type PolicyState } from '../src/migration/policy.js';

const MB = 1e6;
function rounds(dirtyAfter: number[]): RoundSample[] {
  return dirtyAfter.map((d, i) => ({ round: i, pagesSent: 1000, wireBytes: 4096 * 1000, durationMs: 100, dirtyPagesAfter: d }));
}
function state(dirtyAfter: number[], extra: Partial<PolicyState> = {}): PolicyState {
  return { mode: 'precopy', rounds: rounds(dirtyAfter), bandwidthBytesPerSec: 100 * MB, rttMs: 1, wireBytesPerPage: 4096, throttlePct: 0, ...extra };
}

describe('convergence policy (pure table)', () => {
  it('expected downtime = dirty bytes on the wire / bandwidth + rtt + switch-over cost', () => {
    expect(expectedDowntimeMs(1000, { bandwidthBytesPerSec: 4096 * 1000, rttMs: 2, wireBytesPerPage: 4096 }, { switchoverCostMs: 5 })).toBeCloseTo(1007);
  });

  const cases: [string, PolicyState, Partial<typeof DEFAULT_POLICY>, string][] = [
    ['small dirty set switches over', state([100000, 500]), {}, 'switchover'],
    ['large dirty set continues', state([100000, 50000]), {}, 'continue'],
    ['stalled rounds force switch-over by default', state([10000, 9000, 9000, 9000, 9000, 9000]), {}, 'switchover'],
    ['stalled rounds fail when asked', state([10000, 9000, 9000, 9000, 9000, 9000]), { onNonConvergence: 'fail' }, 'fail'],
    ['stalled rounds go post-copy when asked', state([10000, 9000, 9000, 9000, 9000, 9000]), { onNonConvergence: 'postcopy' }, 'postcopy'],
    ['stalled rounds throttle first with auto-converge', state([10000, 9000, 9000, 9000, 9000, 9000]), { autoConverge: true }, 'throttle'],
    ['max rounds reached', state([10000, 8000, 6000]), { maxRounds: 3 }, 'switchover'],
    ['hybrid goes post-copy after its pre-copy rounds', state([10000, 8000], { mode: 'hybrid' }), { hybridPrecopyRounds: 2 }, 'postcopy'],
    ['post-copy mode switches right away', state([10000], { mode: 'postcopy' }), {}, 'postcopy'],
    ['a higher downtime limit converges sooner', state([100000, 50000]), { downtimeLimitMs: 3000 }, 'switchover'],
    ['nothing dirty: switch over even when fixed costs exceed the limit', state([100000, 0], { verifyCostMs: 700 }), {}, 'switchover'],
    ['nothing dirty in hybrid: stop-and-copy, not post-copy', state([100000, 0], { mode: 'hybrid', verifyCostMs: 700 }), { hybridPrecopyRounds: 1 }, 'switchover'],
    ['nothing dirty but a second of data in flight: wait for it (an empty round), do not switch over', state([100000, 0], { inFlightBytes: 100 * MB }), {}, 'continue'],
    ['nothing dirty, data in flight, fixed costs over the limit anyway: switch over', state([100000, 0], { inFlightBytes: 100 * MB, verifyCostMs: 700 }), {}, 'switchover'],
    ['nothing dirty, data in flight, out of rounds: switch over', state([100000, 0], { inFlightBytes: 100 * MB }), { maxRounds: 2 }, 'switchover'],
    ['fixed costs over the limit with pages dirty: continue', state([100000, 50], { verifyCostMs: 700 }), {}, 'continue'],
  ];
  for (const [name, s, o, action] of cases) {
    it(name, () => {
      expect(decide(s, { ...DEFAULT_POLICY, ...o }).action).toBe(action);
    });
  }

  it('throttle grows 20, 30, ... up to 99 (QEMU defaults)', () => {
    const o = { ...DEFAULT_POLICY, autoConverge: true };
    const seen: number[] = [];
    let pct = 0;
    for (let i = 0; i < 12; i++) {
      const d = decide(state([10000, 9000, 9000, 9000, 9000, 9000], { throttlePct: pct }), o);
      if (d.action !== 'throttle') break;
      seen.push(d.throttlePct);
      pct = d.throttlePct;
    }
    expect(seen).toEqual([20, 30, 40, 50, 60, 70, 80, 90, 99]);
    expect(decide(state([10000, 9000, 9000, 9000, 9000, 9000], { throttlePct: 99 }), o).action).toBe('switchover');
  });

  it('counts stalled rounds from the end', () => {
    expect(stalledRounds(rounds([100, 50, 49, 48]))).toBe(2);
    expect(stalledRounds(rounds([100, 50, 20]))).toBe(0);
  });

  it('a switch-over whose fixed cost exceeds the limit is not converged, and says why', () => {
    const d = decide(state([100000, 0], { verifyCostMs: 700 }), DEFAULT_POLICY);
    expect(d).toMatchObject({ action: 'switchover', converged: false });
    expect(d.reason).toMatch(/fixed cost .* exceeds the 300 ms limit/);
    expect(decide(state([100000, 0], { verifyCostMs: 50 }), DEFAULT_POLICY)).toMatchObject({ action: 'switchover', converged: true });
  });
});

describe('ConvergencePolicy (the one policy every engine feeds)', () => {
  const m = (round: number, pagesSent: number, wireBytes: number, dirtyPagesAfter: number) => ({
    round, pagesSent, wireBytes, durationMs: 100, dirtyPagesAfter, bandwidthBytesPerSec: 100 * MB, rttMs: 20, inFlightBytes: 0, verifyCostMs: 10,
  });

  it('costs a dirty page at the wire bytes per page of the latest round that sent pages', () => {
    const p = new ConvergencePolicy('precopy', DEFAULT_POLICY, 4096);
    // 1000 pages at 100 bytes: 5000 dirty pages cost 0.5 MB = 5 ms alongside the source's 5 ms
    // digest; then the target's digest 5, the round trip 20, the switch-over cost 5
    expect(p.afterRound(m(0, 1000, 100_000, 5000)).expectedDowntimeMs).toBeCloseTo(35);
    // an empty round keeps the last figure
    expect(p.afterRound(m(1, 0, 100, 5000)).expectedDowntimeMs).toBeCloseTo(35);
    expect(p.samples).toHaveLength(2);
    expect(p.expectedDowntimeMs).toBeCloseTo(35);
  });

  it('before any page: a page costs a page size; a dirty set over the limit continues', () => {
    const p = new ConvergencePolicy('precopy', DEFAULT_POLICY, 4096);
    const d = p.afterRound({ ...m(0, 0, 0, 100_000), bandwidthBytesPerSec: 10 * MB });
    expect(d.action).toBe('continue');
    expect(d.expectedDowntimeMs).toBeCloseTo((100_000 * 4096 * 1000) / (10 * MB) + 30);
  });

  it('bytes in flight: those sent in the last half round trip have arrived; the digests overlap the transfer', () => {
    const o = { switchoverCostMs: 5 };
    const base = { bandwidthBytesPerSec: 1e6, rttMs: 100, wireBytesPerPage: 1000 };
    // 30 KB in flight = 30 ms of link, less than half the round trip: nothing queued
    expect(expectedDowntimeMs(0, { ...base, inFlightBytes: 30_000 }, o)).toBeCloseTo(105);
    // 250 KB = 250 ms, 50 of them already arrived: 200 ms queued + 10 pages (10 ms)
    expect(expectedDowntimeMs(10, { ...base, inFlightBytes: 250_000 }, o)).toBeCloseTo(200 + 10 + 100 + 5);
    // a 400 ms verification: the source's 200 ms digest hides a 10 ms transfer
    expect(expectedDowntimeMs(10, { ...base, verifyCostMs: 400 }, o)).toBeCloseTo(200 + 200 + 100 + 5);
  });

  it('a workload may force the switch-over or another round, never over "fail"', () => {
    const p = new ConvergencePolicy('precopy', { ...DEFAULT_POLICY, maxRounds: 2, onNonConvergence: 'fail' }, 4096);
    expect(p.afterRound({ ...m(0, 1000, 4_096_000, 900_000) }, 'switchover')).toMatchObject({ action: 'switchover', converged: true });
    expect(p.afterRound({ ...m(1, 1000, 4_096_000, 900_000) }, 'continue').action).toBe('fail');
  });

  it('recheck: the latest round measured again after the drain replaces its sample and decides again', () => {
    const p = new ConvergencePolicy('precopy', DEFAULT_POLICY, 4096);
    p.afterRound(m(0, 10_000, 40_960_000, 20_000));
    // 1000 dirty pages at 4096 bytes over 100 MB/s: 41 ms (the source's 5 ms digest overlaps) + 5 + 20 + 5 = 71 ms
    const first = p.afterRound({ ...m(1, 20_000, 81_920_000, 1000), inFlightBytes: 1_000_000 });
    expect(first).toMatchObject({ action: 'switchover', converged: true });
    // drained (nothing in flight) but the guest dirtied 9000 more pages meanwhile, and the round
    // trip measured on the idle link now is 40 ms: 410 + 5 + 40 + 5 = 460 ms, over the limit
    const again = p.recheck({ ...m(1, 20_000, 81_920_000, 10_000), inFlightBytes: 0, rttMs: 40, durationMs: 250 });
    expect(again.action).toBe('continue');
    expect(again.expectedDowntimeMs).toBeCloseTo((10_000 * 4096 * 1000) / (100 * MB) + 5 + 40 + 5);
    // the same round, not another one: stall counting and maxRounds see two rounds
    expect(p.samples).toHaveLength(2);
    expect(p.samples[1]).toMatchObject({ round: 1, dirtyPagesAfter: 10_000, durationMs: 250 });
    expect(p.expectedDowntimeMs).toBeCloseTo(again.expectedDowntimeMs);
    // a workload's forced switch-over holds through the recheck
    expect(p.recheck({ ...m(1, 20_000, 81_920_000, 10_000), inFlightBytes: 0 }, 'switchover')).toMatchObject({ action: 'switchover', converged: true });
  });

  it('CPU: the slower of link and encoder paces the last round; the first batch encoded and the last applied overlap nothing', () => {
    const o = { switchoverCostMs: 5 };
    const base = { bandwidthBytesPerSec: 1e6, rttMs: 100, wireBytesPerPage: 1000 };
    // 1000 pages: 1000 ms of link; 0.1 ms of CPU a page (100 ms) hides behind it, except one
    // 256-page batch at each end (2 x 25.6 ms)
    expect(expectedDowntimeMs(1000, { ...base, cpuMsPerPage: 0.1, batchPages: 256 }, o)).toBeCloseTo(1000 + 51.2 + 100 + 5);
    // an encoder at 2 ms a page is the slower stage: 2000 ms, plus the two unoverlapped batches
    expect(expectedDowntimeMs(1000, { ...base, cpuMsPerPage: 2, batchPages: 256 }, o)).toBeCloseTo(2000 + 1024 + 100 + 5);
    // fewer pages than a batch (default 256): the round is one batch
    expect(expectedDowntimeMs(10, { ...base, cpuMsPerPage: 0.1 }, o)).toBeCloseTo(10 + 2 + 100 + 5);
    // the policy keeps the figure of the latest round that measured one
    const p = new ConvergencePolicy('precopy', DEFAULT_POLICY, 4096);
    const m0 = { ...m(0, 1000, 100_000, 1000), cpuMsPerPage: 0.05, batchPages: 100 };
    // 1000 pages: link 1 ms, CPU 50 ms; + 2 x 100 x 0.05; the digests (5 each) overlap; rtt 20; cost 5
    expect(p.afterRound(m0).expectedDowntimeMs).toBeCloseTo(50 + 10 + 5 + 20 + 5);
    expect(p.afterRound({ ...m(1, 0, 100, 1000), batchPages: 100 }).expectedDowntimeMs).toBeCloseTo(50 + 10 + 5 + 20 + 5);
  });

  it('keeps the throttle it asked for and raises it step by step', () => {
    const p = new ConvergencePolicy('precopy', { ...DEFAULT_POLICY, autoConverge: true, stallRounds: 1 }, 4096);
    p.afterRound(m(0, 1000, 4_096_000, 900_000));
    expect(p.afterRound(m(1, 1000, 4_096_000, 900_000))).toMatchObject({ action: 'throttle', throttlePct: 20 });
    expect(p.afterRound(m(2, 1000, 4_096_000, 900_000))).toMatchObject({ action: 'throttle', throttlePct: 30 });
    expect(p.throttlePct).toBe(30);
  });
});
