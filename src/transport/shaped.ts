/**
 * A shaped link: wraps any Transport and, on its sending side, applies a token-bucket rate limit,
 * a one-way delay with jitter (order preserved), and injected faults (drop, corrupt, stall).
 * Userspace, deterministic for a given seed and clock, and browser-safe.
 *
 * Model (per segment of at most `segmentBytes`, a `subarray` of the chunk, never a copy):
 *   rate:    GCRA form of a token bucket of `burstBytes` filled at `bandwidthBytesPerSec`:
 *            tat = max(tat, now) + bytes / rate;  depart = max(now, tat - burst / rate)
 *   delay:   arrive = max(depart + delayMs + U(-jitterMs, +jitterMs), depart, previous arrive)
 *   deliver: at `arrive` the segment is written to the inner transport (awaiting its backpressure);
 *            adjacent segments of one chunk that are due by then go in the same write.
 * The writer's `write` resolves while bytes held by the shaper (waiting for tokens or in flight)
 * are below `highWaterBytes`, which defaults to the larger of 1 MiB and twice the
 * bandwidth-delay product, like an autotuned TCP send buffer.
 */
import { ErrorCode, PagewireError } from '../errors.js';
import { WaiterList, closedError, nonNegativeOption, positiveOption, toTransportError } from './chunk-queue.js';
import { memoryPair } from './memory.js';
import type { Transport } from './types.js';

/** A clock the shaper reads and schedules on (inject a manual one for deterministic tests). */
export interface ShapingClock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Call `fn` after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancel a pending `setTimeout`. */
  clearTimeout(handle: unknown): void;
}

/** The real clock: `performance.now()` and the global timers. */
export const realClock: ShapingClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** Due segments of one chunk are merged into writes of up to this many bytes. */
const COALESCE_MAX_BYTES = 1 << 20;

/** Options for {@link shapeTransport}. */
export interface ShapingOptions {
  /** Rate limit of the sending side in bytes per second (default: unlimited). */
  bandwidthBytesPerSec?: number;
  /** Token bucket depth: bytes that may leave back to back after an idle period (default 64 KiB). */
  burstBytes?: number;
  /** One-way delay in milliseconds (default 0). */
  delayMs?: number;
  /** Delay varies uniformly within ±jitterMs (never below 0, order kept) (default 0). */
  jitterMs?: number;
  /** Seed of the jitter and corruption generators (default 1). */
  seed?: number;
  /** Largest piece scheduled at once (default 64 KiB). */
  segmentBytes?: number;
  /** Bytes held by the shaper before `write` waits (default max(1 MiB, 2 x bandwidth x delay)). */
  highWaterBytes?: number;
  /** Clock to use (default {@link realClock}). */
  clock?: ShapingClock;
  /** Label (default `shaped(<inner label>)`). */
  label?: string;
}

/** Counters of a shaped transport. */
export interface ShapingStats {
  /** Bytes accepted from the writer. */
  bytesSent: number;
  /** Bytes handed to the inner transport (arrived at the far end of the link). */
  bytesDelivered: number;
  /** Bytes read from the inner transport. */
  bytesReceived: number;
  /** Wall time during which the rate limiter held data back, in milliseconds. */
  throttledMs: number;
  /** Time covered by injected stalls, in milliseconds. */
  stalledMs: number;
  /** Most bytes ever held by the shaper. */
  maxQueuedBytes: number;
  /** Injected drops. */
  drops: number;
  /** Injected corruptions applied to sent data. */
  corruptions: number;
  /** Byte offset, within the sent stream, of the last corrupted byte (-1: none). */
  lastCorruptedOffset: number;
  /** Injected stalls. */
  stalls: number;
}

/** mulberry32: a small, fast, seedable 32-bit generator; returns floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EMPTY = new Uint8Array(0);

/** A Transport whose sending side is shaped, with fault injection. See {@link shapeTransport}. */
export class ShapedTransport implements Transport {
  readonly label: string;
  /** Counters; updated live. */
  readonly stats: ShapingStats = {
    bytesSent: 0,
    bytesDelivered: 0,
    bytesReceived: 0,
    throttledMs: 0,
    stalledMs: 0,
    maxQueuedBytes: 0,
    drops: 0,
    corruptions: 0,
    lastCorruptedOffset: -1,
    stalls: 0,
  };
  private readonly clock: ShapingClock;
  private readonly rate: number;
  private readonly burstMs: number;
  private readonly delayMs: number;
  private readonly jitterMs: number;
  private readonly segmentBytes: number;
  private readonly hwm: number;
  private readonly jitterRandom: () => number;
  private readonly faultRandom: () => number;
  private readonly writers = new WaiterList();
  /** The delay line: segments and their arrival times, FIFO from `head`. */
  private segs: Uint8Array[] = [];
  private ats: number[] = [];
  /** Per segment: the writer's `release` for its chunk, on the chunk's last segment only. */
  private rels: (((chunk: Uint8Array) => void) | undefined)[] = [];
  private head = 0;
  private queued = 0;
  /** GCRA theoretical arrival time, ms. */
  private tat = -Infinity;
  private throttleEnd = -Infinity;
  private lastArrival = -Infinity;
  private stalledUntil = -Infinity;
  private corruptMask = 0;
  private timer: unknown = undefined;
  private pumping = false;
  private ending = false;
  private endWaiters: Array<{ resolve: () => void; reject: (e: PagewireError) => void }> = [];
  private endResult: 'pending' | 'done' = 'pending';
  private error: PagewireError | null = null;

  /** @internal use {@link shapeTransport} */
  constructor(
    readonly inner: Transport,
    options: ShapingOptions,
  ) {
    this.rate = options.bandwidthBytesPerSec === undefined ? Infinity : positiveOption('bandwidthBytesPerSec', options.bandwidthBytesPerSec, Infinity);
    const burst = positiveOption('burstBytes', options.burstBytes, 64 << 10);
    this.burstMs = Number.isFinite(this.rate) ? (burst * 1000) / this.rate : 0;
    this.delayMs = nonNegativeOption('delayMs', options.delayMs, 0);
    this.jitterMs = nonNegativeOption('jitterMs', options.jitterMs, 0);
    this.segmentBytes = Math.floor(positiveOption('segmentBytes', options.segmentBytes, 64 << 10));
    const bdp = Number.isFinite(this.rate) ? (this.rate * (this.delayMs + this.jitterMs)) / 1000 : 0;
    this.hwm = positiveOption('highWaterBytes', options.highWaterBytes, Math.max(1 << 20, Math.ceil(2 * bdp)));
    const seed = options.seed ?? 1;
    if (!Number.isInteger(seed)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `seed must be an integer, got ${String(seed)}`);
    this.jitterRandom = mulberry32(seed);
    this.faultRandom = mulberry32(seed ^ 0x5bd1e995);
    this.clock = options.clock ?? realClock;
    this.label = options.label ?? `shaped(${inner.label})`;
  }

  get closed(): boolean {
    return this.ending || this.error !== null || this.inner.closed;
  }

  get remote(): string | undefined {
    return this.inner.remote;
  }

  /** Bytes accepted and not yet delivered to the inner transport. */
  get queuedBytes(): number {
    return this.queued;
  }

  /** The high-water mark in use, in bytes. */
  get highWaterBytes(): number {
    return this.hwm;
  }

  write(chunk: Uint8Array, release?: (chunk: Uint8Array) => void): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ending) return Promise.reject(closedError(this.label, 'write after end'));
    if (this.inner.closed) {
      // The link underneath is gone (the peer dropped or destroyed it).
      this.fail(closedError(this.label, 'the link is closed'));
      return Promise.reject(this.error!);
    }
    const n = chunk.byteLength;
    if (n === 0) return Promise.resolve();
    if (this.corruptMask !== 0) {
      // Corrupt a private copy: the caller may keep the original to send again.
      chunk = chunk.slice();
      release = undefined;
      const at = Math.floor(this.faultRandom() * n);
      chunk[at]! ^= this.corruptMask;
      this.corruptMask = 0;
      this.stats.corruptions++;
      this.stats.lastCorruptedOffset = this.stats.bytesSent + at;
    }
    const now = this.clock.now();
    for (let off = 0; off < n; off += this.segmentBytes) {
      const seg = chunk.subarray(off, Math.min(n, off + this.segmentBytes));
      let depart = now;
      if (Number.isFinite(this.rate)) {
        this.tat = Math.max(this.tat, now) + (seg.byteLength * 1000) / this.rate;
        depart = Math.max(now, this.tat - this.burstMs);
        if (depart > now) {
          this.stats.throttledMs += depart - Math.max(now, this.throttleEnd);
          this.throttleEnd = Math.max(this.throttleEnd, depart);
        }
      }
      let delay = this.delayMs;
      if (this.jitterMs > 0) delay += (this.jitterRandom() * 2 - 1) * this.jitterMs;
      const arrive = Math.max(depart + Math.max(0, delay), this.lastArrival);
      this.lastArrival = arrive;
      this.segs.push(seg);
      this.ats.push(arrive);
      // the chunk is free once the inner transport is done with its last segment (segments go out
      // in order; a transport that cannot tell never calls it, and a dropped link never does)
      const whole = chunk;
      this.rels.push(release !== undefined && off + this.segmentBytes >= n ? () => release!(whole) : undefined);
    }
    this.queued += n;
    this.stats.bytesSent += n;
    if (this.queued > this.stats.maxQueuedBytes) this.stats.maxQueuedBytes = this.queued;
    this.schedule();
    if (this.queued < this.hwm) return Promise.resolve();
    return this.writers.wait();
  }

  async read(): Promise<Uint8Array | null> {
    if (this.error !== null) throw this.error;
    let chunk: Uint8Array | null;
    try {
      chunk = await this.inner.read();
    } catch (err) {
      this.fail(toTransportError(err, this.label));
      throw this.error!;
    }
    for (let i = 0; i < 64 && this.error === null; i++) {
      const wait = this.stalledUntil - this.clock.now();
      if (wait <= 0) break;
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, Math.ceil(wait)));
    }
    if (this.error !== null) throw this.error;
    if (chunk !== null) this.stats.bytesReceived += chunk.byteLength;
    return chunk;
  }

  recycle(chunk: Uint8Array): void {
    this.inner.recycle?.(chunk);
  }

  end(): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.endResult === 'done') return Promise.resolve();
    this.ending = true;
    const p = new Promise<void>((resolve, reject) => this.endWaiters.push({ resolve, reject }));
    this.schedule();
    return p;
  }

  destroy(err?: Error): void {
    if (this.error !== null) return;
    const e = err === undefined ? closedError(this.label, 'destroyed') : toTransportError(err, this.label);
    this.fail(e);
    this.inner.destroy(e);
  }

  /**
   * The link breaks now: data in flight is lost, this side's reads and writes fail with
   * TRANSPORT_CLOSED, and the inner transport is destroyed so the far side fails too (over TCP
   * the peer sees a reset), as when a real connection drops.
   */
  dropNow(): void {
    if (this.error !== null) return;
    this.stats.drops++;
    const e = new PagewireError(ErrorCode.TRANSPORT_CLOSED, `${this.label}: link dropped (injected)`);
    this.fail(e);
    this.inner.destroy(e);
  }

  /**
   * Corrupt the next chunk written: one byte at a seeded-random offset is XORed with `mask`
   * (default 0xff: every bit of the byte flipped; 1 << k flips a single bit). The caller's buffer
   * is never modified.
   * @throws PagewireError INVALID_ARGUMENT when `mask` is not in 1..255
   */
  corruptNextByte(mask = 0xff): void {
    if (!Number.isInteger(mask) || mask < 1 || mask > 255) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `corruptNextByte: mask must be in 1..255, got ${String(mask)}`);
    }
    this.corruptMask = mask;
  }

  /**
   * Stop delivering for `ms` milliseconds, both ways at this end: nothing sent is delivered and
   * nothing received is returned until the stall ends; then everything flows in order. Writers
   * keep going until the high-water mark.
   * @throws PagewireError INVALID_ARGUMENT for a negative or non-finite `ms`
   */
  stall(ms: number): void {
    nonNegativeOption('ms', ms, 0);
    if (this.error !== null) return;
    const now = this.clock.now();
    const until = now + ms;
    if (until <= this.stalledUntil) return;
    this.stats.stalls++;
    this.stats.stalledMs += until - Math.max(now, this.stalledUntil);
    this.stalledUntil = until;
    this.schedule();
  }

  private schedule(): void {
    if (this.pumping || this.error !== null) return;
    if (this.head === this.segs.length) {
      if (this.ending) this.finishEnd();
      return;
    }
    const due = Math.max(this.ats[this.head]!, this.stalledUntil);
    const wait = due - this.clock.now();
    if (wait > 0) {
      if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
      this.timer = this.clock.setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, Math.ceil(wait));
      return;
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    try {
      while (this.head < this.segs.length && this.error === null) {
        const due = Math.max(this.ats[this.head]!, this.stalledUntil);
        if (due > this.clock.now()) break;
        let seg = this.segs[this.head]!;
        let rel = this.rels[this.head];
        this.segs[this.head] = EMPTY;
        this.rels[this.head] = undefined;
        this.head++;
        // segments of one chunk that are due together leave in one write (one message instead of
        // several over a MessagePort; the timer granularity made them due at once anyway)
        while (this.head < this.segs.length && seg.byteLength < COALESCE_MAX_BYTES && Math.max(this.ats[this.head]!, this.stalledUntil) <= this.clock.now()) {
          const next = this.segs[this.head]!;
          if (next.buffer !== seg.buffer || next.byteOffset !== seg.byteOffset + seg.byteLength) break;
          seg = new Uint8Array(seg.buffer, seg.byteOffset, seg.byteLength + next.byteLength);
          rel = this.rels[this.head];
          this.segs[this.head] = EMPTY;
          this.rels[this.head] = undefined;
          this.head++;
        }
        this.queued -= seg.byteLength;
        if (this.queued < this.hwm) this.writers.wake();
        // read the length first: a transport that transfers the buffer (MessagePort) detaches `seg`
        const n = seg.byteLength;
        await this.inner.write(seg, rel);
        this.stats.bytesDelivered += n;
      }
    } catch (err) {
      this.fail(this.error ?? toTransportError(err, this.label));
    } finally {
      this.pumping = false;
    }
    if (this.head === this.segs.length) {
      this.segs = [];
      this.ats = [];
      this.rels = [];
      this.head = 0;
    } else if (this.head >= 1024) {
      this.segs = this.segs.slice(this.head);
      this.ats = this.ats.slice(this.head);
      this.rels = this.rels.slice(this.head);
      this.head = 0;
    }
    this.schedule();
  }

  private finishEnd(): void {
    if (this.endResult === 'done' || this.endWaiters.length === 0) return;
    const waiters = this.endWaiters;
    this.endWaiters = [];
    this.inner.end().then(
      () => {
        this.endResult = 'done';
        for (const w of waiters) w.resolve();
      },
      (err: unknown) => {
        const e = toTransportError(err, this.label);
        this.fail(e);
        for (const w of waiters) w.reject(e);
      },
    );
  }

  private fail(e: PagewireError): void {
    if (this.error !== null) return;
    this.error = e;
    this.segs = [];
    this.ats = [];
    this.rels = [];
    this.head = 0;
    this.queued = 0;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.writers.fail(e);
    const waiters = this.endWaiters;
    this.endWaiters = [];
    for (const w of waiters) w.reject(e);
  }
}

/**
 * Shape the sending side of `inner` (rate, delay, jitter) and make faults injectable.
 * @param inner the transport to wrap; the shaped transport owns it from now on
 * @param options rate, burst, delay, jitter, seed, clock
 * @returns the shaped transport
 * @throws PagewireError INVALID_ARGUMENT for out-of-range options
 */
export function shapeTransport(inner: Transport, options: ShapingOptions = {}): ShapedTransport {
  return new ShapedTransport(inner, options);
}

/** Options for {@link shapedPair}. */
export interface ShapedPairOptions extends ShapingOptions {
  /** High-water mark of the in-memory pair underneath (default 1 MiB). */
  innerHighWaterBytes?: number;
  /** Overrides for the a-to-b direction (applied to end `a`). */
  aToB?: ShapingOptions;
  /** Overrides for the b-to-a direction (applied to end `b`). */
  bToA?: ShapingOptions;
}

/**
 * Two in-memory ends joined by a shaped link (each end shapes what it sends). End `b` uses
 * `seed + 1` unless overridden, so the two directions jitter independently.
 * @param options shaping applied to both directions, with per-direction overrides
 * @returns `[a, b]`
 * @throws PagewireError INVALID_ARGUMENT for out-of-range options
 */
export function shapedPair(options: ShapedPairOptions = {}): [ShapedTransport, ShapedTransport] {
  const { innerHighWaterBytes, aToB, bToA, ...common } = options;
  const [ia, ib] = memoryPair({ highWaterBytes: innerHighWaterBytes, labels: ['memory a', 'memory b'] });
  const seed = common.seed ?? 1;
  const a = new ShapedTransport(ia, { label: 'shaped a', ...common, seed, ...aToB });
  const b = new ShapedTransport(ib, { label: 'shaped b', ...common, seed: seed + 1, ...bToA });
  return [a, b];
}
