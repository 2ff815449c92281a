/**
 * The migration layer's view of the codec pipeline (src/codec): what the source and the target
 * need from a page encoder and decoder.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { CodecCounts } from './report.js';

/** A codec preset name or detailed codec options. */
export type CodecChoice = 'raw' | 'qemu' | 'all' | Record<string, unknown>;

/** Source side. */
export interface EncoderLike {
  /** Records for pages indices[start..start+count); a view valid until the next call. */
  encode(indices: Uint32Array, start: number, count: number, opts?: { final?: boolean }): Uint8Array;
  /** Forget what the target holds of these pages (they will not be used as delta bases). */
  forget(pages: ArrayLike<number>): void;
  /** Names of the record codecs this encoder may emit (announced in HELLO). */
  codecNames(): string[];
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

/* Temporary raw codec used until the codec pipeline lands: [u32 page][page bytes]*. */
class RawEncoder implements EncoderLike {
  readonly stats = { codecs: { raw: { pages: 0, outBytes: 0 } } };
  private buf = new Uint8Array(0);
  constructor(private readonly memory: GuestMemory) {}
  encode(indices: Uint32Array, start: number, count: number): Uint8Array {
    const ps = this.memory.pageSize;
    const need = count * (4 + ps);
    if (this.buf.byteLength < need) this.buf = new Uint8Array(need);
    const dv = new DataView(this.buf.buffer);
    for (let i = 0; i < count; i++) {
      const p = indices[start + i]!;
      dv.setUint32(i * (4 + ps), p, true);
      this.buf.set(this.memory.page(p), i * (4 + ps) + 4);
    }
    this.stats.codecs.raw.pages += count;
    this.stats.codecs.raw.outBytes += need;
    return this.buf.subarray(0, need);
  }
  forget(): void {}
  codecNames(): string[] { return ['raw']; }
  dispose(): void {}
}

class RawDecoder implements DecoderLike {
  readonly stats = {};
  private last = new Uint32Array(0);
  constructor(private readonly memory: GuestMemory) {}
  apply(records: Uint8Array): number {
    const ps = this.memory.pageSize;
    if (records.byteLength % (4 + ps) !== 0) throw new PagewireError(ErrorCode.RECORD_CORRUPT, 'raw records have a partial page');
    const n = records.byteLength / (4 + ps);
    const dv = new DataView(records.buffer, records.byteOffset, records.byteLength);
    const pages = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const p = dv.getUint32(i * (4 + ps), true);
      if (p >= this.memory.pageCount) throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `record names page ${p}`);
      pages[i] = p;
    }
    for (let i = 0; i < n; i++) this.memory.page(pages[i]!).set(records.subarray(i * (4 + ps) + 4, (i + 1) * (4 + ps)));
    this.last = pages;
    return n;
  }
  lastPages(): Uint32Array { return this.last; }
  dispose(): void {}
}

export async function createEncoder(memory: GuestMemory, _codecs: CodecChoice, _cacheBytes?: number, _batchPages?: number): Promise<EncoderLike> {
  return new RawEncoder(memory);
}

export async function createDecoder(memory: GuestMemory, _codecs: string[]): Promise<DecoderLike> {
  return new RawDecoder(memory);
}
