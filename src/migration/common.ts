/**
 * Small pieces shared by the source and the target: clock, signals, sleeping, turns of the event
 * loop during long runs of work. (Page sets: src/memory/page-set.ts.)
 */
import { PagewireError, ErrorCode } from '../errors.js';

/** Monotonic milliseconds (performance.now in Node and browsers). */
export type Clock = () => number;
export const defaultClock: Clock = () => performance.now();

/** A one-shot-per-wait notification: `wait()` resolves at the next `notify()` or rejects on `fail()`. */
export class Signal {
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private error: Error | null = null;

  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.resolve();
  }

  fail(err: Error): void {
    this.error = err;
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.reject(err);
  }

  /** Forget a previous failure (a new connection). */
  reset(): void {
    this.error = null;
  }

  /** Resolve at the next notify, or reject with TIMEOUT after `timeoutMs`. */
  wait(timeoutMs: number, what: string): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== entry);
        reject(new PagewireError(ErrorCode.TIMEOUT, `${what}: nothing heard from the peer for ${timeoutMs} ms`));
      }, timeoutMs);
      const entry = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (e: Error) => { clearTimeout(timer); reject(e); },
      };
      this.waiters.push(entry);
    });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

/** Percentile of a sorted-or-not list (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

/** Default for the endpoints' `yieldIntervalMs`: give the event loop a turn every 4 ms of work. */
export const DEFAULT_YIELD_INTERVAL_MS = 4;

type Immediate = (fn: () => void) => unknown;
interface PortPair { port1: { onmessage: ((ev: unknown) => void) | null }; port2: { postMessage(m: unknown): void } }
let channel: PortPair | null = null;
const channelQueue: Array<() => void> = [];

/**
 * A promise resolved in a later task of the event loop, so that the host's timers and I/O run
 * between two such waits: `setImmediate` in Node (I/O polls before it, due timers run at the next
 * loop iteration); elsewhere a MessageChannel message (not `setTimeout(0)`, which browsers clamp
 * to 4 ms once nested); `setTimeout(0)` where neither exists.
 */
export function nextTask(): Promise<void> {
  return new Promise<void>((resolve) => {
    const g = globalThis as unknown as { setImmediate?: Immediate; MessageChannel?: new () => PortPair };
    if (typeof g.setImmediate === 'function') {
      g.setImmediate(resolve);
    } else if (typeof g.MessageChannel === 'function') {
      if (channel === null) {
        channel = new g.MessageChannel();
        channel.port1.onmessage = () => channelQueue.shift()?.();
      }
      channelQueue.push(resolve);
      channel.port2.postMessage(0);
    } else {
      setTimeout(resolve, 0);
    }
  });
}

/**
 * Checks the endpoints' `yieldIntervalMs` option.
 * @throws PagewireError INVALID_ARGUMENT unless `ms` is a number >= 0 (Infinity: never yield)
 */
export function checkYieldInterval(ms: number): void {
  if (!(typeof ms === 'number' && ms >= 0)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option yieldIntervalMs must be a number >= 0 (Infinity: never), got ${String(ms)}`);
  }
}

/**
 * Gives the host's event loop a turn (its timers, I/O, rendering) at least every `intervalMs` of
 * an endpoint's work. Over an in-memory transport (memoryPair) every await of a migration resolves
 * as a microtask, so without this the source and the target run back to back and nothing else in
 * the process runs until the migration ends. Paced by time, not by pages: one task switch per
 * interval whatever the page rate (bench/yield.bench.mjs measures the cost).
 */
export class EventLoopTurns {
  private last: number;
  /**
   * @param intervalMs most milliseconds of work between turns (Infinity: never yield)
   * @param clock monotonic milliseconds (real time: the turns are for the host's real timers)
   * @throws PagewireError INVALID_ARGUMENT for a negative or NaN interval
   */
  constructor(private readonly intervalMs: number, private readonly clock: Clock = defaultClock) {
    checkYieldInterval(intervalMs);
    this.last = clock();
  }

  /**
   * @returns null while the last turn is less than `intervalMs` old (nothing to await: no promise
   *   is made), otherwise a promise that resolves after the event loop had its turn
   */
  due(): Promise<void> | null {
    if (this.clock() - this.last < this.intervalMs) return null;
    return nextTask().then(() => {
      this.last = this.clock();
    });
  }
}
