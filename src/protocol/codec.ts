/**
 * Frame writer and incremental frame reader (see frame.ts for the layout).
 *
 * The reader assembles each payload directly in a reusable arena of a core instance, checks the
 * checksum there in place, and hands out a frame whose `payload` view is re-derived on access (it
 * stays valid until the next `next()` call on the same reader, even if the core's memory grew).
 * It never allocates from an untrusted length: a header announcing more than `maxFrameBytes` is
 * refused before any byte of its payload is buffered. Truncation just waits for more bytes.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { Arena, type Core } from '../core/core.js';
import type { CoreExports } from '../core/exports.js';
import {
  FRAME_HEADER_BYTES, PREAMBLE_BYTES, DEFAULT_MAX_FRAME_BYTES, FLAG_MAC, MAC_BYTES, checkPreamble, frameSeed, frameTypeName, isFrameType,
  type Frame, type FrameType,
} from './frame.js';

type Xxh64 = CoreExports['xxh64'];

/** Computes frame checksums with the core; copies outside payloads into a scratch arena first. */
export class FrameChecksum {
  private readonly scratch: Arena;
  private readonly hash: Xxh64;
  constructor(private readonly core: Core) {
    this.scratch = new Arena(core);
    this.hash = core.exports.xxh64;
  }

  /** Checksum of `payload` (anywhere) for the given header fields. */
  of(payload: Uint8Array, type: number, flags: number, channel: number, seq: number): number {
    const seed = frameSeed(type, flags, channel, seq);
    const mem = this.core.exports.memory.buffer;
    let ptr: number;
    if (payload.buffer === mem) {
      ptr = payload.byteOffset;
    } else {
      ptr = this.scratch.ensure(payload.byteLength);
      this.core.u8().set(payload, ptr);
    }
    return Number(BigInt.asUintN(32, this.hash(ptr, payload.byteLength, seed)));
  }

  /** Checksum of bytes already in core memory at `ptr`. */
  ofCore(ptr: number, len: number, type: number, flags: number, channel: number, seq: number): number {
    return Number(BigInt.asUintN(32, this.hash(ptr, len, frameSeed(type, flags, channel, seq))));
  }

  dispose(): void {
    this.scratch.dispose();
  }
}

/** Frames below this size are allocated per frame (cheap); larger ones come from the pool. */
const POOL_MIN_FRAME_BYTES = 64 * 1024;
/** Released frame buffers kept for reuse. */
const POOL_MAX_BUFFERS = 16;
/** Pool buffers are sized in steps of this, so frames of similar size share them. */
const POOL_STEP_BYTES = 64 * 1024;

/**
 * Builds frame buffers (header + payload in one Uint8Array, ready for a transport).
 *
 * A fresh typed array per large frame costs more than sending it: on first-touch-expensive hosts
 * 3-4 ms per 1 MiB frame (zeroing and page faults), against 0.1 ms to fill a reused one. So
 * frames of 64 KiB and more are built in pooled buffers that come back through {@link release},
 * which a transport calls once it no longer refers to the bytes (Transport.write's `release`).
 * A buffer that never comes back is simply garbage collected: the pool only holds returned ones.
 */
export class FrameWriter {
  /** Next sequence number (per direction, per session). */
  seq = 0;
  /** Frame buffers taken from the pool / newly allocated (statistics). */
  reused = 0;
  allocated = 0;
  private readonly sum: FrameChecksum;
  private readonly pool: ArrayBuffer[] = [];
  /** Returns a frame's buffer to the pool (pass it to Transport.write). */
  readonly release = (chunk: Uint8Array): void => {
    const buf = chunk.buffer;
    // a transferred (detached) buffer has length 0; foreign chunks are not ours to keep
    if (buf instanceof ArrayBuffer && buf.byteLength >= POOL_MIN_FRAME_BYTES && chunk.byteOffset === 0 && this.pool.length < POOL_MAX_BUFFERS) {
      this.pool.push(buf);
    }
  };

  constructor(core: Core, private readonly channel = 0) {
    this.sum = new FrameChecksum(core);
  }

  /**
   * One frame in a buffer the caller hands to a transport (with {@link release} where the
   * transport supports it).
   * @param payload bytes anywhere (core memory or JS memory); copied once into the frame
   * @param trailerBytes room left after the payload (the MAC tag of a FLAG_MAC frame), not
   *   counted in payloadLength; the caller fills it
   */
  frame(type: FrameType, payload: Uint8Array, flags = 0, trailerBytes = 0): Uint8Array {
    const seq = this.seq;
    this.seq = (this.seq + 1) >>> 0;
    const checksum = this.sum.of(payload, type, flags, this.channel, seq);
    const out = this.buffer(FRAME_HEADER_BYTES + payload.byteLength + trailerBytes);
    const dv = new DataView(out.buffer, out.byteOffset, FRAME_HEADER_BYTES);
    dv.setUint32(0, payload.byteLength, true);
    dv.setUint8(4, type);
    dv.setUint8(5, flags);
    dv.setUint16(6, this.channel, true);
    dv.setUint32(8, seq, true);
    dv.setUint32(12, checksum, true);
    out.set(payload, FRAME_HEADER_BYTES);
    return out;
  }

  /** A buffer of `n` bytes: small ones new, large ones from the pool when one fits. */
  private buffer(n: number): Uint8Array {
    if (n < POOL_MIN_FRAME_BYTES) return new Uint8Array(n);
    const pool = this.pool;
    for (let i = pool.length - 1; i >= 0; i--) {
      const b = pool[i]!;
      if (b.byteLength >= n) {
        pool[i] = pool[pool.length - 1]!;
        pool.pop();
        this.reused++;
        return new Uint8Array(b, 0, n);
      }
    }
    this.allocated++;
    return new Uint8Array(new ArrayBuffer(Math.ceil(n / POOL_STEP_BYTES) * POOL_STEP_BYTES), 0, n);
  }

  dispose(): void {
    this.sum.dispose();
    this.pool.length = 0;
  }
}

/** A frame whose payload lives in the reader's arena. */
class ArenaFrame implements Frame {
  constructor(
    readonly type: FrameType, readonly flags: number, readonly channel: number, readonly seq: number,
    private readonly core: Core, private readonly ptr: number, private readonly len: number,
  ) {}
  get payload(): Uint8Array {
    return this.core.u8().subarray(this.ptr, this.ptr + this.len);
  }
}

/** Options of {@link FrameReader}. */
export interface FrameReaderOptions {
  /** Refuse frames whose payload is larger (default 32 MiB). */
  maxFrameBytes?: number;
  /** Expect the 8-byte preamble before the first frame (default true). */
  preamble?: boolean;
  /** Called with each pushed chunk once every byte of it was consumed (Transport.recycle). */
  onConsumed?: (chunk: Uint8Array) => void;
}

/** Incremental frame parser: push chunks of any size, pull whole verified frames. */
export class FrameReader {
  /** Bytes consumed so far (preamble + frames), for statistics. */
  bytesRead = 0;
  /** The peer's minor protocol version, once the preamble was read. */
  peerMinor = -1;
  /** Frames with larger payloads are refused (FRAME_TOO_LARGE); may change between frames. */
  maxFrameBytes: number;
  private needPreamble: boolean;
  private readonly chunks: Uint8Array[] = [];
  private chunkOff = 0;
  private buffered = 0;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly arena: Arena;
  private readonly sum: FrameChecksum;
  private failed: PagewireError | null = null;
  /** Where the last frame's header + payload lie in the arena when it carried a tag. */
  private lastMac: { ptr: number; len: number } | null = null;
  private readonly onConsumed: ((chunk: Uint8Array) => void) | undefined;

  constructor(private readonly core: Core, options: FrameReaderOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.onConsumed = options.onConsumed;
    this.needPreamble = options.preamble ?? true;
    this.arena = new Arena(core);
    this.sum = new FrameChecksum(core);
  }

  /** Bytes received but not yet parsed. */
  get pending(): number {
    return this.buffered;
  }

  /** Append received bytes (kept by reference until consumed). */
  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
  }

  /**
   * The next whole frame, or null if more bytes are needed.
   * @throws PagewireError FRAME_CORRUPT, FRAME_TOO_LARGE, CHECKSUM_MISMATCH, VERSION_MISMATCH
   *   (the reader then stays failed: a byte stream cannot be resynchronised)
   */
  next(): Frame | null {
    if (this.failed) throw this.failed;
    try {
      return this.parse();
    } catch (err) {
      this.failed = err instanceof PagewireError ? err : new PagewireError(ErrorCode.FRAME_CORRUPT, 'frame parse failed', { cause: err });
      throw this.failed;
    }
  }

  private parse(): Frame | null {
    if (this.needPreamble) {
      if (this.buffered < PREAMBLE_BYTES) return null;
      const pre = new Uint8Array(PREAMBLE_BYTES);
      this.take(pre, 0, PREAMBLE_BYTES);
      this.peerMinor = checkPreamble(pre);
      this.needPreamble = false;
      this.bytesRead += PREAMBLE_BYTES;
    }
    if (this.buffered < FRAME_HEADER_BYTES) return null;
    this.peek(this.header, FRAME_HEADER_BYTES);
    const hv = this.headerView;
    const len = hv.getUint32(0, true);
    const type = this.header[4]!;
    if (!isFrameType(type)) {
      throw new PagewireError(ErrorCode.FRAME_CORRUPT, `unknown frame type ${type}`);
    }
    if (len > this.maxFrameBytes) {
      throw new PagewireError(ErrorCode.FRAME_TOO_LARGE, `${frameTypeName(type)} frame announces ${len} bytes, more than the ${this.maxFrameBytes}-byte limit`);
    }
    const flags = this.header[5]!;
    const tagBytes = (flags & FLAG_MAC) !== 0 ? MAC_BYTES : 0;
    if (this.buffered < FRAME_HEADER_BYTES + len + tagBytes) return null;
    const channel = hv.getUint16(6, true);
    const seq = hv.getUint32(8, true);
    const checksum = hv.getUint32(12, true);
    // An authenticated frame keeps its header next to its payload and tag in the arena, so its MAC
    // is computed over one contiguous span: [header][payload][tag].
    let ptr: number;
    if (tagBytes > 0) {
      const base = this.arena.ensure(FRAME_HEADER_BYTES + len + tagBytes);
      this.take(this.core.u8(), base, FRAME_HEADER_BYTES);
      ptr = base + FRAME_HEADER_BYTES;
    } else {
      this.skip(FRAME_HEADER_BYTES);
      ptr = this.arena.ensure(len);
    }
    this.take(this.core.u8(), ptr, len + tagBytes);
    const actual = this.sum.ofCore(ptr, len, type, flags, channel, seq);
    if (actual !== checksum) {
      throw new PagewireError(ErrorCode.CHECKSUM_MISMATCH, `${frameTypeName(type)} frame #${seq} failed its checksum (got ${hex32(actual)}, header says ${hex32(checksum)})`);
    }
    this.bytesRead += FRAME_HEADER_BYTES + len + tagBytes;
    this.lastMac = tagBytes > 0 ? { ptr: ptr - FRAME_HEADER_BYTES, len: FRAME_HEADER_BYTES + len } : null;
    return new ArenaFrame(type, flags, channel, seq, this.core, ptr, len);
  }

  /**
   * The last frame's authenticated span (header and payload) and its tag, as views into core
   * memory valid until the next `next()`; null when that frame carried no tag (no FLAG_MAC).
   */
  macView(): { signed: Uint8Array; tag: Uint8Array } | null {
    const m = this.lastMac;
    if (!m) return null;
    const u8 = this.core.u8();
    return { signed: u8.subarray(m.ptr, m.ptr + m.len), tag: u8.subarray(m.ptr + m.len, m.ptr + m.len + MAC_BYTES) };
  }

  /** Copy `n` bytes from the queue into dst[off..] without consuming them. */
  private peek(dst: Uint8Array, n: number): void {
    let i = 0;
    let off = this.chunkOff;
    let got = 0;
    while (got < n) {
      const c = this.chunks[i]!;
      const k = Math.min(n - got, c.byteLength - off);
      dst.set(c.subarray(off, off + k), got);
      got += k;
      i++;
      off = 0;
    }
  }

  /** Consume `n` bytes into dst[off..]. */
  private take(dst: Uint8Array, dstOff: number, n: number): void {
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const k = Math.min(n - got, c.byteLength - this.chunkOff);
      dst.set(c.subarray(this.chunkOff, this.chunkOff + k), dstOff + got);
      got += k;
      this.advance(k);
    }
  }

  private skip(n: number): void {
    while (n > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(n, c.byteLength - this.chunkOff);
      this.advance(k);
      n -= k;
    }
  }

  private advance(k: number): void {
    this.chunkOff += k;
    this.buffered -= k;
    if (this.chunkOff === this.chunks[0]!.byteLength) {
      const done = this.chunks.shift()!;
      this.chunkOff = 0;
      this.onConsumed?.(done);
    }
  }

  dispose(): void {
    this.arena.dispose();
    this.sum.dispose();
    this.chunks.length = 0;
  }
}

function hex32(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}
