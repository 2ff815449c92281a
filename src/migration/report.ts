/**
 * What a migration reports: per-round figures, the final report, and the events a progress bar
 * listens to. Names follow QEMU's migration statistics where one exists.
 */

import type { CodecCounts } from '../codec/adapter.js';

export type { CodecCounts };

/** One pre-copy round (or the stop-and-copy round, `final: true`). */
export interface RoundReport {
  round: number;
  /** The stop-and-copy round, sent with the guest paused. */
  final: boolean;
  /** Pages sent (zero and unchanged pages included). */
  pages: number;
  /** Bytes on the wire for this round (frames and headers). */
  wireBytes: number;
  /** pages * pageSize. */
  rawBytes: number;
  /** Per-codec page and byte counts. */
  codecs: CodecCounts;
  /** Pages the guest dirtied during the round (found at the sync after it). */
  dirtyPages: number;
  /** Bytes dirtied per second during the round. */
  dirtyRateBytesPerSec: number;
  /** Measured link bandwidth (acknowledged bytes per second). */
  bandwidthBytesPerSec: number;
  durationMs: number;
  /** Expected downtime had the guest been stopped after this round. */
  expectedDowntimeMs: number;
  /** Throttle in force during the round, percent. */
  throttlePct: number;
}

/** Final report of one endpoint. */
export interface MigrationReport {
  role: 'source' | 'target';
  sessionId: string;
  mode: 'precopy' | 'postcopy' | 'hybrid';
  /** True when the target's memory digest matched the source's at pause time. */
  verified: boolean;
  /** True when pre-copy reached the downtime limit (false when switch-over was forced). */
  converged: boolean;
  /** Source: from migrate() to the report. Target: from run() to the report (waiting for the source included). */
  totalTimeMs: number;
  /**
   * Source: from migrate() to the first round (connect, handshake, dirty log, verification cost).
   * Target: from the session's HELLO to the end of its handshake (authentication, memory, decoder,
   * digest table, known pages).
   */
  setupTimeMs: number;
  /** Pause to the target's "guest may run" (as seen by the source: includes half a round trip). */
  downtimeMs: number;
  /** Last expected downtime the policy computed. */
  expectedDowntimeMs: number;
  /** Round-trip time of the idle link as the source measured it (PING echoed in ACK), ms. */
  rttMs?: number;
  /** Bytes on the wire, both directions of the page stream (source -> target). */
  wireBytes: number;
  /** Pages sent times page size: what plain pre-copy would send for the same pages. */
  rawBytes: number;
  pageSize: number;
  guestPages: number;
  /** Rounds, the final stop-and-copy round last. */
  rounds: RoundReport[];
  /** Per-codec totals. */
  codecs: CodecCounts;
  /** Bytes sent while the guest ran (pre-copy), while paused, and after switch-over (post-copy). */
  precopyBytes: number;
  downtimeBytes: number;
  postcopyBytes: number;
  /** The memory digest (16 hex chars). */
  digest: string;
  /** Last throttle applied by auto-converge, percent. */
  throttlePct: number;
  /** Connections lost and survived. */
  drops: number;
  /** Wire bytes sent again after drops. */
  resentBytes: number;
  /** Corrupted frames detected (checksum). */
  corruptionsDetected: number;
  /** Pages re-sent by full verification passes (verify: 'full'). */
  repairedPages?: number;
  /** Post-copy: page faults served and their latency. */
  faults?: number;
  faultLatencyMs?: { median: number; p99: number };
  /** Parallel channels used. */
  channels: number;
  /** Pages not sent in round 0 because the target already held them (option knownPages). */
  knownPagesSkipped?: number;
  /** Why the migration switched over (or failed). */
  reason: string;
  /** The options in force. */
  options: Record<string, unknown>;
  /** Codec statistics (cache hits, misses, overflows...). */
  codecStats?: unknown;
  /** Set when the migration failed. */
  error?: { code: string; message: string };
}

/** Progress while a round runs. */
export interface ProgressEvent {
  round: number;
  pagesSent: number;
  pagesRemaining: number;
  bytesSent: number;
  bandwidthBytesPerSec: number;
  /** The policy's estimate after the previous round (Infinity during round 0). */
  expectedDowntimeMs: number;
  phase: 'precopy' | 'stop-and-copy' | 'postcopy';
}

/** Event map of endpoints. */
export interface MigrationEvents {
  round: RoundReport;
  progress: ProgressEvent;
  switchover: { round: number; reason: string; expectedDowntimeMs: number; mode: 'precopy' | 'postcopy' };
  phase: { phase: 'handshake' | 'round' | 'stop-and-copy' | 'complete' | 'postcopy'; round: number };
  drop: { error: string; attempt: number };
  resumed: { appliedSeq: number; resentPages: number };
  complete: MigrationReport;
  error: Error;
}

type Listener<T> = (ev: T) => void;

/** A tiny typed event emitter that works the same in Node and browsers. */
export class Emitter<E extends object> {
  private readonly map = new Map<keyof E, Set<Listener<never>>>();

  /** Listen to `name`. @returns a function that removes the listener */
  on<K extends keyof E>(name: K, fn: Listener<E[K]>): () => void {
    let set = this.map.get(name);
    if (!set) this.map.set(name, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => set.delete(fn as Listener<never>);
  }

  protected emit<K extends keyof E>(name: K, ev: E[K]): void {
    const set = this.map.get(name);
    if (!set) return;
    for (const fn of set) {
      try {
        (fn as Listener<E[K]>)(ev);
      } catch {
        // a listener's bug must not break a migration
      }
    }
  }
}

/** Add `add` into `into` (per-codec counts). */
export function addCodecCounts(into: CodecCounts, add: CodecCounts): void {
  for (const [k, v] of Object.entries(add)) {
    const t = (into[k] ??= { pages: 0, bytes: 0 });
    t.pages += v.pages;
    t.bytes += v.bytes;
  }
}

/** Per-codec counts in `after` and not in `before` (codecs with no new page left out). */
export function codecCountsSince(after: CodecCounts, before: CodecCounts): CodecCounts {
  const out: CodecCounts = {};
  for (const [k, v] of Object.entries(after)) {
    const b = before[k] ?? { pages: 0, bytes: 0 };
    if (v.pages - b.pages > 0) out[k] = { pages: v.pages - b.pages, bytes: v.bytes - b.bytes };
  }
  return out;
}
