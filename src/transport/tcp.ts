/**
 * TCP transport over node:net (Node only), and the socket adapter the TLS transport reuses.
 *
 * Backpressure: `write` resolves when the socket's write buffer is below its high-water mark
 * (Node's `write()` returned true) or on `'drain'`. Reading: received chunks wait in a queue; at
 * the high-water mark the socket is paused, Node stops reading from the kernel, the kernel's
 * receive window closes and the peer's writes stall. `destroy()` resets the connection (RST), so
 * the peer sees a failure, never a clean end; `end()` is a FIN (half-close).
 */
import * as net from 'node:net';
import { ErrorCode, PagewireError } from '../errors.js';
import { ChunkQueue, DEFAULT_HIGH_WATER_BYTES, WaiterList, closedError, positiveOption, toTransportError } from './chunk-queue.js';
import { AcceptQueue, type AcceptOptions, type TransportListener } from './listener.js';
import type { Transport } from './types.js';

/** Options shared by every socket-based transport. */
export interface SocketTransportOptions {
  /** Bytes buffered per direction before pushing back (default 1 MiB). */
  highWaterBytes?: number;
  /** Label for logs (default `tcp <remote>`). */
  label?: string;
}

/** A Transport over a connected node:net (or node:tls) socket. */
export class SocketTransport implements Transport {
  readonly label: string;
  readonly remote: string | undefined;
  private readonly incoming: ChunkQueue;
  private readonly writers = new WaiterList();
  private ended = false;
  private error: PagewireError | null = null;
  private readonly resetTarget: net.Socket;

  /**
   * @param socket a connected socket (for TLS, the TLS socket)
   * @param options high-water mark and label
   * @param rawSocket the TCP socket under `socket` (the one to reset on destroy), if different
   */
  constructor(
    readonly socket: net.Socket,
    options: SocketTransportOptions = {},
    rawSocket?: net.Socket,
  ) {
    const hwm = positiveOption('highWaterBytes', options.highWaterBytes, DEFAULT_HIGH_WATER_BYTES);
    const addrOf = rawSocket ?? socket;
    this.remote = addrOf.remoteAddress !== undefined ? `${addrOf.remoteAddress}:${addrOf.remotePort}` : undefined;
    this.label = options.label ?? `tcp ${this.remote ?? '?'}`;
    this.resetTarget = rawSocket ?? socket;
    this.incoming = new ChunkQueue(hwm, () => {
      if (socket.isPaused() && this.incoming.bufferedBytes < hwm && this.error === null) socket.resume();
    });
    socket.setNoDelay(true);
    socket.on('data', (data: Buffer) => {
      // Hand out plain Uint8Array views: callers never see Buffer.
      const chunk = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (!this.incoming.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.incoming.end());
    socket.on('drain', () => this.writers.wake());
    socket.on('error', (err: Error) => this.fail(toTransportError(err, this.label)));
    // After the peer's end, a close only stops writes: readers still get what is queued, then null.
    socket.on('close', () => this.fail(closedError(this.label, 'connection closed')));
    if (rawSocket !== undefined && rawSocket !== socket) {
      rawSocket.on('error', (err: Error) => this.fail(toTransportError(err, this.label)));
    }
  }

  get closed(): boolean {
    return this.ended || this.error !== null;
  }

  /** Bytes received and not yet read. */
  get bufferedBytes(): number {
    return this.incoming.bufferedBytes;
  }

  /** Bytes written and not yet handed to the kernel. */
  get writableBytes(): number {
    return this.socket.writableLength;
  }

  write(chunk: Uint8Array, release?: (chunk: Uint8Array) => void): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended) return Promise.reject(closedError(this.label, 'write after end'));
    if (chunk.byteLength === 0) return Promise.resolve();
    // Node calls the callback once the bytes went to the kernel (or the write failed): from
    // then on the socket holds no reference to `chunk`.
    if (this.socket.write(chunk, release === undefined ? undefined : () => release(chunk))) return Promise.resolve();
    return this.writers.wait();
  }

  read(): Promise<Uint8Array | null> {
    return this.incoming.read();
  }

  end(): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve();
    this.ended = true;
    return new Promise<void>((resolve, reject) => {
      this.socket.end(() => {
        if (this.error !== null && !this.incoming.endSeen) reject(this.error);
        else resolve();
      });
      // If the socket fails before 'finish', the callback may never run.
      this.socket.once('close', () => (this.error !== null && !this.incoming.endSeen ? reject(this.error) : resolve()));
    });
  }

  destroy(err?: Error): void {
    if (this.error !== null) return;
    this.fail(err === undefined ? closedError(this.label, 'destroyed') : toTransportError(err, this.label), true);
    resetSocket(this.resetTarget);
    if (this.resetTarget !== this.socket) this.socket.destroy();
  }

  private fail(e: PagewireError, force = false): void {
    if (this.error !== null) return;
    this.error = e;
    this.incoming.fail(e, force);
    this.writers.fail(e);
  }
}

/** Close `socket` abortively (RST) so the peer sees a reset, not a clean end. */
export function resetSocket(socket: net.Socket): void {
  try {
    if (!socket.destroyed && socket.readyState !== 'opening') {
      socket.resetAndDestroy();
      return;
    }
  } catch {
    // Not a TCP handle (or already gone): fall through to a plain destroy.
  }
  socket.destroy();
}

/** Options for {@link connectTcp}. */
export interface TcpConnectOptions extends SocketTransportOptions {
  /** Host to connect to (default 127.0.0.1). */
  host?: string;
  /** Port to connect to. */
  port: number;
  /** Give up with TIMEOUT when not connected within this many milliseconds (default 10000). */
  timeoutMs?: number;
}

/** @internal validates a port number */
export function checkPort(port: unknown, allowZero: boolean): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `port must be an integer in ${allowZero ? 0 : 1}..65535, got ${String(port)}`);
  }
  return port;
}

/**
 * Open a raw TCP connection, settled once connected.
 * @internal shared by connectTcp and connectTls
 */
export function openSocket(host: string, port: number, timeoutMs: number, hwm: number, label: string): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    // net.Socket passes these on to stream.Duplex; @types/node does not list them.
    const socketOptions = { writableHighWaterMark: hwm, readableHighWaterMark: hwm, allowHalfOpen: true };
    const socket = new net.Socket(socketOptions as net.SocketConstructorOpts);
    socket.connect({ host, port });
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(new PagewireError(ErrorCode.TIMEOUT, `${label}: not connected within ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(toTransportError(err, label));
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('connect', onConnect);
    };
    socket.once('error', onError);
    socket.once('connect', onConnect);
  });
}

/**
 * Connect to a TCP server.
 * @param options host, port, timeout, high-water mark
 * @returns the connected transport
 * @throws PagewireError TIMEOUT when not connected in time, TRANSPORT_CLOSED when refused or
 *   failed, INVALID_ARGUMENT for a bad port
 */
export async function connectTcp(options: TcpConnectOptions): Promise<SocketTransport> {
  const host = options.host ?? '127.0.0.1';
  const port = checkPort(options.port, false);
  const hwm = positiveOption('highWaterBytes', options.highWaterBytes, DEFAULT_HIGH_WATER_BYTES);
  const timeoutMs = positiveOption('timeoutMs', options.timeoutMs, 10_000);
  const label = options.label ?? `tcp ${host}:${port}`;
  const socket = await openSocket(host, port, timeoutMs, hwm, label);
  return new SocketTransport(socket, { highWaterBytes: hwm, label });
}

/** Options for {@link listenTcp}. */
export interface TcpListenOptions extends SocketTransportOptions {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port to bind; 0 picks a free one (default 0). */
  port?: number;
  /** Connections held while nobody accepts; more are reset (default 16). */
  maxPending?: number;
}

/**
 * A net.Server whose connections go through `upgrade` (identity for TCP, a TLS handshake for TLS)
 * into an accept queue.
 * @internal shared by listenTcp and listenTls
 */
export async function listenSockets(
  kind: string,
  options: TcpListenOptions,
  upgrade: (raw: net.Socket, hwm: number) => Promise<SocketTransport>,
): Promise<TransportListener> {
  const host = options.host ?? '127.0.0.1';
  const port = checkPort(options.port ?? 0, true);
  const hwm = positiveOption('highWaterBytes', options.highWaterBytes, DEFAULT_HIGH_WATER_BYTES);
  const maxPending = positiveOption('maxPending', options.maxPending, 16);
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: hwm });
  const queue = new AcceptQueue(`${kind} listener ${host}:${port}`, maxPending);
  server.on('connection', (raw: net.Socket) => {
    raw.on('error', () => {
      // Reported through the transport once upgraded; before that the connection is just dropped.
    });
    upgrade(raw, hwm).then(
      (t) => queue.push(t),
      () => {
        queue.rejected++;
        resetSocket(raw);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(toTransportError(err, `${kind} listen ${host}:${port}`)));
    server.listen({ host, port }, () => resolve());
  });
  server.on('error', () => queue.close());
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    host,
    accept: (o?: AcceptOptions) => queue.accept(o),
    close: async () => {
      queue.close();
      server.close();
    },
    [Symbol.asyncIterator]: () => queue.iterate(),
  };
}

/**
 * Listen for TCP connections.
 * @param options host (default 127.0.0.1), port (default 0: any free port), high-water mark
 * @returns a listener: `accept()` each connection as a Transport, `close()` to stop
 * @throws PagewireError TRANSPORT_CLOSED when the address cannot be bound
 */
export function listenTcp(options: TcpListenOptions = {}): Promise<TransportListener> {
  return listenSockets('tcp', options, async (raw, hwm) => new SocketTransport(raw, { highWaterBytes: hwm, label: options.label }));
}
