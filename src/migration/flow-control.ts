/**
 * Flow control of the source: the window of unacknowledged bytes, pacing to a bandwidth cap and to
 * the host's event loop (a turn every yieldIntervalMs of work), and the link estimates the
 * convergence policy decides on (bandwidth and round-trip time).
 *
 *   window:    sent - acked <= windowBytes before the next frame leaves (per connection)
 *   bandwidth: acknowledged bytes over windows of >= 100 ms; a window during which the link never
 *              waited for the sender is EWMA-smoothed in (0.7 old, 0.3 new); other windows (small
 *              rounds, idle gaps) count only until the first such window
 *   rtt:       smallest of the last RTT_SAMPLES samples (handshake HELLO -> WELCOME, then PING ->
 *              ACK echo); queueing behind data only adds to a sample, so the minimum is the
 *              round trip of an idle link, which is what the switch-over pays once
 *
 * No I/O: the link session feeds acknowledgements in and awaits `ackSignal`.
 */
import { DEFAULT_YIELD_INTERVAL_MS, EventLoopTurns, Signal, sleep, type Clock } from './common.js';

/** RTT samples the minimum is taken over. */
const RTT_SAMPLES = 16;
/** Token-bucket burst of the pacer, bytes. */
const PACER_BURST_BYTES = 64 * 1024;
/** Shortest bandwidth sampling window, ms. */
const BW_WINDOW_MS = 100;

/** Window, pacing and link estimates of one migration source. */
export class FlowControl {
  /** Notified at every acknowledgement; failed when the link fails. */
  readonly ackSignal = new Signal();
  /** Frame bytes sent / acknowledged on the current connection. */
  sentOnConn = 0;
  ackedOnConn = 0;
  /** Acknowledged bytes of earlier connections of the session. */
  private ackedBase = 0;
  /** Measured bandwidth, bytes/s (0 until measured). */
  bandwidthBytesPerSec = 0;
  /** Bandwidth samples taken from busy windows so far. */
  bandwidthSamples = 0;
  private bwWindowStart = -1;
  private bwWindowBytes = 0;
  private bwWindowSent = 0;
  private linkLimitedSamples = 0;
  private readonly rtts: number[] = [];
  private pacerNextMs = 0;

  /** Turns of the host's event loop between frames (real time, whatever `clock` is). */
  private readonly turns: EventLoopTurns;

  constructor(private readonly clock: Clock, readonly windowBytes: number, private readonly maxBandwidthBytesPerSec?: number, yieldIntervalMs = DEFAULT_YIELD_INTERVAL_MS) {
    this.turns = new EventLoopTurns(yieldIntervalMs);
  }

  /** A new connection: nothing sent or acknowledged on it yet. */
  newConnection(): void {
    this.ackedBase += this.ackedOnConn;
    this.sentOnConn = 0;
    this.ackedOnConn = 0;
    this.ackSignal.reset();
  }

  /** Bytes acknowledged over the whole session. */
  get ackedTotal(): number {
    return this.ackedBase + this.ackedOnConn;
  }

  /** Bytes sent on this connection and not yet acknowledged. */
  get inFlightBytes(): number {
    return Math.max(0, this.sentOnConn - this.ackedOnConn);
  }

  /** An acknowledgement: `bytesApplied` frame bytes of this connection are applied. */
  onAck(bytesApplied: number): void {
    this.sampleBandwidth(bytesApplied);
    this.ackedOnConn = bytesApplied;
    this.ackSignal.notify();
  }

  /** One round-trip sample, ms. */
  onRttSample(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) return;
    this.rtts.push(ms);
    if (this.rtts.length > RTT_SAMPLES) this.rtts.shift();
  }

  /** Round-trip time of the idle link, ms (0 before any sample). */
  get rttMs(): number {
    return this.rtts.length === 0 ? 0 : Math.min(...this.rtts);
  }

  /** The latest round-trip sample, ms (0 before any). */
  get latestRttMs(): number {
    return this.rtts.length === 0 ? 0 : this.rtts[this.rtts.length - 1]!;
  }

  /** RTT samples taken so far (at most RTT_SAMPLES kept). */
  get rttSamples(): number {
    return this.rtts.length;
  }

  /** Whether a frame of `bytes` may leave now (window room). */
  hasRoom(): boolean {
    return this.sentOnConn - this.ackedOnConn <= this.windowBytes;
  }

  /** A frame left. */
  onSent(bytes: number): void {
    this.sentOnConn += bytes;
  }

  /**
   * Before a frame leaves: a turn of the event loop when one is due (over memoryPair nothing else
   * would run until the migration ends: common.ts), then token-bucket pacing to
   * `maxBandwidthBytesPerSec` (burst 64 KiB; none without a cap).
   */
  async pace(bytes: number): Promise<void> {
    const turn = this.turns.due();
    if (turn) await turn;
    const rate = this.maxBandwidthBytesPerSec;
    if (!rate) return;
    const now = this.clock();
    const start = Math.max(now - (PACER_BURST_BYTES * 1000) / rate, this.pacerNextMs);
    this.pacerNextMs = start + (bytes * 1000) / rate;
    if (this.pacerNextMs > now) await sleep(this.pacerNextMs - now);
  }

  /**
   * The bandwidth over a round when no busy-window sample exists yet: what was acknowledged
   * during it. A small round gives a rough figure (latency weighs in), still better than none.
   */
  roundFallback(ackedDuringRound: number, durationMs: number): void {
    if (this.bandwidthSamples > 0) return;
    if (ackedDuringRound >= 64 * 1024 || (this.bandwidthBytesPerSec === 0 && ackedDuringRound > 0)) {
      this.bandwidthBytesPerSec = (ackedDuringRound * 1000) / durationMs;
    }
  }

  private sampleBandwidth(ackedNow: number): void {
    const now = this.clock();
    if (this.bwWindowStart < 0 || ackedNow < this.bwWindowBytes) {
      this.startWindow(now, ackedNow);
      return;
    }
    const dt = now - this.bwWindowStart;
    if (dt < BW_WINDOW_MS) return;
    const delivered = ackedNow - this.bwWindowBytes;
    const bw = (delivered * 1000) / dt;
    if (bw > 0) {
      // Link-limited: more was in flight at the window's start than the window delivered, so the
      // link never waited for the sender. Otherwise the sample is sender-limited (small rounds,
      // idle gaps: it says little of the link) and serves only while there is no other figure.
      const linkLimited = this.bwWindowSent - this.bwWindowBytes > delivered + 64 * 1024;
      if (linkLimited) {
        this.bandwidthBytesPerSec = this.linkLimitedSamples === 0 ? bw : 0.7 * this.bandwidthBytesPerSec + 0.3 * bw;
        this.linkLimitedSamples++;
      } else if (this.linkLimitedSamples === 0) {
        this.bandwidthBytesPerSec = Math.max(this.bandwidthBytesPerSec, bw);
      }
      this.bandwidthSamples++;
    }
    this.startWindow(now, ackedNow);
  }

  private startWindow(now: number, acked: number): void {
    this.bwWindowStart = now;
    this.bwWindowBytes = acked;
    this.bwWindowSent = this.sentOnConn;
  }
}
