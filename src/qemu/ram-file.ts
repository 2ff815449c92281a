/**
 * A QEMU guest's RAM as a file (`-object memory-backend-file,mem-path=FILE,share=on`), seen by
 * pagewire as guest memory in a core.
 *
 * Source side: the file is read into the core (from the page cache: the pages QEMU's guest
 * writes) when the dirty log starts and at every dirty sync; {@link RamFileDirtyLog} then finds
 * the pages that changed by hashing them in the core (HashScanDirtyLog: QEMU gives another
 * process no dirty log for such a block). Pages are sent as they were at the last sync; a page
 * written after it differs at the next sync and is sent again.
 *
 * Target side: {@link RamFile.writePages} writes the pages a PAGES frame just filled back to the
 * destination's file with positional writes, one per run of consecutive pages (tmpfs and page
 * cache pages are shared with QEMU's MAP_SHARED mapping, so the destination QEMU sees them).
 */
import * as fs from 'node:fs';
import { PagewireError, ErrorCode } from '../errors.js';
import type { Core } from '../core/core.js';
import { GuestMemory, DEFAULT_PAGE_SIZE, checkPageSize } from '../memory/guest-memory.js';
import type { DirtyLog } from '../memory/dirty-log.js';
import { HashScanDirtyLog, type HashScanOptions } from '../memory/hash-scan-log.js';

/** Bytes per read/write call when moving whole files (below Node's 2 GiB per-call limit). */
const IO_CHUNK_BYTES = 16 * 1024 * 1024;

/** An open RAM file. */
export class RamFile {
  /** File size, bytes (a whole number of pages). */
  readonly byteLength: number;
  readonly pageSize: number;
  private fd: number;

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
    const core = this.requireCore(memory);
    for (let off = 0; off < this.byteLength; ) {
      const len = Math.min(IO_CHUNK_BYTES, this.byteLength - off);
      // the view is taken per call: an allocation elsewhere may have grown the core's memory
      const n = fs.readSync(this.fd, core.u8(), memory.basePtr + off, len, off);
      if (n <= 0) throw new PagewireError(ErrorCode.IMAGE_CORRUPT, `RAM file ${this.path} ended at ${off} of ${this.byteLength} bytes`);
      off += n;
    }
  }

  /**
   * Write pages of `memory` to the same offsets of the file, one write per run of consecutive
   * page numbers.
   * @param pages page numbers (any order; runs are found in the given order)
   */
  writePages(memory: GuestMemory, pages: ArrayLike<number>): void {
    const core = this.requireCore(memory);
    const ps = this.pageSize;
    for (let i = 0; i < pages.length; ) {
      const first = pages[i]!;
      let j = i + 1;
      while (j < pages.length && pages[j] === first + (j - i) && (j - i) * ps < IO_CHUNK_BYTES) j++;
      this.writeRange(core.u8(), memory.pagePtr(first), (j - i) * ps, first * ps);
      i = j;
    }
  }

  /** Close the file (idempotent). */
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  private writeRange(u8: Uint8Array, ptr: number, len: number, pos: number): void {
    for (let done = 0; done < len; ) {
      done += fs.writeSync(this.fd, u8, ptr + done, len - done, pos + done);
    }
  }

  private requireCore(memory: GuestMemory): Core {
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

/**
 * The dirty log of a RAM file: reads the file into guest memory, then hash-scans it, at `start()`
 * and at every `sync()` (both batched in the core).
 */
export class RamFileDirtyLog implements DirtyLog {
  readonly pageCount: number;
  private readonly scan: HashScanDirtyLog;

  constructor(readonly file: RamFile, readonly memory: GuestMemory, options: HashScanOptions = {}) {
    this.pageCount = memory.pageCount;
    this.scan = new HashScanDirtyLog(memory, memory.core ?? undefined, options);
  }

  get tracking(): boolean {
    return this.scan.tracking;
  }

  start(): void {
    this.file.readInto(this.memory);
    this.scan.start();
  }

  sync(): Uint32Array {
    this.file.readInto(this.memory);
    return this.scan.sync();
  }

  stop(): void {
    this.scan.stop();
  }

  markAll(): void {
    this.scan.markAll();
  }

  /** Pages that differ from the last sync as of the file's current content (reads the file). */
  peekCount(): number {
    this.file.readInto(this.memory);
    return this.scan.peekCount();
  }

  /** Give the scan's core arenas back. */
  dispose(): void {
    this.scan.dispose();
  }
}
