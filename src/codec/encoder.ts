/**
 * PageEncoder: the source side of the page codec pipeline.
 *
 * Usage (stable API; src/migration calls it):
 *
 *   const enc = await PageEncoder.create(memory, { codecs: 'all' });   // or 'qemu', 'raw', a list, options
 *   const bytes = enc.encode(dirty, 0, dirty.length);                    // records payload (docs/RECORDS.md)
 *   // `bytes` is a view valid until the next encode(); send or copy it.
 *   enc.forget(unacknowledgedPages);  // after a dropped link: never delta against what may be missing
 *   enc.resetCache();                 // or forget everything (also call at a post-copy switch-over)
 *   enc.stats;                        // plain object, see CodecStats
 *   enc.dispose();
 *
 * Per page, inside the core in one call per batch (assembly/batch.ts): zero page; unchanged since
 * last sent (not sent, counted); duplicate of a page the target holds (hash match confirmed byte for
 * byte against the delta cache's copy, i.e. content the target is known to hold); XBZRLE against
 * the cached version; RLE; raw. Then per batch block: LZ4 over the block's records (raw pages and
 * XBZRLE residue together) with the core's LZ4 (assembly/lz4.ts) when it pays (`lz4: 'auto'`: the
 * decision of src/codec/lz4-policy.ts from the link speed and running estimates, and a block is
 * sent compressed only if it saves >= 3%; 'always'; 'never').
 *
 * Presets: 'raw' = every page raw; 'qemu' = zero pages + XBZRLE (64 MiB cache) + raw, XBZRLE and the
 * cache only after the first pass (the first `pageCount` pages encoded), as QEMU; 'all' = zero,
 * dup, xbzrle, rle, lz4 (auto), raw.
 *
 * Placement: guest memory in the core is read in place; external memory is copied per batch into a
 * staging arena of the encoder's core (memory.core when present, else its own core).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { Core, createCore } from '../core/core.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { PageHashTable } from '../memory/page-hash-table.js';
import { DeltaCache, DEFAULT_CACHE_BYTES } from './delta-cache.js';
import {
  ENC_DIGEST, ENC_ZERO_HASH, ENC_STATS, ENC_STAT_EVICTIONS, ENC_STAT_HITS, ENC_STAT_INSERTS, ENC_STAT_MISSES, ENC_STAT_OVERFLOWS, ENC_STAT_UNCHANGED,
} from '../core/layout.js';
import type { CoreExports } from '../core/exports.js';
import { statusMessage } from '../core/status.js';
import { coreLz4Compress, lz4MaxCompressedSize, warmUpCoreLz4 } from './lz4.js';
import { Lz4AutoPolicy, LZ4_PRIOR, type Lz4DecisionStats } from './lz4-policy.js';
import {
  BLOCK_LZ4, BLOCK_PLAIN, CODEC_NAMES, MAX_BLOCK_BYTES, MAX_BLOCK_RECORDS, RECORDS_VERSION, RECORD_CODECS,
  F_CACHE, F_DUP, F_FINAL, F_RAW, F_RLE, F_XBZRLE, F_XB_ACTIVE, F_ZERO, codecMask, writeUleb, type CodecName, type RecordCodecName,
} from './format.js';

/** When to LZ4 a block of records. */
export type Lz4Policy = 'auto' | 'always' | 'never';

/** Encoder options. */
export interface EncoderOptions {
  /** A preset or the list of codecs allowed ('raw' is always allowed). Default 'all'. */
  codecs?: 'raw' | 'qemu' | 'all' | readonly string[];
  /** Delta cache data bytes. Default 64 MiB. */
  cacheBytes?: number;
  /** Pages per core call (and per block). Default 256. */
  batchPages?: number;
  /** Duplicate detection (needs 'dup' in codecs). Default: on when 'dup' is enabled. */
  dedup?: boolean;
  /** LZ4 policy when 'lz4' is enabled. Default 'auto'. */
  lz4?: Lz4Policy;
  /**
   * With lz4 'auto': the link's bandwidth (bytes/s). A block is compressed while the bytes LZ4
   * saves are worth more link time than the compression costs (src/codec/lz4-policy.ts: estimates
   * from a corpus prior, following the blocks, probing while off). Without it the send rate given
   * to {@link PageEncoder.setSendRate} is used; with neither, every block is tried and sent
   * compressed when it saves >= 3%.
   */
  linkBytesPerSec?: number;
  /**
   * With lz4 'auto': decide with these costs instead of measured times (a simulation on a virtual
   * clock): the policy starts from them and is told them for every block, so its decisions depend
   * on the bytes and the link only, run after run. Default: measured.
   */
  lz4ModelCosts?: Lz4ModelCosts;
  /** QEMU's rule: no XBZRLE and no cache during the first pass. Default true for 'qemu' only. */
  xbzrleAfterFirstPass?: boolean;
}

/** Modelled CPU costs for LZ4 'auto' ({@link EncoderOptions.lz4ModelCosts}). */
export interface Lz4ModelCosts {
  /** The compressor, ns per record byte compressed. */
  compressNsPerByte: number;
  /** The core's page codecs (LZ4 excluded), ns per page encoded. */
  encodeNsPerPage: number;
}

/** Counters of one codec. */
export interface CodecCounter {
  /** Pages encoded with it (for lz4: pages whose records went out in LZ4 blocks). */
  pages: number;
  /** Guest bytes of those pages (for lz4: record bytes before compression). */
  inBytes: number;
  /** Record bytes (for lz4: compressed block bytes). */
  outBytes: number;
  /** Time spent (core codecs share one figure: 'core'; lz4 its own). */
  timeMs: number;
}

/** What the encoder tells a page hash table (src/memory/page-hash-table.ts) after each batch. */
export type PageHashSink = Pick<PageHashTable, 'updateFromCore'> & Partial<Pick<PageHashTable, 'tableIn' | 'markWritten'>>;

/** Encoder statistics (a plain object; counters only grow until dispose). */
export interface CodecStats {
  /**
   * Per record codec, plus 'unchanged' (pages not sent because the target has them): every page
   * given to encode() is counted under exactly one of these, so their pages sum to `pages`.
   */
  codecs: Record<RecordCodecName | 'unchanged', CodecCounter>;
  /** LZ4 over blocks: pages whose records went out in LZ4 blocks, record bytes in, block bytes out. */
  lz4: CodecCounter;
  /** Delta cache counters. */
  cache: { slots: number; hits: number; misses: number; overflows: number; evictions: number; inserts: number };
  /** Pages given to encode(). */
  pages: number;
  /** Pages not sent: unchanged since last sent. */
  unchanged: number;
  /** Pages sent as duplicate references. */
  dup: number;
  /** Payload bytes returned by encode(). */
  wireBytes: number;
  /** Time in the core batch calls and staging (ms). */
  coreMs: number;
  /** Time in LZ4 and block framing (ms). */
  lz4Ms: number;
  /**
   * The LZ4 decision: blocks asked about, tried, probed, sent compressed, bytes saved, compressor
   * time, and the estimates and link speed it decides with.
   */
  lz4Decision: Lz4DecisionStats;
}

function counter(): CodecCounter { return { pages: 0, inBytes: 0, outBytes: 0, timeMs: 0 }; }

/** Resolved configuration of an encoder. */
interface Config { mask: number; names: CodecName[]; cache: boolean; lz4: Lz4Policy; afterFirstPass: boolean; linkBps: number; model: Lz4ModelCosts | null; rleOnFastLinks: boolean }

function resolve(opts: EncoderOptions): Config {
  const c = opts.codecs ?? 'all';
  let names: string[];
  let afterFirstPass = false;
  if (c === 'raw') names = ['raw'];
  else if (c === 'qemu') { names = ['zero', 'xbzrle', 'raw']; afterFirstPass = true; }
  else if (c === 'all') names = [...CODEC_NAMES];
  else if (Array.isArray(c)) names = [...c, 'raw'];
  else throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `codecs must be 'raw', 'qemu', 'all' or a list of names`);
  let mask = codecMask(names) | F_RAW;
  if (opts.dedup === false) mask &= ~F_DUP;
  if (opts.dedup === true && !(mask & F_DUP)) mask |= F_DUP;
  const hasLz4 = names.includes('lz4');
  const lz4: Lz4Policy = hasLz4 ? (opts.lz4 ?? 'auto') : 'never';
  const out = CODEC_NAMES.filter((n) => (n === 'lz4' ? lz4 !== 'never' : (mask & (1 << RECORD_CODECS.indexOf(n))) !== 0));
  return {
    mask, names: out, cache: (mask & (F_XBZRLE | F_DUP)) !== 0, lz4, afterFirstPass: opts.xbzrleAfterFirstPass ?? afterFirstPass,
    linkBps: opts.linkBytesPerSec ?? 0, model: modelCosts(opts.lz4ModelCosts), rleOnFastLinks: c !== 'all',
  };
}

/** @throws PagewireError INVALID_ARGUMENT for costs that are not positive finite numbers */
function modelCosts(m: Lz4ModelCosts | undefined): Lz4ModelCosts | null {
  if (m === undefined) return null;
  const ok = (v: unknown): boolean => typeof v === 'number' && v > 0 && Number.isFinite(v);
  if (!ok(m.compressNsPerByte) || !ok(m.encodeNsPerPage)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'lz4ModelCosts needs positive compressNsPerByte and encodeNsPerPage');
  }
  return { compressNsPerByte: m.compressNsPerByte, encodeNsPerPage: m.encodeNsPerPage };
}

/**
 * Core bytes an encoder's arenas take besides its delta cache (records, LZ4 output, payload), for
 * {@link prefaultDeltaCache}'s `extraBytes`; an upper bound, with room for the allocator's rounding.
 */
export function encoderArenaBytes(pageSize: number, batchPages = 256): number {
  return 3 * batchPages * (pageSize + 6) + 65536;
}

/** Links at or above this rate (bytes/s, 2 Gbit/s) make no RLE trials in the first pass of 'all' (see flags()). */
const RLE_FAST_LINK_BYTES_PER_SEC = 250e6;

/** Source-side page encoder. Create with {@link PageEncoder.create}. */
export class PageEncoder {
  /** Statistics (plain object). */
  readonly stats: CodecStats;
  private readonly ps: number;
  private readonly batch: number;
  private readonly cache: DeltaCache;
  private readonly ex: CoreExports;
  private idxPtr: number;
  private ptrPtr: number;
  private outPtr: number;
  private readonly outSize: number;
  private stagePtr = 0;
  /**
   * The payload being built, in core memory (so the frame checksum reads it in place and it is
   * copied once, into the frame): pointer, capacity, and the last call's length.
   */
  private payPtr: number;
  private payCap: number;
  private payLen = 0;
  /** LZ4 output arena in the core (0 when LZ4 is off) and its size. */
  private lz4Ptr = 0;
  private lz4Size = 0;
  private encodedPages = 0;
  private readonly lz4Policy: Lz4AutoPolicy;
  /** Start of the last encode() call (performance.now()) and its record bytes: the path's pace. */
  private paceAt = 0;
  private paceBytes = 0;
  private disposed = false;
  private readonly external: boolean;

  private constructor(
    private readonly memory: GuestMemory,
    private readonly core: Core,
    private readonly cfg: Config,
    cacheBytes: number,
    batchPages: number,
  ) {
    this.ps = memory.pageSize;
    const maxBatch = Math.min(MAX_BLOCK_RECORDS, Math.floor(MAX_BLOCK_BYTES / (this.ps + 6)));
    this.batch = Math.max(1, Math.min(batchPages, maxBatch));
    this.ex = core.exports;
    // Without XBZRLE and dup the state block is still needed (page size, per-call counts): one slot.
    this.cache = new DeltaCache(core, memory.pageCount, this.ps, cfg.cache ? cacheBytes : this.ps);
    this.idxPtr = core.alloc(this.batch * 4);
    this.ptrPtr = core.alloc(this.batch * 4);
    this.outSize = this.batch * (this.ps + 6);
    this.outPtr = core.alloc(this.outSize);
    // one batch's worst case (every page raw, one block header): grown only for longer calls
    this.payCap = 1 + this.outSize + 11;
    this.payPtr = core.alloc(this.payCap);
    if (memory.placement === 'external') this.stagePtr = core.alloc(this.batch * this.ps);
    this.external = memory.placement === 'external';
    if (cfg.lz4 !== 'never') {
      this.lz4Size = lz4MaxCompressedSize(this.outSize);
      this.lz4Ptr = core.alloc(this.lz4Size);
      warmUpCoreLz4(core);
    }
    const m = cfg.model;
    this.lz4Policy = new Lz4AutoPolicy({
      linkBytesPerSec: cfg.linkBps,
      paceTrials: !m, // modelled costs: decisions from the bytes and the link only
      ...(m ? { prior: { ...LZ4_PRIOR, nsPerByte: m.compressNsPerByte, encodeNsPerByte: m.encodeNsPerPage / this.ps } } : {}),
    });
    const codecs = {} as Record<RecordCodecName | 'unchanged', CodecCounter>;
    for (const n of [...RECORD_CODECS, 'unchanged'] as const) codecs[n] = counter();
    this.stats = {
      codecs, lz4: counter(),
      cache: { slots: cfg.cache ? this.cache.slots : 0, hits: 0, misses: 0, overflows: 0, evictions: 0, inserts: 0 },
      pages: 0, unchanged: 0, dup: 0, wireBytes: 0, coreMs: 0, lz4Ms: 0, lz4Decision: this.lz4Policy.stats,
    };
  }

  /**
   * An encoder for `memory`.
   * @throws PagewireError INVALID_ARGUMENT on bad options
   */
  static async create(memory: GuestMemory, opts: EncoderOptions = {}): Promise<PageEncoder> {
    const cfg = resolve(opts);
    const cacheBytes = opts.cacheBytes ?? DEFAULT_CACHE_BYTES;
    const batchPages = opts.batchPages ?? 256;
    if (!Number.isInteger(batchPages) || batchPages < 1) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'batchPages must be a positive integer');
    if (!Number.isInteger(cacheBytes) || cacheBytes < 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'cacheBytes must be a non-negative integer');
    const core = memory.core ?? (await createCore());
    return new PageEncoder(memory, core, cfg, cacheBytes, batchPages);
  }

  /** Codec names this encoder may emit (for negotiation; the decoder must accept them all). */
  codecNames(): string[] {
    return [...this.cfg.names];
  }

  /**
   * Encode pages `indices[start .. start+count)` in that order.
   * @param opts.final the guest is paused and this is the last send: no new cache entries
   * @param opts.postcopy the target's guest is running (post-copy): no duplicate references (the
   *   target may have written the referenced page since); deltas stay valid (it cannot have
   *   written a page it has not received)
   * @returns the records payload, a view valid until the next call
   * @throws PagewireError PAGE_OUT_OF_RANGE, INVALID_ARGUMENT
   */
  encode(indices: Uint32Array | readonly number[], start = 0, count = indices.length - start, opts: { final?: boolean; postcopy?: boolean } = {}): Uint8Array {
    if (this.disposed) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'encoder disposed');
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > indices.length) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `range ${start}+${count} is outside the index list (${indices.length})`);
    }
    // the pace of the path: this call's start ends the interval of the last one (LZ4 'auto' without a link figure)
    const now = performance.now();
    if (this.paceBytes > 0) this.lz4Policy.notePace(this.paceBytes, now - this.paceAt);
    this.paceAt = now;
    this.paceBytes = 0;
    // a digest table disposed since trackHashes() must not be written into
    if (this.digestPtr !== 0 && this.hashTable!.tableIn!(this.core) !== this.digestPtr) this.trackHashes(null);
    let pos = 0;
    this.payLen = 0;
    this.core.u8()[this.payPtr + pos++] = RECORDS_VERSION; // (payCap holds a batch's worst case)
    const pc = this.memory.pageCount;
    const ps = this.ps;
    const external = this.external;
    for (let b = 0; b < count; b += this.batch) {
      const n = Math.min(this.batch, count - b);
      const t0 = performance.now();
      const buf = this.core.exports.memory.buffer;
      const idx = new Uint32Array(buf, this.idxPtr, n);
      const ptr = new Uint32Array(buf, this.ptrPtr, n);
      for (let k = 0; k < n; k++) {
        const p = indices[start + b + k]!;
        if (!(p >= 0 && p < pc) || !Number.isInteger(p)) throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `page ${p} is outside guest memory (0..${pc - 1})`);
        idx[k] = p;
        ptr[k] = external ? this.stagePtr + k * ps : this.memory.pagePtr(p);
      }
      if (external) this.stage(idx, n);
      const flags = this.flags(opts.final === true, opts.postcopy === true);
      const len = this.ex.encodeBatch(this.cache.st, this.idxPtr, this.ptrPtr, n, this.outPtr, this.outSize, flags);
      if (len < 0) throw new PagewireError(ErrorCode.WASM_FAILED, `core encodeBatch failed: ${statusMessage(len)}`);
      // the pages' hashes for the digest: written by encodeBatch into a table in this core, else
      // hashed from core memory (in place or staged) now
      if (this.digestPtr !== 0) this.hashTable!.markWritten!(idx);
      else this.hashTable?.updateFromCore(this.idxPtr, this.ptrPtr, n, idx);
      this.encodedPages += n;
      const t1 = performance.now();
      this.collect(n, t1 - t0);
      if (len > 0) {
        this.paceBytes += len;
        this.lz4Policy.noteEncode(len, this.cfg.model ? (n * this.cfg.model.encodeNsPerPage) / 1e6 : t1 - t0);
        pos = this.emitBlock(pos, len);
      }
      this.stats.lz4Ms += performance.now() - t1;
    }
    this.stats.wireBytes += pos;
    this.payLen = pos;
    return this.records();
  }

  /**
   * The last encode()'s records, as a fresh view of core memory: the view encode() returned is
   * detached when the core's memory grows, this one is current (valid until the next call).
   */
  records(): Uint8Array {
    return this.core.u8().subarray(this.payPtr, this.payPtr + this.payLen);
  }

  private flags(final: boolean, postcopy: boolean): number {
    let f = this.cfg.mask;
    // 'all' on a fast link: no RLE trials in the first pass (round 0), the bulk of the work. RLE
    // saves about 170 bytes per page it tries for about 1 us of CPU (vm-redis corpus round 0:
    // encoding takes 4.4 ms without its trials against 9-13 ms with them, for 1.1 MB more, 0.9 ms
    // at 10 Gbit/s), so above ~1.4 Gbit/s it costs more than it saves. Later rounds keep it (few
    // pages; what it saves there is most of what the dirty rounds send at fast links), and so do
    // slower links: where LZ4 is off for a block, RLE's saving is real (synthetic guest without
    // LZ4: 21.8 MB with RLE, 25.1 MB without)
    const rate = this.cfg.linkBps > 0 ? this.cfg.linkBps : this.sendRate;
    if (!this.cfg.rleOnFastLinks && rate >= RLE_FAST_LINK_BYTES_PER_SEC && this.encodedPages < this.memory.pageCount) f &= ~F_RLE;
    if (postcopy) f &= ~F_DUP;
    const firstPass = this.cfg.afterFirstPass && this.encodedPages < this.memory.pageCount;
    if (this.cfg.cache && !firstPass) f |= F_CACHE | F_XB_ACTIVE;
    if (final) f |= F_FINAL;
    return f;
  }

  /** Copy the batch's pages from external memory into the staging arena (runs of consecutive pages at once). */
  private stage(idx: Uint32Array, n: number): void {
    const u8 = this.core.u8();
    const ps = this.ps;
    let k = 0;
    while (k < n) {
      const p = idx[k]!;
      let run = 1;
      while (k + run < n && idx[k + run] === p + run) run++;
      // the run, cut at the end of its region (the rest is the next run)
      const view = this.memory.run(p, run);
      u8.set(view, this.stagePtr + k * ps);
      k += view.byteLength / ps;
    }
  }

  private collect(n: number, ms: number): void {
    const dv = this.core.view();
    const st = this.cache.st;
    const s = this.stats;
    s.pages += n;
    s.coreMs += ms;
    for (let c = 0; c < RECORD_CODECS.length; c++) {
      const pages = dv.getUint32(st + ENC_STATS + 8 * c, true);
      const k = s.codecs[RECORD_CODECS[c]!];
      k.pages += pages;
      k.inBytes += pages * this.ps;
      k.outBytes += dv.getUint32(st + ENC_STATS + 8 * c + 4, true);
    }
    const unchanged = dv.getUint32(st + ENC_STAT_UNCHANGED, true);
    s.unchanged += unchanged;
    s.codecs.unchanged.pages += unchanged;
    s.codecs.unchanged.inBytes += unchanged * this.ps;
    s.dup = s.codecs.dup.pages;
    s.cache.hits += dv.getUint32(st + ENC_STAT_HITS, true);
    s.cache.misses += dv.getUint32(st + ENC_STAT_MISSES, true);
    s.cache.overflows += dv.getUint32(st + ENC_STAT_OVERFLOWS, true);
    s.cache.evictions += dv.getUint32(st + ENC_STAT_EVICTIONS, true);
    s.cache.inserts += dv.getUint32(st + ENC_STAT_INSERTS, true);
  }

  /** Make room for `extra` more payload bytes after `pos` (a larger block, the bytes so far moved). */
  private reserve(pos: number, extra: number): void {
    if (pos + extra <= this.payCap) return;
    const cap = Math.max(pos + extra, this.payCap * 2);
    const next = this.core.alloc(cap);
    this.core.u8().copyWithin(next, this.payPtr, this.payPtr + pos);
    this.core.release(this.payPtr, this.payCap);
    this.payPtr = next;
    this.payCap = cap;
  }

  /** Append the block of `len` record bytes at outPtr (LZ4 when it pays). */
  private emitBlock(pos: number, len: number): number {
    const always = this.cfg.lz4 === 'always';
    if (this.lz4Size > 0 && len >= 64 && (always ? this.lz4Policy.force() : this.lz4Policy.next())) {
      const t = performance.now();
      // in 'auto' a block that does not save 3% is not sent compressed: let the core stop there
      const cap = always ? this.lz4Size : Math.floor(len * 0.97);
      const c = coreLz4Compress(this.core, this.outPtr, len, this.lz4Ptr, cap, 1);
      const k = this.stats.lz4;
      const dt = performance.now() - t;
      k.timeMs += dt;
      this.lz4Policy.record({ inBytes: len, outBytes: c < 0 ? len : c, ms: this.cfg.model ? (len * this.cfg.model.compressNsPerByte) / 1e6 : dt });
      // c < 0: it would not fit the cap (in 'auto', would not save 3%)
      if (c >= 0 && (c < len * 0.97 || always)) {
        this.reserve(pos, 11 + c);
        const u8 = this.core.u8();
        let at = this.payPtr + pos;
        u8[at++] = BLOCK_LZ4;
        at = writeUleb(u8, at, len);
        at = writeUleb(u8, at, c);
        u8.copyWithin(at, this.lz4Ptr, this.lz4Ptr + c);
        pos = at - this.payPtr;
        k.pages += this.lastBatchPagesSent();
        k.inBytes += len;
        k.outBytes += c;
        return pos + c;
      }
    }
    this.reserve(pos, 6 + len);
    const u8 = this.core.u8();
    let at = this.payPtr + pos;
    u8[at++] = BLOCK_PLAIN;
    at = writeUleb(u8, at, len);
    u8.copyWithin(at, this.outPtr, this.outPtr + len);
    return at + len - this.payPtr;
  }

  /**
   * The send rate the source measured from acknowledgements (bytes/s): LZ4 'auto' decides with it
   * when no `linkBytesPerSec` was given. Call it whenever the estimate changes; 0 = unknown.
   */
  setSendRate(bytesPerSec: number): void {
    this.sendRate = bytesPerSec > 0 && Number.isFinite(bytesPerSec) ? bytesPerSec : 0;
    this.lz4Policy.setSendRate(bytesPerSec);
  }

  private lastBatchPagesSent(): number {
    const st = this.cache.st;
    const dv = this.core.view();
    let n = 0;
    for (let c = 0; c < RECORD_CODECS.length; c++) n += dv.getUint32(st + ENC_STATS + 8 * c, true);
    return n;
  }

  /**
   * Keep a per-page hash table current with the pages as encoded (the incremental memory digest):
   * every page encoded from now on is hashed in the same pass, in core memory. The table must
   * live in {@link coreInstance} (`new PageHashTable(memory, encoder.coreInstance)`); it stays the
   * caller's to dispose.
   */
  trackHashes(table: PageHashSink | null): void {
    this.hashTable = table;
    this.digestPtr = table?.tableIn && table.markWritten ? table.tableIn(this.core) : 0;
    this.core.view().setUint32(this.cache.st + ENC_DIGEST, this.digestPtr, true);
    if (this.digestPtr !== 0) {
      const zero = this.core.allocZeroed(this.ps); // (may grow core memory: views are taken after)
      const h = BigInt.asUintN(64, this.ex.xxh64(zero, this.ps, 0n));
      this.core.release(zero, this.ps);
      this.core.view().setBigUint64(this.cache.st + ENC_ZERO_HASH, h, true);
    }
  }

  /** The core this encoder works in (where its batches and a hash table live). */
  get coreInstance(): Core {
    return this.core;
  }
  /** The acknowledged send rate (bytes/s, 0 = unknown), when no link figure was given. */
  private sendRate = 0;
  /** The digest table's pointer when encodeBatch writes it directly (a table in this core), else 0. */
  private digestPtr = 0;
  private hashTable: PageHashSink | null = null;

  /** Forget what the target holds of these pages (delivery unknown after a dropped link). */
  forget(pages: ArrayLike<number>): void {
    if (this.cfg.cache) this.cache.forget(pages);
  }

  /** Forget everything the target holds (resume without acknowledgements; post-copy switch-over). */
  resetCache(): void {
    this.cache.clear();
  }

  /** Release core memory. The encoder is unusable after. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.cache.dispose();
    this.core.release(this.outPtr, this.outSize);
    this.core.release(this.payPtr, this.payCap);
    this.core.release(this.ptrPtr, this.batch * 4);
    this.core.release(this.idxPtr, this.batch * 4);
    if (this.stagePtr) this.core.release(this.stagePtr, this.batch * this.ps);
    if (this.lz4Size) this.core.release(this.lz4Ptr, this.lz4Size);
  }
}
