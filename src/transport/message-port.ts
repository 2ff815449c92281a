/**
 * MessagePort transport: Web Workers, MessageChannel, BroadcastChannel-free worker_threads ports
 * (`port.on('message')`) and DOM ports (`onmessage` / `addEventListener`). Browser-safe.
 *
 * postMessage never pushes back, so flow control is credit-based: each side grants its peer
 * `windowBytes` of credit at start and grants more as its reader consumes data (in steps of a
 * quarter window). A writer sends while it holds credit (one chunk may overdraw it) and waits
 * otherwise, so at most `windowBytes` plus one chunk is ever queued at the receiver.
 *
 * Large writes (16 KiB and more) are copied into buffers of a small pool that the peer returns once
 * its reader consumed them (Transport.recycle), and the writer's chunk is released at once: a fresh
 * buffer per write costs its allocation, zeroing and first-touch faults (the copy into a warm buffer
 * is the cheap part), and so does the receiving side's garbage. Peers that do not return buffers
 * only leave the pool empty (a new buffer is made per write, as before).
 *
 * Wire messages (plain objects, tagged so other traffic on the port is ignored):
 *   { pw: 'd', b: ArrayBuffer }   data (the buffer is transferred when possible)
 *   { pw: 'd', b, n, r: 1 }       data in the first n bytes of a buffer from the sender's pool,
 *                                 transferred; the reader's side sends it back when consumed
 *   { pw: 'r', b: ArrayBuffer }   a pool buffer coming back (transferred)
 *   { pw: 'c', n: bytes }         credit grant
 *   { pw: 'e' }                   end of stream (half-close)
 *   { pw: 'x', m: reason }        abortive close: the peer fails with TRANSPORT_CLOSED
 */
import { ErrorCode, PagewireError } from '../errors.js';
import { ChunkQueue, DEFAULT_HIGH_WATER_BYTES, WaiterList, closedError, positiveOption, toTransportError } from './chunk-queue.js';
import type { Transport } from './types.js';

/** The part of the MessagePort API this transport uses (DOM, worker_threads, Worker objects). */
export interface MessagePortLike {
  postMessage(message: unknown, transfer?: readonly unknown[]): void;
  /** worker_threads style: `on('message', data => …)`. */
  on?(event: string, listener: (value: unknown) => void): unknown;
  off?(event: string, listener: (value: unknown) => void): unknown;
  /** DOM style: `addEventListener('message', ev => ev.data)`. */
  addEventListener?(type: string, listener: (ev: { data?: unknown }) => void): void;
  removeEventListener?(type: string, listener: (ev: { data?: unknown }) => void): void;
  start?(): void;
  close?(): void;
}

/** Options for {@link messagePortTransport}. */
export interface MessagePortTransportOptions {
  /** Credit granted to the peer: bytes it may send ahead of this side's reader (default 1 MiB). */
  windowBytes?: number;
  /**
   * Transfer (detach) a written chunk's ArrayBuffer instead of copying it when the chunk spans the
   * whole buffer and no `release` was given (default true).
   * Other chunks are copied (large ones into buffers the peer returns). false: every chunk is
   * copied by structured clone.
   */
  transfer?: boolean;
  /** Close the port once both directions ended or on destroy (default true). */
  closePort?: boolean;
  /** Label for logs (default `message-port`). */
  label?: string;
}

type WireMessage =
  | { pw: 'd'; b: ArrayBuffer }
  | { pw: 'd'; b: ArrayBuffer; n: number; r: 1 }
  | { pw: 'r'; b: ArrayBuffer }
  | { pw: 'c'; n: number }
  | { pw: 'e' }
  | { pw: 'x'; m: string };

/** Writes of this many bytes and more go through the pool (see the file header). */
const POOL_MIN_BYTES = 16 * 1024;
/** Returned buffers kept (more than a window's worth of 64 KiB segments). */
const POOL_MAX_BUFFERS = 32;
/**
 * Pool buffers come in two sizes, so any returned buffer of a class fits the next write of that
 * class (buffers sized to each write were mostly too small for the next large one: 21 of 98 large
 * writes of a 32 MiB migration made a new 1 MiB buffer, each a few hundred first-touch faults).
 * Writes above the large size get a buffer of their own size.
 */
const POOL_SMALL_BYTES = 64 * 1024;
const POOL_LARGE_BYTES = (1 << 20) + 64 * 1024;

/** The pool size class of a write of `n` bytes (its buffer's length). */
function poolClass(n: number): number {
  return n <= POOL_SMALL_BYTES ? POOL_SMALL_BYTES : n <= POOL_LARGE_BYTES ? POOL_LARGE_BYTES : n;
}

/** A Transport over a MessagePort-like object. Create with {@link messagePortTransport}. */
export class MessagePortTransport implements Transport {
  readonly label: string;
  private readonly incoming: ChunkQueue;
  private readonly writers = new WaiterList();
  private readonly window: number;
  private readonly transfer: boolean;
  private readonly closePort: boolean;
  /** Bytes this side may still send. */
  private credit = 0;
  /** Bytes read since the last grant. */
  private consumed = 0;
  private ended = false;
  private peerEnded = false;
  private error: PagewireError | null = null;
  private released = false;
  private readonly onNodeMessage: (value: unknown) => void;
  private readonly onDomMessage: (ev: { data?: unknown }) => void;
  private readonly onNodeClose: () => void;
  /** Pool buffers the peer returned, for the next large writes. */
  private readonly pool: ArrayBuffer[] = [];
  /** Buffers received from the peer's pool: returned by {@link recycle}. */
  private readonly returnable = new WeakSet<ArrayBuffer>();
  /** Statistics: large writes sent from a returned buffer / from a new one; buffers returned. */
  readonly poolStats = { reused: 0, allocated: 0, returned: 0 };

  /** @internal use {@link messagePortTransport} */
  constructor(
    readonly port: MessagePortLike,
    options: MessagePortTransportOptions,
  ) {
    this.window = positiveOption('windowBytes', options.windowBytes, DEFAULT_HIGH_WATER_BYTES);
    this.transfer = options.transfer ?? true;
    this.closePort = options.closePort ?? true;
    this.label = options.label ?? 'message-port';
    this.incoming = new ChunkQueue(this.window, (bytes) => {
      this.consumed += bytes;
      if (this.consumed >= this.window / 4 && this.error === null && !this.peerEnded) {
        const n = this.consumed;
        this.consumed = 0;
        this.post({ pw: 'c', n });
      }
    });
    this.onNodeMessage = (value) => this.handle(value);
    this.onDomMessage = (ev) => this.handle(ev.data);
    this.onNodeClose = () => {
      if (!(this.ended && this.peerEnded)) this.fail(closedError(this.label, 'port closed'));
    };
    if (typeof port.on === 'function') {
      port.on('message', this.onNodeMessage);
      port.on('messageerror', this.onNodeClose);
      port.on('close', this.onNodeClose);
    } else if (typeof port.addEventListener === 'function') {
      port.addEventListener('message', this.onDomMessage);
      port.addEventListener('messageerror', this.onNodeClose);
      port.addEventListener('close', this.onNodeClose);
      port.start?.();
    } else {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${this.label}: the port has neither on() nor addEventListener()`);
    }
    this.post({ pw: 'c', n: this.window });
  }

  get closed(): boolean {
    return this.ended || this.error !== null;
  }

  /** Bytes received and not yet read. */
  get bufferedBytes(): number {
    return this.incoming.bufferedBytes;
  }

  /** Credit left: bytes this side may send before it must wait for the peer's reader. */
  get creditBytes(): number {
    return this.credit;
  }

  write(chunk: Uint8Array, release?: (chunk: Uint8Array) => void): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended) return Promise.reject(closedError(this.label, 'write after end'));
    if (chunk.byteLength === 0) return Promise.resolve();
    if (this.credit > 0) return this.send(chunk, release);
    // Wait for credit, then send; the caller sees one promise either way.
    return this.writers.wait().then(() => this.write(chunk, release));
  }

  read(): Promise<Uint8Array | null> {
    return this.incoming.read();
  }

  end(): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve();
    this.ended = true;
    this.post({ pw: 'e' });
    this.writers.fail(closedError(this.label, 'write after end'));
    if (this.peerEnded) this.release();
    return Promise.resolve();
  }

  destroy(err?: Error): void {
    if (this.error !== null) return;
    const e = err === undefined ? closedError(this.label, 'destroyed') : toTransportError(err, this.label);
    this.post({ pw: 'x', m: e.message });
    this.fail(e, true);
  }

  /**
   * The peer's reader is done with `chunk` (a chunk {@link read} returned): a buffer from the
   * peer's pool goes back to it; anything else is left to the garbage collector.
   */
  recycle(chunk: Uint8Array): void {
    const b = chunk.buffer;
    if (!(b instanceof ArrayBuffer) || !this.returnable.has(b)) return;
    this.returnable.delete(b);
    this.post({ pw: 'r', b }, [b]);
  }

  private send(chunk: Uint8Array, release?: (chunk: Uint8Array) => void): Promise<void> {
    const n = chunk.byteLength;
    let ok: boolean;
    if (this.transfer && n >= POOL_MIN_BYTES) {
      let buf: ArrayBuffer;
      if (release === undefined && chunk.byteOffset === 0 && n === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer) {
        // the caller gave the buffer up: it travels as is and joins the pool when it comes back
        buf = chunk.buffer;
      } else {
        buf = this.poolBuffer(n);
        new Uint8Array(buf, 0, n).set(chunk);
        release?.(chunk);
      }
      this.credit -= n;
      ok = this.post({ pw: 'd', b: buf, n, r: 1 }, [buf]);
    } else {
      let buf: ArrayBuffer;
      const whole = chunk.byteOffset === 0 && n === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer;
      if (this.transfer && whole) buf = chunk.buffer as ArrayBuffer;
      else buf = chunk.slice().buffer;
      this.credit -= n;
      ok = this.post({ pw: 'd', b: buf }, this.transfer || !whole ? [buf] : undefined);
    }
    if (!ok) return Promise.reject(this.error ?? closedError(this.label, 'post failed'));
    if (this.credit > 0) return Promise.resolve();
    return this.writers.wait();
  }

  /** A buffer for `n` bytes: a returned one of its size class when there is one, else a new one. */
  private poolBuffer(n: number): ArrayBuffer {
    const size = poolClass(n);
    const pool = this.pool;
    for (let i = pool.length - 1; i >= 0; i--) {
      const b = pool[i]!;
      if (b.byteLength === size) {
        pool[i] = pool[pool.length - 1]!;
        pool.pop();
        this.poolStats.reused++;
        return b;
      }
    }
    this.poolStats.allocated++;
    return new ArrayBuffer(size);
  }

  private post(msg: WireMessage, transfer?: Transferable[]): boolean {
    if (this.released) return false;
    try {
      if (transfer !== undefined) this.port.postMessage(msg, transfer);
      else this.port.postMessage(msg);
      return true;
    } catch (err) {
      this.fail(toTransportError(err, this.label));
      return false;
    }
  }

  private handle(value: unknown): void {
    if (typeof value !== 'object' || value === null) return;
    const msg = value as Partial<{ pw: string; b: unknown; n: unknown; m: unknown; r: unknown }>;
    switch (msg.pw) {
      case 'd':
        if (msg.b instanceof ArrayBuffer && msg.r === 1) {
          const n = typeof msg.n === 'number' && msg.n >= 0 && msg.n <= msg.b.byteLength ? msg.n : msg.b.byteLength;
          this.returnable.add(msg.b);
          this.incoming.push(new Uint8Array(msg.b, 0, n));
        } else if (msg.b instanceof ArrayBuffer) this.incoming.push(new Uint8Array(msg.b));
        else if (ArrayBuffer.isView(msg.b)) this.incoming.push(new Uint8Array(msg.b.buffer, msg.b.byteOffset, msg.b.byteLength));
        return;
      case 'c':
        if (typeof msg.n === 'number' && msg.n > 0) {
          this.credit += msg.n;
          if (this.credit > 0) this.writers.wake();
        }
        return;
      case 'r':
        if (msg.b instanceof ArrayBuffer && msg.b.byteLength >= POOL_MIN_BYTES && this.pool.length < POOL_MAX_BUFFERS) {
          this.pool.push(msg.b);
          this.poolStats.returned++;
        }
        return;
      case 'e':
        this.peerEnded = true;
        this.incoming.end();
        if (this.ended) this.release();
        return;
      case 'x':
        this.fail(closedError(this.label, `peer destroyed the connection${typeof msg.m === 'string' ? `: ${msg.m}` : ''}`));
        return;
      default:
        return;
    }
  }

  private fail(e: PagewireError, force = false): void {
    if (this.error !== null) return;
    this.error = e;
    this.incoming.fail(e, force);
    this.writers.fail(e);
    this.release();
  }

  /** Stop listening and (optionally) close the port; called once both sides are done. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    const port = this.port;
    if (typeof port.off === 'function') {
      port.off('message', this.onNodeMessage);
      port.off('messageerror', this.onNodeClose);
      port.off('close', this.onNodeClose);
    } else if (typeof port.removeEventListener === 'function') {
      port.removeEventListener('message', this.onDomMessage);
      port.removeEventListener('messageerror', this.onNodeClose);
      port.removeEventListener('close', this.onNodeClose);
    }
    if (this.closePort) port.close?.();
  }
}

/**
 * Wrap a MessagePort (or a Worker, or worker_threads' parentPort) as a Transport. Both ends of the
 * port must be wrapped: the two sides exchange credit and end-of-stream messages.
 * @param port a DOM MessagePort, a worker_threads MessagePort, a Worker or anything alike
 * @param options credit window, transfer and port-closing behaviour
 * @returns the transport (usable at once; sending waits for the peer's first credit)
 * @throws PagewireError INVALID_ARGUMENT when `port` has no way to receive messages
 */
export function messagePortTransport(port: MessagePortLike, options: MessagePortTransportOptions = {}): MessagePortTransport {
  return new MessagePortTransport(port, options);
}
