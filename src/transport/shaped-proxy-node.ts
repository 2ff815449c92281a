/**
 * A userspace shaping TCP proxy (Node only): listens on 127.0.0.1, connects each client to
 * `target`, and shapes both directions with the same model as {@link shapeTransport} (token
 * bucket, one-way delay and jitter, drop/corrupt/stall). Use it to put a real socket pair behind
 * the shaped-link model, e.g. to check the in-memory shaped link against real sockets, or where
 * netem is unavailable (delay) while tc tbf would do the rate.
 */
import * as net from 'node:net';
import { ErrorCode, PagewireError } from '../errors.js';
import { DEFAULT_HIGH_WATER_BYTES, positiveOption, toTransportError } from './chunk-queue.js';
import { shapeTransport, type ShapedTransport, type ShapingOptions, type ShapingStats } from './shaped.js';
import { SocketTransport, checkPort, connectTcp, resetSocket } from './tcp.js';
import type { Transport } from './types.js';

/** Options for {@link startShapingProxy}. */
export interface ShapingProxyOptions extends Omit<ShapingOptions, 'label'> {
  /** Address to listen on (default 127.0.0.1). */
  listenHost?: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  listenPort?: number;
  /** Where to forward connections. */
  target: { host?: string; port: number };
  /** Overrides for the client-to-target direction. */
  upstream?: ShapingOptions;
  /** Overrides for the target-to-client direction. */
  downstream?: ShapingOptions;
  /** Socket buffer high-water mark (default 1 MiB). */
  socketHighWaterBytes?: number;
}

/** Which way data flows through the proxy. */
export type ProxyDirection = 'upstream' | 'downstream';

/** A running shaping proxy. */
export interface ShapingProxy {
  /** The port clients connect to. */
  readonly port: number;
  /** Connections currently proxied. */
  readonly activeConnections: number;
  /** Connections accepted so far. */
  readonly totalConnections: number;
  /** Counters summed over every connection so far, per direction. */
  stats(): Record<ProxyDirection, ShapingStats>;
  /** Drop every current connection (both sockets are reset). Returns how many were dropped. */
  dropAll(): number;
  /** Corrupt the next chunk sent in `direction` on every current connection (and new ones until applied). */
  corruptNextByte(direction?: ProxyDirection, mask?: number): void;
  /** Stall every current connection for `ms` milliseconds, both directions. */
  stall(ms: number): void;
  /** Stop listening and reset every connection. */
  close(): Promise<void>;
}

interface Link {
  up: ShapedTransport;
  down: ShapedTransport;
}

function zeroStats(): ShapingStats {
  return {
    bytesSent: 0,
    bytesDelivered: 0,
    bytesReceived: 0,
    throttledMs: 0,
    stalledMs: 0,
    maxQueuedBytes: 0,
    drops: 0,
    corruptions: 0,
    lastCorruptedOffset: -1,
    stalls: 0,
  };
}

function addStats(into: ShapingStats, s: ShapingStats): void {
  into.bytesSent += s.bytesSent;
  into.bytesDelivered += s.bytesDelivered;
  into.bytesReceived += s.bytesReceived;
  into.throttledMs += s.throttledMs;
  into.stalledMs += s.stalledMs;
  into.maxQueuedBytes = Math.max(into.maxQueuedBytes, s.maxQueuedBytes);
  into.drops += s.drops;
  into.corruptions += s.corruptions;
  if (s.lastCorruptedOffset >= 0) into.lastCorruptedOffset = s.lastCorruptedOffset;
  into.stalls += s.stalls;
}

/** Copy `from` into `to` until end of stream; any failure tears the whole link down. */
async function pipe(from: Transport, to: Transport, link: Link): Promise<void> {
  try {
    for (;;) {
      const chunk = await from.read();
      if (chunk === null) break;
      await to.write(chunk);
    }
    await to.end();
  } catch (err) {
    const e = toTransportError(err, 'shaping proxy');
    link.up.destroy(e);
    link.down.destroy(e);
  }
}

/**
 * Start a shaping proxy in front of `target`.
 * @param options listen address, target, shaping model (both directions, with overrides)
 * @returns the running proxy; `close()` it when done
 * @throws PagewireError TRANSPORT_CLOSED when the listen address cannot be bound,
 *   INVALID_ARGUMENT for bad options
 */
export async function startShapingProxy(options: ShapingProxyOptions): Promise<ShapingProxy> {
  const { listenHost = '127.0.0.1', listenPort = 0, target, upstream, downstream, socketHighWaterBytes, ...common } = options;
  checkPort(listenPort, true);
  if (target === undefined || typeof target !== 'object') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'startShapingProxy: target is required');
  const targetPort = checkPort(target.port, false);
  const targetHost = target.host ?? '127.0.0.1';
  const hwm = positiveOption('socketHighWaterBytes', socketHighWaterBytes, DEFAULT_HIGH_WATER_BYTES);
  // Validate the shaping options once, up front, on a throwaway wrapper.
  shapeTransport(nullTransport, { ...common, ...upstream });
  shapeTransport(nullTransport, { ...common, ...downstream });

  const links = new Set<Link>();
  const finished: Record<ProxyDirection, ShapingStats> = { upstream: zeroStats(), downstream: zeroStats() };
  const pendingCorrupt: Record<ProxyDirection, number> = { upstream: 0, downstream: 0 };
  let total = 0;
  let seedStep = 0;
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, highWaterMark: hwm });
  const sockets = new Set<net.Socket>();

  server.on('connection', (raw: net.Socket) => {
    total++;
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => {
      // Reported through the client transport.
    });
    raw.pause();
    const n = seedStep++;
    const client = new SocketTransport(raw, { highWaterBytes: hwm, label: 'proxy client' });
    connectTcp({ host: targetHost, port: targetPort, highWaterBytes: hwm, label: 'proxy target' }).then(
      (upstreamSocket) => {
        sockets.add(upstreamSocket.socket);
        upstreamSocket.socket.on('close', () => sockets.delete(upstreamSocket.socket));
        const seed = (common.seed ?? 1) + 2 * n;
        const link: Link = {
          up: shapeTransport(upstreamSocket, { ...common, seed, ...upstream, label: 'proxy upstream' }),
          down: shapeTransport(client, { ...common, seed: seed + 1, ...downstream, label: 'proxy downstream' }),
        };
        for (const dir of ['upstream', 'downstream'] as const) {
          if (pendingCorrupt[dir] !== 0) {
            (dir === 'upstream' ? link.up : link.down).corruptNextByte(pendingCorrupt[dir]);
            pendingCorrupt[dir] = 0;
          }
        }
        links.add(link);
        raw.resume();
        let open = 2;
        const done = (): void => {
          if (--open > 0) return;
          links.delete(link);
          addStats(finished.upstream, link.up.stats);
          addStats(finished.downstream, link.down.stats);
        };
        void pipe(client, link.up, link).finally(done);
        void pipe(upstreamSocket, link.down, link).finally(done);
      },
      () => client.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(toTransportError(err, `shaping proxy listen ${listenHost}:${listenPort}`)));
    server.listen({ host: listenHost, port: listenPort }, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    get activeConnections() {
      return links.size;
    },
    get totalConnections() {
      return total;
    },
    stats() {
      const out = { upstream: zeroStats(), downstream: zeroStats() };
      addStats(out.upstream, finished.upstream);
      addStats(out.downstream, finished.downstream);
      for (const l of links) {
        addStats(out.upstream, l.up.stats);
        addStats(out.downstream, l.down.stats);
      }
      return out;
    },
    dropAll() {
      const n = links.size;
      for (const l of links) {
        l.up.dropNow();
        l.down.dropNow();
      }
      return n;
    },
    corruptNextByte(direction: ProxyDirection = 'upstream', mask = 0xff) {
      if (links.size === 0) {
        pendingCorrupt[direction] = mask;
        return;
      }
      for (const l of links) (direction === 'upstream' ? l.up : l.down).corruptNextByte(mask);
    },
    stall(ms: number) {
      for (const l of links) {
        l.up.stall(ms);
        l.down.stall(ms);
      }
    },
    async close() {
      server.close();
      for (const l of links) {
        l.up.destroy();
        l.down.destroy();
      }
      for (const s of sockets) resetSocket(s);
    },
  };
}

/** A transport that is never used: lets option validation run without a connection. */
const nullTransport: Transport = {
  label: 'validation',
  closed: true,
  write: () => Promise.reject(new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'unused')),
  read: () => Promise.resolve(null),
  end: () => Promise.resolve(),
  destroy: () => {},
};
