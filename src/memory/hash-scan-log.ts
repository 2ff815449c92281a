/**
 * Hash-scan dirty log, for endpoints without a hypervisor dirty log: remembers the xxHash64 of
 * every page as of the last sync and, on each sync, hashes all pages again in batches in the core
 * (one `hashPages` call per batch; in place, zero copy, when the guest memory lives in the same
 * core; copied into a staging arena per batch otherwise) and reports the pages whose hash changed.
 *
 * Cost: every sync reads all of guest memory (a few GB/s in the core), so it suits small guests
 * or rare syncs; a hypervisor bitmap ({@link BitmapDirtyLog}) costs nothing per clean page.
 *
 * Exactness: a page whose bytes changed but whose 64-bit hash did not is missed. For a given
 * changed page that happens with probability about 2^-64 (xxHash64 is not collision-resistant
 * against an adversary who controls the page content, but guest writes are not chosen to collide
 * with the previous content). A missed page would be caught by the final memory digest, which the
 * migration verifies. A page rewritten with identical bytes is, correctly, not reported.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { Arena, loadSharedCore, sharedCore, type Core } from '../core/core.js';
import type { GuestMemory } from './guest-memory.js';
import type { DirtyLog } from './dirty-log.js';

/** Options of {@link HashScanDirtyLog}. */
export interface HashScanOptions {
  /** Pages hashed per core call (default: 4 MiB worth). */
  batchPages?: number;
  /** xxHash64 seed (default 0). */
  seed?: bigint;
}

const DEFAULT_BATCH_BYTES = 4 * 1024 * 1024;

/** A dirty log that compares per-page xxHash64 values between syncs. */
export class HashScanDirtyLog implements DirtyLog {
  readonly pageCount: number;
  readonly memory: GuestMemory;
  /** The core that hashes (the memory's own core when it has one). */
  readonly core: Core;
  private readonly batchPages: number;
  private readonly seed: bigint;
  /** Hash of each page at the last sync: low word at 2p, high word at 2p+1. */
  private readonly hashes: Uint32Array;
  private baseline = false;
  private forceAll = false;
  private active = false;
  private readonly out: Arena;
  private readonly staging: Arena;
  private scratch: Uint32Array | null = null;
  private memU32: Uint32Array | null = null;

  /**
   * @param memory the guest memory to scan
   * @param core the core that hashes; default the memory's core, else the shared core (which must
   *   be loaded: use {@link HashScanDirtyLog.create} to load it)
   * @param options batch size and seed
   * @throws PagewireError NOT_READY when no core is given or loaded; INVALID_ARGUMENT
   */
  constructor(memory: GuestMemory, core?: Core, options: HashScanOptions = {}) {
    this.memory = memory;
    this.pageCount = memory.pageCount;
    this.core = core ?? memory.core ?? sharedCore();
    const batch = options.batchPages ?? Math.max(1, Math.floor(DEFAULT_BATCH_BYTES / memory.pageSize));
    if (!Number.isInteger(batch) || batch <= 0) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `batchPages must be a positive whole number, got ${String(options.batchPages)}`);
    }
    this.batchPages = batch;
    this.seed = options.seed ?? 0n;
    this.hashes = new Uint32Array(memory.pageCount * 2);
    this.out = new Arena(this.core, batch * 8);
    this.staging = new Arena(this.core, this.inPlace ? 0 : batch * memory.pageSize);
  }

  /** A hash-scan log whose core is the memory's own or the (loaded on demand) shared core. */
  static async create(memory: GuestMemory, options: HashScanOptions = {}): Promise<HashScanDirtyLog> {
    const core = memory.core ?? (await loadSharedCore());
    return new HashScanDirtyLog(memory, core, options);
  }

  /** Whether pages are hashed in place (guest memory in the hashing core). */
  get inPlace(): boolean {
    return this.memory.core === this.core;
  }

  get tracking(): boolean {
    return this.active;
  }

  /** Hash every page as the baseline: later syncs report pages that differ from now. */
  start(): void {
    this.scan(true, null);
    this.baseline = true;
    this.forceAll = false;
    this.active = true;
  }

  stop(): void {
    this.active = false;
  }

  markAll(): void {
    this.forceAll = true;
  }

  /**
   * Pages whose content differs from the last sync (all pages before the first `start()` or after
   * `markAll()`); the current hashes become the new reference.
   */
  sync(): Uint32Array {
    let out = this.scratch;
    if (!out) out = this.scratch = new Uint32Array(this.pageCount);
    const n = this.scan(true, out);
    this.baseline = true;
    this.forceAll = false;
    return out.slice(0, n);
  }

  /** How many pages the next sync would report (hashes all memory; changes nothing). */
  peekCount(): number {
    return this.scan(false, null);
  }

  /** Give the core arenas back. The log is unusable afterwards. */
  dispose(): void {
    this.out.dispose();
    this.staging.dispose();
  }

  /**
   * Hash all pages in batches; count (and list into `out`) the pages that differ from the stored
   * hashes; store the new hashes when `update`.
   */
  private scan(update: boolean, out: Uint32Array | null): number {
    const mem = this.memory;
    const pageSize = mem.pageSize;
    const ex = this.core.exports;
    const all = this.forceAll || !this.baseline;
    const h = this.hashes;
    let k = 0;
    for (const region of mem.regions) {
      const end = region.firstPage + region.pageCount;
      for (let first = region.firstPage; first < end; first += this.batchPages) {
        const count = Math.min(this.batchPages, end - first);
        const outPtr = this.out.ensure(count * 8);
        if (this.inPlace) {
          ex.hashPages(mem.pagePtr(first), pageSize, count, this.seed, outPtr);
        } else {
          const inPtr = this.staging.ensure(count * pageSize);
          const src = mem.pages(first, count)!; // batches never cross a region boundary
          this.core.u8().set(src, inPtr);
          ex.hashPages(inPtr, pageSize, count, this.seed, outPtr);
        }
        const u32 = this.u32();
        let j = outPtr >>> 2; // arenas are 16-byte aligned
        for (let p = first; p < first + count; p++, j += 2) {
          const lo = u32[j]!;
          const hi = u32[j + 1]!;
          const q = p * 2;
          if (all || lo !== h[q] || hi !== h[q + 1]) {
            if (out) out[k] = p;
            k++;
            if (update) { h[q] = lo; h[q + 1] = hi; }
          }
        }
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
