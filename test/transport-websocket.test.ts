import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { openWebSocket, webSocketTransport, type WebSocketLike, type WebSocketTransport } from '../src/transport/websocket.js';
import { connectWebSocket, listenWebSocket, type WebSocketListener } from '../src/transport/websocket-node.js';
import type { Transport } from '../src/transport/types.js';
import { type TestCerts, drain, isPending, makeCerts, pattern, rejection, sha256, writeAll } from './fixtures/transport-util.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
function track<T extends Transport>(t: T): T {
  cleanup.push(() => t.destroy());
  return t;
}
async function listen(opts: Parameters<typeof listenWebSocket>[0] = {}): Promise<WebSocketListener> {
  const l = await listenWebSocket(opts);
  cleanup.push(() => l.close());
  return l;
}
/** Connect and accept: [client, server]. */
async function pair(l: WebSocketListener, connect: () => Promise<WebSocketTransport>): Promise<[WebSocketTransport, Transport]> {
  const c = connect();
  const s = track(await l.accept({ timeoutMs: 5000 }));
  return [track(await c), s];
}

/** Read exactly `n` bytes and return their SHA-256 (fails on an early end). */
async function readBytes(t: Transport, n: number): Promise<string> {
  const h = createHash('sha256');
  let got = 0;
  while (got < n) {
    const c = await t.read();
    if (c === null) throw new Error(`ended after ${got} of ${n} bytes`);
    if (got + c.byteLength > n) throw new Error(`more than ${n} bytes`);
    h.update(c);
    got += c.byteLength;
  }
  return h.digest('hex');
}

let certs: TestCerts;
beforeAll(() => {
  certs = makeCerts();
});

describe('WebSocket transport (ws server on loopback)', () => {
  it('moves 32 MiB each way intact, split into bounded messages', async () => {
    const l = await listen({ path: '/pw' });
    expect(l.url).toBe(`ws://127.0.0.1:${l.port}/pw`);
    const [client, server] = await pair(l, () => connectWebSocket(l.url, { maxMessageBytes: 256 << 10 }));
    expect(client.remote).toBe(l.url);
    expect(server.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    const up = pattern(32 << 20, 31);
    const down = pattern(32 << 20, 32);
    // 4 MiB writes are split into 256 KiB messages; the server accepts up to 16 MiB per message.
    // WebSocket has no half-close: end only after both directions were read in full.
    const [, , gotUp, gotDown] = await Promise.all([
      writeAll(client, up, 4 << 20, false), writeAll(server, down, 1 << 20, false), readBytes(server, up.byteLength), readBytes(client, down.byteLength),
    ]);
    expect(gotUp).toBe(sha256(up));
    expect(gotDown).toBe(sha256(down));
    await client.end();
    expect(await server.read()).toBeNull();
  });

  it('a reader that does not read stops the writer (ws pause + send callbacks); bounded', async () => {
    const hwm = 256 << 10;
    const l = await listen({ highWaterBytes: hwm });
    const [client, server] = await pair(l, () => connectWebSocket(l.url, { highWaterBytes: hwm }));
    const chunk = 64 << 10;
    let accepted = 0;
    let blocked: Promise<void> | null = null;
    for (let i = 0; i < 4096; i++) {
      const w = client.write(pattern(chunk, i + 1));
      accepted += chunk;
      if (await isPending(w, 1)) {
        const still = await Promise.race([w.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 300))]);
        if (still) {
          blocked = w;
          break;
        }
      }
    }
    expect(blocked).not.toBeNull();
    expect(accepted).toBeLessThan(48 << 20);
    expect((server as WebSocketTransport).bufferedBytes).toBeLessThanOrEqual(hwm + 2 * chunk);
    console.log(`ws backpressure: writer stalled after ${(accepted / 2 ** 20).toFixed(1)} MiB`);
    const reading = drain(server);
    await blocked;
    await client.end();
    const got = await reading;
    expect(got.bytes).toBe(accepted);
    const expected = new Uint8Array(accepted);
    for (let i = 0; i < accepted / chunk; i++) expected.set(pattern(chunk, i + 1), i * chunk);
    expect(got.sha).toBe(sha256(expected));
  });

  it('end() closes cleanly (code 1000): the peer reads null and can no longer write (no half-close)', async () => {
    const l = await listen();
    const [client, server] = await pair(l, () => connectWebSocket(l.url));
    await client.write(new Uint8Array([1, 2, 3]));
    await client.end();
    expect((await drain(server)).bytes).toBe(3);
    expect(server.closed).toBe(true);
    expect((await rejection(server.write(new Uint8Array(1)))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(await client.read()).toBeNull();
  });

  it('destroy() terminates: the peer fails with TRANSPORT_CLOSED, not an end', async () => {
    const l = await listen();
    const [client, server] = await pair(l, () => connectWebSocket(l.url));
    const pending = server.read();
    client.destroy();
    const e = await rejection(pending);
    expect(e.code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(e.message).toMatch(/1006/);
  });

  it('wss:// with a certificate made for the test; an untrusted server is refused', async () => {
    const l = await listen({ tls: { key: certs.key, cert: certs.cert } });
    expect(l.url.startsWith('wss://')).toBe(true);
    const [client, server] = await pair(l, () => connectWebSocket(l.url, { ca: certs.ca, servername: 'localhost' }));
    const data = pattern(4 << 20, 9);
    const [, got] = await Promise.all([writeAll(client, data), drain(server)]);
    expect(got.sha).toBe(sha256(data));
    const e = await rejection(connectWebSocket(l.url, { ca: certs.otherCa, servername: 'localhost' }));
    expect(e.code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('the generic adapter (no hooks: bufferedAmount polling, close code 4000) works over a ws socket', async () => {
    const l = await listen();
    const [client, server] = await pair(l, () => openWebSocket(l.url, { WebSocket: WebSocket as unknown as new (url: string) => WebSocketLike, highWaterBytes: 128 << 10 }));
    const data = pattern(8 << 20, 4);
    const [, got] = await Promise.all([writeAll(client, data, 512 << 10), drain(server)]);
    expect(got.sha).toBe(sha256(data));
    // Destroy without terminate(): a 4000 close, which the peer reports as a failure.
    const [c2, s2] = await pair(l, () => webSocketTransport(new WebSocket(l.url) as unknown as WebSocketLike));
    const pending = s2.read();
    c2.destroy();
    const e = await rejection(pending);
    expect(e.code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(e.message).toMatch(/4000/);
  });

  it('a text message fails the transport', async () => {
    const l = await listen();
    const raw = new WebSocket(l.url);
    cleanup.push(() => raw.terminate());
    const server = track(await l.accept({ timeoutMs: 5000 }));
    await new Promise((r) => raw.once('open', r));
    raw.send('hello');
    expect((await rejection(server.read())).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('a message above maxPayloadBytes fails the connection', async () => {
    const l = await listen({ maxPayloadBytes: 1024 });
    const [client, server] = await pair(l, () => connectWebSocket(l.url));
    await client.write(new Uint8Array(4096));
    expect((await rejection(server.read())).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('refused connections and bad URLs fail with codes', async () => {
    const l = await listen();
    const port = l.port;
    await l.close();
    expect((await rejection(connectWebSocket(`ws://127.0.0.1:${port}/`, { timeoutMs: 5000 }))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await rejection(connectWebSocket('not a url'))).code).toBe(ErrorCode.INVALID_ARGUMENT);
    // Node 20 has no global WebSocket: openWebSocket needs one passed in.
    const hasGlobal = typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function';
    const e = await rejection(openWebSocket(`ws://127.0.0.1:${port}/`, { timeoutMs: 5000 }));
    expect(e.code).toBe(hasGlobal ? ErrorCode.TRANSPORT_CLOSED : ErrorCode.INVALID_ARGUMENT);
  });

  it('close() stops listening; accepted connections stay usable', async () => {
    const l = await listen();
    const [client, server] = await pair(l, () => connectWebSocket(l.url));
    await l.close();
    await client.write(new Uint8Array([1, 2, 3]));
    expect([...(await server.read())!]).toEqual([1, 2, 3]);
    expect((await rejection(l.accept())).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await rejection(connectWebSocket(l.url, { timeoutMs: 5000 }))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('plain HTTP requests get 426', async () => {
    const l = await listen();
    const res = await fetch(`http://127.0.0.1:${l.port}/`);
    expect(res.status).toBe(426);
    await res.text();
  });
});
