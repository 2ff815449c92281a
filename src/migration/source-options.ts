/**
 * Options and hooks of the migration source, their defaults and their validation.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { DEFAULT_POLICY, type PolicyDecision, type PolicyOptions, type RoundMeasurement } from './policy.js';
import type { CodecChoice } from '../codec/adapter.js';
import type { ReorderOptions } from './reorder.js';
import { checkYieldInterval, type Clock } from './common.js';

/** Something that tells which pages the guest wrote since the last sync (sync-and-clear). */
export interface DirtyLogLike {
  start(): void;
  sync(): Uint32Array;
  stop(): void;
  /**
   * Called before pages `indices[start..start+count)` are encoded: a log that fills guest memory
   * lazily (a QEMU RAM file read batch by batch during round 0) brings them in now. It may move
   * pages the target need not receive (zero pages, when the target's memory is known to be zero
   * and `unreadPagesZero`) to the end of the range: only the first pages, as many as it returns,
   * are encoded and sent.
   * @returns how many pages from `start` to encode (`count` when none is skipped)
   */
  prepare?(indices: Uint32Array, start: number, count: number): number;
  /**
   * With `prepare`: guest memory is zero wherever no page was brought in (fresh memory), so the
   * pages round 0 did not encode hash as zero without being read.
   */
  readonly unreadPagesZero?: boolean;
}

/** Hypervisor hooks of the source. All optional. */
export interface SourceHooks {
  /** Stop the guest's vCPUs: stop-and-copy starts. */
  pause?(): void | Promise<void>;
  /** Let the guest run again after a failed migration (nothing is lost). */
  resume?(): void | Promise<void>;
  /** The device state blob, read while the guest is paused. */
  deviceState?(): Uint8Array | Promise<Uint8Array>;
  /** Auto-converge: slow the guest down to `pct` percent throttle. */
  throttle?(pct: number): void | Promise<void>;
  /**
   * Called before each round's dirty sync (`before: true`) and after it (`before: false`). After
   * the sync, returning 'switchover' forces the switch-over and 'continue' forces another round
   * (corpus replay: one snapshot per round, switch-over after the last one).
   */
  onRound?(round: number, before: boolean): void | 'switchover' | 'continue' | Promise<void | 'switchover' | 'continue'>;
  /**
   * Decide after each round in place of this source's own policy, from its measurements (the
   * parallel-channel coordinator decides over all channels with the same policy).
   */
  decide?(m: RoundMeasurement): PolicyDecision | Promise<PolicyDecision>;
}

/** Options of {@link MigrationSource}. */
export interface SourceOptions extends Partial<PolicyOptions> {
  /** precopy (default), postcopy or hybrid. */
  mode?: 'precopy' | 'postcopy' | 'hybrid';
  /** Codec preset or detailed options: 'raw' (QEMU default), 'qemu' (zero + XBZRLE), 'all' (default). */
  codecs?: CodecChoice;
  /** Delta cache size, bytes (default 64 MiB). */
  cacheBytes?: number;
  /** Pages per encoder call and per PAGES frame (default 256). */
  batchPages?: number;
  /** Unacknowledged bytes allowed in flight (default 8 MiB). */
  windowBytes?: number;
  /** Bandwidth cap, bytes/s (QEMU max-bandwidth). Default: none. */
  maxBandwidthBytesPerSec?: number;
  /**
   * The link's bandwidth when the caller knows it, bytes/s (default: `maxBandwidthBytesPerSec`).
   * With LZ4 'auto' the encoder then compresses only while the link time saved beats the CPU time
   * spent (on a 10 Gbit/s link LZ4 would make the encoder the bottleneck).
   */
  linkBytesPerSec?: number;
  /** Shared secret for the authenticated handshake. */
  secret?: string;
  /** Send rarely dirtied pages first and hold the hottest back for the final round. */
  reorder?: boolean;
  /** Tuning of `reorder` (pages held back: those dirty at each of the last `holdRounds` syncs). */
  reorderOptions?: ReorderOptions;
  /** Ask the target for the pages it already holds and skip those confirmed by two hashes in round 0. */
  knownPages?: boolean;
  /** Handshake deadline, ms (default 10 000). */
  handshakeTimeoutMs?: number;
  /** Fail when the target acknowledges nothing for this long, ms (default 30 000). */
  ackTimeoutMs?: number;
  /** Reconnect attempts after a dropped link (needs a transport factory; default 5). */
  maxRetries?: number;
  /** First backoff between attempts, ms, doubled each time (default 100). */
  retryBackoffMs?: number;
  /** Give up resuming after this long in total, ms (default 60 000). */
  resumeDeadlineMs?: number;
  /**
   * 'digest' (default): the target checks the memory digest, computed incrementally on both sides
   * (per-page hashes taken as pages are encoded and as they are written), so the switch-over costs
   * 8 bytes per page, not a pass over memory; it proves the target holds what the source sent for
   * its memory at pause time (the dirty log reports every change), not memory changed behind the
   * engine's back. 'memory': both sides hash all memory at the switch-over (about 130 ms per GiB
   * each, in the downtime) and catch that too. 'full': like 'memory', and on a mismatch the target
   * sends its per-page hashes and the source re-sends the pages that differ (for links not
   * trusted to be error-free), up to two passes.
   */
  verify?: 'digest' | 'memory' | 'full';
  /** Clock (ms); injectable for tests. */
  clock?: Clock;
  /** Most ms of work before the host's event loop gets a turn (default 4; Infinity: never; common.ts). */
  yieldIntervalMs?: number;
  /** Called when a phase starts: handshake, round0..N, stop-and-copy, complete (fault injection, logs). */
  onPhase?(phase: string, round: number): void;
}

const MiB = 1024 * 1024;

/** Source options with their defaults filled in. */
export type ResolvedSourceOptions = Required<Pick<SourceOptions, 'mode' | 'batchPages' | 'windowBytes' | 'handshakeTimeoutMs' | 'ackTimeoutMs' | 'maxRetries' | 'retryBackoffMs' | 'resumeDeadlineMs'>> & SourceOptions;

/** Defaults filled in (the options validated first). @throws PagewireError INVALID_ARGUMENT */
export function resolveSourceOptions(options: SourceOptions): { opts: ResolvedSourceOptions; policy: PolicyOptions } {
  validateSourceOptions(options);
  const opts: ResolvedSourceOptions = {
    mode: 'precopy', batchPages: 256, windowBytes: 8 * MiB, handshakeTimeoutMs: 10_000, ackTimeoutMs: 30_000,
    maxRetries: 5, retryBackoffMs: 100, resumeDeadlineMs: 60_000, ...options,
  };
  return { opts, policy: { ...DEFAULT_POLICY, ...pickPolicy(options) } };
}

function pickPolicy(o: SourceOptions): Partial<PolicyOptions> {
  const out: Partial<PolicyOptions> = {};
  for (const k of Object.keys(DEFAULT_POLICY) as (keyof PolicyOptions)[]) {
    if (o[k] !== undefined) (out as Record<string, unknown>)[k] = o[k];
  }
  return out;
}

/** @throws PagewireError INVALID_ARGUMENT */
export function validateSourceOptions(o: SourceOptions): void {
  const pos = (k: keyof SourceOptions, v: unknown, int = false): void => {
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (int && !Number.isInteger(v))) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option ${String(k)} must be a positive ${int ? 'integer' : 'number'}, got ${String(v)}`);
    }
  };
  pos('downtimeLimitMs', o.downtimeLimitMs);
  pos('maxRounds', o.maxRounds, true);
  pos('stallRounds', o.stallRounds, true);
  pos('batchPages', o.batchPages, true);
  pos('windowBytes', o.windowBytes, true);
  pos('maxBandwidthBytesPerSec', o.maxBandwidthBytesPerSec);
  pos('linkBytesPerSec', o.linkBytesPerSec);
  pos('cacheBytes', o.cacheBytes, true);
  pos('handshakeTimeoutMs', o.handshakeTimeoutMs);
  pos('ackTimeoutMs', o.ackTimeoutMs);
  pos('resumeDeadlineMs', o.resumeDeadlineMs);
  if (o.yieldIntervalMs !== undefined) checkYieldInterval(o.yieldIntervalMs);
  if (o.maxRetries !== undefined && (!Number.isInteger(o.maxRetries) || o.maxRetries < 0)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option maxRetries must be a non-negative integer, got ${String(o.maxRetries)}`);
  }
  if (o.mode !== undefined && !['precopy', 'postcopy', 'hybrid'].includes(o.mode)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option mode must be precopy, postcopy or hybrid, got ${String(o.mode)}`);
  }
  if (o.onNonConvergence !== undefined && !['switchover', 'fail', 'postcopy'].includes(o.onNonConvergence)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option onNonConvergence must be switchover, fail or postcopy, got ${String(o.onNonConvergence)}`);
  }
  if (o.verify !== undefined && o.verify !== 'digest' && o.verify !== 'memory' && o.verify !== 'full') {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option verify must be digest, memory or full, got ${String(o.verify)}`);
  }
  if (o.batchPages !== undefined && o.batchPages > 65536) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `option batchPages must be at most 65536, got ${o.batchPages}`);
  }
}

