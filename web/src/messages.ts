/**
 * Messages between the page and its two workers. The page makes a MessageChannel, hands one port
 * to each worker (transferred), and the workers run a pagewire migration over it; what comes back
 * to the page is only figures (rounds, progress, reports, digests), never memory.
 */
import type { MigrationReport, ProgressEvent, RoundReport } from 'pagewire';

export type Engine = 'precopy' | 'pagewire' | 'postcopy' | 'hybrid';
export type WorkloadName = 'idle' | 'uniform' | 'hotset' | 'zipf' | 'sequential';

/** What the user chose on the page. */
export interface SimConfig {
  guestBytes: number;
  pageSize: number;
  workload: WorkloadName;
  dirtyRateBytesPerSec: number;
  /** 0: unlimited. */
  linkBytesPerSec: number;
  /** One-way delay, ms (applied in both directions). */
  delayMs: number;
  engine: Engine;
  downtimeLimitMs: number;
  maxRounds: number;
  seed: number;
  /** Credit window of each MessagePort transport, bytes (how far a sender may run ahead of the reader). */
  portWindowBytes: number;
}

/** Source options for an engine: plain pre-copy is codecs 'raw', pagewire is codecs 'all'. */
export function engineOptions(engine: Engine): { mode: 'precopy' | 'postcopy' | 'hybrid'; codecs: 'raw' | 'all' } {
  switch (engine) {
    case 'precopy': return { mode: 'precopy', codecs: 'raw' };
    case 'pagewire': return { mode: 'precopy', codecs: 'all' };
    case 'postcopy': return { mode: 'postcopy', codecs: 'all' };
    case 'hybrid': return { mode: 'hybrid', codecs: 'all' };
  }
}

/** Page -> worker: start (the port is in the transfer list). */
export interface StartMessage {
  type: 'start';
  config: SimConfig;
  port: MessagePort;
}

/** Interval of the source worker's link samples, ms. */
export const LINK_SAMPLE_MS = 100;

export interface ErrorInfo { code: string; message: string }

/** Worker -> page. */
export type WorkerMessage =
  | { type: 'ready'; role: 'source' | 'target'; pages: number }
  | { type: 'phase'; role: 'source' | 'target'; phase: string; round: number }
  | { type: 'progress'; t: number; progress: ProgressEvent }
  /**
   * A sample of the link, every LINK_SAMPLE_MS while the source migrates, in every phase (post-copy
   * too): deliveredBytes out of the far end of the shaped link (bytes written when unshaped);
   * `final` on the last one, sent when the migration ended.
   */
  | { type: 'link'; t: number; deliveredBytes: number; final?: boolean }
  | { type: 'round'; t: number; round: RoundReport }
  | { type: 'switchover'; round: number; reason: string; mode: string }
  | { type: 'done'; role: 'source' | 'target'; report: MigrationReport; memoryDigest: string; extra: Record<string, number> }
  | { type: 'failed'; role: 'source' | 'target'; error: ErrorInfo };

export function errorInfo(e: unknown): ErrorInfo {
  const x = e as { code?: unknown; message?: unknown };
  return { code: typeof x?.code === 'string' ? x.code : 'INTERNAL', message: typeof x?.message === 'string' ? x.message : String(e) };
}
