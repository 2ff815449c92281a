/**
 * A QEMU guest's RAM as a file (`-object memory-backend-file,mem-path=FILE,share=on`), seen by
 * pagewire as guest memory in a core.
 *
 * Source side: {@link RamFileDirtyLog} keeps no copy of the guest's memory: it reads pages from
 * the file (from the page cache: the pages QEMU's guest writes) into one reusable staging arena
 * in the core just before they are encoded, batch by batch, and finds the pages that changed at
 * each dirty sync by reading the whole file 1 MiB at a time and hashing each batch in the core
 * (QEMU gives another process no dirty log for such a block). A page written after it was read
 * differs at the next sync and is sent again.
 *
 * Target side: {@link RamFile.writePages} writes the pages a PAGES frame just filled back to the
 * destination's file with positional writes, one per run of consecutive pages (tmpfs and page
 * cache pages are shared with QEMU's MAP_SHARED mapping, so the destination QEMU sees them);
 * into a fresh file it writes no zero page where the file still has a hole. With
 * {@link RamFile.writeBehind} those writes are queued and issued one at a time on Node's I/O
 * thread pool, so the decoding thread does not wait for them; {@link RamFile.flush} waits for them.
 */
import * as fs from 'node:fs';
import { PagewireError, ErrorCode } from '../errors.js';
import { Arena, type Core } from '../core/core.js';
import { GuestMemory, DEFAULT_PAGE_SIZE, checkPageSize } from '../memory/guest-memory.js';
import type { DirtyLog } from '../memory/dirty-log.js';

/** Bytes per read/write call when moving whole files (below Node's 2 GiB per-call limit). */
const IO_CHUNK_BYTES = 16 * 1024 * 1024;
/** Most bytes per write behind (the reused copy buffer). */
const WRITE_BEHIND_BYTES = 1024 * 1024;

/** An open RAM file. */
export class RamFile {
  /** File size, bytes (a whole number of pages). */
  readonly byteLength: number;
  readonly pageSize: number;
  private fd: number;
  /** After assumeHoles(): 1 where the file was never written (reads as zero). */
  private holes: Uint8Array | null = null;
  private zeroMap: Arena | null = null;
  /** Write-behind ({@link writeBehind}): the memory pages are copied from, and the copy buffer. */
  private behind: { memory: GuestMemory; buf: Uint8Array } | null = null;
  /** Runs waiting to be written behind, as (first page, page count) pairs from `queueHead`. */
  private queue: number[] = [];
  private queueHead = 0;
  private inFlight = false;
  /** The descriptor to close once the write in flight completes (close() came during it). */
  private closeAfterWrite = -1;
  private writeError: Error | null = null;
  private flushWaiters: Array<() => void> = [];

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
        this.put(core, memory, first, n);
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
            this.put(core, memory, first + from, k - from);
            holes.fill(0, first + from, first + k);
            from = -1;
          }
        }
      }
      i = j;
    }
  }

  /**
   * From now on {@link writePages} of `memory` only queues its runs; they are written behind, one
   * write at a time in the order queued, on Node's I/O thread pool (the first touch of each new
   * page of the file then costs the decoding thread nothing). Each write copies its run from
   * `memory` into one reused buffer just before it is issued, so a page rewritten meanwhile is
   * written as it is then, and again after; {@link flush} waits until the file holds what memory
   * holds.
   * @param bufferBytes most bytes per write (rounded down to whole pages, at least one)
   * @throws PagewireError INVALID_ARGUMENT (memory not in a core or not the file's size)
   */
  writeBehind(memory: GuestMemory, bufferBytes = WRITE_BEHIND_BYTES): void {
    this.coreOf(memory);
    const pages = Math.max(1, Math.floor(bufferBytes / this.pageSize));
    this.behind = { memory, buf: new Uint8Array(pages * this.pageSize) };
  }

  /**
   * Wait until every run queued for writing behind is in the file.
   * @throws PagewireError ABORTED when a write failed (e.g. ENOSPC) or the file was closed first
   */
  async flush(): Promise<void> {
    while (this.inFlight || (this.queueHead < this.queue.length && this.fd >= 0 && !this.writeError)) {
      await new Promise<void>((r) => this.flushWaiters.push(r));
    }
    if (this.writeError) throw new PagewireError(ErrorCode.ABORTED, `writing the RAM file ${this.path} failed: ${this.writeError.message}`, { cause: this.writeError });
    if (this.fd < 0) throw new PagewireError(ErrorCode.ABORTED, `the RAM file ${this.path} was closed with writes pending`);
  }

  /** Close the file (idempotent); writes still queued are dropped, one in flight completes first. */
  close(): void {
    if (this.fd >= 0) {
      if (this.inFlight) this.closeAfterWrite = this.fd; // its number must not be reused under it
      else fs.closeSync(this.fd);
    }
    this.fd = -1;
    this.queue = [];
    this.queueHead = 0;
    this.wakeFlushers();
    this.zeroMap?.dispose();
    this.zeroMap = null;
  }

  /** Write pages [first, first+n) of `memory` at their offsets: now, or queued behind. */
  private put(core: Core, memory: GuestMemory, first: number, n: number): void {
    if (this.behind?.memory !== memory) {
      this.writeRange(core.u8(), memory.pagePtr(first), n * this.pageSize, first * this.pageSize);
      return;
    }
    this.queue.push(first, n);
    this.pump();
  }

  /** Issue the next queued write if none is in flight. */
  private pump(): void {
    const b = this.behind;
    if (this.inFlight || !b || this.fd < 0 || this.writeError) {
      this.wakeFlushers();
      return;
    }
    if (this.queueHead >= this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
      this.wakeFlushers();
      return;
    }
    const ps = this.pageSize;
    const first = this.queue[this.queueHead]!;
    const count = this.queue[this.queueHead + 1]!;
    const n = Math.min(count, b.buf.byteLength / ps);
    if (n < count) {
      this.queue[this.queueHead] = first + n;
      this.queue[this.queueHead + 1] = count - n;
    } else {
      this.queueHead += 2;
    }
    // the run as memory holds it now (a later change to it is queued after this write)
    const ptr = b.memory.pagePtr(first);
    b.buf.set(this.coreOf(b.memory).u8().subarray(ptr, ptr + n * ps));
    this.inFlight = true;
    const fd = this.fd;
    const len = n * ps;
    const pos = first * ps;
    const step = (done: number): void => {
      fs.write(fd, b.buf, done, len - done, pos + done, (err, wrote) => {
        if (!err && wrote > 0 && done + wrote < len && this.closeAfterWrite < 0) {
          step(done + wrote);
          return;
        }
        this.inFlight = false;
        if (err) this.writeError ??= err;
        else if (wrote <= 0 && done < len) this.writeError ??= new Error(`wrote ${done} of ${len} bytes at ${pos}`);
        if (this.closeAfterWrite >= 0) {
          fs.close(this.closeAfterWrite, () => undefined);
          this.closeAfterWrite = -1;
        }
        this.pump();
      });
    };
    step(0);
  }

  private wakeFlushers(): void {
    const w = this.flushWaiters;
    this.flushWaiters = [];
    for (const r of w) r();
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
  /** Pages per read and per core call of a dirty sync (default: 1 MiB worth). */
  batchPages?: number;
  /** The most pages one {@link RamFileDirtyLog.prepare} call is given: the source's `batchPages` (default 256). */
  sendBatchPages?: number;
  /**
   * The target's memory is zero to begin with (a fresh destination RAM file): a page that is zero
   * when it is prepared, and for which nothing was ever sent, is not sent at all (a function is
   * asked at `start()`). Default false.
   */
  skipZero?: boolean | (() => boolean);
}

/** Pages read and hashed per core call: 1 MiB of 4 KiB pages, which stays in the CPU cache from the read to the hash. */
const SCAN_BATCH_BYTES = 1024 * 1024;

/**
 * The dirty log of a RAM file, for a migration source that keeps no copy of the guest's memory:
 * pages are read from the file (the page cache QEMU's guest writes) into one reusable staging
 * arena in the core just before they are encoded, and encoded from there.
 *
 *   prepare(): reads the pages of one send batch into the staging arena (one pread per run of
 *     consecutive pages), hashes them there, and points `memory.pagePtr` of each at its copy until
 *     the next prepare() or sync(); with `skipZero`, pages that are zero and were never sent are
 *     moved to the end of the batch and not sent (the fresh destination file holds zero there)
 *   start(): reads nothing: round 0 reads each batch as it sends it, streaming with the link
 *   sync(): reads and hashes the whole file, batch by batch into the same arena; reports the pages
 *     whose hash changed since they were last read (and every page not read since start())
 *
 * `memory` (in the core, the file's size) gives the layout and the page addresses the encoder
 * asks for; this log replaces its `pagePtr` and never writes the memory itself, so none of its
 * pages is ever touched (a first touch costs 10-50 us per 4 KiB page on the VMs measured). Every
 * read of a page's content must therefore go through prepare(): the encoder's does (the migration
 * source prepares every batch it sends); a full-memory verification or known-pages scan of
 * `memory` would read zeros (QemuSource refuses those options).
 *
 * Invariant: where `current[p]`, `hashes` holds the xxHash64 (seed 0) of page p as the file held
 * it when it was last read (by a sync, or by the prepare that sent it), so a page the guest wrote
 * after that read differs at the next sync (up to a 2^-64 hash collision, which the final memory
 * digest would catch). A page is sent as the file holds it when it is prepared, possibly newer
 * than at the sync that found it dirty.
 */
export class RamFileDirtyLog implements DirtyLog {
  readonly pageCount: number;
  /** Pages the source never prepared are zero in the target's memory (round 0 sent all others). */
  readonly unreadPagesZero = true;
  private readonly core: Core;
  private readonly pageSize: number;
  private readonly batchPages: number;
  private readonly sendBatchPages: number;
  /** xxHash64 of each page as last read: low word at 2p, high word at 2p+1. */
  private readonly hashes: Uint32Array;
  /** 1 where the page was read since start() (its hash is valid). */
  private readonly current: Uint8Array;
  /** 1 where nothing was ever sent for the page (with skipZero, the target's page is still zero). */
  private readonly neverSent: Uint8Array;
  /** Staging slot of each page of the batch last prepared, -1 for every other page. */
  private readonly slot: Int32Array;
  /** The pages that have a slot now (to reset them). */
  private slotted: Uint32Array;
  private slottedCount = 0;
  private readonly staging: Arena;
  private readonly hashOut: Arena;
  private readonly zeroOut: Arena;
  private active = false;
  private forceAll = false;
  private readonly skipZeroOption: boolean | (() => boolean);
  private skipZero = false;
  private skip = new Uint8Array(0);
  private list: Uint32Array | null = null;
  private memU32: Uint32Array | null = null;

  /**
   * @param file the RAM file
   * @param memory guest memory in a core, the file's size (fresh from {@link GuestMemory.inCore});
   *   its `pagePtr` is redirected to the staging arena, its pages are never written
   * @param options `batchPages`, `sendBatchPages`, `skipZero`
   * @throws PagewireError INVALID_ARGUMENT (memory not in a core or not the file's size, bad batch sizes)
   */
  constructor(readonly file: RamFile, readonly memory: GuestMemory, options: RamFileLogOptions = {}) {
    this.core = file.coreOf(memory);
    this.pageCount = memory.pageCount;
    this.pageSize = memory.pageSize;
    const whole = (v: number | undefined, name: string, dflt: number): number => {
      const n = v ?? dflt;
      if (!Number.isInteger(n) || n <= 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${name} must be a positive whole number, got ${String(v)}`);
      return n;
    };
    this.batchPages = whole(options.batchPages, 'batchPages', Math.max(1, Math.floor(SCAN_BATCH_BYTES / memory.pageSize)));
    this.sendBatchPages = whole(options.sendBatchPages, 'sendBatchPages', 256);
    const stagePages = Math.min(this.pageCount, Math.max(this.batchPages, this.sendBatchPages));
    this.hashes = new Uint32Array(this.pageCount * 2);
    this.current = new Uint8Array(this.pageCount);
    this.neverSent = new Uint8Array(this.pageCount).fill(1);
    this.slot = new Int32Array(this.pageCount).fill(-1);
    this.slotted = new Uint32Array(stagePages);
    this.skipZeroOption = options.skipZero ?? false;
    this.staging = new Arena(this.core, stagePages * this.pageSize);
    this.hashOut = new Arena(this.core, stagePages * 8);
    this.zeroOut = new Arena(this.core, stagePages);
    // The encoder asks memory.pagePtr(p) for each page it encodes: the staged copy while there is one.
    const slot = this.slot;
    const stage = this.staging.ptr;
    const base = memory.basePtr;
    const ps = this.pageSize;
    memory.pagePtr = (p: number): number => {
      const s = slot[p]!;
      return s >= 0 ? stage + s * ps : base + p * ps;
    };
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
   * Read the pages `indices[start..start+count)` from the file into the staging arena (one read
   * per run of consecutive pages) just before they are encoded; `memory.pagePtr` gives their
   * staged copies until the next prepare() or sync(). With `skipZero`, the pages found zero for
   * which nothing was ever sent are moved to the end of the range.
   * @returns how many pages from `start` to encode and send
   * @throws PagewireError INVALID_ARGUMENT (more than `sendBatchPages` pages), IMAGE_CORRUPT (the file shrank)
   */
  prepare(indices: Uint32Array, start: number, count: number): number {
    if (count > this.slotted.length) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `RAM file dirty log: ${count} pages in one batch, above sendBatchPages (${this.slotted.length})`);
    }
    this.unstage();
    const ps = this.pageSize;
    const stage = this.staging.ptr;
    for (let i = 0; i < count; ) {
      const first = indices[start + i]!;
      let j = i + 1;
      while (j < count && indices[start + j] === first + (j - i)) j++;
      this.file.readRange(this.core, stage + i * ps, first * ps, (j - i) * ps);
      i = j;
    }
    const ex = this.core.exports;
    ex.hashPages(stage, ps, count, 0n, this.hashOut.ptr);
    if (this.skipZero) ex.zeroPages(stage, ps, count, this.zeroOut.ptr);
    if (this.skip.length < count) this.skip = new Uint8Array(this.slotted.length);
    const skip = this.skip;
    const u8 = this.core.u8();
    const u32 = this.u32();
    const zero = this.zeroOut.ptr;
    let j = this.hashOut.ptr >>> 2; // arenas are 16-byte aligned
    let skipped = 0;
    for (let k = 0; k < count; k++, j += 2) {
      const p = indices[start + k]!;
      this.hashes[2 * p] = u32[j]!;
      this.hashes[2 * p + 1] = u32[j + 1]!;
      this.current[p] = 1;
      const z = this.skipZero && u8[zero + k] === 1 && this.neverSent[p] === 1 ? 1 : 0;
      skip[k] = z;
      skipped += z;
      if (!z) {
        this.neverSent[p] = 0;
        this.slot[p] = k;
        this.slotted[this.slottedCount++] = p;
      }
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

  /** Pages changed since they were last read (every page after `markAll()`). */
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

  /** Give the core arenas back (memory.pagePtr gives guest memory's own addresses again). */
  dispose(): void {
    this.unstage();
    this.staging.dispose();
    this.hashOut.dispose();
    this.zeroOut.dispose();
  }

  /** No page has a staged copy any more (the arena is about to be reused). */
  private unstage(): void {
    for (let i = 0; i < this.slottedCount; i++) this.slot[this.slotted[i]!] = -1;
    this.slottedCount = 0;
  }

  private scanAll(update: boolean, out: Uint32Array | null): number {
    this.unstage();
    let k = 0;
    for (let first = 0; first < this.pageCount; first += this.batchPages) {
      k = this.scanRun(first, Math.min(this.batchPages, this.pageCount - first), update, out, k);
    }
    return k;
  }

  /**
   * Read pages [first, first+n) (n <= batchPages) into the staging arena and hash them (one core
   * call); count, and list into `out` from `k`, the pages that changed (or all with markAll); with
   * `update`, remember the hashes of the changed pages.
   * @returns k plus the pages counted
   */
  private scanRun(first: number, n: number, update: boolean, out: Uint32Array | null, k: number): number {
    const ps = this.pageSize;
    const stage = this.staging.ptr;
    this.file.readRange(this.core, stage, first * ps, n * ps);
    this.core.exports.hashPages(stage, ps, n, 0n, this.hashOut.ptr);
    const u32 = this.u32();
    const h = this.hashes;
    const cur = this.current;
    let j = this.hashOut.ptr >>> 2;
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
      if (update && changed) {
        h[q] = lo;
        h[q + 1] = hi;
        cur[p] = 1;
      }
    }
    return k;
  }

  /** A Uint32Array over the core's memory, rebuilt after growth. */
  private u32(): Uint32Array {
    const buf = this.core.exports.memory.buffer;
    if (!this.memU32 || this.memU32.buffer !== buf) this.memU32 = new Uint32Array(buf);
    return this.memU32;
  }
}
