/**
 * Guest memory: the pages being migrated, in one of two placements.
 *
 * - `core`: one contiguous block inside a core instance's linear memory (zero-copy: the codec
 *   reads and writes pages in place). Limited by wasm32 to 4 GiB per core instance.
 * - `external`: one or more ArrayBuffers / SharedArrayBuffers (regions) of any size the host can
 *   hold; the codec copies pages into the core per batch.
 *
 * Pages are numbered 0..pageCount-1 across regions in order. Page size is a power of two in
 * 512..65536 (default 4096).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { MAX_CORE_BYTES, type Core } from '../core/core.js';

/** Smallest and largest page sizes pagewire accepts. */
export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 65536;
export const DEFAULT_PAGE_SIZE = 4096;
/**
 * Largest guest {@link GuestMemory.forLayout} places inside a core: 3 GiB, leaving the last GiB of
 * the wasm32 address space to the codec's arenas and delta cache. Larger guests go external.
 */
export const IN_CORE_LIMIT_BYTES = 3 * 1024 * 1024 * 1024;
/** Largest external region: one typed array (V8 caps a Uint8Array at 2^32 elements). */
export const MAX_REGION_BYTES = 4 * 1024 * 1024 * 1024;
/** Region size {@link splitRegions} uses for guests made of several regions (1 GiB). */
export const DEFAULT_REGION_BYTES = 1024 * 1024 * 1024;

/** One region of guest memory (e.g. a RAM block or a memory slot). */
export interface MemoryRegion {
  /** Name for reports and the handshake, e.g. `pc.ram`. */
  readonly name: string;
  /** Index of the region's first page in the guest's page numbering. */
  readonly firstPage: number;
  /** Pages in the region. */
  readonly pageCount: number;
}

/** Layout as exchanged in the handshake: page size and per-region page counts. */
export interface MemoryLayout {
  readonly pageSize: number;
  readonly regions: readonly { readonly name: string; readonly pageCount: number }[];
}

/**
 * Check that `pageSize` is a power of two in 512..65536.
 * @throws PagewireError INVALID_ARGUMENT
 */
export function checkPageSize(pageSize: number): void {
  if (!Number.isInteger(pageSize) || pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `page size must be a power of two in ${MIN_PAGE_SIZE}..${MAX_PAGE_SIZE}, got ${String(pageSize)}`);
  }
}

/** Guest memory in either placement. Create with {@link GuestMemory.inCore} or {@link GuestMemory.external}. */
export class GuestMemory {
  /** Bytes per page. */
  readonly pageSize: number;
  /** log2(pageSize). */
  readonly pageShift: number;
  /** Pages in all regions. */
  readonly pageCount: number;
  /** Regions in page order. */
  readonly regions: readonly MemoryRegion[];
  /** The core holding the pages (placement `core`), else null. */
  readonly core: Core | null;
  /** Byte offset of page 0 in `core`'s memory (placement `core`), else 0. */
  readonly basePtr: number;
  private readonly buffers: readonly Uint8Array[];

  private constructor(pageSize: number, regions: MemoryRegion[], core: Core | null, basePtr: number, buffers: Uint8Array[]) {
    this.pageSize = pageSize;
    this.pageShift = Math.log2(pageSize);
    this.regions = regions;
    this.pageCount = regions.reduce((n, r) => n + r.pageCount, 0);
    this.core = core;
    this.basePtr = basePtr;
    this.buffers = buffers;
  }

  /** Where the pages live. */
  get placement(): 'core' | 'external' {
    return this.core ? 'core' : 'external';
  }

  /** Total bytes. */
  get byteLength(): number {
    return this.pageCount * this.pageSize;
  }

  /** Layout for the handshake. */
  get layout(): MemoryLayout {
    return { pageSize: this.pageSize, regions: this.regions.map((r) => ({ name: r.name, pageCount: r.pageCount })) };
  }

  /**
   * Allocate zeroed guest memory inside `core`'s linear memory.
   * @param regions page counts per region (or one total page count)
   * @throws PagewireError INVALID_ARGUMENT, WASM_FAILED (too large for wasm32)
   */
  static inCore(core: Core, pages: number | readonly { name: string; pageCount: number }[], pageSize = DEFAULT_PAGE_SIZE): GuestMemory {
    checkPageSize(pageSize);
    const regions = toRegions(pages);
    const total = regions.reduce((n, r) => n + r.pageCount, 0);
    const bytes = total * pageSize;
    if (bytes > MAX_CORE_BYTES) {
      throw new PagewireError(ErrorCode.WASM_FAILED, `a ${bytes}-byte guest does not fit one core's 4 GiB memory: use GuestMemory.external or GuestMemory.forLayout`);
    }
    const ptr = core.allocZeroed(bytes);
    return new GuestMemory(pageSize, regions, core, ptr, []);
  }

  /**
   * Wrap host buffers (one per region) as guest memory. Buffers are used in place, not copied.
   * @param buffers ArrayBuffer, SharedArrayBuffer or Uint8Array per region; lengths must be whole pages
   * @throws PagewireError INVALID_ARGUMENT
   */
  static external(buffers: ArrayBufferLike | Uint8Array | readonly (ArrayBufferLike | Uint8Array)[], pageSize = DEFAULT_PAGE_SIZE, names?: readonly string[]): GuestMemory {
    checkPageSize(pageSize);
    const list = Array.isArray(buffers) ? buffers : [buffers as ArrayBufferLike | Uint8Array];
    const views: Uint8Array[] = [];
    const regions: MemoryRegion[] = [];
    let first = 0;
    list.forEach((b, i) => {
      const u8 = b instanceof Uint8Array ? b : new Uint8Array(b as ArrayBufferLike);
      if (u8.byteLength === 0 || u8.byteLength % pageSize !== 0) {
        throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `region ${i} is ${u8.byteLength} bytes, not a positive whole number of ${pageSize}-byte pages`);
      }
      const pageCount = u8.byteLength / pageSize;
      regions.push({ name: names?.[i] ?? `ram${i}`, firstPage: first, pageCount });
      views.push(u8);
      first += pageCount;
    });
    if (regions.length === 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'guest memory needs at least one region');
    return new GuestMemory(pageSize, regions, null, 0, views);
  }

  /**
   * Allocate zeroed external memory for a layout (e.g. on a target sized from the handshake).
   * @param shared use SharedArrayBuffer (for worker channels)
   * @throws PagewireError INVALID_ARGUMENT for a bad layout, or `shared` where there is no
   *   SharedArrayBuffer (a browser page or worker that is not cross-origin isolated)
   */
  static allocateExternal(layout: MemoryLayout, shared = false): GuestMemory {
    checkPageSize(layout.pageSize);
    for (const r of layout.regions) {
      if (!Number.isSafeInteger(r.pageCount) || r.pageCount <= 0) {
        throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `region ${r.name} needs a positive whole page count, got ${String(r.pageCount)}`);
      }
      if (r.pageCount * layout.pageSize > MAX_REGION_BYTES) {
        throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `region ${r.name} is ${r.pageCount * layout.pageSize} bytes; an external region holds at most 4 GiB (one typed array): split the guest into several regions`);
      }
    }
    if (shared && typeof SharedArrayBuffer === 'undefined') {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'shared guest memory needs SharedArrayBuffer, which this context lacks: a browser page (and its workers) has it only when cross-origin isolated (served with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)');
    }
    const bufs = layout.regions.map((r) => (shared ? new SharedArrayBuffer(r.pageCount * layout.pageSize) : new ArrayBuffer(r.pageCount * layout.pageSize)));
    return GuestMemory.external(bufs, layout.pageSize, layout.regions.map((r) => r.name));
  }

  /**
   * Guest memory for a layout in the placement that fits: inside `core` (zero-copy codec) when a
   * core is given, the memory is not `shared` and the guest is at most `inCoreLimitBytes`
   * (default {@link IN_CORE_LIMIT_BYTES}); else zeroed external regions (SharedArrayBuffer when
   * `shared`), which have no size limit beyond 4 GiB per region.
   * @throws PagewireError INVALID_ARGUMENT, WASM_FAILED
   */
  static forLayout(layout: MemoryLayout, options: { core?: Core | null; shared?: boolean; inCoreLimitBytes?: number } = {}): GuestMemory {
    const bytes = layout.regions.reduce((n, r) => n + r.pageCount, 0) * layout.pageSize;
    const limit = Math.min(options.inCoreLimitBytes ?? IN_CORE_LIMIT_BYTES, IN_CORE_LIMIT_BYTES);
    if (options.core && !options.shared && bytes <= limit) return GuestMemory.inCore(options.core, layout.regions, layout.pageSize);
    return GuestMemory.allocateExternal(layout, options.shared === true);
  }

  /**
   * A view of page `index`. For placement `core` the view is valid only until the core's memory
   * grows (the next allocation): take it, use it, drop it.
   * @throws PagewireError PAGE_OUT_OF_RANGE
   */
  page(index: number): Uint8Array {
    if (!(index >= 0 && index < this.pageCount) || !Number.isInteger(index)) {
      throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `page ${index} is outside guest memory (0..${this.pageCount - 1})`);
    }
    if (this.core) {
      const off = this.basePtr + index * this.pageSize;
      return this.core.u8().subarray(off, off + this.pageSize);
    }
    const r = this.regionIndexOf(index);
    const off = (index - this.regions[r]!.firstPage) * this.pageSize;
    return this.buffers[r]!.subarray(off, off + this.pageSize);
  }

  /** Byte offset of page `index` in its core (placement `core` only). No range check: hot path. */
  pagePtr(index: number): number {
    return this.basePtr + index * this.pageSize;
  }

  /**
   * A view of pages [first, first+count) if they are contiguous in one buffer (always for `core`).
   * Returns null if the range crosses a region boundary.
   */
  pages(first: number, count: number): Uint8Array | null {
    if (first < 0 || count < 0 || first + count > this.pageCount) {
      throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `pages ${first}..${first + count - 1} are outside guest memory`);
    }
    if (this.core) {
      const off = this.basePtr + first * this.pageSize;
      return this.core.u8().subarray(off, off + count * this.pageSize);
    }
    const r = this.regionIndexOf(first);
    const reg = this.regions[r]!;
    if (first + count > reg.firstPage + reg.pageCount) return null;
    const off = (first - reg.firstPage) * this.pageSize;
    return this.buffers[r]!.subarray(off, off + count * this.pageSize);
  }

  /**
   * The longest view of consecutive pages from `first`, at most `maxCount` pages (at least one):
   * pages `first .. first + view.byteLength / pageSize - 1`, cut at the end of `first`'s region
   * (never cut for placement `core`). Walk a range with it to copy or write whole runs at once.
   * For placement `core` the view is valid only until the core's memory grows.
   * @throws PagewireError PAGE_OUT_OF_RANGE when `first` is outside the guest or `maxCount` < 1
   */
  run(first: number, maxCount: number): Uint8Array {
    if (!(first >= 0 && first < this.pageCount) || !Number.isInteger(first) || !(maxCount >= 1)) {
      throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `a run of ${maxCount} pages from page ${first} is outside guest memory (0..${this.pageCount - 1})`);
    }
    const count = Math.min(maxCount, this.pageCount - first);
    if (this.core) {
      const off = this.basePtr + first * this.pageSize;
      return this.core.u8().subarray(off, off + count * this.pageSize);
    }
    const r = this.regionIndexOf(first);
    const reg = this.regions[r]!;
    const off = (first - reg.firstPage) * this.pageSize;
    const n = Math.min(count, reg.firstPage + reg.pageCount - first);
    return this.buffers[r]!.subarray(off, off + n * this.pageSize);
  }

  /** The region buffers (placement `external`) or the single core-resident view. */
  regionViews(): Uint8Array[] {
    if (this.core) return [this.core.u8().subarray(this.basePtr, this.basePtr + this.byteLength)];
    return this.buffers.slice();
  }

  private lastRegion = 0;
  private regionIndexOf(index: number): number {
    const last = this.regions[this.lastRegion]!;
    if (index >= last.firstPage && index < last.firstPage + last.pageCount) return this.lastRegion;
    let lo = 0;
    let hi = this.regions.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.regions[mid]!.firstPage <= index) lo = mid;
      else hi = mid - 1;
    }
    this.lastRegion = lo;
    return lo;
  }
}

/**
 * A layout of `bytes` (a whole number of pages) as regions of at most `regionBytes` each, named
 * `ram0`, `ram1`, ... (one region `ram` when it fits in one): how a host lays out a guest larger
 * than one typed array or one core.
 * @throws PagewireError INVALID_ARGUMENT
 */
export function splitRegions(bytes: number, pageSize = DEFAULT_PAGE_SIZE, regionBytes = DEFAULT_REGION_BYTES): MemoryLayout {
  checkPageSize(pageSize);
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % pageSize !== 0) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `guest size must be a positive whole number of ${pageSize}-byte pages, got ${String(bytes)}`);
  }
  const perRegion = Math.floor(Math.min(regionBytes, MAX_REGION_BYTES) / pageSize);
  if (perRegion < 1) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `region size ${regionBytes} is smaller than a page`);
  const pages = bytes / pageSize;
  if (pages <= perRegion) return { pageSize, regions: [{ name: 'ram', pageCount: pages }] };
  const regions: { name: string; pageCount: number }[] = [];
  for (let first = 0, i = 0; first < pages; first += perRegion, i++) regions.push({ name: `ram${i}`, pageCount: Math.min(perRegion, pages - first) });
  return { pageSize, regions };
}

function toRegions(pages: number | readonly { name: string; pageCount: number }[]): MemoryRegion[] {
  const list = typeof pages === 'number' ? [{ name: 'ram0', pageCount: pages }] : pages;
  const out: MemoryRegion[] = [];
  let first = 0;
  for (const r of list) {
    if (!Number.isInteger(r.pageCount) || r.pageCount <= 0) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `region ${r.name} needs a positive whole page count, got ${String(r.pageCount)}`);
    }
    out.push({ name: r.name, firstPage: first, pageCount: r.pageCount });
    first += r.pageCount;
  }
  if (out.length === 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'guest memory needs at least one region');
  return out;
}
