/**
 * Helpers for migration tests: a set-based dirty log, a tiny writer guest on a timer, and a
 * source/target pair over in-memory transports that can reconnect (for resume tests).
 */
import { createCore } from '../../src/core/core.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryPair } from '../../src/transport/memory.js';
import type { Transport } from '../../src/transport/types.js';
import type { DirtyLogLike } from '../../src/migration/source.js';
import { PageSet } from '../../src/migration/common.js';

export class SetDirtyLog implements DirtyLogLike {
  set: PageSet;
  constructor(n: number) { this.set = new PageSet(n); }
  start(): void {}
  stop(): void {}
  sync(): Uint32Array { return this.set.drain(); }
}

/** A guest that writes `perTick` pages every ms until paused. */
export class TimerGuest {
  writes = 0;
  paused = false;
  private timer: ReturnType<typeof setInterval>;
  constructor(readonly memory: GuestMemory, readonly log: SetDirtyLog, perTick: number) {
    const n = memory.pageCount;
    this.timer = setInterval(() => {
      if (this.paused) return;
      for (let i = 0; i < perTick; i++) {
        const w = this.writes++;
        const p = (w * 7919 + (w >>> 3)) % n;
        memory.page(p)[(w * 8) % memory.pageSize] = (w * 31) & 0xff;
        log.set.add(p);
      }
    }, 1);
  }
  stop(): void { clearInterval(this.timer); }
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
