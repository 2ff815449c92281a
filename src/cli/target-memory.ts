/**
 * The CLI targets' guest memory: made from the layout the source announces, and with `--prefault
 * on` pre-faulted on a worker thread ahead of the stream (src/memory/prefault-node.ts).
 *
 * With pre-faulting the memory is external SharedArrayBuffer regions (the worker must reach it);
 * without, it lives in the decoder's core up to the in-core limit (one core call applies a block
 * in place) and in external regions above.
 */
import { readFileSync } from 'node:fs';
import { createCore } from '../core/core.js';
import { GuestMemory, type MemoryLayout } from '../memory/guest-memory.js';
import { preparePrefault, startPrefault, type Prefaulter } from '../memory/prefault-node.js';
import { PagewireError, ErrorCode } from '../errors.js';

/** A target's memory factory, the hook that drives its pre-fault worker, and the worker's end. */
export interface CliTargetMemory {
  memory(layout: MemoryLayout): Promise<GuestMemory>;
  /** TargetHooks.pagesWritten: the stream's position for the pre-fault worker. */
  pagesWritten(pages: Uint32Array): void;
  /** Stop the worker (call when the migration ended, either way). */
  stop(): Promise<void>;
}

/** `--prefault on|off`. @throws PagewireError INVALID_ARGUMENT */
export function prefaultFlag(v: unknown): boolean {
  if (v === 'on') return true;
  if (v === undefined || v === 'off') return false;
  throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--prefault must be on or off, got "${String(v)}"`);
}

/** Guest memory for a CLI target (see the file header). */
export function cliTargetMemory(prefault: boolean): CliTargetMemory {
  let worker: Prefaulter | null = null;
  // the worker starts now (a listening target), not when the first source has connected
  if (prefault) void preparePrefault();
  return {
    async memory(layout) {
      if (!prefault) return GuestMemory.forLayout(layout, { core: await createCore() });
      const m = GuestMemory.forLayout(layout, { shared: true });
      await worker?.stop();
      worker = startPrefault(m);
      return m;
    },
    pagesWritten(pages) {
      worker?.advance(pages);
    },
    async stop() {
      await worker?.stop();
    },
  };
}

/**
 * Bytes of this process's anonymous memory in transparent huge pages now (Linux; null elsewhere).
 * The CLI asks glibc for them (bin/pagewire.js); this says whether the kernel gave them.
 */
export function hugePageBytes(): number | null {
  try {
    const m = /^AnonHugePages:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
