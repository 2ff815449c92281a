/**
 * WebSocket transports in Node with the `ws` package: a client (`connectWebSocket`, ws:// and
 * wss://) and a server (`listenWebSocket`, over node:http or node:https). Both use the
 * browser-safe adapter in websocket.ts with ws's extras: pause/resume of the socket when the
 * reader falls behind, send callbacks for event-driven write backpressure, and `terminate()` for
 * abortive closes. Compression is off (pages are encoded already) and `maxPayload` bounds what
 * one message may allocate.
 *
 * `ws` is an optional peer dependency (browser users never need it): it is imported on the first
 * call, and without it both functions fail with NOT_READY saying how to install it.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type WebSocket from 'ws';
import { ErrorCode, PagewireError } from '../errors.js';
import { DEFAULT_HIGH_WATER_BYTES, positiveOption, toTransportError } from './chunk-queue.js';
import { AcceptQueue, type AcceptOptions, type TransportListener } from './listener.js';
import { checkPort } from './tcp.js';
import type { PemInput } from './tls.js';
import { webSocketTransport, type WebSocketFlowHooks, type WebSocketLike, type WebSocketTransport } from './websocket.js';

/** Options shared by the `ws` client and server. */
export interface NodeWebSocketOptions {
  /** Bytes buffered per direction before pushing back (default 1 MiB). */
  highWaterBytes?: number;
  /** Largest message sent; larger writes are split (default 1 MiB). */
  maxMessageBytes?: number;
  /** Largest message accepted; a bigger one fails the connection (default 16 MiB). */
  maxPayloadBytes?: number;
}

type WsModule = typeof import('ws');
let wsModule: Promise<WsModule> | undefined;

/** The `ws` package, imported once. @throws PagewireError NOT_READY when it is not installed */
function loadWs(what: string): Promise<WsModule> {
  wsModule ??= import('ws').catch((cause: unknown) => {
    wsModule = undefined;
    throw new PagewireError(ErrorCode.NOT_READY,
      `${what} needs the ws package, an optional peer dependency of pagewire: npm install ws`, { cause });
  });
  return wsModule;
}

function hooksFor(ws: WebSocket): WebSocketFlowHooks {
  return {
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    send: (data, done) => ws.send(data, { binary: true }, done),
    terminate: () => ws.terminate(),
  };
}

/** Options for {@link connectWebSocket}. */
export interface ConnectWebSocketOptions extends NodeWebSocketOptions {
  /** Give up with TIMEOUT when not open within this many milliseconds (default 10000). */
  timeoutMs?: number;
  /** Trusted CAs for wss:// (PEM). */
  ca?: PemInput;
  /** Client certificate and key for wss:// servers that ask for one. */
  cert?: PemInput;
  key?: PemInput;
  /** Server name for SNI and certificate checking. */
  servername?: string;
  /** Verify the server certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Extra HTTP headers for the upgrade request. */
  headers?: Record<string, string>;
  /** Label for logs (default `ws <url>`). */
  label?: string;
  /**
   * Mask client frames with random keys (default false: a zero key, which ws then skips, for about
   * 5x the client's send throughput). Masking protects proxies from scripts in browsers; a Node
   * client sending opaque bytes it produced itself does not need it.
   */
  randomMask?: boolean;
}

const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

/**
 * Connect to a WebSocket server with `ws`.
 * @param url `ws://host:port/path` or `wss://…`
 * @param options timeouts, TLS options, buffer limits
 * @returns the open transport
 * @throws PagewireError TIMEOUT when not open in time, TRANSPORT_CLOSED when refused or the TLS
 *   certificate is not trusted, INVALID_ARGUMENT for a bad URL, NOT_READY without the ws package
 */
export async function connectWebSocket(url: string, options: ConnectWebSocketOptions = {}): Promise<WebSocketTransport> {
  const timeoutMs = positiveOption('timeoutMs', options.timeoutMs, 10_000);
  const maxPayload = positiveOption('maxPayloadBytes', options.maxPayloadBytes, 16 << 20);
  const { default: WebSocketClass } = await loadWs('connectWebSocket');
  let ws: WebSocket;
  try {
    // ws hands the TLS fields to https.request; servername is one @types/ws does not list.
    const clientOptions = {
      perMessageDeflate: false,
      maxPayload,
      handshakeTimeout: timeoutMs,
      ca: options.ca as https.RequestOptions['ca'],
      cert: options.cert as https.RequestOptions['cert'],
      key: options.key as https.RequestOptions['key'],
      servername: options.servername,
      rejectUnauthorized: options.rejectUnauthorized ?? true,
      headers: options.headers,
      generateMask: options.randomMask === true ? undefined : zeroMask,
    };
    ws = new WebSocketClass(url, clientOptions as WebSocket.ClientOptions);
  } catch (err) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `connectWebSocket ${url}: ${(err as Error).message}`, { cause: err });
  }
  return webSocketTransport(ws as unknown as WebSocketLike, {
    highWaterBytes: options.highWaterBytes,
    maxMessageBytes: options.maxMessageBytes,
    timeoutMs,
    binaryType: 'nodebuffer',
    label: options.label ?? `ws ${url}`,
    hooks: hooksFor(ws),
  });
}

/** Options for {@link listenWebSocket}. */
export interface ListenWebSocketOptions extends NodeWebSocketOptions {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port to bind; 0 picks a free one (default 0). */
  port?: number;
  /** Only accept upgrades on this path (default: any path). */
  path?: string;
  /** Serve wss:// with this key and certificate. */
  tls?: { key: PemInput; cert: PemInput; ca?: PemInput };
  /** Connections held while nobody accepts; more are terminated (default 16). */
  maxPending?: number;
}

/** A WebSocket listener; `url` is the address clients connect to. */
export interface WebSocketListener extends TransportListener {
  /** `ws://host:port/` or `wss://…`. */
  readonly url: string;
}

/**
 * Serve WebSocket connections with `ws` over node:http (or node:https with `tls`).
 * @param options bind address, path, TLS key/certificate, limits
 * @returns a listener whose `accept()` yields one transport per connection
 * @throws PagewireError TRANSPORT_CLOSED when the address cannot be bound, NOT_READY without the ws package
 */
export async function listenWebSocket(options: ListenWebSocketOptions = {}): Promise<WebSocketListener> {
  const host = options.host ?? '127.0.0.1';
  const port = checkPort(options.port ?? 0, true);
  const hwm = positiveOption('highWaterBytes', options.highWaterBytes, DEFAULT_HIGH_WATER_BYTES);
  const maxPayload = positiveOption('maxPayloadBytes', options.maxPayloadBytes, 16 << 20);
  const maxPending = positiveOption('maxPending', options.maxPending, 16);
  const { WebSocketServer } = await loadWs('listenWebSocket');
  const scheme = options.tls !== undefined ? 'wss' : 'ws';
  const server =
    options.tls !== undefined
      ? https.createServer({
          key: options.tls.key as https.ServerOptions['key'],
          cert: options.tls.cert as https.ServerOptions['cert'],
          ca: options.tls.ca as https.ServerOptions['ca'],
        })
      : http.createServer();
  server.on('request', (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('WebSocket only\n');
  });
  const wss = new WebSocketServer({ server, path: options.path, perMessageDeflate: false, maxPayload });
  const queue = new AcceptQueue(`${scheme} listener ${host}:${port}`, maxPending);
  wss.on('connection', (ws, req) => {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    ws.on('error', () => {
      // Reported through the transport.
    });
    webSocketTransport(ws as unknown as WebSocketLike, {
      highWaterBytes: hwm,
      maxMessageBytes: options.maxMessageBytes,
      binaryType: 'nodebuffer',
      label: `${scheme} ${remote}`,
      remote,
      hooks: hooksFor(ws),
    }).then(
      (t) => queue.push(t),
      () => ws.terminate(),
    );
  });
  wss.on('error', () => queue.close());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(toTransportError(err, `${scheme} listen ${host}:${port}`)));
    server.listen({ host, port }, () => resolve());
  });
  server.on('error', () => queue.close());
  const bound = (server.address() as AddressInfo).port;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  return {
    port: bound,
    host,
    url: `${scheme}://${hostInUrl}:${bound}${options.path ?? '/'}`,
    accept: (o?: AcceptOptions) => queue.accept(o),
    close: async () => {
      queue.close();
      // Not awaited: ws calls back only once every accepted client closed, and those belong to
      // their owners. Stops the upgrade handling and the listening socket now.
      wss.close();
      server.close();
    },
    [Symbol.asyncIterator]: () => queue.iterate(),
  };
}
