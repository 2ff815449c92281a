/**
 * The source endpoint: streams pre-copy rounds of dirty pages to a target while the guest runs,
 * decides when to switch over, pauses the guest, sends the last dirty pages and the device
 * state, and has the target verify the memory digest before its guest may run.
 *
 *   setup:    core, encoder, connect (link-session.ts), measure the verification cost, start the
 *             dirty log, every page pending (minus pages the target holds, option knownPages)
 *   iterate:  one round: send what is pending (page-sender.ts), wait for the link, sync the dirty
 *             log, ask the policy (policy.ts) -> continue | throttle | switchover | postcopy | fail
 *   complete: pause, last sync, stop-and-copy round (or post-copy, postcopy-source.ts), device
 *             state, COMPLETE(digest) -> DONE(verified), report
 *
 * The same three steps as QEMU's ram.c (setup / iterate / complete). Flow control (window,
 * pacing, bandwidth and RTT estimates) is flow-control.ts; counters are one SourceStats.
 *
 * Failure: whatever goes wrong, the source guest is resumed if it was paused (nothing is lost)
 * and `migrate()` rejects with a PagewireError. With a transport factory the source reconnects
 * after a dropped link and continues where the target's WELCOME says it stands: pages of frames
 * the target did not apply are sent again and forgotten by the delta cache, so no delta is ever
 * made against a version the target does not hold.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore, type Core } from '../core/core.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { Transport, TransportFactory } from '../transport/types.js';
import { withTimeout } from '../protocol/connection.js';
import { FrameType, MINOR_FRAME_MAC, MINOR_PAGE_RANGES, type Frame } from '../protocol/frame.js';
import { digestCommitment, randomHex } from '../protocol/auth.js';
import { encodeJson, parseDone, parsePageList, parsePageHashes, type HelloMessage, type RoundEndMessage, type CompleteMessage } from '../protocol/messages.js';
import { memoryDigest, pageHashes } from '../memory/digest.js';
import type { PageHashTable } from '../memory/page-hash-table.js';
import { ConvergencePolicy, type PolicyOptions, type PolicyDecision, type RoundMeasurement } from './policy.js';
import { Emitter, addCodecCounts, codecCountsSince, type MigrationEvents, type MigrationReport, type RoundReport, type CodecCounts } from './report.js';
import { Signal, defaultClock, percentile, type Clock } from './common.js';
import { PageSet } from '../memory/page-set.js';
import { createEncoder, encoderCounts, trackEncodedHashes, type EncoderLike } from '../codec/adapter.js';
import { DirtyFrequencyOrder } from './reorder.js';
import { KnownPagesCollector } from './known-pages.js';
import { LinkSession } from './link-session.js';
import { PageSender } from './page-sender.js';
import { createSourceStats, type SourceStats } from './source-stats.js';
import { resolveSourceOptions, type DirtyLogLike, type ResolvedSourceOptions, type SourceHooks, type SourceOptions } from './source-options.js';
import type { PostcopySourceHost } from './postcopy-source.js';

export { validateSourceOptions, type DirtyLogLike, type SourceHooks, type SourceOptions } from './source-options.js';

/** What the switch-over and completion produced. */
interface Completion {
  downtimeMs: number;
  digest: string;
  mode: MigrationReport['mode'];
  faults: { faults: number; latencies: number[] } | null;
}

/** Source endpoint of a migration. Create, listen to events, `await migrate()`. */
export class MigrationSource extends Emitter<MigrationEvents> {
  readonly memory: GuestMemory;
  readonly sessionId = randomHex(16);
  /** Counters of this migration (bytes by phase, drops, re-sent bytes...). */
  readonly stats: SourceStats = createSourceStats();
  private readonly dirtyLog: DirtyLogLike;
  private readonly transportSource: Transport | TransportFactory;
  private readonly hooks: SourceHooks;
  private readonly opts: ResolvedSourceOptions;
  private readonly policy: PolicyOptions;
  private readonly clock: Clock;

  // set up by setup()
  private core!: Core;
  /** Per-page hashes of the pages as sent (pre-copy's incremental digest), or null. */
  private hashTable: PageHashTable | null = null;
  private encoder!: EncoderLike;
  private session!: LinkSession;
  private sender!: PageSender;
  /** Pages the target lacks or holds stale. */
  private pending!: PageSet;
  private known: KnownPagesCollector | null = null;
  /** Dirty-frequency ordering (option `reorder`). */
  private reorderer: DirtyFrequencyOrder | null = null;
  /** Measured cost of both sides' digests at switch-over, ms. */
  private verifyCostMs = 0;

  // the rounds so far
  private readonly rounds: RoundReport[] = [];
  private readonly convergence: ConvergencePolicy;
  private readonly totals: CodecCounts = {};
  private expectedMs = Infinity;
  private paused = false;

  // frames from the target other than ACK
  private pageRequests: Uint32Array[] = [];
  private readonly requestSignal = new Signal();
  private doneWaiter: { resolve: (f: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  private targetHashes: BigUint64Array | null = null;
  /** The target's DONE payload (post-copy: it carries the faults measured at the guest's accesses). */
  private donePayload: Uint8Array | null = null;

  constructor(memory: GuestMemory, dirtyLog: DirtyLogLike, transport: Transport | TransportFactory, options: SourceOptions = {}, hooks: SourceHooks = {}) {
    super();
    const { opts, policy } = resolveSourceOptions(options);
    this.memory = memory;
    this.dirtyLog = dirtyLog;
    this.transportSource = transport;
    this.hooks = hooks;
    this.opts = opts;
    this.policy = policy;
    this.convergence = new ConvergencePolicy(opts.mode, policy, memory.pageSize);
    this.clock = options.clock ?? defaultClock;
  }

  /**
   * Run the migration to its end.
   * @returns the source's report (verified, converged, downtime, rounds...)
   * @throws PagewireError on failure; the guest is resumed first if it was paused
   */
  async migrate(): Promise<MigrationReport> {
    const t0 = this.clock();
    let setupTimeMs = 0;
    let decision: PolicyDecision;
    let done: Completion;
    try {
      await this.setup();
      setupTimeMs = this.clock() - t0;
      if (this.opts.mode === 'postcopy') {
        // Pure post-copy: no pre-copy pass; every page is pending at the switch-over.
        decision = { action: 'postcopy', expectedDowntimeMs: 0, reason: 'post-copy mode: switch over at once' };
        this.expectedMs = 0;
      } else {
        for (let round = 0; ; round++) {
          decision = await this.iterate(round);
          if (decision.action === 'continue') continue;
          if (decision.action === 'throttle') {
            this.stats.throttlePct = decision.throttlePct;
            await this.hooks.throttle?.(decision.throttlePct);
            continue;
          }
          if (decision.action === 'fail') throw new PagewireError(ErrorCode.NOT_CONVERGED, decision.reason);
          break;
        }
      }
      done = await this.complete(decision);
    } catch (err) {
      let e = err instanceof PagewireError ? err : new PagewireError(ErrorCode.ABORTED, `migration failed: ${String((err as Error)?.message ?? err)}`, { cause: err });
      if (this.session?.committed && e.code !== ErrorCode.POSTCOPY_FAILED) {
        e = new PagewireError(ErrorCode.POSTCOPY_FAILED, `post-copy failed after the target's guest started: ${e.message}`, { cause: e });
      }
      await this.abort(e);
      this.emit('error', e);
      throw e;
    } finally {
      this.session?.dispose();
      this.hashTable?.dispose();
      this.encoder?.dispose();
    }
    const report = this.report(t0, setupTimeMs, decision, done);
    this.emit('complete', report);
    return report;
  }

  // ---------------------------------------------------------------- setup

  private async setup(): Promise<void> {
    this.core = this.memory.core ?? (await createCore());
    this.encoder = await createEncoder(this.memory, this.opts.codecs ?? 'all', this.opts.cacheBytes, this.opts.batchPages, this.opts.linkBytesPerSec ?? this.opts.maxBandwidthBytesPerSec);
    this.pending = new PageSet(this.memory.pageCount);
    if (this.opts.knownPages) this.known = new KnownPagesCollector(this.memory.pageCount);
    if (this.opts.reorder) this.reorderer = new DirtyFrequencyOrder(this.memory.pageCount, this.opts.reorderOptions);
    this.session = new LinkSession(this.sessionId, this.transportSource, this.core, {
      hello: (resume, nonce) => this.hello(resume, nonce),
      onFrame: (f) => this.onTargetFrame(f),
      onLinkError: (e) => {
        this.requestSignal.fail(e);
        this.known?.fail(e);
        this.doneWaiter?.reject(e);
      },
      forget: (pages) => this.encoder.forget(pages),
      requeue: (pages) => this.pending.addAll(pages),
      onResumed: (r, resentPages) => this.emit('resumed', { appliedSeq: r.appliedSeq, resentPages }),
      onDrop: (error, attempt) => this.emit('drop', { error, attempt }),
      onHandshake: () => {
        this.opts.onPhase?.('handshake', -1);
        this.emit('phase', { phase: 'handshake', round: -1 });
      },
    }, this.stats, this.opts, this.clock);
    const log = this.dirtyLog;
    this.sender = new PageSender(this.session, this.encoder, this.pending, this.opts.batchPages, log.prepare ? (x, s, n) => log.prepare!(x, s, n) : undefined, this.clock);
    await this.session.connectFirst();
    // Verification at switch-over: with the incremental digest (the encoder keeps per-page hashes
    // of what it sent, the target's decoder of what it wrote) it costs one pass over 8 bytes per
    // page on each side; without it, a hash of all memory on each side. Measure it once so the
    // expected downtime includes it (the target's memory is assumed as fast as ours).
    this.hashTable = this.opts.mode === 'precopy' && (this.opts.verify ?? 'digest') === 'digest' ? trackEncodedHashes(this.encoder, this.memory) : null;
    this.dirtyLog.start();
    // A lazily filled memory (the dirty log reads pages as round 0 sends them) is hashed as round
    // 0 encodes it: measured after round 0, as reading it all now would cost what it saves.
    if (!this.dirtyLog.prepare) this.measureVerifyCost();

    this.pending.fill();
    if (this.known) {
      // after the dirty log started: a page written after its hash was taken is sent in round 1
      await this.known.wait(this.opts.handshakeTimeoutMs);
      this.stats.knownPagesSkipped = this.known.skipMatching(this.memory, this.core, this.pending);
    }
  }

  /**
   * Time one side's switch-over digest. With the incremental digest that is one pass over the
   * table: timed without hashing the guest first (round 0 hashes every page it encodes anyway; a
   * full pass here cost 5-6 ms of a 32 MiB guest's setup). Pages the target already holds
   * (knownPages) are never encoded: they are hashed now, not at the switch-over.
   */
  private measureVerifyCost(): void {
    // (after the dirty log started: a page written after its hash was taken is sent again)
    if (this.hashTable) {
      if (this.known) this.hashTable.digest();
      this.verifyCostMs = 2 * this.hashTable.digestCostMs(this.clock);
      return;
    }
    const th = this.clock();
    memoryDigest(this.memory, this.core);
    this.verifyCostMs = 2 * (this.clock() - th);
  }

  private hello(resume: boolean, nonce: string): HelloMessage {
    return {
      sessionId: this.sessionId, resume, pageSize: this.memory.pageSize, regions: this.memory.layout.regions.map((r) => ({ ...r })),
      codecs: this.encoder.codecNames(), mode: this.opts.mode, nonce,
      options: {
        downtimeLimitMs: this.policy.downtimeLimitMs, ...(this.opts.knownPages && !resume ? { knownPages: true } : {}),
        // the target hashes all of its memory at COMPLETE instead of keeping per-page hashes
        ...((this.opts.verify ?? 'digest') !== 'digest' ? { verifyMemory: true } : {}),
      },
    };
  }

  // ---------------------------------------------------------------- iterate

  /** One pre-copy round and the policy's decision after it. */
  private async iterate(round: number): Promise<PolicyDecision> {
    this.opts.onPhase?.(`round${round}`, round);
    this.emit('phase', { phase: 'round', round });
    const flow = this.session.flow;
    const roundStart = this.clock();
    const ackedAtStart = flow.ackedTotal;
    const cpu0 = { ...this.sender.cpu };
    const rr = await this.sendRound(round, false);
    const cpuPages = this.sender.cpu.pages - cpu0.pages;
    // A round lasts at least as long as the link needs for what was queued before it: without
    // this, small rounds only fill the window, empty rounds spin, and bytes merely queued count
    // as expected downtime round after round. Until the acknowledgements gave a bandwidth
    // figure, the round waits for all of its bytes (a round that fits in the window would
    // otherwise end before any acknowledgement, with no bandwidth to decide on); its bandwidth is
    // then what the target acknowledged over the round.
    const measured = flow.bandwidthSamples > 0;
    await this.session.drain(measured ? rr.wireBytes : 0);
    rr.durationMs = Math.max(rr.durationMs, this.clock() - roundStart);
    if (!measured) {
      flow.roundFallback(flow.ackedTotal - ackedAtStart, rr.durationMs);
      rr.bandwidthBytesPerSec = flow.bandwidthBytesPerSec;
    }
    await this.session.probeRtt().catch(() => undefined); // a failed link surfaces at the next send
    await this.hooks.onRound?.(round, true);
    if (round === 0 && this.dirtyLog.prepare) {
      // pages round 0 did not encode were skipped as zero or never brought in: zero in memory
      if (this.dirtyLog.unreadPagesZero) this.hashTable?.assumeZero();
      this.measureVerifyCost();
    }
    const dirty = this.dirtyLog.sync();
    this.pending.addAll(dirty);
    this.reorderer?.noteDirty(dirty);
    rr.dirtyPages = dirty.length;
    rr.dirtyRateBytesPerSec = rr.durationMs > 0 ? (dirty.length * this.memory.pageSize * 1000) / rr.durationMs : 0;
    const m: RoundMeasurement = {
      round, pagesSent: rr.pages, wireBytes: rr.wireBytes, durationMs: rr.durationMs, dirtyPagesAfter: this.pending.size,
      bandwidthBytesPerSec: flow.bandwidthBytesPerSec, rttMs: flow.rttMs, inFlightBytes: flow.inFlightBytes, verifyCostMs: this.verifyCostMs,
      ...(cpuPages > 0 ? { cpuMsPerPage: (this.sender.cpu.ms - cpu0.ms) / cpuPages } : {}), batchPages: this.opts.batchPages,
    };
    let decision: PolicyDecision;
    if (this.hooks.decide) {
      decision = await this.hooks.decide(m);
    } else {
      const forced = (await this.hooks.onRound?.(round, false)) ?? undefined;
      decision = this.convergence.afterRound(m, forced);
      if (decision.action === 'switchover' && decision.converged && flow.inFlightBytes > 0) decision = await this.confirmSwitchover(m, rr, roundStart, forced);
    }
    rr.expectedDowntimeMs = decision.expectedDowntimeMs;
    this.expectedMs = decision.expectedDowntimeMs;
    this.addRound(rr);
    return decision;
  }

  /**
   * Before the guest is paused: let the link drain while the guest still runs, take a round-trip
   * sample on the idle link (what COMPLETE -> DONE costs now, late timers and a busy target
   * included), sync the dirty log again and ask the policy once more. The downtime is then the
   * last round, the digests and one round trip, with no queue ahead of the last round whose
   * drain rate the estimate would have to guess.
   */
  private async confirmSwitchover(m: RoundMeasurement, rr: RoundReport, roundStart: number, forced: 'switchover' | 'continue' | undefined): Promise<PolicyDecision> {
    const flow = this.session.flow;
    await this.session.drain(0);
    await this.session.probeRtt(true).catch(() => undefined); // a failed link surfaces at the next send
    const dirty = this.dirtyLog.sync();
    this.pending.addAll(dirty);
    this.reorderer?.noteDirty(dirty);
    rr.durationMs = this.clock() - roundStart;
    rr.dirtyPages += dirty.length;
    rr.dirtyRateBytesPerSec = (rr.dirtyPages * this.memory.pageSize * 1000) / rr.durationMs;
    return this.convergence.recheck({
      ...m, durationMs: rr.durationMs, dirtyPagesAfter: this.pending.size, inFlightBytes: flow.inFlightBytes,
      rttMs: flow.latestRttMs || flow.rttMs, bandwidthBytesPerSec: flow.bandwidthBytesPerSec,
    }, forced);
  }

  private addRound(rr: RoundReport): void {
    this.rounds.push(rr);
    addCodecCounts(this.totals, rr.codecs);
    this.emit('round', rr);
  }

  /** Order of a round's pages; the reordering policy may hold hot pages back (they stay pending). */
  private orderRound(indices: Uint32Array, final: boolean): Uint32Array {
    if (!this.reorderer) return indices;
    const { send, held } = this.reorderer.order(indices, final);
    this.pending.addAll(held);
    return send;
  }

  /** Send every pending page as round `round`, then ROUND_END. */
  private async sendRound(round: number, final: boolean): Promise<RoundReport> {
    const start = this.clock();
    const before = encoderCounts(this.encoder);
    const indices = this.orderRound(this.pending.drain(), final);
    const sent = await this.sender.sendPages(indices, {
      final,
      onBatch: (n, remaining) => this.emit('progress', {
        round, pagesSent: n, pagesRemaining: remaining + this.pending.size, bytesSent: this.stats.wireBytes,
        bandwidthBytesPerSec: this.session.flow.bandwidthBytesPerSec, expectedDowntimeMs: this.expectedMs, phase: final ? 'stop-and-copy' : 'precopy',
      }),
    });
    const codecs = codecCountsSince(encoderCounts(this.encoder), before);
    const end: RoundEndMessage = { round, pages: sent.pages, wireBytes: sent.wireBytes, final, codecs };
    const wire = sent.wireBytes + await this.sendControl(FrameType.ROUND_END, encodeJson(end));
    return {
      round, final, pages: sent.pages, wireBytes: wire, rawBytes: sent.pages * this.memory.pageSize, codecs, dirtyPages: 0,
      dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: this.session.flow.bandwidthBytesPerSec, durationMs: Math.max(0.001, this.clock() - start),
      expectedDowntimeMs: 0, throttlePct: this.stats.throttlePct,
    };
  }

  /** A frame without pages; after a drop, resume, send what the target lost, then the frame. */
  private async sendControl(type: FrameType, payload: Uint8Array): Promise<number> {
    for (;;) {
      try {
        return await this.session.sendFrame(type, payload, null);
      } catch (err) {
        if (!this.session.canResume(err)) throw err;
        await this.session.resume(err);
        await this.sender.sendPending(this.paused);
      }
    }
  }

  // ---------------------------------------------------------------- complete

  /** Switch over as `decision` says, send the rest, have the target verify. */
  private async complete(decision: PolicyDecision): Promise<Completion> {
    const postcopy = decision.action === 'postcopy';
    const roundNo = this.rounds.length;
    this.emit('switchover', { round: roundNo, reason: decision.reason, expectedDowntimeMs: this.expectedMs, mode: postcopy ? 'postcopy' : 'precopy' });
    this.opts.onPhase?.('stop-and-copy', roundNo);
    this.emit('phase', { phase: 'stop-and-copy', round: roundNo });
    const pausedAt = this.clock();
    await this.hooks.pause?.();
    this.paused = true;
    this.stats.phase = 'downtime';
    this.pending.addAll(this.dirtyLog.sync());
    this.dirtyLog.stop();
    let mode: MigrationReport['mode'] = this.opts.mode;
    let downtimeMs = 0;
    let faults: Completion['faults'] = null;
    if (postcopy) {
      mode = this.opts.mode === 'precopy' ? 'postcopy' : this.opts.mode;
      const pc = await import('./postcopy-source.js');
      // The device state must be on the target before its guest runs (at the switch-over).
      await this.session.sendFrame(FrameType.DEVICE_STATE, (await this.hooks.deviceState?.()) ?? new Uint8Array(0), null);
      const res = await pc.runPostcopySource(this.postcopyHost(), roundNo, pausedAt);
      for (const r of res.rounds) this.addRound(r);
      downtimeMs = res.downtimeMs;
      faults = { faults: res.faults, latencies: res.latencies };
    } else {
      this.addRound(await this.sendRound(roundNo, true));
      const ds = (await this.hooks.deviceState?.()) ?? new Uint8Array(0);
      await this.sendControl(FrameType.DEVICE_STATE, ds);
    }
    this.opts.onPhase?.('complete', roundNo);
    this.emit('phase', { phase: 'complete', round: roundNo });
    // Pre-copy: every page changed since its hash was taken is in the dirty log, so it was sent
    // (and hashed) again by now; the table covers exactly the memory at pause time.
    const digest = this.hashTable && !postcopy ? this.hashTable.digest() : memoryDigest(this.memory, this.core);
    const verdict = await this.verify({ digest, rounds: this.rounds.length, pausedAt });
    if (!verdict.verified) {
      throw new PagewireError(ErrorCode.VERIFY_FAILED, `target memory digest ${verdict.digest} differs from the source's ${digest}`);
    }
    if (!postcopy) downtimeMs = this.clock() - pausedAt;
    await this.session.close();
    return { downtimeMs, digest, mode, faults };
  }

  /** COMPLETE -> DONE; with verify 'full', repair passes; after a drop, resume and ask again. */
  private async verify(msg: CompleteMessage): Promise<{ verified: boolean; digest: string }> {
    if (this.opts.verify === 'full') msg = { ...msg, repair: true };
    for (;;) {
      try {
        if (this.session.error) throw this.session.error;
        const donePayload = new Promise<Uint8Array>((resolve, reject) => { this.doneWaiter = { resolve, reject }; });
        donePayload.catch(() => undefined); // a drop before we await it is handled below
        this.targetHashes = null;
        await this.session.sendFrame(FrameType.COMPLETE, encodeJson(this.completeFor(msg)), null);
        const p = await withTimeout(donePayload, this.opts.ackTimeoutMs, 'waiting for the target to verify');
        const done = parseDone(p);
        this.donePayload = p;
        if (!done.verified && done.repair && this.targetHashes) {
          await this.repair(this.targetHashes);
          continue;
        }
        // The target's word is not proof: verified only when its digest is ours.
        return { verified: done.verified && done.digest === msg.digest, digest: done.digest };
      } catch (err) {
        if (!this.session.canResume(err)) throw err;
        await this.session.resume(err);
        // The target may have completed and lost only its DONE: its WELCOME says so.
        // It must name the digest it completed with; a bare `complete: true` proves nothing.
        if (this.session.targetComplete) {
          const theirs = this.session.targetDigest ?? '';
          return { verified: theirs === msg.digest, digest: theirs || '(none given)' };
        }
        await this.sender.sendPending(this.paused);
      } finally {
        this.doneWaiter = null;
      }
    }
  }

  /**
   * COMPLETE as this target gets it: from protocol 1.3 on, a fresh commitment to the digest
   * instead of the digest, so the target must name its own digest in DONE (it cannot echo ours).
   */
  private completeFor(msg: CompleteMessage): CompleteMessage | Omit<CompleteMessage, 'digest'> {
    if (this.session.peerMinor < MINOR_FRAME_MAC) return msg;
    const { digest, ...rest } = msg;
    const salt = randomHex(16);
    return { ...rest, commitment: { salt, mac: digestCommitment(salt, digest) } };
  }

  /** Full verification: re-send every page whose hash differs from the target's. */
  private async repair(theirs: BigUint64Array): Promise<void> {
    const ours = pageHashes(this.memory, this.core);
    const bad: number[] = [];
    for (let p = 0; p < ours.length; p++) if (ours[p] !== theirs[p]) bad.push(p);
    const pages = Uint32Array.from(bad);
    this.stats.repairedPages += pages.length;
    // What the target holds of these pages is unknown: never delta against it.
    this.encoder.forget(pages);
    await this.sender.sendPages(pages, { final: true });
  }

  private onTargetFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.DONE:
        this.doneWaiter?.resolve(f.payload.slice());
        return;
      case FrameType.PAGE_REQUEST:
        this.pageRequests.push(parsePageList(f.payload, this.memory.pageCount, 'PAGE_REQUEST'));
        this.requestSignal.notify();
        return;
      case FrameType.PONG: // a protocol 1.0/1.1 target's answer to PING (never sent to one)
        return;
      case FrameType.KNOWN_PAGES:
        if (!this.known) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'KNOWN_PAGES that the source did not ask for');
        this.known.onFrame(f.payload);
        return;
      case FrameType.PAGE_HASHES: {
        const { first, hashes } = parsePageHashes(f.payload, this.memory.pageCount);
        (this.targetHashes ??= new BigUint64Array(this.memory.pageCount)).set(hashes, first);
        return;
      }
      default:
        throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `unexpected frame type ${f.type} from the target`);
    }
  }

  // ---------------------------------------------------------------- failure and report

  private async abort(err: PagewireError): Promise<void> {
    try {
      this.dirtyLog.stop();
    } catch {
      // already stopped
    }
    await this.session?.fail(err);
    // After a post-copy switch-over the target's guest ran: the source guest must not resume.
    if (this.paused && !this.session?.committed) {
      this.paused = false;
      try {
        await this.hooks.resume?.();
      } catch {
        // the resume hook's own failure must not hide the migration's error
      }
    }
  }

  private report(t0: number, setupTimeMs: number, decision: PolicyDecision, done: Completion): MigrationReport {
    const s = this.stats;
    const rawBytes = this.rounds.reduce((n, r) => n + r.rawBytes, 0);
    const f = done.faults;
    return {
      role: 'source', sessionId: this.sessionId, mode: done.mode, verified: true,
      converged: decision.action === 'switchover' ? decision.converged : false,
      totalTimeMs: this.clock() - t0, setupTimeMs, downtimeMs: done.downtimeMs, expectedDowntimeMs: this.expectedMs,
      rttMs: this.session.flow.rttMs,
      wireBytes: s.wireBytes, rawBytes, pageSize: this.memory.pageSize, guestPages: this.memory.pageCount, rounds: this.rounds, codecs: this.totals,
      precopyBytes: s.precopyBytes, downtimeBytes: s.downtimeBytes, postcopyBytes: s.postcopyBytes,
      digest: done.digest, throttlePct: s.throttlePct, drops: s.drops, resentBytes: s.resentBytes,
      corruptionsDetected: s.corruptionsDetected, repairedPages: s.repairedPages, channels: 1, reason: decision.reason, options: this.reportOptions(),
      codecStats: this.encoder.stats,
      ...(this.known ? { knownPagesSkipped: s.knownPagesSkipped } : {}),
      ...(f ? targetFaults(this.donePayload) ?? { faults: f.faults, faultLatencyMs: { median: percentile(f.latencies, 50), p99: percentile(f.latencies, 99) } } : {}),
    };
  }

  private reportOptions(): Record<string, unknown> {
    const { clock: _c, onPhase: _p, secret, ...rest } = this.opts;
    return { ...rest, ...this.policy, secret: secret ? '(set)' : undefined, codecs: typeof rest.codecs === 'string' ? rest.codecs : rest.codecs ?? 'all' };
  }

  // ---------------------------------------------------------------- post-copy

  private postcopyHost(): PostcopySourceHost {
    const session = this.session;
    return {
      memory: this.memory,
      pending: this.pending,
      batchPages: this.opts.batchPages,
      clock: this.clock,
      pageRanges: session.peerMinor >= MINOR_PAGE_RANGES,
      sendFrame: (type, payload) => session.sendFrame(type, payload, null),
      sendPages: (pages) => this.sender.sendPages(pages, { final: true, postcopy: true }).then((r) => r.wireBytes),
      takeRequests: () => { const r = this.pageRequests; this.pageRequests = []; return r; },
      waitRequest: (ms) => this.requestSignal.wait(ms, 'post-copy'),
      setPostcopy: (on) => { this.stats.phase = on ? 'postcopy' : 'downtime'; },
      forget: (pages) => this.encoder.forget(pages),
      encoderCounts: () => encoderCounts(this.encoder),
      commit: () => { session.committed = true; },
      nextSeq: () => session.seq,
      waitApplied: (seq) => session.waitApplied(seq, 'post-copy switch-over'),
    };
  }
}

/** Post-copy fault figures a target put in its DONE (measured where the guest waited), if any. */
function targetFaults(p: Uint8Array | null): { faults: number; faultLatencyMs: { median: number; p99: number } } | null {
  if (!p) return null;
  try {
    const o = JSON.parse(new TextDecoder().decode(p)) as { faults?: unknown; faultLatencyMs?: { median?: unknown; p99?: unknown } };
    const f = o.faults;
    const m = o.faultLatencyMs?.median;
    const q = o.faultLatencyMs?.p99;
    if (typeof f !== 'number' || typeof m !== 'number' || typeof q !== 'number' || !(f >= 0 && m >= 0 && q >= 0)) return null;
    return { faults: f, faultLatencyMs: { median: m, p99: q } };
  } catch {
    return null;
  }
}
