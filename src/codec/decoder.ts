/**
 * PageDecoder: the target side of the page codec pipeline. Applies record payloads
 * (docs/RECORDS.md) to its guest memory.
 *
 *   const dec = await PageDecoder.create(memory, ['zero', 'raw', 'xbzrle', ...]);  // negotiated codecs
 *   const n = dec.apply(payload);   // pages written; dec.lastPages() lists them (view, valid until next apply)
 *
 * Validation: version, block kinds and lengths (a block is at most 8 MiB and 65536 records), LZ4
 * declared sizes (checked before decompressing), record heads, page indices (< pageCount), codec
 * ids against the negotiated set, payload lengths, and each XBZRLE/RLE payload before its page is
 * written. Every failure is a PagewireError (RECORD_CORRUPT, PAGE_OUT_OF_RANGE,
 * CODEC_NOT_NEGOTIATED, XBZRLE_CORRUPT, RLE_CORRUPT, LZ4_CORRUPT); records before the failing one
 * in the same payload have been applied, and nothing is ever written outside the pages named by
 * records. The decoder keeps no cache: duplicates refer to its own memory, deltas to its pages.
 *
 * Placement: guest memory in the core is written in place by one core call per block; external
 * memory is walked in JS after one core validation call per block (zero/raw/dup copied directly,
 * XBZRLE/RLE through a core scratch page).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { Arena, Core, createCore } from '../core/core.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { PageHashTable } from '../memory/page-hash-table.js';
import type { CoreExports } from '../core/exports.js';
import {
  CODEC_DUP, CODEC_RAW, CODEC_XBZRLE, CODEC_ZERO, DEC_BASE, DEC_DONE, DEC_ERR_AT, DEC_MASK, DEC_MAX_REC,
  DEC_PAGES, DEC_PAGE_COUNT, DEC_PAGE_SIZE, DEC_SCAN_ENTRY_BYTES, DEC_STATE_BYTES, DEC_TABLE, HEAD_NEXT,
} from '../core/layout.js';
import {
  STATUS_CODEC_NOT_NEGOTIATED, STATUS_PAGE_OUT_OF_RANGE, STATUS_RECORD_CORRUPT, STATUS_RLE_CORRUPT, STATUS_XBZRLE_CORRUPT,
} from '../core/status.js';
import { coreLz4Decompress, warmUpCoreLz4 } from './lz4.js';
import { BLOCK_LZ4, BLOCK_PLAIN, MAX_BLOCK_BYTES, MAX_BLOCK_RECORDS, RECORDS_VERSION, RECORD_CODECS, codecMask, readUleb, type RecordCodecName } from './format.js';

/** The decoder's core statuses and the error each one becomes. */
const ERRORS: Record<number, ErrorCode> = {
  [STATUS_RECORD_CORRUPT]: ErrorCode.RECORD_CORRUPT,
  [STATUS_PAGE_OUT_OF_RANGE]: ErrorCode.PAGE_OUT_OF_RANGE,
  [STATUS_CODEC_NOT_NEGOTIATED]: ErrorCode.CODEC_NOT_NEGOTIATED,
  [STATUS_XBZRLE_CORRUPT]: ErrorCode.XBZRLE_CORRUPT,
  [STATUS_RLE_CORRUPT]: ErrorCode.RLE_CORRUPT,
};

/** Result of {@link PageDecoder.applyResult}. */
export interface ApplyResult {
  /** Pages written (with repeats if a page was written twice). */
  pages: number;
  /** The pages written, in order (a view valid until the next apply). */
  written: Uint32Array;
}

/** Decoder statistics (plain object). */
export interface DecoderStats {
  /** Records applied per codec (inBytes is not counted in core placement: 0). */
  codecs: Record<RecordCodecName, { pages: number; inBytes: number }>;
  /** LZ4 blocks decompressed and their compressed bytes. */
  lz4: { blocks: number; inBytes: number };
  /** Payloads applied and their bytes. */
  payloads: number;
  bytes: number;
  /** Time in apply (ms). */
  timeMs: number;
}

/** Target-side page decoder. Create with {@link PageDecoder.create}. */
export class PageDecoder {
  /** Statistics (plain object). */
  readonly stats: DecoderStats;
  private readonly ex: CoreExports;
  private readonly st: number;
  private blkPtr = 0;
  private blkSize = 0;
  /** Compressed bytes copied into the core when the payload is outside it. */
  private readonly lz4In: Arena;
  private readonly pagesPtr: number;
  private readonly tablePtr: number;
  private readonly scratchPtr: number;
  private last = new Uint32Array(1024);
  private lastLen = 0;
  private readonly cursor = { pos: 0 };
  private readonly external: boolean;
  /**
   * External placement with a hash table: the raw records of a block (page, and where its bytes
   * are in the block: hashed there, no copy back into the core) and the other pages written
   * (hashed from guest memory after the block).
   */
  private rawIdxPtr = 0;
  private rawPtrsPtr = 0;
  private rawCount = 0;
  private rawPages = new Uint32Array(0);
  private otherPages = new Uint32Array(0);
  private otherCount = 0;
  private disposed = false;

  private constructor(private readonly memory: GuestMemory, private readonly core: Core, private readonly mask: number, private readonly lz4: boolean) {
    this.ex = core.exports;
    this.external = memory.placement === 'external';
    this.st = core.alloc(DEC_STATE_BYTES);
    this.pagesPtr = core.alloc(MAX_BLOCK_RECORDS * 4);
    this.tablePtr = core.alloc(MAX_BLOCK_RECORDS * DEC_SCAN_ENTRY_BYTES);
    this.scratchPtr = core.alloc(memory.pageSize);
    this.lz4In = new Arena(core);
    if (lz4) warmUpCoreLz4(core);
    const dv = core.view();
    dv.setUint32(this.st + DEC_PAGE_SIZE, memory.pageSize, true);
    dv.setUint32(this.st + DEC_PAGE_COUNT, memory.pageCount, true);
    dv.setUint32(this.st + DEC_BASE, this.external ? 0 : memory.basePtr, true);
    dv.setUint32(this.st + DEC_MASK, mask, true);
    dv.setUint32(this.st + DEC_TABLE, this.tablePtr, true);
    dv.setUint32(this.st + DEC_PAGES, this.pagesPtr, true);
    dv.setUint32(this.st + DEC_ERR_AT, 0, true);
    dv.setUint32(this.st + DEC_MAX_REC, MAX_BLOCK_RECORDS, true);
    dv.setUint32(this.st + DEC_DONE, 0, true);
    const codecs = {} as DecoderStats['codecs'];
    for (const n of RECORD_CODECS) codecs[n] = { pages: 0, inBytes: 0 };
    this.stats = { codecs, lz4: { blocks: 0, inBytes: 0 }, payloads: 0, bytes: 0, timeMs: 0 };
  }

  /**
   * A decoder for `memory` accepting the negotiated codec names ('raw' is always accepted).
   * @throws PagewireError INVALID_ARGUMENT on an unknown codec name
   */
  static async create(memory: GuestMemory, codecs: readonly string[] = ['zero', 'raw', 'dup', 'xbzrle', 'rle', 'lz4']): Promise<PageDecoder> {
    const mask = codecMask(codecs) | 2;
    const core = memory.core ?? (await createCore());
    return new PageDecoder(memory, core, mask, codecs.includes('lz4'));
  }

  /**
   * Apply a records payload.
   * @returns pages written ({@link lastPages} lists them)
   * @throws PagewireError (see the file header)
   */
  apply(records: Uint8Array): number {
    if (this.disposed) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'decoder disposed');
    const t0 = performance.now();
    this.lastLen = 0;
    if (records.byteLength < 1) throw new PagewireError(ErrorCode.RECORD_CORRUPT, 'empty records payload');
    if (records[0] !== RECORDS_VERSION) throw new PagewireError(ErrorCode.RECORD_CORRUPT, `records version ${records[0]} (expected ${RECORDS_VERSION})`);
    // The payload may be a view of this core's memory (a frame reader's arena): growing the block
    // arena would detach it, so rebuild the view after any allocation.
    const inCore = records.buffer === this.core.exports.memory.buffer;
    const inOff = records.byteOffset;
    const inLen = records.byteLength;
    const cur = this.cursor;
    cur.pos = 1;
    try {
      while (cur.pos < records.byteLength) {
        const kind = records[cur.pos++]!;
        if (kind !== BLOCK_PLAIN && kind !== BLOCK_LZ4) throw new PagewireError(ErrorCode.RECORD_CORRUPT, `unknown block kind ${kind}`);
        const rawLen = readUleb(records, cur);
        if (rawLen < 1 || rawLen > MAX_BLOCK_BYTES) throw new PagewireError(ErrorCode.RECORD_CORRUPT, `block length ${rawLen} out of range`);
        let blk: number;
        if (kind === BLOCK_PLAIN) {
          if (rawLen > records.byteLength - cur.pos) throw new PagewireError(ErrorCode.RECORD_CORRUPT, 'block runs past the payload');
          if (inCore) {
            // already in this core (a frame reader's arena): apply it where it is, no copy
            blk = inOff + cur.pos;
          } else {
            blk = this.blockArena(rawLen);
            this.core.u8().set(records.subarray(cur.pos, cur.pos + rawLen), blk);
          }
          cur.pos += rawLen;
        } else {
          blk = this.blockArena(rawLen);
          if (inCore && records.buffer !== this.core.exports.memory.buffer) records = new Uint8Array(this.core.exports.memory.buffer, inOff, inLen);
          if (!this.lz4) throw new PagewireError(ErrorCode.CODEC_NOT_NEGOTIATED, 'LZ4 block but lz4 was not negotiated');
          const compLen = readUleb(records, cur);
          if (compLen > records.byteLength - cur.pos) throw new PagewireError(ErrorCode.RECORD_CORRUPT, 'LZ4 block runs past the payload');
          let at = records.byteOffset + cur.pos;
          if (!inCore) {
            at = this.lz4In.ensure(compLen);
            this.core.u8().set(records.subarray(cur.pos, cur.pos + compLen), at);
          }
          coreLz4Decompress(this.core, at, compLen, blk, rawLen);
          cur.pos += compLen;
          this.stats.lz4.blocks++;
          this.stats.lz4.inBytes += compLen;
        }
        this.applyBlock(blk, rawLen);
        if (inCore && records.buffer !== this.core.exports.memory.buffer) records = new Uint8Array(this.core.exports.memory.buffer, inOff, inLen);
      }
    } finally {
      this.stats.payloads++;
      this.stats.bytes += records.byteLength;
      this.stats.timeMs += performance.now() - t0;
    }
    return this.lastLen;
  }

  /** Like {@link apply}, returning the count and the written pages. */
  applyResult(records: Uint8Array): ApplyResult {
    const pages = this.apply(records);
    return { pages, written: this.lastPages() };
  }

  /**
   * Keep a per-page hash table current with every page this decoder writes (the incremental
   * memory digest). The table must live in {@link coreInstance}; it stays the caller's to dispose.
   */
  trackHashes(table: PageHashTable | null): void {
    this.hashTable = table;
    if (table && this.external && this.rawIdxPtr === 0) {
      // sized once for the largest block: applying never grows core memory for hashing
      this.rawIdxPtr = this.core.alloc(MAX_BLOCK_RECORDS * 4);
      this.rawPtrsPtr = this.core.alloc(MAX_BLOCK_RECORDS * 4);
      this.rawPages = new Uint32Array(MAX_BLOCK_RECORDS);
      this.otherPages = new Uint32Array(MAX_BLOCK_RECORDS);
    }
  }
  private hashTable: PageHashTable | null = null;

  /** The core this decoder works in (where a hash table for it lives). */
  get coreInstance(): Core {
    return this.core;
  }

  /** Pages written by the last apply, in order (a view valid until the next apply). */
  lastPages(): Uint32Array {
    return this.last.subarray(0, this.lastLen);
  }

  private blockArena(n: number): number {
    if (n > this.blkSize) {
      if (this.blkSize) this.core.release(this.blkPtr, this.blkSize);
      this.blkSize = Math.max(n, this.blkSize * 2, 65536);
      this.blkPtr = this.core.alloc(this.blkSize);
    }
    return this.blkPtr;
  }

  private fail(status: number, what: string): never {
    const at = this.core.view().getUint32(this.st + DEC_ERR_AT, true);
    throw new PagewireError(ERRORS[status] ?? ErrorCode.RECORD_CORRUPT, `${what}: bad record at block offset ${at} (${ERRORS[status] ?? status})`);
  }

  private applyBlock(blk: number, len: number): void {
    const status = this.external ? this.applyExternal(blk, len) : this.ex.decodeApply(this.st, blk, len);
    // on failure the records before the failing one were applied: list their pages too
    const count = status < 0 ? this.core.view().getUint32(this.st + DEC_DONE, true) : status;
    // page list and per-codec counts
    if (this.lastLen + count > this.last.length) {
      const next = new Uint32Array(Math.max(this.lastLen + count, this.last.length * 2));
      next.set(this.last.subarray(0, this.lastLen));
      this.last = next;
    }
    const buf = this.core.exports.memory.buffer;
    this.last.set(new Uint32Array(buf, this.pagesPtr, count), this.lastLen);
    if (this.hashTable) {
      // the incremental digest: hash the pages just written (in place in the core, else staged)
      const written = this.last.subarray(this.lastLen, this.lastLen + count);
      if (!this.external) this.hashTable.updateFromCore(this.pagesPtr, 0, count, written);
      else {
        // raw pages from their bytes in the block, then the others as they are in memory now
        // (after the block, so a page written twice hashes as last written either way)
        if (this.rawCount > 0) this.hashTable.updateFromCore(this.rawIdxPtr, this.rawPtrsPtr, this.rawCount, this.rawPages);
        if (this.otherCount > 0) this.hashTable.update(this.otherPages, 0, this.otherCount);
      }
    }
    if (!this.external) {
      const codecs = new Uint8Array(buf, this.tablePtr, count);
      const st = this.stats.codecs;
      for (let k = 0; k < count; k++) st[RECORD_CODECS[codecs[k]!]!].pages++;
    }
    this.lastLen += count;
    if (status < 0) this.fail(status, 'records rejected');
  }

  /** External placement: validate in the core, then apply in order in JS (+ core for XBZRLE/RLE). */
  private applyExternal(blk: number, len: number): number {
    const n = this.ex.decodeScan(this.st, blk, len);
    if (n < 0) { this.core.view().setUint32(this.st + DEC_DONE, 0, true); return n; }
    const ps = this.memory.pageSize;
    const mem = this.memory;
    const u8 = this.core.u8();
    const dv = this.core.view();
    const pages = new Uint32Array(this.core.exports.memory.buffer, this.pagesPtr, n);
    const hashing = this.hashTable !== null;
    const rawIdx = hashing ? new Uint32Array(this.core.exports.memory.buffer, this.rawIdxPtr, n) : pages;
    const rawPtrs = hashing ? new Uint32Array(this.core.exports.memory.buffer, this.rawPtrsPtr, n) : pages;
    let nRaw = 0;
    let nOther = 0;
    this.rawCount = 0;
    this.otherCount = 0;
    // walk the records again in JS for the payload offsets
    let p = blk;
    const end = blk + len;
    const core = this.core.exports;
    for (let k = 0; k < n; k++) {
      const t = this.tablePtr + k * DEC_SCAN_ENTRY_BYTES;
      const page = dv.getUint32(t, true);
      const ref = dv.getUint32(t + 4, true);
      const codec = dv.getUint32(t + 8, true);
      // skip head, page, length fields (already validated by the scan)
      const head = u8[p++]!;
      if (!(head & HEAD_NEXT)) while (u8[p++]! & 0x80) { /* page uleb */ }
      let plen = 0;
      if (codec === CODEC_RAW) plen = ps;
      else if (codec === CODEC_DUP) while (u8[p++]! & 0x80) { /* ref uleb */ }
      else if (codec !== CODEC_ZERO) {
        let v = 0; let mul = 1; let b: number;
        do { b = u8[p++]!; v += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
        plen = v;
      }
      const dst = mem.page(page);
      if (codec === CODEC_ZERO) dst.fill(0);
      else if (codec === CODEC_RAW) dst.set(u8.subarray(p, p + ps));
      else if (codec === CODEC_DUP) dst.set(mem.page(ref));
      else if (codec === CODEC_XBZRLE) {
        u8.set(dst, this.scratchPtr);
        if (core.xbzrleDecode(p, plen, this.scratchPtr, ps) < 0) return this.failAt(k, p - blk, STATUS_XBZRLE_CORRUPT);
        dst.set(u8.subarray(this.scratchPtr, this.scratchPtr + ps));
      } else {
        // CODEC_RLE: the scan accepted no other codec
        if (core.rleDecode(p, plen, this.scratchPtr, ps) < 0) return this.failAt(k, p - blk, STATUS_RLE_CORRUPT);
        dst.set(u8.subarray(this.scratchPtr, this.scratchPtr + ps));
      }
      this.stats.codecs[RECORD_CODECS[codec]!].pages++;
      pages[k] = page;
      if (hashing) {
        if (codec === 1) { rawIdx[nRaw] = page; rawPtrs[nRaw] = p; this.rawPages[nRaw++] = page; }
        else this.otherPages[nOther++] = page;
        this.rawCount = nRaw;
        this.otherCount = nOther;
      }
      p += plen;
    }
    if (p !== end) return this.failAt(n, p - blk, STATUS_RECORD_CORRUPT);
    return n;
  }

  private failAt(done: number, at: number, status: number): number {
    const dv = this.core.view();
    dv.setUint32(this.st + DEC_ERR_AT, at, true);
    dv.setUint32(this.st + DEC_DONE, done, true);
    return status;
  }

  /** Release core memory. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.blkSize) this.core.release(this.blkPtr, this.blkSize);
    if (this.rawIdxPtr) {
      this.core.release(this.rawPtrsPtr, MAX_BLOCK_RECORDS * 4);
      this.core.release(this.rawIdxPtr, MAX_BLOCK_RECORDS * 4);
    }
    this.lz4In.dispose();
    this.core.release(this.scratchPtr, this.memory.pageSize);
    this.core.release(this.tablePtr, MAX_BLOCK_RECORDS * DEC_SCAN_ENTRY_BYTES);
    this.core.release(this.pagesPtr, MAX_BLOCK_RECORDS * 4);
    this.core.release(this.st, DEC_STATE_BYTES);
  }
}
