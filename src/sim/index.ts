/**
 * pagewire/sim: the simulator and the engine's pure parts, for simulations, benchmarks and tests.
 * Browser-safe (the web simulator imports it). The Node-only corpus loader is `loadCorpus` in
 * `pagewire/node`.
 *
 * - a simulated guest that keeps writing during a migration, its workloads and page content;
 * - corpus replay (real memory snapshots and their dirty lists);
 * - the shaped link (token-bucket rate, one-way delay, jitter, scheduled disconnects);
 * - fault injection (drops, corruption, stalls by phase);
 * - the convergence policy's pure functions and the virtual-clock model that drives the same
 *   policy code as the real engine (bench's simulated figures);
 * - bit helpers of the dirty logs.
 */
export { Prng } from './prng.js';
export {
  createWorkload, WORKLOAD_KINDS, UniformWorkload, HotSetWorkload, ZipfWorkload, SequentialWorkload, IdleWorkload, Scatter,
  type Workload, type WorkloadKind, type WorkloadOptions,
} from './workloads.js';
export {
  fillInitial, ContentGenerator, PageCursor, INITIAL_MIX, PAGE_WRITE_MIX,
  type PageClass, type ContentMix, type FillKind, type FillStats,
} from './content.js';
export { corpusFromBytes, parseDirtyList, diffPages, type CorpusSource, type CorpusBytes } from './corpus.js';
export {
  SimulatedGuest, type SimulatedGuestOptions, type GuestHooks, type GuestStats, type WriteSize, type WriteSink,
} from './guest.js';
export {
  shapeTransport, shapedPair, ShapedTransport, realClock,
  type ShapingOptions, type ShapingStats, type ShapingClock, type ShapedPairOptions,
} from '../transport/shaped.js';
export { FaultInjector, parseFaultSpec, type Fault, type FaultKind } from '../migration/faults.js';
export {
  ConvergencePolicy, decide, expectedDowntimeMs, stalledRounds,
  type PolicyState, type PolicyDecision, type RoundSample, type RoundMeasurement,
} from '../migration/policy.js';
export {
  simulateMigration, calibrateCodecCosts, LINKS, ENGINES, DEFAULT_CODEC_COSTS,
  type LinkSpec, type EngineName, type EngineSpec, type CodecCosts, type VirtualRunOptions, type VirtualRound, type VirtualRunResult,
} from './virtual/model.js';
export { drainBits, popcount32, popcountWords } from '../memory/dirty-log.js';
