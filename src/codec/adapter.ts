/**
 * The codec pipeline as its users see it (the migration source and target, snapshot files): what
 * they need from a page encoder and decoder, and how to make the ones this package provides.
 */
import { PagewireError, ErrorCode, isPagewireError } from '../errors.js';
import { PageEncoder, type EncoderOptions } from './encoder.js';
import { PageDecoder } from './decoder.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { PageHashTable } from '../memory/page-hash-table.js';

/** Pages and bytes per codec in one round (or in total). */
export type CodecCounts = Record<string, { pages: number; bytes: number }>;

/** A codec preset name or detailed codec options. */
export type CodecChoice = 'raw' | 'qemu' | 'all' | Record<string, unknown>;

/** Source side. */
export interface EncoderLike {
  /**
   * Records for pages indices[start..start+count); a view valid until the next call (a view of
   * core memory is also detached if that memory grows: see `records`).
   */
  encode(indices: Uint32Array, start: number, count: number, opts?: { final?: boolean; postcopy?: boolean }): Uint8Array;
  /** The last encode()'s records as a current view, for encoders whose output lives in core memory. */
  records?(): Uint8Array;
  /** Forget everything the target was known to hold (no delta bases, no duplicate references). */
  resetCache?(): void;
  /** Forget what the target holds of these pages (they will not be used as delta bases). */
  forget(pages: ArrayLike<number>): void;
  /** Names of the record codecs this encoder may emit (announced in HELLO). */
  codecNames(): string[];
  /**
   * The source's acknowledged send rate (bytes/s), whenever its estimate changes: LZ4 'auto'
   * decides with it when the link's bandwidth was not given.
   */
  setSendRate?(bytesPerSec: number): void;
  readonly stats: unknown;
  dispose(): void;
}

/** Target side. */
export interface DecoderLike {
  /** Apply a PAGES payload. @returns pages written */
  apply(records: Uint8Array): number;
  /** Pages written by the last `apply` call. */
  lastPages(): Uint32Array;
  readonly stats: unknown;
  dispose(): void;
}

/** Per-codec counts of an encoder so far. */
export function encoderCounts(e: EncoderLike): CodecCounts {
  const s = e.stats as { codecs?: Record<string, { pages: number; outBytes: number }> };
  const out: CodecCounts = {};
  for (const [k, v] of Object.entries(s.codecs ?? {})) out[k] = { pages: v.pages, bytes: v.outBytes };
  return out;
}

/**
 * The source's encoder: the codec pipeline's PageEncoder (src/codec/encoder.ts).
 * @param linkBytesPerSec known link bandwidth, lets LZ4 'auto' skip compression that costs more
 *   time than it saves on a fast link
 */
export async function createEncoder(
  memory: GuestMemory, codecs: CodecChoice, cacheBytes?: number, batchPages?: number, linkBytesPerSec?: number,
): Promise<EncoderLike> {
  const base: EncoderOptions = typeof codecs === 'string' ? { codecs } : (codecs as EncoderOptions);
  return PageEncoder.create(memory, {
    ...base,
    ...(cacheBytes !== undefined ? { cacheBytes } : {}),
    ...(batchPages !== undefined ? { batchPages } : {}),
    ...(linkBytesPerSec !== undefined && linkBytesPerSec > 0 && base.linkBytesPerSec === undefined ? { linkBytesPerSec } : {}),
  });
}

/**
 * The target's decoder for the codecs announced in HELLO.
 * @throws PagewireError CODEC_NOT_NEGOTIATED when the list names an unknown codec
 */
export async function createDecoder(memory: GuestMemory, codecs: string[]): Promise<DecoderLike> {
  try {
    return await PageDecoder.create(memory, codecs);
  } catch (e) {
    if (isPagewireError(e) && e.code === ErrorCode.INVALID_ARGUMENT) {
      throw new PagewireError(ErrorCode.CODEC_NOT_NEGOTIATED, `the peer announced codecs this decoder does not know: ${codecs.join(', ')}`);
    }
    throw e;
  }
}

/**
 * The incremental digest of the source: a per-page hash table the encoder keeps current with the
 * pages as it encodes them (in its core, same pass). Null for encoders that cannot (then the
 * switch-over hashes all memory).
 */
export function trackEncodedHashes(e: EncoderLike, memory: GuestMemory): PageHashTable | null {
  if (!(e instanceof PageEncoder)) return null;
  const table = new PageHashTable(memory, e.coreInstance);
  e.trackHashes(table);
  return table;
}

/** The incremental digest of the target: a per-page hash table of the pages the decoder wrote. */
export function trackAppliedHashes(d: DecoderLike, memory: GuestMemory): PageHashTable | null {
  if (!(d instanceof PageDecoder)) return null;
  const table = new PageHashTable(memory, d.coreInstance);
  d.trackHashes(table);
  return table;
}
