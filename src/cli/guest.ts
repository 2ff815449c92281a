/**
 * The simulated guest behind `simulate`, `migrate` and `demo`: guest memory in a core, a dirty log,
 * a workload that writes while the migration runs, and the hypervisor hooks (pause, resume,
 * throttle, device state).
 */
import { createCore } from '../core/core.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { DirtyLogLike, SourceHooks, SourceOptions } from '../migration/source.js';
import { PageSet } from '../migration/common.js';
import type { GuestArgs } from './options.js';

/** What the CLI needs from a simulated guest. */
export interface CliGuest {
  memory: GuestMemory;
  dirtyLog: DirtyLogLike;
  hooks: SourceHooks;
  sourceOptions: Partial<SourceOptions>;
  start(): void;
  stop(): void;
  /** Whether the guest runs (not paused, or resumed after a failure). */
  running(): boolean;
}

/** Build the guest described by the options (temporary in-file workload until src/sim lands). */
export async function createCliGuest(g: GuestArgs): Promise<CliGuest> {
  const pages = g.sizeBytes / g.pageSize;
  const memory = GuestMemory.inCore(await createCore(), pages, g.pageSize);
  let seed = g.seed >>> 0 || 1;
  const rnd = (): number => {
    seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
    return seed / 4294967296;
  };
  for (let p = 0; p < pages; p++) {
    if (rnd() < 0.2) continue;
    const v = memory.page(p);
    for (let i = 0; i < v.length; i += 16) v[i] = (rnd() * 256) | 0;
  }
  const dirty = new PageSet(pages);
  const dirtyLog: DirtyLogLike = { start() {}, stop() {}, sync: () => dirty.drain() };
  let paused = false;
  let throttle = 0;
  let timer: ReturnType<typeof setInterval> | null = null;
  const hot = Math.max(1, Math.floor(pages * 0.05));
  const write = (dtMs: number): void => {
    const bytes = (g.dirtyRateBytesPerSec * dtMs * (1 - throttle / 100)) / 1000;
    const n = Math.floor(bytes / g.writeSizeBytes + rnd());
    for (let i = 0; i < n; i++) {
      const p = g.workload === 'idle' ? 0 : g.workload === 'uniform' ? Math.floor(rnd() * pages) : rnd() < 0.9 ? Math.floor(rnd() * hot) : Math.floor(rnd() * pages);
      const v = memory.page(p);
      const off = Math.floor(rnd() * (g.pageSize - g.writeSizeBytes + 1));
      v.fill((rnd() * 256) | 0, off, off + g.writeSizeBytes);
      dirty.add(p);
    }
  };
  let last = performance.now();
  return {
    memory, dirtyLog, sourceOptions: {},
    hooks: {
      pause: () => { paused = true; },
      resume: () => { paused = false; },
      throttle: (pct) => { throttle = pct; },
    },
    start() {
      last = performance.now();
      timer = setInterval(() => {
        const now = performance.now();
        if (!paused && g.workload !== 'idle') write(now - last);
        last = now;
      }, 5);
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
    running: () => !paused,
  };
}
