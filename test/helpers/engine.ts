/**
 * Helpers for migration tests: a set-based dirty log, a tiny writer guest on a timer, and a
 * source/target pair over in-memory transports that can reconnect (for resume tests).
 */
import { createCore } from '../../src/core/core.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryPair } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/types.js';
import type { DirtyLogLike } from '../../src/migration/source.js';
import { PageSet } from '../../src/memory/page-set.js';

export class SetDirtyLog implements DirtyLogLike {
  set: PageSet;
  /** Runs before each sync (a guest lands the writes due by now). */
  beforeSync: (() => void) | null = null;
  constructor(n: number) { this.set = new PageSet(n); }
  start(): void {}
  stop(): void {}
  sync(): Uint32Array { this.beforeSync?.(); return this.set.drain(); }
}

/**
 * A guest that writes `perMs` pages per ms of real time while not paused. A 1 ms timer lands the
 * writes, and so does every dirty sync (the writes due by then), so a round that holds the event
 * loop still finds the pages written meanwhile.
 */
export class TimerGuest {
  writes = 0;
  private isPaused = false;
  private lastAt = performance.now();
  private timer: ReturnType<typeof setInterval>;
  constructor(readonly memory: GuestMemory, readonly log: SetDirtyLog, readonly perMs: number) {
    this.timer = setInterval(() => this.catchUp(), 1);
    log.beforeSync = () => this.catchUp();
  }
  get paused(): boolean { return this.isPaused; }
  set paused(on: boolean) {
    if (on) this.catchUp();
    this.isPaused = on;
    this.lastAt = performance.now();
  }
  /** Land the writes due since the last call (at most two passes over memory). */
  catchUp(): void {
    const now = performance.now();
    if (this.isPaused) { this.lastAt = now; return; }
    const n = this.memory.pageCount;
    const due = Math.min(2 * n, Math.floor((now - this.lastAt) * this.perMs));
    if (due <= 0) return;
    this.lastAt += due / this.perMs;
    for (let i = 0; i < due; i++) {
      const w = this.writes++;
      const p = (w * 7919 + (w >>> 3)) % n;
      this.memory.page(p)[(w * 8) % this.memory.pageSize] = (w * 31) & 0xff;
      this.log.set.add(p);
    }
  }
  stop(): void { clearInterval(this.timer); this.log.beforeSync = null; }
}

export async function makeMemories(pages: number, pageSize = 4096): Promise<{ src: GuestMemory; dst: GuestMemory }> {
  const src = GuestMemory.inCore(await createCore(), pages, pageSize);
  for (let p = 0; p < pages; p++) {
    const v = src.page(p);
    if (p % 5 === 0) continue; // zero page
    for (let i = 0; i < v.length; i += 64) v[i] = (p * 13 + i) & 0xff;
  }
  const dst = GuestMemory.inCore(await createCore(), pages, pageSize);
  return { src, dst };
}

/** A reconnectable in-memory link: the source calls `connect()`, the target `accept()`. */
export class MemoryLink {
  private queue: Transport[] = [];
  private waiters: ((t: Transport) => void)[] = [];
  connections = 0;
  wrap: (t: Transport) => Transport = (t) => t;

  connect = async (): Promise<Transport> => {
    const [a, b] = memoryPair();
    this.connections++;
    const w = this.waiters.shift();
    if (w) w(b);
    else this.queue.push(b);
    return this.wrap(a);
  };

  accept = (): Promise<Transport> => {
    const t = this.queue.shift();
    if (t) return Promise.resolve(t);
    return new Promise((r) => this.waiters.push(r));
  };
}

export function sameMemory(a: GuestMemory, b: GuestMemory): boolean {
  for (let p = 0; p < a.pageCount; p++) {
    const x = a.page(p);
    const y = b.page(p);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

/**
 * Round trip of one byte over a fresh shaped pair with `delayMs` each way, as this process's
 * event loop delivers it now (the largest of `n` tries): on a loaded machine timers fire late,
 * and timing assertions allow for what this measures beyond 2 x delayMs.
 */
export async function shapedEchoMs(delayMs: number, n = 3): Promise<number> {
  const { shapedPair } = await import('../../src/transport/shaped.js');
  const [a, b] = shapedPair({ delayMs });
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await a.write(Uint8Array.of(i));
    const got = await b.read();
    await b.write(got!);
    await a.read();
    worst = Math.max(worst, performance.now() - t0);
  }
  a.destroy();
  b.destroy();
  return worst;
}

/** `t` with its preamble rewritten to announce protocol 1.`minor` (an older peer). */
export function announcing(t: Transport, minor: number): Transport {
  const write = t.write.bind(t);
  let first = true;
  t.write = (chunk) => {
    if (!first) return write(chunk);
    first = false;
    const c = chunk.slice();
    c[5] = minor;
    return write(c);
  };
  return t;
}

/**
 * How late this process's event loop ran over a window: a 1 ms interval timer sums, tick by tick,
 * how much later than its interval (plus 1 ms of ordinary timer jitter) each tick came. Late
 * timers, GC pauses and a CPU shared with other processes delay everything timed in the window
 * by about this much; on an idle machine it stays near 0.
 */
export class LoopStalls {
  /** Summed lateness, ms. */
  totalMs = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private last = 0;

  start(): void {
    this.last = performance.now();
    this.timer = setInterval(() => this.tick(), 1);
  }

  stop(): number {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.tick();
    return this.totalMs;
  }

  private tick(): void {
    const now = performance.now();
    this.totalMs += Math.max(0, now - this.last - 2);
    this.last = now;
  }
}
