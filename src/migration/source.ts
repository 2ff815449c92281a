/**
 * The source endpoint: streams pre-copy rounds of dirty pages to a target while the guest runs,
 * decides when to switch over, pauses the guest, sends the last dirty pages and the device
 * state, and has the target verify the memory digest before its guest may run.
 *
 *   handshake -> round 0 (all pages) -> round k (pages dirtied during k-1) ... -> pause ->
 *   stop-and-copy round (dirty pages + device state) -> COMPLETE(digest) -> DONE(verified)
 *
 * Flow control: at most `windowBytes` of frames may be unacknowledged by the target, and the
 * transport's own backpressure is awaited on every frame, so the source never buffers without
 * bound when the link is slower than the encoder.
 *
 * Failure: whatever goes wrong, the source guest is resumed if it was paused (nothing is lost)
 * and `migrate()` rejects with a PagewireError. With a transport factory the source reconnects
 * after a dropped link and continues where the target's WELCOME says it stands (see resume in
 * docs/PROTOCOL.md): pages of frames the target did not apply are sent again and forgotten by the
 * delta cache, so no delta is ever made against a version the target does not hold.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore, type Core } from '../core/core.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { Transport, TransportFactory } from '../transport/types.js';
import { Connection, withTimeout } from '../protocol/connection.js';
import { FrameType, FRAME_HEADER_BYTES, type Frame } from '../protocol/frame.js';
import {
  encodeJson, parseAck, parseChallenge, parseDone, parseWelcome, parsePageList, parsePageHashes,
  type HelloMessage, type RoundEndMessage, type CompleteMessage,
} from '../protocol/messages.js';
import { authFailed, authProof, randomHex } from '../protocol/auth.js';
import { memoryDigest, pageHashes } from './digest.js';
import { decide, DEFAULT_POLICY, type PolicyOptions, type RoundSample, type PolicyDecision } from './policy.js';
import { Emitter, addCodecCounts, type MigrationEvents, type MigrationReport, type RoundReport, type CodecCounts } from './report.js';
import { Signal, PageSet, defaultClock, sleep, percentile, type Clock } from './common.js';
import { createEncoder, encoderCounts, type EncoderLike, type CodecChoice } from './codec-adapter.js';
import { DirtyFrequencyOrder, type ReorderOptions } from './reorder.js';
import { KnownPagesCollector } from './known-pages.js';

/** Something that tells which pages the guest wrote since the last sync (sync-and-clear). */
export interface DirtyLogLike {
  start(): void;
  sync(): Uint32Array;
  stop(): void;
}

/** Hypervisor hooks of the source. All optional. */
export interface SourceHooks {
  /** Stop the guest's vCPUs: stop-and-copy starts. */
  pause?(): void | Promise<void>;
  /** Let the guest run again after a failed migration (nothing is lost). */
  resume?(): void | Promise<void>;
  /** The device state blob, read while the guest is paused. */
  deviceState?(): Uint8Array | Promise<Uint8Array>;
  /** Auto-converge: slow the guest down to `pct` percent throttle. */
  throttle?(pct: number): void | Promise<void>;
  /**
   * Called before each round's dirty sync (`before: true`) and after it (`before: false`). After
   * the sync, returning 'switchover' forces the switch-over and 'continue' forces another round
   * (corpus replay: one snapshot per round, switch-over after the last one).
   */
  onRound?(round: number, before: boolean): void | 'switchover' | 'continue' | Promise<void | 'switchover' | 'continue'>;
}

/** Options of {@link MigrationSource}. */
export interface SourceOptions extends Partial<PolicyOptions> {
  /** precopy (default), postcopy or hybrid. */
  mode?: 'precopy' | 'postcopy' | 'hybrid';
  /** Codec preset or detailed options: 'raw' (QEMU default), 'qemu' (zero + XBZRLE), 'all' (default). */
  codecs?: CodecChoice;
  /** Delta cache size, bytes (default 64 MiB). */
  cacheBytes?: number;
  /** Pages per encoder call and per PAGES frame (default 256). */
  batchPages?: number;
  /** Unacknowledged bytes allowed in flight (default 8 MiB). */
  windowBytes?: number;
  /** Bandwidth cap, bytes/s (QEMU max-bandwidth). Default: none. */
  maxBandwidthBytesPerSec?: number;
  /**
   * The link's bandwidth when the caller knows it, bytes/s (default: `maxBandwidthBytesPerSec`).
   * With LZ4 'auto' the encoder then compresses only while the link time saved beats the CPU time
   * spent (on a 10 Gbit/s link LZ4 would make the encoder the bottleneck).
   */
  linkBytesPerSec?: number;
  /** Shared secret for the authenticated handshake. */
  secret?: string;
  /** Send rarely dirtied pages first and hold the hottest back for the final round. */
  reorder?: boolean;
  /** Tuning of `reorder` (pages held back: those dirty at each of the last `holdRounds` syncs). */
  reorderOptions?: ReorderOptions;
  /** Ask the target for the pages it already holds and skip those confirmed by two hashes in round 0. */
  knownPages?: boolean;
  /** Handshake deadline, ms (default 10 000). */
  handshakeTimeoutMs?: number;
  /** Fail when the target acknowledges nothing for this long, ms (default 30 000). */
  ackTimeoutMs?: number;
  /** Reconnect attempts after a dropped link (needs a transport factory; default 5). */
  maxRetries?: number;
  /** First backoff between attempts, ms, doubled each time (default 100). */
  retryBackoffMs?: number;
  /** Give up resuming after this long in total, ms (default 60 000). */
  resumeDeadlineMs?: number;
  /**
   * 'digest' (default): the target checks the memory digest. 'full': on a mismatch the target
   * sends its per-page hashes and the source re-sends the pages that differ (for links not
   * trusted to be error-free), up to two passes.
   */
  verify?: 'digest' | 'full';
  /** Clock (ms); injectable for tests. */
  clock?: Clock;
  /** Called when a phase starts: handshake, round0..N, stop-and-copy, complete (fault injection, logs). */
  onPhase?(phase: string, round: number): void;
}

interface SentFrame { seq: number; pages: Uint32Array; bytes: number }

const MiB = 1024 * 1024;

/** Source endpoint of a migration. Create, listen to events, `await migrate()`. */
export class MigrationSource extends Emitter<MigrationEvents> {
  readonly memory: GuestMemory;
  private readonly dirtyLog: DirtyLogLike;
  private readonly transportSource: Transport | TransportFactory;
  private readonly hooks: SourceHooks;
  private readonly opts: Required<Pick<SourceOptions, 'mode' | 'batchPages' | 'windowBytes' | 'handshakeTimeoutMs' | 'ackTimeoutMs' | 'maxRetries' | 'retryBackoffMs' | 'resumeDeadlineMs'>> & SourceOptions;
  private readonly policy: PolicyOptions;
  private readonly clock: Clock;
  readonly sessionId = randomHex(16);

  private core!: Core;
  private encoder!: EncoderLike;
  private conn: Connection | null = null;
  private pumpDone: Promise<void> = Promise.resolve();
  private readonly ackSignal = new Signal();
  private doneWaiter: { resolve: (f: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  private linkError: Error | null = null;

  // per-connection flow control
  private sentOnConn = 0;
  private ackedOnConn = 0;
  private appliedSeq = -1;
  // per-session accounting
  private unacked: SentFrame[] = [];
  private pending!: PageSet;
  private rttMs = 1;
  private verifyCostMs = 0;
  private bandwidth = 0;
  private paused = false;
  private throttlePct = 0;
  private drops = 0;
  private resentBytes = 0;
  private corruptionsDetected = 0;
  private wireBytes = 0;
  private precopyBytes = 0;
  private downtimeBytes = 0;
  private postcopyBytes = 0;
  private pacerNextMs = 0;
  private pageRequests: Uint32Array[] = [];
  private readonly requestSignal = new Signal();

  constructor(memory: GuestMemory, dirtyLog: DirtyLogLike, transport: Transport | TransportFactory, options: SourceOptions = {}, hooks: SourceHooks = {}) {
    super();
    validateSourceOptions(options);
    this.memory = memory;
    this.dirtyLog = dirtyLog;
    this.transportSource = transport;
    this.hooks = hooks;
    this.opts = {
      mode: 'precopy', batchPages: 256, windowBytes: 8 * MiB, handshakeTimeoutMs: 10_000, ackTimeoutMs: 30_000,
      maxRetries: 5, retryBackoffMs: 100, resumeDeadlineMs: 60_000, ...options,
    };
    this.policy = { ...DEFAULT_POLICY, ...pickPolicy(options) };
    this.clock = options.clock ?? defaultClock;
  }

  /**
   * Run the migration to its end.
   * @returns the source's report (verified, converged, downtime, rounds...)
   * @throws PagewireError on failure; the guest is resumed first if it was paused
   */
  async migrate(): Promise<MigrationReport> {
    const t0 = this.clock();
    const rounds: RoundReport[] = [];
    const samples: RoundSample[] = [];
    const totals: CodecCounts = {};
    let reason = '';
    let converged = false;
    let expected = Infinity;
    let setupTimeMs = 0;
    let downtimeMs = 0;
    let digest = '';
    let verified = false;
    let mode: MigrationReport['mode'] = this.opts.mode;
    let faultStats: { faults: number; latencies: number[] } | null = null;
    try {
      this.core = this.memory.core ?? (await createCore());
      this.encoder = await createEncoder(this.memory, this.opts.codecs ?? 'all', this.opts.cacheBytes, this.opts.batchPages, this.opts.linkBytesPerSec ?? this.opts.maxBandwidthBytesPerSec);
      this.pending = new PageSet(this.memory.pageCount);
      if (this.opts.knownPages) this.known = new KnownPagesCollector(this.memory.pageCount);
      if (this.opts.reorder) this.reorderer = new DirtyFrequencyOrder(this.memory.pageCount, this.opts.reorderOptions);
      await this.connectFirst();
      // Verification at switch-over hashes all memory on both sides: measure it once so the
      // expected downtime includes it (the target's memory is assumed as fast as ours).
      const th = this.clock();
      memoryDigest(this.memory, this.core);
      this.verifyCostMs = 2 * (this.clock() - th);
      setupTimeMs = this.clock() - t0;

      this.dirtyLog.start();
      this.pending.fill();
      if (this.known) {
        // after the dirty log started: a page written after its hash was taken is sent in round 1
        await this.known.wait(this.opts.handshakeTimeoutMs);
        this.knownSkipped = this.known.skipMatching(this.memory, this.core, this.pending);
      }
      let round = 0;
      let decision: PolicyDecision;
      for (;;) {
        if (this.opts.mode === 'postcopy') {
          // Pure post-copy: no pre-copy pass; every page is pending at the switch-over.
          decision = { action: 'postcopy', expectedDowntimeMs: 0, reason: 'post-copy mode: switch over at once' };
          reason = decision.reason;
          expected = 0;
          break;
        }
        this.opts.onPhase?.(`round${round}`, round);
        this.emit('phase', { phase: 'round', round });
        const roundStart = this.clock();
        const ackedAtStart = this.ackedTotal();
        const rr = await this.sendRound(round, false);
        // A round lasts at least as long as the link needs for what was queued before it: without
        // this, small rounds only fill the window, empty rounds spin, and bytes merely queued count
        // as expected downtime round after round. Until the acknowledgements gave a bandwidth
        // figure, the round waits for all of its bytes (a round that fits in the window would
        // otherwise end before any acknowledgement, with no bandwidth to decide on); its bandwidth is
        // then what the target acknowledged over the round.
        const measured = this.bwSamples > 0;
        await this.drainInFlight(measured ? rr.wireBytes : 0);
        rr.durationMs = Math.max(rr.durationMs, this.clock() - roundStart);
        if (!measured) {
          const acked = this.ackedTotal() - ackedAtStart;
          // a small round gives a rough figure (latency weighs in), still better than none
          if (acked >= 64 * 1024 || (this.bandwidth === 0 && acked > 0)) this.bandwidth = (acked * 1000) / rr.durationMs;
          rr.bandwidthBytesPerSec = this.bandwidth;
        }
        await this.hooks.onRound?.(round, true);
        const dirty = this.dirtyLog.sync();
        this.pending.addAll(dirty);
        this.reorderer?.noteDirty(dirty);
        const forced = await this.hooks.onRound?.(round, false);
        rr.dirtyPages = dirty.length;
        rr.dirtyRateBytesPerSec = rr.durationMs > 0 ? (dirty.length * this.memory.pageSize * 1000) / rr.durationMs : 0;
        samples.push({ round, pagesSent: rr.pages, wireBytes: rr.wireBytes, durationMs: rr.durationMs, dirtyPagesAfter: this.pending.size });
        decision = decide({
          mode: this.opts.mode, rounds: samples, bandwidthBytesPerSec: this.bandwidth, rttMs: this.rttMs,
          wireBytesPerPage: this.wireBytesPerPage(rounds.concat(rr)), throttlePct: this.throttlePct,
          inFlightBytes: Math.max(0, this.sentOnConn - this.ackedOnConn), verifyCostMs: this.verifyCostMs,
        }, this.policy);
        if (forced === 'switchover' && decision.action !== 'switchover') {
          decision = { action: 'switchover', expectedDowntimeMs: decision.expectedDowntimeMs, converged: true, reason: 'the workload ended (last snapshot replayed)' };
        } else if (forced === 'continue' && decision.action !== 'fail') {
          decision = { action: 'continue', expectedDowntimeMs: decision.expectedDowntimeMs, reason: 'the workload asks for another round' };
        }
        rr.expectedDowntimeMs = decision.expectedDowntimeMs;
        expected = decision.expectedDowntimeMs;
        rounds.push(rr);
        addCodecCounts(totals, rr.codecs);
        this.emit('round', rr);
        if (decision.action === 'continue') { round++; continue; }
        if (decision.action === 'throttle') {
          this.throttlePct = decision.throttlePct;
          await this.hooks.throttle?.(decision.throttlePct);
          round++;
          continue;
        }
        if (decision.action === 'fail') {
          throw new PagewireError(ErrorCode.NOT_CONVERGED, decision.reason);
        }
        reason = decision.reason;
        converged = decision.action === 'switchover' ? decision.converged : false;
        break;
      }

      // Switch-over.
      const roundNo = rounds.length;
      this.emit('switchover', { round: roundNo, reason, expectedDowntimeMs: expected, mode: decision.action === 'postcopy' ? 'postcopy' : 'precopy' });
      this.opts.onPhase?.('stop-and-copy', roundNo);
      this.emit('phase', { phase: 'stop-and-copy', round: roundNo });
      const pausedAt = this.clock();
      await this.hooks.pause?.();
      this.paused = true;
      this.pending.addAll(this.dirtyLog.sync());
      this.dirtyLog.stop();
      if (decision.action === 'postcopy') {
        mode = this.opts.mode === 'precopy' ? 'postcopy' : this.opts.mode;
        const pc = await import('./postcopy-source.js');
        // The device state must be on the target before its guest runs (at the switch-over).
        await this.sendFrame(FrameType.DEVICE_STATE, (await this.hooks.deviceState?.()) ?? new Uint8Array(0), null);
        const res = await pc.runPostcopySource(this.postcopyHost(), roundNo, pausedAt);
        rounds.push(...res.rounds);
        for (const r of res.rounds) addCodecCounts(totals, r.codecs);
        downtimeMs = res.downtimeMs;
        faultStats = { faults: res.faults, latencies: res.latencies };
      } else {
        const final = await this.sendRound(roundNo, true);
        rounds.push(final);
        addCodecCounts(totals, final.codecs);
        this.emit('round', final);
      }
      if (decision.action !== 'postcopy') {
        const ds = (await this.hooks.deviceState?.()) ?? new Uint8Array(0);
        await this.sendFrame(FrameType.DEVICE_STATE, ds, null);
      }
      this.opts.onPhase?.('complete', roundNo);
      this.emit('phase', { phase: 'complete', round: roundNo });
      digest = memoryDigest(this.memory, this.core);
      const done = await this.complete({ digest, rounds: rounds.length, pausedAt });
      verified = done.verified;
      if (!verified) {
        throw new PagewireError(ErrorCode.VERIFY_FAILED, `target memory digest ${done.digest} differs from the source's ${digest}`);
      }
      if (decision.action !== 'postcopy') downtimeMs = this.clock() - pausedAt;
      await this.conn?.close();
    } catch (err) {
      let e = err instanceof PagewireError ? err : new PagewireError(ErrorCode.ABORTED, `migration failed: ${String((err as Error)?.message ?? err)}`, { cause: err });
      if (this.postcopyCommitted && e.code !== ErrorCode.POSTCOPY_FAILED) {
        e = new PagewireError(ErrorCode.POSTCOPY_FAILED, `post-copy failed after the target's guest started: ${e.message}`, { cause: e });
      }
      await this.abort(e);
      this.emit('error', e);
      throw e;
    } finally {
      this.conn?.dispose();
      this.encoder?.dispose();
    }
    const pageSize = this.memory.pageSize;
    const rawBytes = rounds.reduce((n, r) => n + r.rawBytes, 0);
    const report: MigrationReport = {
      role: 'source', sessionId: this.sessionId, mode, verified, converged,
      totalTimeMs: this.clock() - t0, setupTimeMs, downtimeMs, expectedDowntimeMs: expected,
      wireBytes: this.wireBytes, rawBytes, pageSize, guestPages: this.memory.pageCount, rounds, codecs: totals,
      precopyBytes: this.precopyBytes, downtimeBytes: this.downtimeBytes, postcopyBytes: this.postcopyBytes,
      digest, throttlePct: this.throttlePct, drops: this.drops, resentBytes: this.resentBytes,
      corruptionsDetected: this.corruptionsDetected, repairedPages: this.repairedPages, channels: 1, reason, options: this.reportOptions(),
      codecStats: this.encoder.stats,
      ...(this.known ? { knownPagesSkipped: this.knownSkipped } : {}),
      ...(faultStats ? targetFaults(this.donePayload) ?? { faults: faultStats.faults, faultLatencyMs: { median: percentile(faultStats.latencies, 50), p99: percentile(faultStats.latencies, 99) } } : {}),
    };
    this.emit('complete', report);
    return report;
  }

  private reportOptions(): Record<string, unknown> {
    const { clock: _c, onPhase: _p, secret, ...rest } = this.opts;
    return { ...rest, ...this.policy, secret: secret ? '(set)' : undefined, codecs: typeof rest.codecs === 'string' ? rest.codecs : rest.codecs ?? 'all' };
  }

  private wireBytesPerPage(rounds: RoundReport[]): number {
    for (let i = rounds.length - 1; i >= 0; i--) {
      const r = rounds[i]!;
      if (r.pages > 0) return r.wireBytes / r.pages;
    }
    return this.memory.pageSize;
  }

  // ---------------------------------------------------------------- rounds

  /** Order of a round's pages; the reordering policy may hold hot pages back (they stay pending). */
  protected orderRound(indices: Uint32Array, _round: number, final: boolean): Uint32Array {
    if (!this.reorderer) return indices;
    const { send, held } = this.reorderer.order(indices, final);
    this.pending.addAll(held);
    return send;
  }
  /** Dirty-frequency ordering (option `reorder`). */
  private reorderer: DirtyFrequencyOrder | null = null;

  private async sendRound(round: number, final: boolean): Promise<RoundReport> {
    const start = this.clock();
    const indices = this.orderRound(this.pending.drain(), round, final);
    const before = encoderCounts(this.encoder);
    let wire = 0;
    const batch = this.opts.batchPages;
    for (let i = 0; i < indices.length; ) {
      const count = Math.min(batch, indices.length - i);
      const pages = indices.subarray(i, i + count);
      try {
        const records = this.encoder.encode(indices, i, count, { final });
        wire += await this.sendFrame(FrameType.PAGES, records, pages);
      } catch (err) {
        if (!this.canResume(err)) throw err;
        // This batch was not sent: its pages (and those of every unapplied frame) go back to pending.
        this.pending.addAll(pages);
        for (let j = i + count; j < indices.length; j++) this.pending.add(indices[j]!);
        await this.resume(err);
        // Send what is pending now (the rest of this round and the lost frames) within this round.
        const rest = this.pending.drain();
        return this.finishRound(round, final, start, before, wire, i, rest);
      }
      i += count;
      this.emit('progress', {
        round, pagesSent: i, pagesRemaining: indices.length - i + this.pending.size, bytesSent: this.wireBytes,
        bandwidthBytesPerSec: this.bandwidth, expectedDowntimeMs: 0, phase: final ? 'stop-and-copy' : 'precopy',
      });
    }
    const end: RoundEndMessage = { round, pages: indices.length, wireBytes: wire, final, codecs: this.codecsSince(before) };
    wire += await this.sendControl(FrameType.ROUND_END, encodeJson(end));
    return this.roundReport(round, final, start, before, wire, indices.length);
  }

  /** Per-codec pages and bytes the encoder produced since `before`. */
  private codecsSince(before: CodecCounts): CodecCounts {
    const codecs: CodecCounts = {};
    for (const [k, v] of Object.entries(encoderCounts(this.encoder))) {
      const b = before[k] ?? { pages: 0, bytes: 0 };
      if (v.pages - b.pages > 0) codecs[k] = { pages: v.pages - b.pages, bytes: v.bytes - b.bytes };
    }
    return codecs;
  }

  /** Continue a round after a resume with the pages that are pending again. */
  private async finishRound(round: number, final: boolean, start: number, before: CodecCounts, wireSoFar: number, pagesSoFar: number, rest: Uint32Array): Promise<RoundReport> {
    let wire = wireSoFar;
    const batch = this.opts.batchPages;
    for (let i = 0; i < rest.length; ) {
      const count = Math.min(batch, rest.length - i);
      const pages = rest.subarray(i, i + count);
      try {
        const records = this.encoder.encode(rest, i, count, { final });
        wire += await this.sendFrame(FrameType.PAGES, records, pages);
      } catch (err) {
        if (!this.canResume(err)) throw err;
        this.pending.addAll(pages);
        for (let j = i + count; j < rest.length; j++) this.pending.add(rest[j]!);
        await this.resume(err);
        const again = this.pending.drain();
        return this.finishRound(round, final, start, before, wire, pagesSoFar + i, again);
      }
      i += count;
    }
    const pages = pagesSoFar + rest.length;
    const end: RoundEndMessage = { round, pages, wireBytes: wire, final, codecs: this.codecsSince(before) };
    wire += await this.sendControl(FrameType.ROUND_END, encodeJson(end));
    return this.roundReport(round, final, start, before, wire, pages);
  }

  // Bandwidth from acknowledgements over windows of at least 100 ms during which the link stayed
  // busy (bytes were in flight at the window's start), EWMA-smoothed.
  private bwWindowStart = -1;
  private bwWindowBytes = 0;
  private bwSamples = 0;
  private sampleBandwidth(ackedNow: number): void {
    const now = this.clock();
    if (this.bwWindowStart < 0 || ackedNow < this.bwWindowBytes) {
      this.bwWindowStart = now;
      this.bwWindowBytes = ackedNow;
      return;
    }
    const dt = now - this.bwWindowStart;
    if (dt < 100) return;
    const busy = this.sentOnConn - this.bwWindowBytes > 64 * 1024;
    const bw = ((ackedNow - this.bwWindowBytes) * 1000) / dt;
    if (busy && bw > 0) {
      this.bandwidth = this.bwSamples === 0 ? bw : 0.7 * this.bandwidth + 0.3 * bw;
      this.bwSamples++;
    }
    this.bwWindowStart = now;
    this.bwWindowBytes = ackedNow;
  }

  private roundReport(round: number, final: boolean, start: number, before: CodecCounts, wire: number, pages: number): RoundReport {
    const durationMs = Math.max(0.001, this.clock() - start);
    const codecs = this.codecsSince(before);
    return {
      round, final, pages, wireBytes: wire, rawBytes: pages * this.memory.pageSize, codecs, dirtyPages: 0,
      dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: this.bandwidth, durationMs, expectedDowntimeMs: 0, throttlePct: this.throttlePct,
    };
  }

  // ---------------------------------------------------------------- frames and flow control

  private ackedTotal(): number {
    return this.ackedBase + this.ackedOnConn;
  }
  private ackedBase = 0;

  /**
   * Send a frame with flow control; `pages` are the pages it carries (for resume bookkeeping).
   * @returns wire bytes of the frame
   */
  private async sendFrame(type: FrameType, payload: Uint8Array, pages: Uint32Array | null): Promise<number> {
    const conn = this.requireConn();
    const bytes = FRAME_HEADER_BYTES + payload.byteLength;
    const deadline = this.opts.ackTimeoutMs;
    try {
      while (this.sentOnConn - this.ackedOnConn > this.opts.windowBytes) {
        if (this.linkError) throw this.linkError;
        await this.ackSignal.wait(deadline, 'waiting for acknowledgements');
      }
      if (this.linkError) throw this.linkError;
      await this.pace(bytes);
    } catch (err) {
      // Encoded but never sent: the encoder already counts these pages as held by the target
      // (delta base, unchanged, duplicate source); they must not be, or a resend would skip them.
      if (pages) this.encoder.forget(pages);
      throw err;
    }
    const seq = conn.nextSeq;
    if (pages) this.unacked.push({ seq, pages: pages.slice(), bytes });
    this.sentOnConn += bytes;
    this.countWire(bytes);
    try {
      await conn.send(type, payload);
    } catch (err) {
      throw this.linkError ?? err;
    }
    return bytes;
  }

  /** Wait until at most `allowBytes` are unacknowledged (a link failure surfaces at the next send). */
  private async drainInFlight(allowBytes: number): Promise<void> {
    while (this.sentOnConn - this.ackedOnConn > allowBytes) {
      if (this.linkError) return;
      try {
        await this.ackSignal.wait(this.opts.ackTimeoutMs, 'waiting for acknowledgements');
      } catch {
        return;
      }
    }
  }

  private async sendControl(type: FrameType, payload: Uint8Array): Promise<number> {
    for (;;) {
      try {
        return await this.sendFrame(type, payload, null);
      } catch (err) {
        if (!this.canResume(err)) throw err;
        await this.resume(err);
        await this.resendPending();
      }
    }
  }

  /** After a resume: send the pages of frames the target did not apply before any control frame. */
  private async resendPending(): Promise<void> {
    const rest = this.pending.drain();
    for (let i = 0; i < rest.length; i += this.opts.batchPages) {
      const count = Math.min(this.opts.batchPages, rest.length - i);
      const records = this.encoder.encode(rest, i, count, { final: this.paused });
      await this.sendFrame(FrameType.PAGES, records, rest.subarray(i, i + count));
    }
  }

  private countWire(bytes: number): void {
    this.wireBytes += bytes;
    if (this.postcopyActive) this.postcopyBytes += bytes;
    else if (this.paused) this.downtimeBytes += bytes;
    else this.precopyBytes += bytes;
  }
  private postcopyActive = false;
  /** The target's DONE payload (post-copy: it carries the faults measured at the guest's accesses). */
  private donePayload: Uint8Array | null = null;
  private known: KnownPagesCollector | null = null;
  private knownSkipped = 0;
  /** The target's guest may have run (post-copy switch-over): never resume the source guest. */
  private postcopyCommitted = false;

  /** Token-bucket pacing for maxBandwidthBytesPerSec (burst: 64 KiB). */
  private async pace(bytes: number): Promise<void> {
    const rate = this.opts.maxBandwidthBytesPerSec;
    if (!rate) return;
    const now = this.clock();
    const start = Math.max(now - (64 * 1024 * 1000) / rate, this.pacerNextMs);
    this.pacerNextMs = start + (bytes * 1000) / rate;
    if (this.pacerNextMs > now) await sleep(this.pacerNextMs - now);
  }

  private requireConn(): Connection {
    if (!this.conn) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'no connection');
    return this.conn;
  }

  // ---------------------------------------------------------------- connection, handshake, pump

  private async openTransport(): Promise<Transport> {
    const t = this.transportSource;
    return typeof t === 'function' ? t() : t;
  }

  private async connect(resume: boolean): Promise<void> {
    this.opts.onPhase?.('handshake', -1);
    this.emit('phase', { phase: 'handshake', round: -1 });
    const transport = await this.openTransport();
    const conn = new Connection(transport, this.core, { firstSeq: this.nextSeq });
    this.conn = conn;
    this.linkError = null;
    this.ackSignal.reset();
    this.sentOnConn = 0;
    this.ackedOnConn = 0;
    const handshake = async (): Promise<void> => {
      await conn.open();
      const nonce = this.opts.secret ? randomHex(16) : '';
      const hello: HelloMessage = {
        sessionId: this.sessionId, resume, pageSize: this.memory.pageSize, regions: this.memory.layout.regions.map((r) => ({ ...r })),
        codecs: this.encoder.codecNames(), mode: this.opts.mode, nonce, options: { downtimeLimitMs: this.policy.downtimeLimitMs, ...(this.opts.knownPages && !resume ? { knownPages: true } : {}) },
      };
      await conn.send(FrameType.HELLO, encodeJson(hello));
      let f = await conn.expect(FrameType.CHALLENGE, FrameType.WELCOME);
      if (f.type === FrameType.CHALLENGE) {
        if (!this.opts.secret) authFailed('the target requires a shared secret and none was given');
        const ch = parseChallenge(f.payload);
        const expect = await authProof(this.opts.secret, 'target', this.sessionId, nonce, ch.nonce);
        if (expect !== ch.proof) authFailed('the target failed to prove knowledge of the shared secret');
        const proof = await authProof(this.opts.secret, 'source', this.sessionId, nonce, ch.nonce);
        await conn.send(FrameType.AUTH, encodeJson({ proof }));
        f = await conn.expect(FrameType.WELCOME);
      } else if (this.opts.secret) {
        authFailed('the target accepted without authenticating itself, but a shared secret was configured');
      }
      const w = parseWelcome(f.payload);
      if (w.sessionId !== this.sessionId) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'target answered for another session');
      if (resume) this.afterResumeWelcome(w.resume);
    };
    try {
      await withTimeout(handshake(), this.opts.handshakeTimeoutMs, 'handshake');
    } catch (err) {
      this.conn = null;
      await conn.fail(err);
      conn.dispose();
      throw err;
    }
    this.pumpDone = this.pump(conn);
  }

  /** First connection, retried like a resume when the link drops during the handshake. */
  private async connectFirst(): Promise<void> {
    let delay = this.opts.retryBackoffMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.connect(false);
        return;
      } catch (err) {
        if (!this.canResume(err) || attempt >= this.opts.maxRetries) throw err;
        this.drops++;
        this.emit('drop', { error: String((err as Error).message), attempt: attempt + 1 });
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /** Sequence numbers continue across connections of a session. */
  private nextSeq = 0;

  private async pump(conn: Connection): Promise<void> {
    try {
      for (;;) {
        const f = await conn.recv();
        if (!f) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'target closed the connection');
        this.onTargetFrame(f);
      }
    } catch (err) {
      if (this.conn !== conn) return;
      const e = err instanceof PagewireError ? err : new PagewireError(ErrorCode.TRANSPORT_CLOSED, String(err), { cause: err });
      this.linkError = e;
      this.ackSignal.fail(e);
      this.requestSignal.fail(e);
      this.known?.fail(e);
      this.doneWaiter?.reject(e);
      conn.transport.destroy();
    }
  }

  private onTargetFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.ACK: {
        const a = parseAck(f.payload);
        this.sampleBandwidth(a.bytesApplied);
        this.ackedOnConn = a.bytesApplied;
        this.appliedSeq = a.appliedSeq === 0xffffffff ? -1 : a.appliedSeq;
        while (this.unacked.length > 0 && seqLE(this.unacked[0]!.seq, a.appliedSeq) && a.appliedSeq !== 0xffffffff) this.unacked.shift();
        if (a.echoTimeMs > 0) this.rttMs = 0.8 * this.rttMs + 0.2 * Math.max(0, this.clock() - a.echoTimeMs);
        this.ackSignal.notify();
        return;
      }
      case FrameType.DONE:
        this.doneWaiter?.resolve(f.payload.slice());
        return;
      case FrameType.PAGE_REQUEST:
        this.pageRequests.push(parsePageList(f.payload, this.memory.pageCount, 'PAGE_REQUEST'));
        this.requestSignal.notify();
        return;
      case FrameType.PONG:
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

  private targetHashes: BigUint64Array | null = null;
  /** Pages re-sent by full verification passes. */
  private repairedPages = 0;

  private async complete(msg: CompleteMessage): Promise<{ verified: boolean; digest: string }> {
    if (this.opts.verify === 'full') msg = { ...msg, repair: true };
    for (;;) {
      try {
        if (this.linkError) throw this.linkError;
        const donePayload = new Promise<Uint8Array>((resolve, reject) => { this.doneWaiter = { resolve, reject }; });
        donePayload.catch(() => undefined); // a drop before we await it is handled below
        this.targetHashes = null;
        await this.sendFrame(FrameType.COMPLETE, encodeJson(msg), null);
        const p = await withTimeout(donePayload, this.opts.ackTimeoutMs, 'waiting for the target to verify');
        const done = parseDone(p);
        this.donePayload = p;
        if (!done.verified && done.repair && this.targetHashes) {
          await this.repair(this.targetHashes);
          continue;
        }
        return done;
      } catch (err) {
        if (!this.canResume(err)) throw err;
        await this.resume(err);
        // The target may have completed and lost only its DONE: its WELCOME says so.
        if (this.targetComplete) return { verified: true, digest: msg.digest };
        await this.resendPending();
      } finally {
        this.doneWaiter = null;
      }
    }
  }

  /** Full verification: re-send every page whose hash differs from the target's. */
  private async repair(theirs: BigUint64Array): Promise<void> {
    const ours = pageHashes(this.memory, this.core);
    const bad: number[] = [];
    for (let p = 0; p < ours.length; p++) if (ours[p] !== theirs[p]) bad.push(p);
    const pages = Uint32Array.from(bad);
    this.repairedPages += pages.length;
    // What the target holds of these pages is unknown: never delta against it.
    this.encoder.forget(pages);
    for (let i = 0; i < pages.length; i += this.opts.batchPages) {
      const count = Math.min(this.opts.batchPages, pages.length - i);
      const records = this.encoder.encode(pages, i, count, { final: true });
      await this.sendFrame(FrameType.PAGES, records, pages.subarray(i, i + count));
    }
  }

  // ---------------------------------------------------------------- resume

  private targetComplete = false;

  private canResume(err: unknown): boolean {
    if (typeof this.transportSource !== 'function') return false;
    // a target whose guest runs does not wait for a reconnect (post-copy is not resumable yet)
    if (this.postcopyCommitted) return false;
    if (!(err instanceof PagewireError)) return false;
    return err.code === ErrorCode.TRANSPORT_CLOSED || err.code === ErrorCode.CHECKSUM_MISMATCH || err.code === ErrorCode.TIMEOUT;
  }

  /** Reconnect with backoff; on success pages of unapplied frames are pending again. */
  private async resume(cause: unknown): Promise<void> {
    const started = this.clock();
    const old = this.conn;
    this.conn = null;
    if (old) {
      this.nextSeq = old.nextSeq;
      old.transport.destroy(cause instanceof Error ? cause : undefined);
      await this.pumpDone.catch(() => undefined);
      old.dispose();
    }
    if (cause instanceof PagewireError && cause.code === ErrorCode.CHECKSUM_MISMATCH) this.corruptionsDetected++;
    this.ackedBase += this.ackedOnConn;
    let delay = this.opts.retryBackoffMs;
    let lastErr: unknown = cause;
    for (let attempt = 1; attempt <= this.opts.maxRetries; attempt++) {
      this.emit('drop', { error: String((lastErr as Error)?.message ?? lastErr), attempt });
      if (this.clock() - started > this.opts.resumeDeadlineMs) break;
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
      try {
        await this.connect(true);
        this.drops++;
        return;
      } catch (err) {
        lastErr = err;
        if (err instanceof PagewireError && (err.code === ErrorCode.AUTH_FAILED || err.code === ErrorCode.LAYOUT_MISMATCH || err.code === ErrorCode.VERSION_MISMATCH)) throw err;
      }
    }
    throw new PagewireError(ErrorCode.RESUME_FAILED, `could not resume after the link dropped (${this.opts.maxRetries} attempts): ${String((lastErr as Error)?.message ?? lastErr)}`, { cause: lastErr });
  }

  private afterResumeWelcome(r: { appliedSeq: number; round: number; complete: boolean } | null): void {
    if (!r) throw new PagewireError(ErrorCode.RESUME_FAILED, 'the target does not know this session any more');
    this.targetComplete = r.complete;
    const applied = r.appliedSeq;
    // Frames after `applied` never reached the target's memory: their pages are pending again and
    // the delta cache must forget the versions it recorded for them.
    const lost: SentFrame[] = [];
    for (const fr of this.unacked) if (applied < 0 || !seqLE(fr.seq, applied)) lost.push(fr);
    let pages = 0;
    for (const fr of lost) {
      this.encoder.forget(fr.pages);
      this.pending.addAll(fr.pages);
      pages += fr.pages.length;
      this.resentBytes += fr.bytes;
    }
    this.unacked = [];
    this.emit('resumed', { appliedSeq: applied, resentPages: pages });
  }

  // ---------------------------------------------------------------- failure

  private async abort(err: PagewireError): Promise<void> {
    try {
      this.dirtyLog.stop();
    } catch {
      // already stopped
    }
    const conn = this.conn;
    this.conn = null;
    if (conn) await conn.fail(err);
    // After a post-copy switch-over the target's guest ran: the source guest must not resume.
    if (this.paused && !this.postcopyCommitted) {
      this.paused = false;
      try {
        await this.hooks.resume?.();
      } catch {
        // the resume hook's own failure must not hide the migration's error
      }
    }
  }

  // ---------------------------------------------------------------- post-copy host interface

  private postcopyHost() {
    return {
      memory: this.memory,
      encoder: this.encoder,
      pending: this.pending,
      batchPages: this.opts.batchPages,
      clock: this.clock,
      sendFrame: (type: FrameType, payload: Uint8Array, pages: Uint32Array | null) => this.sendFrame(type, payload, pages),
      takeRequests: (): Uint32Array[] => { const r = this.pageRequests; this.pageRequests = []; return r; },
      waitRequest: (ms: number) => this.requestSignal.wait(ms, 'post-copy'),
      setPostcopy: (on: boolean) => { this.postcopyActive = on; },
      encoderCounts: () => encoderCounts(this.encoder),
      emitRound: (r: RoundReport) => this.emit('round', r),
      commit: () => { this.postcopyCommitted = true; },
      nextSeq: () => this.requireConn().nextSeq,
      waitApplied: async (seq: number) => {
        while (!(this.appliedSeq >= 0 && seqLE(seq, this.appliedSeq))) {
          if (this.linkError) throw this.linkError;
          await this.ackSignal.wait(this.opts.ackTimeoutMs, 'post-copy switch-over');
        }
      },
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

/** Is sequence number a <= b (mod 2^32, assuming they are within 2^31)? */
function seqLE(a: number, b: number): boolean {
  return ((b - a) >>> 0) < 0x80000000;
}

function pickPolicy(o: SourceOptions): Partial<PolicyOptions> {
  const out: Partial<PolicyOptions> = {};
  for (const k of Object.keys(DEFAULT_POLICY) as (keyof PolicyOptions)[]) {
    if (o[k] !== undefined) (out as Record<string, unknown>)[k] = o[k];
  }
  return out;
}

/** @throws PagewireError INVALID_ARGUMENT */
export function validateSourceOptions(o: SourceOptions): void {
  const pos = (k: keyof SourceOptions, v: unknown, int = false): void => {
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (int && !Number.isInteger(v))) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option ${String(k)} must be a positive ${int ? 'integer' : 'number'}, got ${String(v)}`);
    }
  };
  pos('downtimeLimitMs', o.downtimeLimitMs);
  pos('maxRounds', o.maxRounds, true);
  pos('stallRounds', o.stallRounds, true);
  pos('batchPages', o.batchPages, true);
  pos('windowBytes', o.windowBytes, true);
  pos('maxBandwidthBytesPerSec', o.maxBandwidthBytesPerSec);
  pos('linkBytesPerSec', o.linkBytesPerSec);
  pos('cacheBytes', o.cacheBytes, true);
  pos('handshakeTimeoutMs', o.handshakeTimeoutMs);
  pos('ackTimeoutMs', o.ackTimeoutMs);
  pos('resumeDeadlineMs', o.resumeDeadlineMs);
  if (o.maxRetries !== undefined && (!Number.isInteger(o.maxRetries) || o.maxRetries < 0)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option maxRetries must be a non-negative integer, got ${String(o.maxRetries)}`);
  }
  if (o.mode !== undefined && !['precopy', 'postcopy', 'hybrid'].includes(o.mode)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option mode must be precopy, postcopy or hybrid, got ${String(o.mode)}`);
  }
  if (o.onNonConvergence !== undefined && !['switchover', 'fail', 'postcopy'].includes(o.onNonConvergence)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option onNonConvergence must be switchover, fail or postcopy, got ${String(o.onNonConvergence)}`);
  }
  if (o.verify !== undefined && o.verify !== 'digest' && o.verify !== 'full') {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option verify must be digest or full, got ${String(o.verify)}`);
  }
  if (o.batchPages !== undefined && o.batchPages > 65536) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option batchPages must be at most 65536, got ${o.batchPages}`);
  }
}

