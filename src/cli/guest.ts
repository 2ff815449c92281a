/**
 * The simulated guest behind `simulate`, `migrate`, `demo` and `snapshot`: guest memory in a core,
 * realistic initial contents, a workload that writes while the migration runs (src/sim), its
 * dirty log, and the hypervisor hooks (pause, resume, throttle, corpus rounds).
 */
import { createCore } from '../core/core.js';
import { prefaultDeltaCache } from '../codec/delta-cache.js';
import { encoderArenaBytes } from '../codec/encoder.js';
import { warmUpCoreLz4 } from '../codec/lz4.js';
import { GuestMemory, IN_CORE_LIMIT_BYTES, splitRegions } from '../memory/guest-memory.js';
import type { DirtyLogLike, SourceHooks, SourceOptions } from '../migration/source.js';
import { SimulatedGuest } from '../sim/guest.js';
import { fillInitial } from '../sim/content.js';
import { loadCorpus } from '../sim/corpus-node.js';
import { loadMemoryImage } from '../memory/dump-node.js';
import type { WorkloadKind } from '../sim/workloads.js';
import type { GuestArgs } from './options.js';

/** What the CLI needs from a simulated guest. */
export interface CliGuest {
  memory: GuestMemory;
  guest: SimulatedGuest;
  dirtyLog: DirtyLogLike;
  hooks: SourceHooks;
  sourceOptions: Partial<SourceOptions>;
  start(): void;
  stop(): void;
  /** Whether the guest runs (not paused, or resumed after a failure). */
  running(): boolean;
  /** Time spent faulting in the source's delta cache before the migration (0: not done). */
  cachePrefaultMs: number;
}

/** Copy `from` page by page into fresh external memory of the same layout. */
function copyToShared(from: GuestMemory): GuestMemory {
  const to = GuestMemory.allocateExternal(from.layout, true);
  for (let p = 0; p < from.pageCount; p++) to.page(p).set(from.page(p));
  return to;
}

/**
 * Build the guest described by the options.
 * @param shared guest memory in SharedArrayBuffer regions (parallel channels read it from workers)
 */
export async function createCliGuest(g: GuestArgs, shared = g.channels > 1): Promise<CliGuest> {
  const core = await createCore();
  let guest: SimulatedGuest;
  let memory: GuestMemory;
  if (g.image) {
    // A real memory image (raw or ELF core) as the guest's memory; the workload writes into it.
    const img = await loadMemoryImage(g.image, { pageSize: g.pageSize, maxGuestBytes: g.maxGuestBytes, ...(shared ? {} : { core }) });
    memory = shared ? copyToShared(img.memory) : img.memory;
    guest = new SimulatedGuest(memory, {
      workload: g.workload === 'corpus' ? 'hotset' : (g.workload as WorkloadKind),
      rateBytesPerSec: g.dirtyRateBytesPerSec,
      writeSize: g.writeSizeBytes,
      seed: g.seed,
    });
  } else if (g.corpusDir) {
    // Corpus replay: the guest is the corpus's size; one snapshot per round, then switch-over.
    const corpus = loadCorpus(g.corpusDir);
    memory = shared
      ? GuestMemory.allocateExternal({ pageSize: corpus.pageSize, regions: [{ name: 'ram', pageCount: corpus.pageCount }] }, true)
      : GuestMemory.inCore(core, corpus.pageCount, corpus.pageSize);
    guest = new SimulatedGuest(memory, { workload: 'corpus', corpus, seed: g.seed });
  } else {
    // In the core (zero-copy) up to its limit; larger guests, and guests that channel workers
    // share, as external regions of at most 1 GiB each (any size the host can hold).
    memory = !shared && g.sizeBytes <= IN_CORE_LIMIT_BYTES
      ? GuestMemory.inCore(core, g.sizeBytes / g.pageSize, g.pageSize)
      : GuestMemory.allocateExternal(splitRegions(g.sizeBytes, g.pageSize), shared);
    fillInitial(memory, 'mixed', g.seed);
    guest = new SimulatedGuest(memory, {
      workload: g.workload as WorkloadKind,
      rateBytesPerSec: g.dirtyRateBytesPerSec,
      writeSize: g.writeSizeBytes,
      seed: g.seed,
    });
  }
  // The host reserves the delta cache's memory with the guest (outside the migration's clock; the
  // JSON report shows its cost as cachePrefaultMs): fresh memory costs 8-12 us per page to fault in.
  let cachePrefaultMs = 0;
  if (memory.core && g.codecs !== 'raw' && g.prefaultCache) {
    const t = performance.now();
    const batch = g.source.batchPages ?? 256;
    prefaultDeltaCache(memory.core, memory.pageCount, memory.pageSize, g.cacheBytes, encoderArenaBytes(memory.pageSize, batch));
    // and LZ4's optimised code, which the encoder would otherwise wait for in the migration's setup
    if (g.codecs !== 'qemu') warmUpCoreLz4(memory.core);
    cachePrefaultMs = performance.now() - t;
  }
  // corpus replay: one snapshot per round whatever the policy thinks, switch-over after the last
  const hooks: SourceHooks = guest.hooks();
  return {
    memory, guest, dirtyLog: guest.dirtyLog, hooks, sourceOptions: {}, cachePrefaultMs,
    start: () => guest.start(),
    stop: () => guest.stop(),
    running: () => guest.running,
  };
}
