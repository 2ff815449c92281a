/**
 * Building blocks shared by the transports: the receive queue behind every pull-based `read()`,
 * a small waiter list for writers blocked on backpressure, and error helpers that turn anything a
 * platform throws into a PagewireError. Browser-safe: no `node:*` imports.
 */
import { ErrorCode, PagewireError } from '../errors.js';

/** Default bytes a transport buffers in each direction before it pushes back (1 MiB). */
export const DEFAULT_HIGH_WATER_BYTES = 1 << 20;

/**
 * `err` as a PagewireError: PagewireErrors pass through, anything else becomes `code` with `err` as
 * cause (a `TIMEOUT`-looking platform error becomes TIMEOUT).
 * @param err what the platform threw or emitted
 * @param label the transport's label, for the message
 * @param code the code to use for foreign errors (default TRANSPORT_CLOSED)
 */
export function toTransportError(err: unknown, label: string, code: ErrorCode = ErrorCode.TRANSPORT_CLOSED): PagewireError {
  if (err instanceof PagewireError) return err;
  const sysCode = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const detail = err instanceof Error ? err.message : String(err);
  if (sysCode === 'ETIMEDOUT') return new PagewireError(ErrorCode.TIMEOUT, `${label}: ${detail}`, { cause: err });
  return new PagewireError(code, `${label}: ${detail}`, { cause: err });
}

/** A TRANSPORT_CLOSED error for `label` with `why`. */
export function closedError(label: string, why: string): PagewireError {
  return new PagewireError(ErrorCode.TRANSPORT_CLOSED, `${label}: ${why}`);
}

/** Validates an optional positive byte count or rate at the public edge. */
export function positiveOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || Number.isNaN(value)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

/** Validates an optional non-negative number (delays, jitter) at the public edge. */
export function nonNegativeOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${name} must be a finite number >= 0, got ${String(value)}`);
  }
  return value;
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (err: PagewireError) => void;
}

/**
 * Writers waiting for room. `wake()` releases all of them (each re-checks nothing: the owner only
 * wakes when there is room); `fail()` rejects them.
 */
export class WaiterList {
  private waiters: Waiter<void>[] = [];

  /** Number of blocked writers. */
  get size(): number {
    return this.waiters.length;
  }

  /** A promise that settles on the next `wake()` or `fail()`. */
  wait(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
    });
  }

  /** Release every waiter. */
  wake(): void {
    if (this.waiters.length === 0) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve();
  }

  /** Reject every waiter with `err`. */
  fail(err: PagewireError): void {
    if (this.waiters.length === 0) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(err);
  }
}

/**
 * The receive side of a transport: chunks the peer sent that nobody has read yet, end of stream,
 * or a failure. The owner pauses its source when `push` returns false and resumes it from
 * `onRead` once `bufferedBytes` is back under the high-water mark.
 *
 * Invariant: chunks are handed out in push order; a failure discards what is queued (an abortive
 * close, like a TCP reset) while an end is seen only after every queued chunk.
 */
export class ChunkQueue {
  /** Bytes queued and not yet read. */
  bufferedBytes = 0;
  private chunks: Uint8Array[] = [];
  private head = 0;
  private ended = false;
  private error: PagewireError | null = null;
  private readers: Waiter<Uint8Array | null>[] = [];

  /**
   * @param highWaterBytes `push` returns false at or above this many queued bytes
   * @param onRead called after a chunk of `bytes` was handed to a reader
   */
  constructor(
    readonly highWaterBytes: number,
    private readonly onRead?: (bytes: number) => void,
  ) {}

  /** True once end of stream was pushed or the queue failed. */
  get done(): boolean {
    return this.ended || this.error !== null;
  }

  /** True once the queue failed. */
  get failed(): boolean {
    return this.error !== null;
  }

  /** True once end of stream was pushed (and the queue did not fail before). */
  get endSeen(): boolean {
    return this.ended;
  }

  /**
   * Queue a chunk from the peer (ignored after end or failure, and when empty).
   * @returns whether the source may keep sending (queued bytes below the high-water mark)
   */
  push(chunk: Uint8Array): boolean {
    if (this.ended || this.error !== null) return false;
    if (chunk.byteLength === 0) return this.bufferedBytes < this.highWaterBytes;
    const r = this.readers.shift();
    if (r !== undefined) {
      r.resolve(chunk);
      this.onRead?.(chunk.byteLength);
      return this.bufferedBytes < this.highWaterBytes;
    }
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.byteLength;
    return this.bufferedBytes < this.highWaterBytes;
  }

  /** The peer ended its stream: readers get `null` after the queued chunks. */
  end(): void {
    if (this.ended || this.error !== null) return;
    this.ended = true;
    if (this.head === this.chunks.length) {
      const rs = this.readers;
      this.readers = [];
      for (const r of rs) r.resolve(null);
    }
  }

  /**
   * The stream failed: queued chunks are dropped; pending and future reads reject with `err`.
   * Once the peer's end of stream was received, only a forced failure (a local `destroy()`)
   * changes anything: the read direction completed cleanly, whatever happens to writes later.
   */
  fail(err: PagewireError, force = false): void {
    if (this.error !== null) return;
    if (this.ended && !force) return;
    this.error = err;
    this.ended = false;
    this.chunks = [];
    this.head = 0;
    this.bufferedBytes = 0;
    const rs = this.readers;
    this.readers = [];
    for (const r of rs) r.reject(err);
  }

  /** Next chunk, `null` at end of stream; rejects once failed. */
  read(): Promise<Uint8Array | null> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.head < this.chunks.length) {
      const chunk = this.chunks[this.head]!;
      this.chunks[this.head] = EMPTY;
      this.head++;
      if (this.head === this.chunks.length) {
        this.chunks = [];
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
        this.chunks = this.chunks.slice(this.head);
        this.head = 0;
      }
      this.bufferedBytes -= chunk.byteLength;
      this.onRead?.(chunk.byteLength);
      return Promise.resolve(chunk);
    }
    if (this.ended) return Promise.resolve(null);
    return new Promise<Uint8Array | null>((resolve, reject) => {
      this.readers.push({ resolve, reject });
    });
  }
}

const EMPTY = new Uint8Array(0);
