/**
 * The simulated guest behind `simulate`, `migrate`, `demo` and `snapshot`: guest memory in a core,
 * realistic initial contents, a workload that writes while the migration runs (src/sim), its
 * dirty log, and the hypervisor hooks (pause, resume, throttle, corpus rounds).
 */
import { createCore } from '../core/core.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { DirtyLogLike, SourceHooks, SourceOptions } from '../migration/source.js';
import { SimulatedGuest } from '../sim/guest.js';
import { fillInitial } from '../sim/content.js';
import { loadCorpus } from '../sim/corpus-node.js';
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
}

/** Build the guest described by the options. */
export async function createCliGuest(g: GuestArgs): Promise<CliGuest> {
  const core = await createCore();
  let guest: SimulatedGuest;
  let memory: GuestMemory;
  if (g.corpusDir) {
    // Corpus replay: the guest is the corpus's size; one snapshot per round, then switch-over.
    const corpus = loadCorpus(g.corpusDir);
    memory = GuestMemory.inCore(core, corpus.pageCount, corpus.pageSize);
    guest = new SimulatedGuest(memory, { workload: 'corpus', corpus, seed: g.seed });
  } else {
    memory = GuestMemory.inCore(core, g.sizeBytes / g.pageSize, g.pageSize);
    fillInitial(memory, 'mixed', g.seed);
    guest = new SimulatedGuest(memory, {
      workload: g.workload as WorkloadKind,
      rateBytesPerSec: g.dirtyRateBytesPerSec,
      writeSize: g.writeSizeBytes,
      seed: g.seed,
    });
  }
  // corpus replay: one snapshot per round whatever the policy thinks, switch-over after the last
  const hooks: SourceHooks = guest.hooks();
  return {
    memory, guest, dirtyLog: guest.dirtyLog, hooks, sourceOptions: {},
    start: () => guest.start(),
    stop: () => guest.stop(),
    running: () => guest.running,
  };
}
