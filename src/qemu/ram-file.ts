/**
 * A QEMU guest's RAM as a file (`-object memory-backend-file,mem-path=FILE,share=on`), seen by
 * pagewire as guest memory in a core.
 *
 * Source side: {@link RamFileDirtyLog} reads the file (from the page cache: the pages QEMU's
 * guest writes) in 1 MiB batches into the core, first batch by batch as round 0 sends them, then
 * whole at every dirty sync, and finds the pages that changed by hashing each batch in the core
 * (QEMU gives another process no dirty log for such a block). Pages are sent as they were when
 * last read; a page written after that differs at the next sync and is sent again.
 *
 * Target side: {@link RamFile.writePages} writes the pages a PAGES frame just filled back to the
 * destination's file with positional writes, one per run of consecutive pages (tmpfs and page
 * cache pages are shared with QEMU's MAP_SHARED mapping, so the destination QEMU sees them);
 * into a fresh file it writes no zero page where the file still has a hole.
 */
import * as fs from 'node:fs';
import { PagewireError, ErrorCode } from '../errors.js';
import { Arena, type Core } from '../core/core.js';
import { GuestMemory, DEFAULT_PAGE_SIZE, checkPageSize } from '../memory/guest-memory.js';
import type { DirtyLog } from '../memory/dirty-log.js';

/** Bytes per read/write call when moving whole files (below Node's 2 GiB per-call limit). */
const IO_CHUNK_BYTES = 16 * 1024 * 1024;

/** An open RAM file. */
export class RamFile {
  /** File size, bytes (a whole number of pages). */
  readonly byteLength: number;
  readonly pageSize: number;
  private fd: number;
  /** After assumeHoles(): 1 where the file was never written (reads as zero). */
  private holes: Uint8Array | null = null;
  private zeroMap: Arena | null = null;

  private constructor(readonly path: string, fd: number, byteLength: number, pageSize: number) {
    this.fd = fd;
    this.byteLength = byteLength;
    this.pageSize = pageSize;
  }

  /**
   * Open a RAM file.
   * @param writable open for writing too (the destination's file)
   * @throws PagewireError INVALID_ARGUMENT (missing, empty, not whole pages, bad page size)
   */
  static open(path: string, writable: boolean, pageSize = DEFAULT_PAGE_SIZE): RamFile {
    checkPageSize(pageSize);
    let fd: number;
    try {
      fd = fs.openSync(path, writable ? 'r+' : 'r');
    } catch (cause) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `cannot open the RAM file ${path}: ${(cause as Error).message}`, { cause });
    }
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size === 0 || st.size % pageSize !== 0) {
      fs.closeSync(fd);
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `RAM file ${path} is ${st.size} bytes: not a positive whole number of ${pageSize}-byte pages (is it QEMU's memory-backend-file?)`);
    }
    return new RamFile(path, fd, st.size, pageSize);
  }

  /**
   * Whether the file holds no data at all (every byte a hole of a sparse file, e.g. a tmpfs file
   * QEMU just created): its content is then all zero and need not be read.
   */
  isEmpty(): boolean {
    return fs.fstatSync(this.fd).blocks === 0;
  }

  /** Pages in the file. */
  get pageCount(): number {
    return this.byteLength / this.pageSize;
  }

  /**
   * Copy the whole file into `memory` (placement `core`, same size).
   * @throws PagewireError INVALID_ARGUMENT (size), IMAGE_CORRUPT (the file shrank)
   */
  readInto(memory: GuestMemory): void {
    const core = this.coreOf(memory);
    for (let off = 0; off < this.byteLength; off += IO_CHUNK_BYTES) {
      this.readRange(core, memory.basePtr + off, off, Math.min(IO_CHUNK_BYTES, this.byteLength - off));
    }
  }

  /**
   * Read `len` bytes at file offset `pos` into `core`'s memory at `ptr`.
   * @throws PagewireError IMAGE_CORRUPT (the file ended first)
   */
  readRange(core: Core, ptr: number, pos: number, len: number): void {
    for (let done = 0; done < len; ) {
      // the view is taken per call: an allocation elsewhere may have grown the core's memory
      const n = fs.readSync(this.fd, core.u8(), ptr + done, len - done, pos + done);
      if (n <= 0) throw new PagewireError(ErrorCode.IMAGE_CORRUPT, `RAM file ${this.path} ended at ${pos + done} of ${this.byteLength} bytes`);
      done += n;
    }
  }

  /**
   * Declare the file all holes (a fresh file, e.g. the one the destination QEMU just created):
   * from now on {@link writePages} of `memory`'s pages skips zero pages at offsets never written,
   * which read as zero already (no tmpfs page is allocated for them).
   * @throws PagewireError INVALID_ARGUMENT (memory not in a core or not the file's size)
   */
  assumeHoles(memory: GuestMemory): void {
    const core = this.coreOf(memory);
    this.holes = new Uint8Array(this.pageCount).fill(1);
    // sized for the longest run now: writePages must never grow core memory (the page list it is
    // given may be a view into it)
    this.zeroMap?.dispose();
    this.zeroMap = new Arena(core, Math.ceil(IO_CHUNK_BYTES / this.pageSize));
  }

  /**
   * Write pages of `memory` to the same offsets of the file, one write per run of consecutive
   * page numbers (after {@link assumeHoles}, zero pages where the file still has a hole are left out).
   * @param pages page numbers (any order; runs are found in the given order)
   */
  writePages(memory: GuestMemory, pages: ArrayLike<number>): void {
    const core = this.coreOf(memory);
    const ps = this.pageSize;
    const holes = this.holes;
    const zero = this.zeroMap;
    for (let i = 0; i < pages.length; ) {
      const first = pages[i]!;
      let j = i + 1;
      while (j < pages.length && pages[j] === first + (j - i) && (j - i) * ps < IO_CHUNK_BYTES) j++;
      const n = j - i;
      if (!holes || !zero) {
        this.writeRange(core.u8(), memory.pagePtr(first), n * ps, first * ps);
      } else {
        // one zero-page scan per run; then write the sub-runs that are not zero-over-a-hole
        const zp = zero.ptr;
        core.exports.zeroPages(memory.pagePtr(first), ps, n, zp);
        const u8 = core.u8();
        let from = -1;
        for (let k = 0; k <= n; k++) {
          const keep = k < n && (u8[zp + k] === 0 || holes[first + k] === 0);
          if (keep && from < 0) from = k;
          if (!keep && from >= 0) {
            this.writeRange(core.u8(), memory.pagePtr(first + from), (k - from) * ps, (first + from) * ps);
            holes.fill(0, first + from, first + k);
            from = -1;
          }
        }
      }
      i = j;
    }
  }

  /** Close the file (idempotent). */
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    this.zeroMap?.dispose();
    this.zeroMap = null;
  }

  private writeRange(u8: Uint8Array, ptr: number, len: number, pos: number): void {
    for (let done = 0; done < len; ) {
      done += fs.writeSync(this.fd, u8, ptr + done, len - done, pos + done);
    }
  }

  /**
   * The core holding `memory`, checked to be this file's size and page size.
   * @throws PagewireError INVALID_ARGUMENT
   */
  coreOf(memory: GuestMemory): Core {
    if (!memory.core || memory.byteLength !== this.byteLength || memory.pageSize !== this.pageSize) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `guest memory (${memory.byteLength} bytes in ${memory.placement}) does not match the RAM file ${this.path} (${this.byteLength} bytes, placement core required)`);
    }
    return memory.core;
  }
}

/**
 * Guest memory in `core` for a RAM file's pages (one region named `name`), filled from the file.
 * @throws PagewireError INVALID_ARGUMENT, WASM_FAILED (too large for the core)
 */
export function ramFileMemory(core: Core, file: RamFile, name = 'pc.ram'): GuestMemory {
  const memory = GuestMemory.inCore(core, [{ name, pageCount: file.pageCount }], file.pageSize);
  file.readInto(memory);
  return memory;
}

/** Options of {@link RamFileDirtyLog}. */
export interface RamFileLogOptions {
  /** Pages per read and per core call (default: 1 MiB worth). */
  batchPages?: number;
  /** The guest memory is all zero to begin with (fresh from GuestMemory.inCore). Default false. */
  zeroMemory?: boolean;
  /**
   * The target's memory is zero too (a fresh destination RAM file): with `zeroMemory`, a page
   * {@link RamFileDirtyLog.prepare} finds zero the first time is not sent at all (a function is
   * asked at `start()`). Default false.
   */
  skipZero?: boolean | (() => boolean);
}

/** Pages read and hashed per core call: 1 MiB of 4 KiB pages, which stays in the CPU cache from the read to the hash. */
const SCAN_BATCH_BYTES = 1024 * 1024;

/**
 * The dirty log of a RAM file, kept in a core together with the guest memory it fills.
 *
 *   reading: the file is read in batches of {@link SCAN_BATCH_BYTES} into a reusable staging
 *     arena in the core (one pread per batch); one `hashPages` and one `zeroPages` call per batch
 *     hash it and find its zero pages while it is in the cache; only pages that changed are
 *     copied on into guest memory, and a zero page is never copied where guest memory was never
 *     written (the core's fresh memory is zero: no first touch for it)
 *   start(): reads nothing. Round 0 reads each batch just before it is encoded ({@link prepare},
 *     which the migration source calls per batch), so the first pass over the file streams with
 *     the link instead of holding up the migration's start
 *   sync(): reads and hashes the whole file; reports the pages whose hash changed since they were
 *     last read (and every page never read since start())
 *
 * Invariant: where `current[p]`, guest memory holds page p as the file held it when it was last
 * read, and `hashes` holds its xxHash64 (seed 0). A page the guest wrote after that read differs
 * at the next sync (up to a 2^-64 hash collision, which the final memory digest would catch).
 */
export class RamFileDirtyLog implements DirtyLog {
  readonly pageCount: number;
  /** Guest memory is zero wherever no page was copied in (option zeroMemory). */
  readonly unreadPagesZero: boolean;
  private readonly core: Core;
  private readonly pageSize: number;
  private readonly batchPages: number;
  /** xxHash64 of each page as guest memory holds it: low word at 2p, high word at 2p+1. */
  private readonly hashes: Uint32Array;
  /** 1 where guest memory holds the page as last read from the file (its hash is valid). */
  private readonly current: Uint8Array;
  /** 1 where guest memory's page may be non-zero (a page was copied into it). */
  private readonly written: Uint8Array;
  private readonly staging: Arena;
  private readonly hashOut: Arena;
  private readonly zeroOut: Arena;
  private active = false;
  private forceAll = false;
  private readonly skipZeroOption: boolean | (() => boolean);
  private skipZero = false;
  /** Per page of the batch being prepared: 1 = zero, read for the first time, not to be sent. */
  private skip = new Uint8Array(0);
  private list: Uint32Array | null = null;
  private memU32: Uint32Array | null = null;

  /**
   * @param file the RAM file
   * @param memory guest memory in a core, the file's size
   * @param options `batchPages`: pages per read and core call (default 1 MiB worth); `zeroMemory`:
   *   the memory is all zero (fresh from {@link GuestMemory.inCore}), so zero pages of the file
   *   need never be copied into it
   * @throws PagewireError INVALID_ARGUMENT (memory not in a core or not the file's size)
   */
  constructor(readonly file: RamFile, readonly memory: GuestMemory, options: RamFileLogOptions = {}) {
    this.core = file.coreOf(memory);
    this.pageCount = memory.pageCount;
    this.pageSize = memory.pageSize;
    const batch = options.batchPages ?? Math.max(1, Math.floor(SCAN_BATCH_BYTES / memory.pageSize));
    if (!Number.isInteger(batch) || batch <= 0) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `batchPages must be a positive whole number, got ${String(options.batchPages)}`);
    }
    this.batchPages = batch;
    this.hashes = new Uint32Array(this.pageCount * 2);
    this.current = new Uint8Array(this.pageCount);
    // a memory someone filled may hold anything: then every changed page is copied
    this.written = new Uint8Array(this.pageCount).fill(options.zeroMemory ? 0 : 1);
    this.skipZeroOption = options.zeroMemory === true ? options.skipZero ?? false : false;
    this.unreadPagesZero = options.zeroMemory === true;
    this.staging = new Arena(this.core, batch * this.pageSize);
    this.hashOut = new Arena(this.core, batch * 8);
    this.zeroOut = new Arena(this.core, batch);
  }

  get tracking(): boolean {
    return this.active;
  }

  /** Begin tracking: every page is read (and sent) afresh; nothing is read now. */
  start(): void {
    // asked now: the target may have said so when it connected
    const z = this.skipZeroOption;
    this.skipZero = typeof z === 'function' ? z() : z;
    this.current.fill(0);
    this.forceAll = false;
    this.active = true;
  }

  /**
   * Read the pages `indices[start..start+count)` that were not read since `start()` into guest
   * memory (one read per run of consecutive pages), just before they are encoded. With
   * `skipZero`, the pages found zero (and never written) are moved to the end of the range.
   * @returns how many pages from `start` to encode and send
   * @throws PagewireError IMAGE_CORRUPT (the file shrank)
   */
  prepare(indices: Uint32Array, start: number, count: number): number {
    const cur = this.current;
    if (this.skip.length < count) this.skip = new Uint8Array(Math.max(count, this.batchPages));
    const skip = this.skip;
    let skipped = 0;
    for (let i = start, end = start + count; i < end; ) {
      const first = indices[i]!;
      if (cur[first]) { skip[i - start] = 0; i++; continue; }
      let j = i + 1;
      while (j < end && indices[j] === first + (j - i) && !cur[indices[j]!] && j - i < this.batchPages) j++;
      this.scanRun(first, j - i, true, null, 0);
      // the zero map of this run is still in the arena: zero pages never copied are still zero
      const u8 = this.core.u8();
      const zero = this.zeroOut.ptr;
      for (let k = i; k < j; k++) {
        const z = this.skipZero && u8[zero + k - i] === 1 && this.written[indices[k]!] === 0 ? 1 : 0;
        skip[k - start] = z;
        skipped += z;
      }
      i = j;
    }
    if (skipped === 0) return count;
    // stable partition: pages to send first, the skipped ones after them
    let w = start;
    const tail: number[] = [];
    for (let k = 0; k < count; k++) {
      const p = indices[start + k]!;
      if (skip[k]) tail.push(p);
      else indices[w++] = p;
    }
    for (const p of tail) indices[w++] = p;
    return count - skipped;
  }

  /** Pages changed since they were last read (every page after `markAll()`); guest memory is brought up to date. */
  sync(): Uint32Array {
    const out = (this.list ??= new Uint32Array(this.pageCount));
    const n = this.scanAll(true, out);
    this.forceAll = false;
    return out.slice(0, n);
  }

  stop(): void {
    this.active = false;
  }

  markAll(): void {
    this.forceAll = true;
  }

  /** How many pages the next sync would report (reads and hashes the file; changes nothing). */
  peekCount(): number {
    return this.scanAll(false, null);
  }

  /** Give the core arenas back. */
  dispose(): void {
    this.staging.dispose();
    this.hashOut.dispose();
    this.zeroOut.dispose();
  }

  private scanAll(update: boolean, out: Uint32Array | null): number {
    let k = 0;
    for (let first = 0; first < this.pageCount; first += this.batchPages) {
      k = this.scanRun(first, Math.min(this.batchPages, this.pageCount - first), update, out, k);
    }
    return k;
  }

  /**
   * Read pages [first, first+n) (n <= batchPages) into the staging arena, hash them and find the
   * zero ones (one core call each); count, and list into `out` from `k`, the pages that changed
   * (or all with markAll); with `update`, copy the changed pages into guest memory (runs of them
   * at once) and remember their hashes.
   * @returns k plus the pages counted
   */
  private scanRun(first: number, n: number, update: boolean, out: Uint32Array | null, k: number): number {
    const ps = this.pageSize;
    const ex = this.core.exports;
    const stage = this.staging.ptr;
    this.file.readRange(this.core, stage, first * ps, n * ps);
    ex.hashPages(stage, ps, n, 0n, this.hashOut.ptr);
    ex.zeroPages(stage, ps, n, this.zeroOut.ptr);
    const u32 = this.u32();
    const u8 = this.core.u8();
    const h = this.hashes;
    const cur = this.current;
    const wr = this.written;
    const zero = this.zeroOut.ptr;
    const dst = this.memory.pagePtr(first);
    let j = this.hashOut.ptr >>> 2; // arenas are 16-byte aligned
    let runFrom = -1; // first page (offset in the batch) of the run of pages still to copy
    for (let i = 0; i < n; i++, j += 2) {
      const p = first + i;
      const lo = u32[j]!;
      const hi = u32[j + 1]!;
      const q = p * 2;
      const changed = !cur[p] || lo !== h[q] || hi !== h[q + 1];
      if (changed || this.forceAll) {
        if (out) out[k] = p;
        k++;
      }
      // a zero page need not be copied where memory was never written (still zero)
      const copy = update && changed && (u8[zero + i] === 0 || wr[p] === 1);
      if (copy && runFrom < 0) runFrom = i;
      if (!copy && runFrom >= 0) {
        u8.copyWithin(dst + runFrom * ps, stage + runFrom * ps, stage + i * ps);
        runFrom = -1;
      }
      if (update && changed) {
        h[q] = lo;
        h[q + 1] = hi;
        cur[p] = 1;
        if (copy) wr[p] = 1;
      }
    }
    if (runFrom >= 0) u8.copyWithin(dst + runFrom * ps, stage + runFrom * ps, stage + n * ps);
    return k;
  }

  /** A Uint32Array over the core's memory, rebuilt after growth. */
  private u32(): Uint32Array {
    const buf = this.core.exports.memory.buffer;
    if (!this.memU32 || this.memU32.buffer !== buf) this.memU32 = new Uint32Array(buf);
    return this.memU32;
  }
}
