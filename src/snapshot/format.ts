/**
 * Snapshot files: the migration stream written to a file (Pang 2010: the same stream is a
 * snapshot, and an incremental snapshot holds only what changed since its parent).
 *
 *   snapshot = preamble HELLO PAGES* ROUND_END DEVICE_STATE? COMPLETE      (then end of file)
 *
 * - preamble and frames are those of docs/PROTOCOL.md (16-byte checksummed frame headers), with
 *   sequence numbers 0, 1, 2, ... in file order;
 * - HELLO is the migration HELLO (layout, codecs, mode `precopy`) whose `options.snapshot` holds
 *   {@link SnapshotInfo}: kind `full` | `incremental`, the parent's digest and path, creation time;
 * - PAGES payloads are codec records (the page encoder's output, applied by the page decoder);
 * - ROUND_END `{ round: 0, pages, wireBytes, final: true, codecs }` counts the pages stored and
 *   their per-codec split (`codecs` is an addition the migration target ignores);
 * - COMPLETE `{ digest, rounds: 1, pausedAt }` carries the memory digest (src/memory/digest.ts)
 *   of the whole guest after the snapshot is applied (for an incremental: after its parent).
 *
 * A file that stops before COMPLETE, has bytes after it, a frame out of sequence or any frame
 * failing its checksum is SNAPSHOT_CORRUPT: a reader never returns a partial restore as good.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { MemoryLayout } from '../memory/guest-memory.js';
import type { CodecCounts } from '../codec/adapter.js';

/** Version of the `options.snapshot` object in HELLO. */
export const SNAPSHOT_FORMAT = 1;

/** Pages per PAGES frame the writer uses by default. */
export const DEFAULT_SNAPSHOT_BATCH_PAGES = 256;

/** Full snapshot (every page) or incremental (pages that differ from the parent). */
export type SnapshotKind = 'full' | 'incremental';

/** What HELLO's `options.snapshot` records. */
export interface SnapshotInfo {
  /** Format version ({@link SNAPSHOT_FORMAT}). */
  format: number;
  kind: SnapshotKind;
  /** Incremental: the memory digest of the parent (16 hex chars); null for a full snapshot. */
  parentDigest: string | null;
  /** Incremental: where the parent was (as the writer was told; relative to this file's folder). */
  parentPath: string | null;
  /** Creation time, ms since the Unix epoch. */
  createdAt: number;
  /** Free-form description of the guest (workload, seed, image path...). */
  meta: Record<string, unknown>;
}

/** The header of a snapshot (or of a captured migration stream: `snapshot` is then null). */
export interface SnapshotHeader {
  layout: MemoryLayout;
  /** Record codecs announced in HELLO. */
  codecs: string[];
  mode: string;
  sessionId: string;
  /** Null when the file is a captured migration stream rather than a snapshot. */
  snapshot: SnapshotInfo | null;
  /** HELLO's options (minus `snapshot`). */
  options: Record<string, unknown>;
}

/** ROUND_END of a snapshot: the migration's fields plus the per-codec split. */
export interface SnapshotRoundEnd {
  round: number;
  pages: number;
  wireBytes: number;
  final: boolean;
  codecs: CodecCounts | null;
}

const HEX16 = /^[0-9a-f]{16}$/;

/** Whether `s` is a memory digest (16 lowercase hex chars). */
export function isDigest(s: unknown): s is string {
  return typeof s === 'string' && HEX16.test(s);
}

function corrupt(why: string): never {
  throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, why);
}

/**
 * Validate HELLO's `options.snapshot`.
 * @returns the info, or null when absent (a captured migration stream)
 * @throws PagewireError SNAPSHOT_CORRUPT for a malformed object or an unknown format version
 */
export function parseSnapshotInfo(options: Record<string, unknown>): SnapshotInfo | null {
  const s = options['snapshot'];
  if (s === undefined) return null;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) corrupt('HELLO: options.snapshot must be an object');
  const o = s as Record<string, unknown>;
  const format = o['format'];
  if (format !== SNAPSHOT_FORMAT) corrupt(`snapshot format ${String(format)} is not supported (this pagewire reads format ${SNAPSHOT_FORMAT})`);
  const kind = o['kind'];
  if (kind !== 'full' && kind !== 'incremental') corrupt('HELLO: options.snapshot.kind must be "full" or "incremental"');
  const parentDigest = o['parentDigest'] ?? null;
  if (kind === 'incremental' ? !isDigest(parentDigest) : parentDigest !== null) {
    corrupt(`HELLO: options.snapshot.parentDigest must be ${kind === 'incremental' ? '16 hex chars' : 'null'} for a ${kind} snapshot`);
  }
  const parentPath = o['parentPath'] ?? null;
  if (parentPath !== null && (typeof parentPath !== 'string' || parentPath.length > 4096)) corrupt('HELLO: options.snapshot.parentPath must be a string');
  const createdAt = o['createdAt'];
  if (typeof createdAt !== 'number' || !Number.isFinite(createdAt)) corrupt('HELLO: options.snapshot.createdAt must be a number');
  const meta = o['meta'];
  return {
    format, kind, parentDigest: parentDigest as string | null, parentPath: parentPath as string | null, createdAt,
    meta: typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? (meta as Record<string, unknown>) : {},
  };
}

