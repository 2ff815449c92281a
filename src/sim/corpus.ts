/**
 * Real-memory corpora for replay (the ../shared/corpus format, unpacked): a series of memory
 * images taken at fixed intervals and, for each K >= 1, the sorted list of pages that differ
 * between images K-1 and K.
 *
 *   snapshot-K.bin   image K (pageCount * pageSize bytes)
 *   dirty-K.u32      sorted little-endian u32 page indices that differ between K-1 and K (K >= 1)
 *   manifest.json    { page_size, ... }
 *
 * This module is browser-safe: the caller supplies the bytes ({@link corpusFromBytes}); the Node
 * file loader is `loadCorpus` in corpus-node.ts (exported from `pagewire/node`).
 */
import { PagewireError, ErrorCode } from '../errors.js';

/** A corpus: images in order, and the pages that changed between consecutive images. */
export interface CorpusSource {
  /** Name for reports (e.g. `vm-redis`). */
  readonly name: string;
  /** Bytes per page. */
  readonly pageSize: number;
  /** Pages per image. */
  readonly pageCount: number;
  /** Number of images (at least 1). */
  readonly snapshotCount: number;
  /**
   * Image `k` (0 <= k < snapshotCount), `pageCount * pageSize` bytes. The caller must not modify it.
   * @throws PagewireError INVALID_ARGUMENT for k out of range; SNAPSHOT_CORRUPT for a bad file
   */
  snapshot(k: number): Uint8Array;
  /**
   * Sorted indices of the pages that differ between images k-1 and k (1 <= k < snapshotCount).
   * @throws PagewireError INVALID_ARGUMENT for k out of range; SNAPSHOT_CORRUPT for a bad list
   */
  dirty(k: number): Uint32Array;
  /**
   * Optional: the pages listed in `dirty(k)` as image `k` holds them, in that order
   * (`dirty(k).length * pageSize` bytes), read without loading the whole image. Replay uses it to
   * read each image's changed pages once, before a migration starts; without it they are cut out
   * of `snapshot(k)`.
   * @throws PagewireError INVALID_ARGUMENT for k out of range; SNAPSHOT_CORRUPT for a bad file
   */
  changedPages?(k: number): Uint8Array;
}

/** Bytes of a corpus supplied by the caller. */
export interface CorpusBytes {
  name?: string;
  /** Default 4096. */
  pageSize?: number;
  /** The images, all the same length (a whole number of pages). */
  snapshots: readonly Uint8Array[];
  /**
   * dirty-K.u32 contents for K = 1..n-1 (index 0 may be absent or empty), as raw little-endian
   * bytes or as indices. Computed by comparing consecutive images when omitted.
   */
  dirty?: readonly (Uint8Array | Uint32Array | undefined)[];
}

function corrupt(message: string): PagewireError {
  return new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, message);
}

/**
 * Parse a dirty-K.u32 file: little-endian u32 page indices, strictly ascending, each below
 * `pageCount`.
 * @throws PagewireError SNAPSHOT_CORRUPT
 */
export function parseDirtyList(bytes: Uint8Array, pageCount: number, label = 'dirty list'): Uint32Array {
  if (bytes.byteLength % 4 !== 0) throw corrupt(`${label}: ${bytes.byteLength} bytes is not a whole number of u32 entries`);
  const n = bytes.byteLength / 4;
  const out = new Uint32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let prev = -1;
  for (let i = 0; i < n; i++) {
    const p = dv.getUint32(i * 4, true);
    if (p <= prev || p >= pageCount) throw corrupt(`${label}: entry ${i} (${p}) is not ascending or not below ${pageCount}`);
    out[i] = p;
    prev = p;
  }
  return out;
}

/** Sorted indices of the pages that differ between `a` and `b` (same length, whole pages). */
export function diffPages(a: Uint8Array, b: Uint8Array, pageSize: number): Uint32Array {
  if (a.byteLength !== b.byteLength || a.byteLength % pageSize !== 0) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'diffPages needs two images of the same whole number of pages');
  }
  const n = a.byteLength / pageSize;
  const out = new Uint32Array(n);
  let k = 0;
  const aligned = a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0 && pageSize % 4 === 0;
  const a32 = aligned ? new Uint32Array(a.buffer, a.byteOffset, a.byteLength / 4) : null;
  const b32 = aligned ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4) : null;
  for (let p = 0; p < n; p++) {
    if (a32 && b32) {
      const w = pageSize / 4;
      for (let i = p * w, e = i + w; i < e; i++) if (a32[i] !== b32[i]) { out[k++] = p; break; }
    } else {
      for (let i = p * pageSize, e = i + pageSize; i < e; i++) if (a[i] !== b[i]) { out[k++] = p; break; }
    }
  }
  return out.slice(0, k);
}

/**
 * The pages `pages` of `image`, one after another (`pages.length * pageSize` bytes).
 * @throws PagewireError SNAPSHOT_CORRUPT for an index outside the image
 */
export function gatherPages(image: Uint8Array, pages: Uint32Array, pageSize: number): Uint8Array {
  const out = new Uint8Array(pages.length * pageSize);
  for (let i = 0; i < pages.length; i++) {
    const at = pages[i]! * pageSize;
    if (at + pageSize > image.byteLength) throw corrupt(`page ${pages[i]!} is outside the ${image.byteLength}-byte image`);
    out.set(image.subarray(at, at + pageSize), i * pageSize);
  }
  return out;
}

/**
 * A corpus over bytes the caller holds (e.g. fetched in a browser).
 * @throws PagewireError INVALID_ARGUMENT for no images, mismatched sizes or a bad page size;
 *   SNAPSHOT_CORRUPT for a bad dirty list
 */
export function corpusFromBytes(c: CorpusBytes): CorpusSource {
  const pageSize = c.pageSize ?? 4096;
  if (!Number.isInteger(pageSize) || pageSize < 8 || (pageSize & (pageSize - 1)) !== 0) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `corpus page size must be a power of two, got ${String(pageSize)}`);
  }
  const snaps = c.snapshots;
  if (snaps.length === 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'a corpus needs at least one snapshot');
  const len = snaps[0]!.byteLength;
  if (len === 0 || len % pageSize !== 0 || snaps.some((s) => s.byteLength !== len)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `corpus snapshots must all be the same positive whole number of ${pageSize}-byte pages`);
  }
  const pageCount = len / pageSize;
  const dirty: Uint32Array[] = [new Uint32Array(0)];
  for (let k = 1; k < snaps.length; k++) {
    const d = c.dirty?.[k];
    if (d === undefined) dirty.push(diffPages(snaps[k - 1]!, snaps[k]!, pageSize));
    else if (d instanceof Uint32Array) dirty.push(parseDirtyList(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pageCount, `dirty-${k}`));
    else dirty.push(parseDirtyList(d, pageCount, `dirty-${k}.u32`));
  }
  return {
    name: c.name ?? 'corpus',
    pageSize,
    pageCount,
    snapshotCount: snaps.length,
    snapshot(k: number): Uint8Array {
      checkIndex(k, 0, snaps.length);
      return snaps[k]!;
    },
    dirty(k: number): Uint32Array {
      checkIndex(k, 1, snaps.length);
      return dirty[k]!;
    },
    changedPages(k: number): Uint8Array {
      checkIndex(k, 1, snaps.length);
      return gatherPages(snaps[k]!, dirty[k]!, pageSize);
    },
  };
}

/** @throws PagewireError INVALID_ARGUMENT unless lo <= k < hi */
export function checkIndex(k: number, lo: number, hi: number): void {
  if (!Number.isInteger(k) || k < lo || k >= hi) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `snapshot index ${String(k)} is outside ${lo}..${hi - 1}`);
  }
}
