/**
 * Snapshot writer: guest memory -> the frames of a snapshot file (format.ts), handed to a byte
 * sink one frame at a time (a file, a Blob builder, an array in tests). Browser-safe.
 *
 * A full snapshot stores every page. An incremental snapshot stores the pages that differ from its
 * parent: given the parent's per-page hashes it compares them with the memory's (exact: a page
 * rewritten with the same bytes is not stored), or it takes the list of pages from a dirty log.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore, type Core } from '../core/core.js';
import type { GuestMemory, MemoryLayout } from '../memory/guest-memory.js';
import { createEncoder, encoderCounts, type CodecChoice } from '../codec/adapter.js';
import { digestOfHashes, memoryDigest, pageHashes } from '../memory/digest.js';
import type { CodecCounts } from '../codec/adapter.js';
import { FrameType, encodePreamble } from '../protocol/frame.js';
import { FrameWriter } from '../protocol/codec.js';
import { encodeJson, type CompleteMessage, type HelloMessage } from '../protocol/messages.js';
import { DEFAULT_SNAPSHOT_BATCH_PAGES, SNAPSHOT_FORMAT, isDigest, type SnapshotInfo, type SnapshotKind } from './format.js';

/** Where snapshot bytes go. Each chunk is a new buffer the sink may keep. */
export interface SnapshotSink {
  write(chunk: Uint8Array): void | Promise<void>;
}

/** A sink that keeps the chunks in memory (browser downloads, tests). */
export class MemorySink implements SnapshotSink {
  readonly chunks: Uint8Array[] = [];
  byteLength = 0;
  write(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.byteLength += chunk.byteLength;
  }
  /** All bytes written, in one buffer. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.byteLength);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.byteLength; }
    return out;
  }
}

/** The parent of an incremental snapshot. */
export interface SnapshotParent {
  /** The parent's memory digest (its COMPLETE digest, or `memoryDigest` of its restored memory). */
  digest: string;
  /** Per-page xxh64 hashes (seed 0) of the parent's memory (`pageHashes`): pages that differ are stored. */
  pageHashes?: BigUint64Array;
  /** The parent's layout; checked against the memory when given. */
  layout?: MemoryLayout;
  /** Where the parent file is, recorded in the header for restore (relative to the new file's folder). */
  path?: string;
}

/** Options of {@link writeSnapshot}. */
export interface SnapshotWriteOptions {
  /** Write an incremental snapshot against this parent (default: full). */
  parent?: SnapshotParent;
  /**
   * Incremental: the pages to store (e.g. from a dirty log since the parent). Without it the
   * writer stores the pages whose hash differs from `parent.pageHashes`.
   */
  pages?: Uint32Array;
  /** Codec choice for the page encoder (default `all`). */
  codecs?: CodecChoice;
  /** Delta cache bytes for the encoder. */
  cacheBytes?: number;
  /** Pages per PAGES frame (default 256). */
  batchPages?: number;
  /** Opaque device state stored after the pages. */
  deviceState?: Uint8Array;
  /** Creation time, ms since the epoch (default now). */
  createdAt?: number;
  /** Free-form description stored in the header (guest options, image path...). */
  meta?: Record<string, unknown>;
  /** Core for hashing and checksums (default the memory's core, else a new one). */
  core?: Core;
}

/** What {@link writeSnapshot} wrote. */
export interface SnapshotWriteReport {
  kind: SnapshotKind;
  /** Memory digest of the guest (stored in COMPLETE). */
  digest: string;
  parentDigest: string | null;
  /** Pages stored in this file. */
  pages: number;
  /** Pages of the guest. */
  guestPages: number;
  pageSize: number;
  /** Bytes of the file. */
  bytes: number;
  /** Bytes of the stored pages before encoding (pages x page size). */
  rawBytes: number;
  /** Bytes of PAGES frames (headers included). */
  pageFrameBytes: number;
  /** Per-codec pages and encoded bytes. */
  codecs: CodecCounts;
  frames: number;
  durationMs: number;
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

function randomSessionId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function sameLayout(a: MemoryLayout, b: MemoryLayout): boolean {
  return a.pageSize === b.pageSize && a.regions.length === b.regions.length && a.regions.every((r, i) => r.pageCount === b.regions[i]!.pageCount);
}

/** Indices of the pages whose hash differs. */
function changedPages(a: BigUint64Array, b: BigUint64Array): Uint32Array {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  const out = new Uint32Array(n);
  n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out[n++] = i;
  return out;
}

/**
 * Write a snapshot of `memory` to `sink`. The memory must not change while this runs (pause the
 * guest first).
 * @param memory the guest memory
 * @param sink receives the file's bytes, frame by frame
 * @param options parent (incremental), pages, codecs, device state, metadata
 * @returns what was written (digest, pages, bytes, codec mix)
 * @throws PagewireError INVALID_ARGUMENT (bad options), LAYOUT_MISMATCH (parent of another layout),
 *   PAGE_OUT_OF_RANGE (bad `pages`); whatever the sink throws
 */
export async function writeSnapshot(memory: GuestMemory, sink: SnapshotSink, options: SnapshotWriteOptions = {}): Promise<SnapshotWriteReport> {
  const t0 = now();
  const parent = options.parent;
  const batch = options.batchPages ?? DEFAULT_SNAPSHOT_BATCH_PAGES;
  if (!Number.isInteger(batch) || batch < 1 || batch * memory.pageSize > 16 * 1024 * 1024) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `batchPages must be 1..${Math.floor(16 * 1024 * 1024 / memory.pageSize)}, got ${String(batch)}`);
  }
  if (options.pages && !parent) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'pages is only for incremental snapshots (give parent)');
  const core = options.core ?? memory.core ?? (await createCore());
  let indices: Uint32Array;
  let digest: string;
  if (parent) {
    if (!isDigest(parent.digest)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `parent.digest must be 16 hex chars, got "${String(parent.digest)}"`);
    if (parent.layout && !sameLayout(parent.layout, memory.layout)) {
      throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, 'the parent snapshot has another memory layout than this guest');
    }
    if (options.pages) {
      indices = sortedUnique(options.pages, memory.pageCount);
      digest = memoryDigest(memory, core);
    } else if (parent.pageHashes) {
      if (parent.pageHashes.length !== memory.pageCount) {
        throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, `the parent has ${parent.pageHashes.length} pages, this guest ${memory.pageCount}`);
      }
      const hashes = pageHashes(memory, core);
      indices = changedPages(parent.pageHashes, hashes);
      digest = digestOfHashes(hashes, core);
    } else {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'an incremental snapshot needs parent.pageHashes or pages');
    }
  } else {
    indices = new Uint32Array(memory.pageCount);
    for (let i = 0; i < indices.length; i++) indices[i] = i;
    digest = memoryDigest(memory, core);
  }

  const createdAt = options.createdAt ?? Date.now();
  const kind: SnapshotKind = parent ? 'incremental' : 'full';
  const encoder = await createEncoder(memory, options.codecs ?? 'all', options.cacheBytes, batch);
  const frames = new FrameWriter(core);
  let bytes = 0;
  let frameCount = 0;
  const put = async (chunk: Uint8Array): Promise<number> => {
    await sink.write(chunk);
    bytes += chunk.byteLength;
    return chunk.byteLength;
  };
  const frame = async (type: FrameType, payload: Uint8Array): Promise<number> => {
    frameCount++;
    return put(frames.frame(type, payload));
  };
  try {
    const info: SnapshotInfo = {
      format: SNAPSHOT_FORMAT, kind, parentDigest: parent ? parent.digest : null, parentPath: parent?.path ?? null,
      createdAt, meta: options.meta ?? {},
    };
    const hello: HelloMessage = {
      sessionId: randomSessionId(), resume: false, pageSize: memory.pageSize,
      regions: memory.layout.regions.map((r) => ({ name: r.name, pageCount: r.pageCount })),
      codecs: encoder.codecNames(), mode: 'precopy', nonce: '', options: { snapshot: info },
    };
    await put(encodePreamble());
    await frame(FrameType.HELLO, encodeJson(hello));
    let pageFrameBytes = 0;
    for (let i = 0; i < indices.length; i += batch) {
      const count = Math.min(batch, indices.length - i);
      // the encoder's output is a view valid until its next call: the frame copies it
      pageFrameBytes += await frame(FrameType.PAGES, encoder.encode(indices, i, count, { final: true }));
    }
    const codecs = encoderCounts(encoder);
    await frame(FrameType.ROUND_END, encodeJson({ round: 0, pages: indices.length, wireBytes: pageFrameBytes, final: true, codecs }));
    if (options.deviceState) await frame(FrameType.DEVICE_STATE, options.deviceState);
    const complete: CompleteMessage = { digest, rounds: 1, pausedAt: createdAt };
    await frame(FrameType.COMPLETE, encodeJson(complete));
    return {
      kind, digest, parentDigest: info.parentDigest, pages: indices.length, guestPages: memory.pageCount, pageSize: memory.pageSize,
      bytes, rawBytes: indices.length * memory.pageSize, pageFrameBytes, codecs, frames: frameCount, durationMs: now() - t0,
    };
  } finally {
    encoder.dispose();
    frames.dispose();
  }
}

function sortedUnique(pages: Uint32Array, pageCount: number): Uint32Array {
  const s = Uint32Array.from(pages).sort();
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const p = s[i]!;
    if (p >= pageCount) throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `page ${p} is outside guest memory (0..${pageCount - 1})`);
    if (n === 0 || s[n - 1] !== p) s[n++] = p;
  }
  return s.subarray(0, n);
}
