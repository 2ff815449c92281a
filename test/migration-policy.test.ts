import { describe, it, expect } from 'vitest';
import { decide, DEFAULT_POLICY, expectedDowntimeMs, stalledRounds, type RoundSample, type PolicyState } from '../src/migration/policy.js';

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
    ['nothing dirty: switch over even when fixed costs exceed the limit', state([100000, 0], { verifyCostMs: 500 }), {}, 'switchover'],
    ['nothing dirty in hybrid: stop-and-copy, not post-copy', state([100000, 0], { mode: 'hybrid', verifyCostMs: 500 }), { hybridPrecopyRounds: 1 }, 'switchover'],
    ['nothing dirty but a second of data in flight: wait for it (an empty round), do not switch over', state([100000, 0], { inFlightBytes: 100 * MB }), {}, 'continue'],
    ['nothing dirty, data in flight, fixed costs over the limit anyway: switch over', state([100000, 0], { inFlightBytes: 100 * MB, verifyCostMs: 500 }), {}, 'switchover'],
    ['nothing dirty, data in flight, out of rounds: switch over', state([100000, 0], { inFlightBytes: 100 * MB }), { maxRounds: 2 }, 'switchover'],
    ['fixed costs over the limit with pages dirty: continue', state([100000, 50], { verifyCostMs: 500 }), {}, 'continue'],
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
});
