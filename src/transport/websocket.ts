/**
 * WebSocket transport over the platform WebSocket (browsers, Deno, Node 22's global) or any object
 * with the WebSocket API (the `ws` package's client and server sockets). Browser-safe.
 *
 * Each `write` is sent as binary messages of at most `maxMessageBytes`; message boundaries mean
 * nothing to readers (a Transport is a byte stream).
 *
 * Backpressure, sending: `write` resolves while `bufferedAmount` (bytes queued by the socket and
 * not yet sent) is below `highWaterBytes`; otherwise it polls `bufferedAmount` every `pollMs`
 * (browsers have no drain event). With {@link WebSocketFlowHooks} (the Node `ws` adapter) it is
 * event-driven instead. Receiving: browsers cannot pause a WebSocket, so received messages queue
 * without bound unless hooks can pause the socket (ws can); protocols above bound the window with
 * acknowledgements.
 *
 * Closing: `end()` closes with code 1000 after queued data (WebSocket has no half-close: the peer
 * reads `null`, and writing after that fails). `destroy()` terminates (ws) or closes with code 4000;
 * a peer that sees any close code other than 1000 fails with TRANSPORT_CLOSED.
 */
import { ErrorCode, PagewireError } from '../errors.js';
import { ChunkQueue, DEFAULT_HIGH_WATER_BYTES, WaiterList, closedError, positiveOption, toTransportError } from './chunk-queue.js';
import type { Transport } from './types.js';

/** A message event as WebSocket implementations deliver it. */
export interface WebSocketMessageEventLike {
  readonly data: unknown;
}

/** A close event as WebSocket implementations deliver it. */
export interface WebSocketCloseEventLike {
  readonly code: number;
  readonly reason?: string;
  readonly wasClean?: boolean;
}

/** The part of the WebSocket API this transport uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  readonly url?: string;
  send(data: ArrayBufferView | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (ev: never) => void): void;
  removeEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (ev: never) => void): void;
}

/**
 * Optional extras a platform can provide for real backpressure (the Node `ws` adapter does).
 */
export interface WebSocketFlowHooks {
  /** Stop reading from the network. */
  pause(): void;
  /** Start reading again. */
  resume(): void;
  /** Send `data`; call `done` once it was handed to the OS (or with an error). */
  send(data: Uint8Array, done: (err?: Error) => void): void;
  /** Drop the connection without a close handshake. */
  terminate(): void;
}

/** Options for {@link webSocketTransport}. */
export interface WebSocketTransportOptions {
  /** Bytes queued for sending before `write` waits, and received bytes before pausing (1 MiB). */
  highWaterBytes?: number;
  /** Largest message sent; larger writes are split (default 1 MiB). */
  maxMessageBytes?: number;
  /** How often `bufferedAmount` is polled while a writer waits (default 5 ms). */
  pollMs?: number;
  /** Reject with TIMEOUT when a connecting socket is not open within this time (default 10000). */
  timeoutMs?: number;
  /** `binaryType` to set (default `arraybuffer`; the Node adapter uses `nodebuffer`). */
  binaryType?: string;
  /** Label for logs (default `ws <url>`). */
  label?: string;
  /** The peer's address for `remote` (default: the socket's `url`). */
  remote?: string;
  /** Platform extras for event-driven backpressure. */
  hooks?: WebSocketFlowHooks;
}

const CONNECTING = 0;
const OPEN = 1;
/** Close code for an abortive close from a platform without `terminate` (private-use range). */
export const WS_DESTROY_CODE = 4000;

/** A Transport over an open WebSocket. Create with {@link webSocketTransport}. */
export class WebSocketTransport implements Transport {
  readonly label: string;
  readonly remote: string | undefined;
  private readonly incoming: ChunkQueue;
  private readonly writers = new WaiterList();
  private readonly hwm: number;
  private readonly maxMessageBytes: number;
  private readonly pollMs: number;
  private readonly hooks: WebSocketFlowHooks | undefined;
  /** Bytes handed to hooks.send and not yet confirmed written. */
  private unconfirmed = 0;
  private paused = false;
  private ended = false;
  private error: PagewireError | null = null;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly onMessage: (ev: WebSocketMessageEventLike) => void;
  private readonly onClose: (ev: WebSocketCloseEventLike) => void;
  private readonly onError: (ev: unknown) => void;

  /** @internal use {@link webSocketTransport} */
  constructor(
    readonly socket: WebSocketLike,
    options: WebSocketTransportOptions,
  ) {
    this.hwm = positiveOption('highWaterBytes', options.highWaterBytes, DEFAULT_HIGH_WATER_BYTES);
    this.maxMessageBytes = positiveOption('maxMessageBytes', options.maxMessageBytes, 1 << 20);
    this.pollMs = positiveOption('pollMs', options.pollMs, 5);
    this.hooks = options.hooks;
    this.remote = options.remote ?? socket.url;
    this.label = options.label ?? `ws ${socket.url ?? ''}`.trim();
    this.incoming = new ChunkQueue(this.hwm, () => {
      if (this.paused && this.incoming.bufferedBytes < this.hwm && this.error === null) {
        this.paused = false;
        this.hooks?.resume();
      }
    });
    this.onMessage = (ev) => {
      const data = ev.data;
      let chunk: Uint8Array;
      if (data instanceof ArrayBuffer) chunk = new Uint8Array(data);
      else if (ArrayBuffer.isView(data)) chunk = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      else {
        this.destroy(closedError(this.label, 'received a non-binary message'));
        return;
      }
      if (!this.incoming.push(chunk) && this.hooks !== undefined && !this.paused) {
        this.paused = true;
        this.hooks.pause();
      }
    };
    this.onClose = (ev) => {
      this.detach();
      if (ev.code === 1000) {
        this.incoming.end();
        // No half-close: once the peer closed, nothing more can be sent.
        this.ended = true;
        this.writers.fail(closedError(this.label, 'peer closed the connection'));
        this.stopPolling();
      } else {
        this.fail(closedError(this.label, `connection closed with code ${ev.code}${ev.reason ? ` (${ev.reason})` : ''}`));
      }
    };
    this.onError = (ev) => {
      const cause = typeof ev === 'object' && ev !== null && 'error' in ev ? (ev as { error: unknown }).error : undefined;
      this.fail(cause !== undefined ? toTransportError(cause, this.label) : closedError(this.label, 'WebSocket error'));
    };
    socket.binaryType = options.binaryType ?? 'arraybuffer';
    socket.addEventListener('message', this.onMessage as (ev: never) => void);
    socket.addEventListener('close', this.onClose as (ev: never) => void);
    socket.addEventListener('error', this.onError as (ev: never) => void);
  }

  get closed(): boolean {
    return this.ended || this.error !== null;
  }

  /** Bytes received and not yet read. */
  get bufferedBytes(): number {
    return this.incoming.bufferedBytes;
  }

  /** Bytes written and not yet sent. */
  get queuedBytes(): number {
    return this.hooks !== undefined ? this.unconfirmed : this.socket.bufferedAmount;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended || this.socket.readyState !== OPEN) return Promise.reject(closedError(this.label, 'write after close'));
    try {
      for (let off = 0; off < chunk.byteLength; off += this.maxMessageBytes) {
        const piece = chunk.subarray(off, Math.min(chunk.byteLength, off + this.maxMessageBytes));
        if (this.hooks !== undefined) {
          const n = piece.byteLength;
          this.unconfirmed += n;
          this.hooks.send(piece, (err) => {
            this.unconfirmed -= n;
            if (err !== undefined && err !== null) this.fail(toTransportError(err, this.label));
            else if (this.unconfirmed < this.hwm) this.writers.wake();
          });
        } else {
          this.socket.send(piece);
        }
      }
    } catch (err) {
      const e = toTransportError(err, this.label);
      this.fail(e);
      return Promise.reject(e);
    }
    if (this.queuedBytes < this.hwm) return Promise.resolve();
    const p = this.writers.wait();
    if (this.hooks === undefined) this.startPolling();
    return p;
  }

  read(): Promise<Uint8Array | null> {
    return this.incoming.read();
  }

  end(): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve();
    this.ended = true;
    try {
      this.socket.close(1000);
    } catch (err) {
      const e = toTransportError(err, this.label);
      this.fail(e);
      return Promise.reject(e);
    }
    // Resolve once the socket sent what it had queued (the close frame follows the data).
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.error !== null || this.queuedBytes === 0 || this.incoming.done) resolve();
        else setTimeout(check, this.pollMs);
      };
      check();
    });
  }

  destroy(err?: Error): void {
    if (this.error !== null) return;
    this.fail(err === undefined ? closedError(this.label, 'destroyed') : toTransportError(err, this.label), true);
    this.detach();
    try {
      if (this.hooks !== undefined) this.hooks.terminate();
      else this.socket.close(WS_DESTROY_CODE, 'destroyed');
    } catch {
      // Already closing: nothing more to do.
    }
  }

  private fail(e: PagewireError, force = false): void {
    if (this.error !== null) return;
    this.error = e;
    this.incoming.fail(e, force);
    this.writers.fail(e);
    this.stopPolling();
  }

  private detach(): void {
    this.socket.removeEventListener('message', this.onMessage as (ev: never) => void);
    this.socket.removeEventListener('close', this.onClose as (ev: never) => void);
    this.socket.removeEventListener('error', this.onError as (ev: never) => void);
    // Keep swallowing late error events so they do not surface as unhandled.
    this.socket.addEventListener('error', noop);
  }

  private startPolling(): void {
    if (this.pollTimer !== undefined) return;
    const tick = (): void => {
      this.pollTimer = undefined;
      if (this.error !== null || this.writers.size === 0) return;
      if (this.socket.bufferedAmount < this.hwm) {
        this.writers.wake();
        return;
      }
      this.pollTimer = setTimeout(tick, this.pollMs);
    };
    this.pollTimer = setTimeout(tick, this.pollMs);
  }

  private stopPolling(): void {
    if (this.pollTimer !== undefined) clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
  }
}

function noop(): void {}

/**
 * Wrap a WebSocket (open or still connecting) as a Transport.
 * @param socket a platform WebSocket or an object with the same API
 * @param options high-water mark, message size, timeouts, platform hooks
 * @returns the transport, once the socket is open
 * @throws PagewireError TIMEOUT when not open within `timeoutMs`, TRANSPORT_CLOSED when the
 *   socket closes or fails first
 */
export function webSocketTransport(socket: WebSocketLike, options: WebSocketTransportOptions = {}): Promise<WebSocketTransport> {
  const label = options.label ?? `ws ${socket.url ?? ''}`.trim();
  if (socket.readyState === OPEN) return Promise.resolve(new WebSocketTransport(socket, options));
  if (socket.readyState !== CONNECTING) return Promise.reject(closedError(label, 'socket is closed'));
  const timeoutMs = positiveOption('timeoutMs', options.timeoutMs, 10_000);
  socket.binaryType = options.binaryType ?? 'arraybuffer';
  return new Promise<WebSocketTransport>((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.removeEventListener('open', onOpen as (ev: never) => void);
      socket.removeEventListener('close', onClose as (ev: never) => void);
      socket.removeEventListener('error', onError as (ev: never) => void);
    };
    const onOpen = (): void => {
      cleanup();
      resolve(new WebSocketTransport(socket, options));
    };
    const onClose = (ev: WebSocketCloseEventLike): void => {
      cleanup();
      reject(closedError(label, `closed before open (code ${ev.code})`));
    };
    let firstError: unknown;
    const onError = (ev: unknown): void => {
      firstError = typeof ev === 'object' && ev !== null && 'error' in ev ? (ev as { error: unknown }).error : ev;
      cleanup();
      socket.addEventListener('error', noop);
      reject(firstError instanceof Error ? toTransportError(firstError, label) : closedError(label, 'could not connect'));
    };
    const timer = setTimeout(() => {
      cleanup();
      socket.addEventListener('error', noop);
      try {
        if (options.hooks !== undefined) options.hooks.terminate();
        else socket.close();
      } catch {
        // Closing a connecting socket may throw on some platforms; it is abandoned either way.
      }
      reject(new PagewireError(ErrorCode.TIMEOUT, `${label}: not open within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.addEventListener('open', onOpen as (ev: never) => void);
    socket.addEventListener('close', onClose as (ev: never) => void);
    socket.addEventListener('error', onError as (ev: never) => void);
  });
}

/** Options for {@link openWebSocket}. */
export interface OpenWebSocketOptions extends WebSocketTransportOptions {
  /** Subprotocols to offer. */
  protocols?: string | string[];
  /** WebSocket constructor to use (default `globalThis.WebSocket`). */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocketLike;
}

/**
 * Connect with the platform WebSocket (in Node use `connectWebSocket` from `pagewire/node`).
 * @param url `ws://` or `wss://` address
 * @param options constructor, subprotocols and transport options
 * @returns the open transport
 * @throws PagewireError INVALID_ARGUMENT when no WebSocket constructor exists, TIMEOUT or
 *   TRANSPORT_CLOSED as {@link webSocketTransport}
 */
export function openWebSocket(url: string, options: OpenWebSocketOptions = {}): Promise<WebSocketTransport> {
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: new (url: string, protocols?: string | string[]) => WebSocketLike }).WebSocket;
  if (Ctor === undefined) {
    return Promise.reject(new PagewireError(ErrorCode.INVALID_ARGUMENT, 'openWebSocket: no WebSocket on this platform; pass options.WebSocket'));
  }
  let socket: WebSocketLike;
  try {
    socket = new Ctor(url, options.protocols);
  } catch (err) {
    return Promise.reject(new PagewireError(ErrorCode.INVALID_ARGUMENT, `openWebSocket: ${(err as Error).message}`, { cause: err }));
  }
  return webSocketTransport(socket, options);
}
