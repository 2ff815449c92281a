/**
 * Convergence policy: a pure function from the statistics of the rounds so far and the options to
 * the next action. No clock, no I/O: tests drive it with tables.
 *
 * Model (QEMU's, refined): after each round the source knows how many pages are dirty now, how
 * many wire bytes a page costs (measured on the last rounds), the link bandwidth (measured from
 * the target's acknowledgements) and the round trip. Then
 *
 *   transfer           = max(0, inFlightBytes / bandwidth - rtt / 2)      (still queued)
 *                        + max(dirtyPages * wireBytesPerPage / bandwidth,    (the last round: link
 *                              dirtyPages * cpuMsPerPage)                     or encoder, the slower)
 *                        + 2 * min(dirtyPages, batchPages) * cpuMsPerPage    (first batch encoded,
 *                                                                              last one applied)
 *   expectedDowntimeMs = max(transfer, digest) + digest + rtt + switchoverCostMs
 *
 * where cpuMsPerPage is what the source measured around its encoder in the latest round that
 * sent pages (the target's apply assumed as fast; on a loaded host it grows, and so does the
 * estimate), and digest is one side's memory digest (half the measured verification cost): the source
 * hashes while its last pages cross the link, COMPLETE follows them, the target hashes, DONE
 * comes back (one round trip). Unacknowledged bytes sent within the last half round trip have arrived
 * already (their ACKs are on the way), the rest must cross before the last round does.
 *
 * The guest is stopped as soon as that is within `downtimeLimitMs`. Before it stops the guest,
 * an engine confirms: it lets the link drain (the guest still runs), takes a round-trip sample on
 * the idle link, syncs the dirty log again and asks once more ({@link ConvergencePolicy.recheck}),
 * so the estimate the switch-over is made on has nothing in flight (the queue's drain rate, which
 * the first term can only guess, was the largest error on delayed links) and a round trip
 * measured under the host's current load. The migration is "not
 * converging" when, for `stallRounds` rounds in a row, the dirty set did not shrink by at least
 * 10% (the guest dirties about as fast as the link drains), or when `maxRounds` is reached.
 */

/** What to do when pre-copy does not converge. */
export type NonConvergenceAction = 'switchover' | 'fail' | 'postcopy';

/** Options of the policy (all have defaults, see {@link DEFAULT_POLICY}). */
export interface PolicyOptions {
  /** Allowed downtime (QEMU's downtime-limit), ms. */
  downtimeLimitMs: number;
  /** Most pre-copy rounds before the non-convergence action (round 0 counts). */
  maxRounds: number;
  /** Rounds in a row without progress that mean "not converging". */
  stallRounds: number;
  /** What to do when not converging. */
  onNonConvergence: NonConvergenceAction;
  /** Throttle the guest before giving up (QEMU's auto-converge). */
  autoConverge: boolean;
  /** First throttle step, percent (QEMU cpu-throttle-initial). */
  throttleInitialPct: number;
  /** Later throttle steps, percent (QEMU cpu-throttle-increment). */
  throttleIncrementPct: number;
  /** Highest throttle, percent. */
  throttleMaxPct: number;
  /** Hybrid mode: pre-copy rounds before switching to post-copy. */
  hybridPrecopyRounds: number;
  /** Fixed switch-over cost added to the estimate (device state, completion), ms. */
  switchoverCostMs: number;
}

export const DEFAULT_POLICY: PolicyOptions = {
  downtimeLimitMs: 300,
  maxRounds: 30,
  stallRounds: 4,
  onNonConvergence: 'switchover',
  autoConverge: false,
  throttleInitialPct: 20,
  throttleIncrementPct: 10,
  throttleMaxPct: 99,
  hybridPrecopyRounds: 2,
  switchoverCostMs: 5,
};

/** One finished round as the policy sees it. */
export interface RoundSample {
  /** Round number, 0 = first full pass. */
  round: number;
  /** Pages sent in the round. */
  pagesSent: number;
  /** Wire bytes of the round. */
  wireBytes: number;
  /** Round duration, ms. */
  durationMs: number;
  /** Pages found dirty at the sync after the round (what the next round must send). */
  dirtyPagesAfter: number;
}

/** Inputs of one decision. */
export interface PolicyState {
  mode: 'precopy' | 'postcopy' | 'hybrid';
  rounds: readonly RoundSample[];
  /** Measured bandwidth, bytes/s (> 0). */
  bandwidthBytesPerSec: number;
  /** Measured round-trip time, ms. */
  rttMs: number;
  /** Wire bytes one dirty page is expected to cost (from recent rounds). */
  wireBytesPerPage: number;
  /** Throttle applied so far, percent (0 = none). */
  throttlePct: number;
  /** Bytes sent but not yet acknowledged by the target. */
  inFlightBytes?: number;
  /** Measured cost of verifying at switch-over (both sides' digests), ms. */
  verifyCostMs?: number;
  /** Time the source spends preparing and encoding one dirty page, ms (the target's apply assumed as fast). */
  cpuMsPerPage?: number;
  /** Pages per encoded frame (the pipeline's unit). */
  batchPages?: number;
}

/** The policy's answer. */
export type PolicyDecision =
  | { action: 'continue'; expectedDowntimeMs: number; reason: string }
  | { action: 'throttle'; throttlePct: number; expectedDowntimeMs: number; reason: string }
  | { action: 'switchover'; expectedDowntimeMs: number; converged: boolean; reason: string }
  | { action: 'postcopy'; expectedDowntimeMs: number; reason: string }
  | { action: 'fail'; expectedDowntimeMs: number; reason: string };

/** Expected downtime if the guest were stopped now, ms (see the file header). */
export function expectedDowntimeMs(
  dirtyPages: number,
  s: Pick<PolicyState, 'bandwidthBytesPerSec' | 'rttMs' | 'wireBytesPerPage' | 'inFlightBytes' | 'verifyCostMs' | 'cpuMsPerPage' | 'batchPages'>,
  o: Pick<PolicyOptions, 'switchoverCostMs'>,
): number {
  const bw = Math.max(1, s.bandwidthBytesPerSec);
  // unacknowledged bytes sent in the last half round trip have arrived; their ACKs are on the way
  const queuedMs = Math.max(0, ((s.inFlightBytes ?? 0) * 1000) / bw - s.rttMs / 2);
  // encoder, link and the target's decoder form a pipeline of batches: the slowest stage sets the
  // pace, and the first batch's encoding and the last batch's apply overlap nothing
  const cpu = s.cpuMsPerPage ?? 0;
  const fillMs = 2 * Math.min(dirtyPages, s.batchPages ?? 256) * cpu;
  const transferMs = queuedMs + Math.max((dirtyPages * s.wireBytesPerPage * 1000) / bw, dirtyPages * cpu) + fillMs;
  // the source hashes while its last pages cross the link; the target hashes after COMPLETE
  const digestMs = (s.verifyCostMs ?? 0) / 2;
  return Math.max(transferMs, digestMs) + digestMs + s.rttMs + o.switchoverCostMs;
}

/** Rounds at the end of `rounds` whose dirty set did not shrink by at least 10%. */
export function stalledRounds(rounds: readonly RoundSample[]): number {
  let n = 0;
  for (let i = rounds.length - 1; i >= 1; i--) {
    const prev = rounds[i - 1]!.dirtyPagesAfter;
    const cur = rounds[i]!.dirtyPagesAfter;
    if (cur > prev * 0.9) n++;
    else break;
  }
  return n;
}

/**
 * Decide what happens after the last round in `s.rounds`.
 * @param s statistics so far (at least one round)
 * @param o policy options
 */
export function decide(s: PolicyState, o: PolicyOptions): PolicyDecision {
  const last = s.rounds[s.rounds.length - 1];
  if (!last) return { action: 'continue', expectedDowntimeMs: Infinity, reason: 'no round yet' };
  const dirty = last.dirtyPagesAfter;
  const est = expectedDowntimeMs(dirty, s, o);
  if (s.mode === 'postcopy') {
    return { action: 'postcopy', expectedDowntimeMs: est, reason: 'post-copy mode: switch over after the first pass' };
  }
  if (est <= o.downtimeLimitMs) {
    return { action: 'switchover', expectedDowntimeMs: est, converged: true, reason: `expected downtime ${est.toFixed(1)} ms is within the ${o.downtimeLimitMs} ms limit` };
  }
  if (dirty === 0) {
    // Nothing left to send. Data still in flight drains while the guest runs (the next round is
    // empty and waits for the link); the rest (verification, round trip) is the switch-over's
    // fixed cost, which more rounds cannot lower.
    const fixed = expectedDowntimeMs(0, { ...s, inFlightBytes: 0 }, o);
    if (fixed <= o.downtimeLimitMs && s.rounds.length < o.maxRounds) {
      return { action: 'continue', expectedDowntimeMs: est, reason: `no dirty pages left; waiting for the ${s.inFlightBytes ?? 0} bytes in flight to drain` };
    }
    const within = est <= o.downtimeLimitMs;
    return {
      action: 'switchover', expectedDowntimeMs: est, converged: within,
      reason: within ? `no dirty pages left; expected downtime ${est.toFixed(1)} ms` : `no dirty pages left, but the switch-over's fixed cost (${est.toFixed(1)} ms: round trip, verification, data in flight) exceeds the ${o.downtimeLimitMs} ms limit`,
    };
  }
  if (s.mode === 'hybrid' && s.rounds.length >= o.hybridPrecopyRounds) {
    return { action: 'postcopy', expectedDowntimeMs: est, reason: `hybrid: ${s.rounds.length} pre-copy rounds done, switching to post-copy` };
  }
  const stalled = stalledRounds(s.rounds);
  const outOfRounds = s.rounds.length >= o.maxRounds;
  if (stalled >= o.stallRounds || outOfRounds) {
    const why = outOfRounds ? `reached ${o.maxRounds} rounds` : `dirty set did not shrink for ${stalled} rounds`;
    if (o.autoConverge && !outOfRounds && s.throttlePct < o.throttleMaxPct) {
      const next = s.throttlePct === 0 ? o.throttleInitialPct : Math.min(o.throttleMaxPct, s.throttlePct + o.throttleIncrementPct);
      return { action: 'throttle', throttlePct: next, expectedDowntimeMs: est, reason: `${why}: throttling the guest to ${next}%` };
    }
    switch (o.onNonConvergence) {
      case 'fail':
        return { action: 'fail', expectedDowntimeMs: est, reason: `not converging (${why}); policy says fail` };
      case 'postcopy':
        return { action: 'postcopy', expectedDowntimeMs: est, reason: `not converging (${why}); switching to post-copy` };
      default:
        return { action: 'switchover', expectedDowntimeMs: est, converged: false, reason: `not converging (${why}); forcing switch-over` };
    }
  }
  return { action: 'continue', expectedDowntimeMs: est, reason: `expected downtime ${est.toFixed(1)} ms is above the ${o.downtimeLimitMs} ms limit` };
}

/** What an engine measured over one pre-copy round: the policy's input, the same for every engine. */
export interface RoundMeasurement {
  round: number;
  /** Pages sent in the round. */
  pagesSent: number;
  /** Wire bytes of the round. */
  wireBytes: number;
  durationMs: number;
  /** Pages pending after the round's dirty sync. */
  dirtyPagesAfter: number;
  /** Measured link bandwidth, bytes/s. */
  bandwidthBytesPerSec: number;
  /** Measured round trip of the idle link, ms. */
  rttMs: number;
  /** Bytes sent and not yet acknowledged. */
  inFlightBytes: number;
  /** Measured cost of both digests at switch-over, ms. */
  verifyCostMs: number;
  /** Measured time to prepare and encode one page of the round, ms (absent when it sent none). */
  cpuMsPerPage?: number;
  /** Pages per encoded frame. */
  batchPages?: number;
}

function sampleOf(m: RoundMeasurement): RoundSample {
  return { round: m.round, pagesSent: m.pagesSent, wireBytes: m.wireBytes, durationMs: m.durationMs, dirtyPagesAfter: m.dirtyPagesAfter };
}

/**
 * The convergence policy of one migration with its history: every engine (the source, the
 * parallel-channel coordinator, the virtual-clock model) feeds it one {@link RoundMeasurement}
 * per round and does what it answers. It keeps the rounds, the wire cost of a page (of the latest
 * round that sent pages) and the throttle in force, and applies a workload's forced action.
 */
export class ConvergencePolicy {
  readonly samples: RoundSample[] = [];
  /** Throttle in force, percent. */
  throttlePct = 0;
  /** The latest estimate (Infinity before the first round). */
  expectedDowntimeMs = Infinity;
  private wireBytesPerPage: number;
  private cpuMsPerPage = 0;

  constructor(private readonly mode: PolicyState['mode'], readonly options: PolicyOptions, pageSize: number) {
    this.wireBytesPerPage = pageSize;
  }

  /**
   * Record a finished round and decide.
   * @param forced a workload's wish (corpus replay): 'switchover' after its last snapshot, or
   *   'continue'; it never overrides 'fail' and a 'switchover' the policy made itself
   */
  afterRound(m: RoundMeasurement, forced?: 'switchover' | 'continue'): PolicyDecision {
    this.samples.push(sampleOf(m));
    if (m.pagesSent > 0) this.wireBytesPerPage = m.wireBytes / m.pagesSent;
    if (m.cpuMsPerPage !== undefined) this.cpuMsPerPage = m.cpuMsPerPage;
    return this.decideNow(m, forced);
  }

  /**
   * The latest round measured again, later (the engine let the link drain before pausing the
   * guest, synced the dirty log again and took a fresh round-trip sample): it replaces that
   * round's sample and the policy decides again.
   */
  recheck(m: RoundMeasurement, forced?: 'switchover' | 'continue'): PolicyDecision {
    if (this.samples.length === 0) return this.afterRound(m, forced);
    this.samples[this.samples.length - 1] = sampleOf(m);
    return this.decideNow(m, forced);
  }

  private decideNow(m: RoundMeasurement, forced?: 'switchover' | 'continue'): PolicyDecision {
    let d = decide({
      mode: this.mode, rounds: this.samples, bandwidthBytesPerSec: m.bandwidthBytesPerSec, rttMs: m.rttMs,
      wireBytesPerPage: this.wireBytesPerPage, throttlePct: this.throttlePct, inFlightBytes: m.inFlightBytes, verifyCostMs: m.verifyCostMs,
      cpuMsPerPage: this.cpuMsPerPage, ...(m.batchPages !== undefined ? { batchPages: m.batchPages } : {}),
    }, this.options);
    if (forced === 'switchover' && d.action !== 'switchover') {
      d = { action: 'switchover', expectedDowntimeMs: d.expectedDowntimeMs, converged: true, reason: 'the workload ended (last snapshot replayed)' };
    } else if (forced === 'continue' && d.action !== 'fail') {
      d = { action: 'continue', expectedDowntimeMs: d.expectedDowntimeMs, reason: 'the workload asks for another round' };
    }
    if (d.action === 'throttle') this.throttlePct = d.throttlePct;
    this.expectedDowntimeMs = d.expectedDowntimeMs;
    return d;
  }
}
