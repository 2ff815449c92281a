/**
 * The one-shot core API: stateless functions over `Uint8Array`s that live outside the core's
 * memory (xxHash64, page hashes, zero-page detection, XBZRLE, RLE). `await ready()` once; every
 * call after it is synchronous.
 *
 * Each call copies its input into reusable arenas of the shared core (no allocation in wasm per
 * call), runs one core call per chunk and copies the result out into an array the caller owns.
 * Encoded results of 65 bytes to 8 KiB are views into a shared 128 KiB pool buffer, as Node's
 * `Buffer` pool does (V8 gives every typed array over 64 bytes its own off-heap store, about
 * 1-2.5 us each, more than encoding the page): the bytes are the caller's alone, but
 * `result.buffer` is shared, so use `byteOffset`/`length` and do not transfer `result.buffer`.
 * Large inputs are processed in chunks of {@link CHUNK_BYTES} so the copy and the scan meet in
 * cache and the arenas stay small. Pipelines that keep pages in core memory use the batch codec
 * instead.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { Arena, type Core, loadSharedCore, sharedCore } from './core.js';
import type { CoreExports } from './exports.js';
import { STATUS_OVERFLOW, statusMessage } from './status.js';
import { XXH64_STATE_BYTES } from './layout.js';
import { PageHasher } from '../memory/page-hasher.js';

/** Bytes copied into the core per core call for large inputs (a multiple of 65536 and of 32). */
export const CHUNK_BYTES = 128 * 1024;
/** Smallest page size the batch functions accept. */
export const MIN_PAGE_SIZE = 512;
/** Largest page size the batch functions accept. */
export const MAX_PAGE_SIZE = 65536;
/** Largest XBZRLE page: QEMU's format cannot describe a run of 16384 bytes or more. */
export const XBZRLE_MAX_PAGE_SIZE = 16384;
/** Largest buffer the RLE format describes (2^30 - 1 bytes). */
export const RLE_MAX_LEN = 2 ** 30 - 1;

const U64_LIMIT = 1n << 64n;

interface State {
  core: Core;
  ex: CoreExports;
  /** Input bytes (pages, old+new page pairs, encoded streams). */
  input: Arena;
  /** Output bytes (hashes, flags, encodings, decoded pages). */
  output: Arena;
  /** Streaming xxHash64 state. */
  xxhState: number;
  /** Page hashes, staged a chunk at a time. */
  hasher: PageHasher;
  /** Byte view of core memory; detached (length 0) after a memory.grow, then rebuilt. */
  view: Uint8Array;
}

/**
 * The current byte view of core memory. Checks the cached view's length instead of calling the
 * `memory.buffer` getter (about 50 ns) on every use: a grown memory detaches the old view.
 */
function mem(s: State): Uint8Array {
  if (s.view.length === 0) s.view = new Uint8Array(s.ex.memory.buffer);
  return s.view;
}

/** Bytes of one result pool buffer. */
const POOL_BYTES = 128 * 1024;
/** Largest result served from the pool; V8 keeps typed arrays of up to 64 bytes on its heap. */
const POOL_MAX_RESULT = 8192;
const ON_HEAP_MAX = 64;
let pool: ArrayBuffer | undefined;
let poolOffset = 0;

/** A caller-owned copy of `len` bytes of core memory at `ptr` (see the pool note above). */
function owned(s: State, ptr: number, len: number): Uint8Array {
  if (len <= ON_HEAP_MAX || len > POOL_MAX_RESULT) return mem(s).slice(ptr, ptr + len);
  if (!pool || poolOffset + len > POOL_BYTES) {
    pool = new ArrayBuffer(POOL_BYTES);
    poolOffset = 0;
  }
  const out = new Uint8Array(pool, poolOffset, len);
  out.set(mem(s).subarray(ptr, ptr + len));
  poolOffset = (poolOffset + len + 7) & ~7;
  return out;
}

let state: State | undefined;
let readyPromise: Promise<void> | undefined;

/**
 * Load the WebAssembly core once and warm it up; concurrent calls share one load.
 * Every function of this module may be called synchronously once this has resolved.
 * @returns a promise that resolves when the core is ready
 * @throws PagewireError WASM_FAILED when WebAssembly cannot compile or instantiate the core
 */
export function ready(): Promise<void> {
  readyPromise ??= loadSharedCore().then((core) => {
    stateFor(core);
  }, (err: unknown) => {
    readyPromise = undefined;
    throw err;
  });
  return readyPromise;
}

/**
 * V8 runs a wasm function first in its baseline tier and a long first call never switches tiers:
 * call every hot function on small inputs until the optimising tier has taken over.
 */
function warmUp(s: State): void {
  const ex = s.ex;
  const pages = 8;
  const pageSize = 4096;
  const inPtr = s.input.ensure(pages * pageSize);
  const outPtr = s.output.ensure(pages * pageSize * 2);
  const u8 = mem(s);
  // Pages of one pattern with a few bytes changed each (sparse deltas, runs), the last one zero.
  for (let i = 0; i < pages * pageSize; i++) u8[inPtr + i] = ((i & (pageSize - 1)) >> 5) * 7;
  for (let k = 1; k < pages; k++) u8[inPtr + k * pageSize + 64 * k] ^= 0xff;
  u8.fill(0, inPtr + (pages - 1) * pageSize, inPtr + pages * pageSize);
  const scratch = outPtr + pages * pageSize; // a page to decode into
  for (let round = 0; round < 40; round++) {
    ex.hashPages(inPtr, pageSize, pages, 0n, outPtr);
    ex.xxh64(inPtr, pages * pageSize - round, 1n);
    ex.xxh64Init(s.xxhState, 0n);
    ex.xxh64Update(s.xxhState, inPtr, 4096);
    ex.xxh64Digest(s.xxhState, inPtr, 100);
    ex.zeroPages(inPtr, pageSize, pages, outPtr);
    ex.isZero(inPtr + (pages - 1) * pageSize, pageSize);
    const k = 1 + (round % (pages - 2));
    const n = ex.xbzrleEncode(inPtr, inPtr + k * pageSize, pageSize, outPtr, pageSize);
    if (n > 0) ex.xbzrleDecode(outPtr, n, scratch, pageSize);
    const r = ex.rleEncode(inPtr + k * pageSize, pageSize, outPtr, ex.rleMaxEncodedSize(pageSize));
    if (r > 0) ex.rleDecode(outPtr, r, scratch, pageSize);
  }
}

/** The API's arenas in the shared core, created (and warmed up) once. */
function stateFor(core: Core): State {
  if (!state) {
    state = {
      core,
      ex: core.exports,
      input: new Arena(core, CHUNK_BYTES),
      output: new Arena(core, 16384),
      xxhState: core.alloc(XXH64_STATE_BYTES),
      hasher: new PageHasher(core, CHUNK_BYTES),
      view: core.u8(),
    };
    warmUp(state);
  }
  return state;
}

/** The API state; works once the shared core is loaded (by `ready()` or another module). */
function st(): State {
  return state ?? stateFor(sharedCore()); // sharedCore throws NOT_READY before any load
}

// ---------------------------------------------------------------------------------------------
// Argument checks at the public edge (before any work).

function invalid(message: string): PagewireError {
  return new PagewireError(ErrorCode.INVALID_ARGUMENT, `pagewire: ${message}`);
}

function checkBytes(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid(`${name} must be a Uint8Array`);
}

function checkSeed(seed: unknown): bigint {
  if (typeof seed === 'bigint') {
    if (seed < 0n || seed >= U64_LIMIT) throw invalid(`seed must be in 0..2^64-1, got ${seed}`);
    return seed;
  }
  if (typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0) return BigInt(seed);
  throw invalid('seed must be a bigint in 0..2^64-1');
}

function checkPageSize(data: Uint8Array, pageSize: unknown): number {
  if (typeof pageSize !== 'number' || !Number.isInteger(pageSize) || pageSize < MIN_PAGE_SIZE ||
      pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) {
    throw invalid(`pageSize must be a power of two in ${MIN_PAGE_SIZE}..${MAX_PAGE_SIZE}, got ${String(pageSize)}`);
  }
  if (data.length % pageSize !== 0) {
    throw invalid(`data length ${data.length} is not a whole number of ${pageSize}-byte pages`);
  }
  return pageSize;
}

function checkXbzrlePage(length: number, what: string): void {
  if (length % 8 !== 0 || length > XBZRLE_MAX_PAGE_SIZE) {
    throw invalid(`XBZRLE ${what} length must be a multiple of 8 in 0..${XBZRLE_MAX_PAGE_SIZE}, got ${length}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Hashing

/**
 * xxHash64 of `data`, equal to the reference implementation (xxhash-wasm's `h64`).
 * @param data the bytes to hash (any length)
 * @param seed 64-bit seed, default 0
 * @returns the hash as an unsigned 64-bit bigint
 * @throws PagewireError INVALID_ARGUMENT for a non-Uint8Array or a seed outside 0..2^64-1;
 *   NOT_READY before `ready()`
 */
export function xxh64(data: Uint8Array, seed: bigint = 0n): bigint {
  checkBytes(data, 'data');
  const s64 = checkSeed(seed);
  const s = st();
  const ex = s.ex;
  const n = data.length;
  if (n <= CHUNK_BYTES) {
    const ptr = s.input.ensure(n);
    mem(s).set(data, ptr);
    return BigInt.asUintN(64, ex.xxh64(ptr, n, s64));
  }
  const ptr = s.input.ensure(CHUNK_BYTES);
  ex.xxh64Init(s.xxhState, s64);
  let off = 0;
  while (n - off > CHUNK_BYTES) {
    mem(s).set(data.subarray(off, off + CHUNK_BYTES), ptr);
    ex.xxh64Update(s.xxhState, ptr, CHUNK_BYTES);
    off += CHUNK_BYTES;
  }
  mem(s).set(data.subarray(off), ptr);
  return BigInt.asUintN(64, ex.xxh64Digest(s.xxhState, ptr, n - off));
}

/**
 * One xxHash64 per page: `result[k]` is the hash of `data[k*pageSize .. (k+1)*pageSize)`.
 * @param data whole pages
 * @param pageSize bytes per page, a power of two in 512..65536
 * @param seed 64-bit seed, default 0
 * @returns one hash per page
 * @throws PagewireError INVALID_ARGUMENT for a bad page size, a partial page or a bad seed
 */
export function hashPages(data: Uint8Array, pageSize: number, seed: bigint = 0n): BigUint64Array {
  checkBytes(data, 'data');
  checkPageSize(data, pageSize);
  const s64 = checkSeed(seed);
  const result = new BigUint64Array(data.length / pageSize);
  st().hasher.hashBytes(data, pageSize, s64, result);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Zero pages

/**
 * Whether every byte of `page` is zero.
 * @param page the bytes to check (any length; an empty page is zero)
 * @returns true when all bytes are zero
 * @throws PagewireError INVALID_ARGUMENT for a non-Uint8Array
 */
export function isZeroPage(page: Uint8Array): boolean {
  checkBytes(page, 'page');
  const s = st();
  const n = page.length;
  const ptr = s.input.ensure(Math.min(n, CHUNK_BYTES));
  for (let off = 0; off < n; off += CHUNK_BYTES) {
    const len = Math.min(CHUNK_BYTES, n - off);
    mem(s).set(page.subarray(off, off + len), ptr);
    if (s.ex.isZero(ptr, len) === 0) return false;
  }
  return true;
}

/**
 * Zero-page map of `data`: `result[k]` is 1 when page k is all zero, else 0.
 * @param data whole pages
 * @param pageSize bytes per page, a power of two in 512..65536
 * @returns one flag per page
 * @throws PagewireError INVALID_ARGUMENT for a bad page size or a partial page
 */
export function zeroPages(data: Uint8Array, pageSize: number): Uint8Array {
  checkBytes(data, 'data');
  checkPageSize(data, pageSize);
  const s = st();
  const count = data.length / pageSize;
  const result = new Uint8Array(count);
  const chunkPages = Math.max(1, CHUNK_BYTES / pageSize);
  const inPtr = s.input.ensure(chunkPages * pageSize);
  const outPtr = s.output.ensure(chunkPages);
  for (let first = 0; first < count; first += chunkPages) {
    const n = Math.min(chunkPages, count - first);
    const u8 = mem(s);
    u8.set(data.subarray(first * pageSize, (first + n) * pageSize), inPtr);
    s.ex.zeroPages(inPtr, pageSize, n, outPtr);
    result.set(u8.subarray(outPtr, outPtr + n), first);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// XBZRLE

/**
 * Upper bound of an XBZRLE encoding of a `pageSize`-byte page (every other byte changed costs
 * 3 bytes per 2 page bytes): `pageSize + floor(pageSize / 2) + 2`. Any limit at or above this
 * plus 2 never overflows.
 * @param pageSize page length in bytes
 * @returns the bound in bytes
 */
export function xbzrleMaxEncodedSize(pageSize: number): number {
  return pageSize <= 0 ? 0 : pageSize + Math.floor(pageSize / 2) + 2;
}

function checkXbzrleArgs(oldPage: unknown, newPage: unknown, limit: unknown): void {
  checkBytes(oldPage, 'oldPage');
  checkBytes(newPage, 'newPage');
  if (oldPage.length !== newPage.length) {
    throw invalid(`XBZRLE pages differ in length (${oldPage.length} and ${newPage.length})`);
  }
  checkXbzrlePage(newPage.length, 'page');
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0) {
    throw invalid(`XBZRLE limit must be a non-negative integer, got ${String(limit)}`);
  }
}

/** Encode into the output arena; returns the core result. */
function xbzrleEncodeRaw(s: State, oldPage: Uint8Array, newPage: Uint8Array, limit: number): number {
  const len = newPage.length;
  // Above this every limit behaves the same (see xbzrleMaxEncodedSize).
  const cap = Math.min(limit, xbzrleMaxEncodedSize(len) + 2);
  const inPtr = s.input.ensure(2 * len);
  const outPtr = s.output.ensure(cap);
  const u8 = mem(s);
  u8.set(oldPage, inPtr);
  u8.set(newPage, inPtr + len);
  return s.ex.xbzrleEncode(inPtr, inPtr + len, len, outPtr, cap);
}

/**
 * XBZRLE-encode `newPage` against `oldPage` (the version the receiver holds), byte-compatible
 * with QEMU: the same bytes, and "identical" and "overflow" where QEMU's encoder reports them.
 * @param oldPage the receiver's version
 * @param newPage the current version, same length (a multiple of 8, at most 16384)
 * @param limit output limit in bytes (QEMU's dlen), default the page size
 * @returns the encoding (the caller's; may view a shared pool buffer, see the module note); an
 *   empty array when the pages are identical; `null` on overflow (the encoding would not fit
 *   `limit`: send the page raw)
 * @throws PagewireError INVALID_ARGUMENT for pages of different or unsupported lengths or a
 *   negative or non-integer limit
 */
export function xbzrleEncode(oldPage: Uint8Array, newPage: Uint8Array, limit?: number): Uint8Array | null {
  const lim = limit ?? (newPage instanceof Uint8Array ? newPage.length : 0);
  checkXbzrleArgs(oldPage, newPage, lim);
  const s = st();
  const r = xbzrleEncodeRaw(s, oldPage, newPage, lim);
  if (r === STATUS_OVERFLOW) return null;
  if (r < 0) throw invalid(`XBZRLE encoder: ${statusMessage(r)}`);
  return owned(s, s.output.ptr, r);
}

/**
 * XBZRLE-encode into a caller's buffer: the limit is `out.length`.
 * @param oldPage the receiver's version
 * @param newPage the current version, same length (a multiple of 8, at most 16384)
 * @param out where the encoding goes
 * @returns the encoded length; 0 when identical; -1 on overflow (as QEMU)
 * @throws PagewireError INVALID_ARGUMENT as {@link xbzrleEncode}
 */
export function xbzrleEncodeInto(oldPage: Uint8Array, newPage: Uint8Array, out: Uint8Array): number {
  checkBytes(out, 'out');
  checkXbzrleArgs(oldPage, newPage, out.length);
  const s = st();
  const r = xbzrleEncodeRaw(s, oldPage, newPage, out.length);
  if (r === STATUS_OVERFLOW) return -1;
  if (r < 0) throw invalid(`XBZRLE encoder: ${statusMessage(r)}`);
  out.set(mem(s).subarray(s.output.ptr, s.output.ptr + r));
  return r;
}

/**
 * Apply an XBZRLE encoding to `page` in place. QEMU's acceptance rules; the whole stream is
 * validated before the page is touched, so a rejected stream leaves `page` unchanged.
 * @param encoded the encoding (an empty encoding changes nothing)
 * @param page the receiver's version of the page (a multiple of 8, at most 16384 bytes)
 * @throws PagewireError XBZRLE_CORRUPT for a malformed stream or one that does not fit the page;
 *   INVALID_ARGUMENT for unsupported arguments
 */
export function xbzrleDecode(encoded: Uint8Array, page: Uint8Array): void {
  checkBytes(encoded, 'encoded');
  checkBytes(page, 'page');
  checkXbzrlePage(page.length, 'page');
  const len = page.length;
  // A valid stream covers at most len bytes at 5 input bytes per 2 page bytes (non-minimal lengths).
  if (encoded.length > 3 * len + 8) {
    throw new PagewireError(ErrorCode.XBZRLE_CORRUPT,
      `pagewire: XBZRLE stream of ${encoded.length} bytes is too long for a ${len}-byte page`);
  }
  const s = st();
  const inPtr = s.input.ensure(encoded.length + len);
  const pagePtr = inPtr + encoded.length;
  const u8 = mem(s);
  u8.set(encoded, inPtr);
  u8.set(page, pagePtr);
  const r = s.ex.xbzrleDecode(inPtr, encoded.length, pagePtr, len);
  if (r < 0) {
    throw new PagewireError(ErrorCode.XBZRLE_CORRUPT, `pagewire: XBZRLE stream rejected: ${statusMessage(r)}`);
  }
  page.set(mem(s).subarray(pagePtr, pagePtr + r));
}

// ---------------------------------------------------------------------------------------------
// RLE

/**
 * Largest RLE encoding of `len` bytes: the bytes plus the head of one literal op (1..5 bytes).
 * @param len buffer length in bytes (0..2^30-1)
 * @returns the bound in bytes
 */
export function rleMaxEncodedSize(len: number): number {
  if (len <= 0) return 0;
  const head = len * 4;
  return len + (head < 0x80 ? 1 : head < 0x4000 ? 2 : head < 0x200000 ? 3 : head < 0x10000000 ? 4 : 5);
}

function checkRleLength(len: number): void {
  if (len > RLE_MAX_LEN) throw invalid(`RLE buffers hold at most ${RLE_MAX_LEN} bytes, got ${len}`);
}

function rleEncodeRaw(s: State, page: Uint8Array): number {
  const len = page.length;
  const max = rleMaxEncodedSize(len);
  const inPtr = s.input.ensure(len);
  const outPtr = s.output.ensure(max);
  mem(s).set(page, inPtr);
  const r = s.ex.rleEncode(inPtr, len, outPtr, max);
  if (r < 0) throw new PagewireError(ErrorCode.WASM_FAILED, `pagewire: RLE encoder failed: ${statusMessage(r)}`);
  return r;
}

/**
 * RLE-encode a page (pagewire's format, see docs/CORE.md): runs of a repeated byte or 8-byte word
 * become a few bytes. Never longer than {@link rleMaxEncodedSize}.
 * @param page the bytes to encode (0..2^30-1 bytes)
 * @returns the encoding (the caller's; may view a shared pool buffer, see the module note)
 * @throws PagewireError INVALID_ARGUMENT for a non-Uint8Array or a buffer over 2^30-1 bytes
 */
export function rleEncode(page: Uint8Array): Uint8Array {
  checkBytes(page, 'page');
  checkRleLength(page.length);
  const s = st();
  const r = rleEncodeRaw(s, page);
  return owned(s, s.output.ptr, r);
}

/**
 * RLE-encode into a caller's buffer.
 * @param page the bytes to encode
 * @param out where the encoding goes
 * @returns the encoded length, or -1 when it does not fit `out` (size `out` with
 *   {@link rleMaxEncodedSize} to never see -1)
 * @throws PagewireError INVALID_ARGUMENT as {@link rleEncode}
 */
export function rleEncodeInto(page: Uint8Array, out: Uint8Array): number {
  checkBytes(page, 'page');
  checkBytes(out, 'out');
  checkRleLength(page.length);
  const s = st();
  const r = rleEncodeRaw(s, page);
  if (r > out.length) return -1;
  out.set(mem(s).subarray(s.output.ptr, s.output.ptr + r));
  return r;
}

/**
 * Decode an RLE encoding into `out`, which it must describe exactly. The whole stream is
 * validated first: a rejected stream leaves `out` unchanged.
 * @param encoded the encoding
 * @param out receives exactly `out.length` decoded bytes
 * @throws PagewireError RLE_CORRUPT for a malformed stream, one that describes more or fewer than
 *   `out.length` bytes, or bytes after its end; INVALID_ARGUMENT for unsupported arguments
 */
export function rleDecode(encoded: Uint8Array, out: Uint8Array): void {
  checkBytes(encoded, 'encoded');
  checkBytes(out, 'out');
  checkRleLength(out.length);
  const len = out.length;
  // Every op costs at least 2 bytes per output byte at worst (a 1-byte literal or run).
  if (encoded.length > 2 * len) {
    throw new PagewireError(ErrorCode.RLE_CORRUPT,
      `pagewire: RLE stream of ${encoded.length} bytes is too long for ${len} output bytes`);
  }
  const s = st();
  const inPtr = s.input.ensure(encoded.length);
  const outPtr = s.output.ensure(len);
  mem(s).set(encoded, inPtr);
  const r = s.ex.rleDecode(inPtr, encoded.length, outPtr, len);
  if (r < 0) throw new PagewireError(ErrorCode.RLE_CORRUPT, `pagewire: RLE stream rejected: ${statusMessage(r)}`);
  out.set(mem(s).subarray(outPtr, outPtr + len));
}
