import { rmSync } from 'node:fs';
import { MessageChannel, Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { messagePortTransport, type MessagePortLike, type MessagePortTransport } from '../src/transport/message-port.js';
import type { Transport } from '../src/transport/types.js';
import { createCore } from '../src/core/core.js';
import { Connection } from '../src/protocol/connection.js';
import { FrameType } from '../src/protocol/frame.js';
import { drain, isPending, pattern, readAll, rejection, sha256, transpileSources, writeAll } from './fixtures/transport-util.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
function track<T extends Transport>(t: T): T {
  cleanup.push(() => t.destroy());
  return t;
}

let srcDir: string;
beforeAll(() => {
  srcDir = transpileSources(['errors.ts', 'transport/chunk-queue.ts', 'transport/message-port.ts', 'transport/types.ts']);
});
afterAll(() => rmSync(srcDir, { recursive: true, force: true }));

const workerUrl = fileURLToPath(new URL('./fixtures/port-echo-worker.mjs', import.meta.url));

function channelPair(windowBytes?: number): [MessagePortTransport, MessagePortTransport] {
  const ch = new MessageChannel();
  return [track(messagePortTransport(ch.port1, { windowBytes, label: 'p1' })), track(messagePortTransport(ch.port2, { windowBytes, label: 'p2' }))];
}

/** A DOM-style view of a port: postMessage / addEventListener / start / close only. */
function domStyle(port: MessagePortLike & { addEventListener: NonNullable<MessagePortLike['addEventListener']> }): MessagePortLike {
  return {
    postMessage: (m, t) => port.postMessage(m, t),
    addEventListener: (type, l) => port.addEventListener(type, l),
    removeEventListener: (type, l) => port.removeEventListener!(type, l),
    start: () => port.start?.(),
    close: () => port.close?.(),
  };
}

describe('MessagePort transport', () => {
  it('moves 16 MiB each way over a MessageChannel, intact', async () => {
    const [a, b] = channelPair();
    const up = pattern(16 << 20, 1);
    const down = pattern(16 << 20, 2);
    const [, , gotUp, gotDown] = await Promise.all([writeAll(a, up, 256 << 10), writeAll(b, down, 100_000), drain(b), drain(a)]);
    expect(gotUp.sha).toBe(sha256(up));
    expect(gotDown.sha).toBe(sha256(down));
  });

  it('credit flow control: a writer facing a reader that does not read stops at the window', async () => {
    const windowBytes = 256 << 10;
    const [a, b] = channelPair(windowBytes);
    const chunk = 48 << 10;
    // The peer's first grant arrives as a message: wait for it (bounded).
    for (let i = 0; i < 200 && a.creditBytes === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(a.creditBytes).toBe(windowBytes);
    let accepted = 0;
    let blocked: Promise<void> | null = null;
    for (let i = 0; i < 1000; i++) {
      const w = a.write(pattern(chunk, i + 1));
      accepted += chunk;
      if (await isPending(w, 5)) {
        blocked = w;
        break;
      }
    }
    expect(blocked).not.toBeNull();
    // At most the window plus the one chunk that overdrew it.
    expect(accepted).toBeLessThanOrEqual(windowBytes + chunk);
    expect(accepted).toBeGreaterThanOrEqual(windowBytes);
    // Nothing moves while nobody reads.
    expect(await isPending(blocked!, 20)).toBe(true);
    expect(b.bufferedBytes).toBe(accepted);
    const reading = readAll(b);
    await blocked;
    await a.end();
    const got = await reading;
    const expected = new Uint8Array(accepted);
    for (let i = 0; i < accepted / chunk; i++) expected.set(pattern(chunk, i + 1), i * chunk);
    expect(sha256(got)).toBe(sha256(expected));
  });

  it('transfers whole buffers (detached after write) and copies views into larger buffers', async () => {
    const [a, b] = channelPair();
    const whole = new Uint8Array([1, 2, 3, 4]);
    await a.write(whole);
    expect(whole.byteLength).toBe(0);
    const big = new Uint8Array([9, 8, 7, 6, 5]);
    const view = big.subarray(1, 3);
    await a.write(view);
    expect(view.byteLength).toBe(2);
    expect([...big]).toEqual([9, 8, 7, 6, 5]);
    expect([...(await b.read())!]).toEqual([1, 2, 3, 4]);
    expect([...(await b.read())!]).toEqual([8, 7]);
    const ch = new MessageChannel();
    const c = track(messagePortTransport(ch.port1, { transfer: false }));
    const d = track(messagePortTransport(ch.port2));
    const kept = new Uint8Array([5, 5]);
    await c.write(kept);
    expect(kept.byteLength).toBe(2);
    expect([...(await d.read())!]).toEqual([5, 5]);
  });

  it('large writes go through buffers the reader side returns: released at once, reused once back, bytes intact', async () => {
    const [a, b] = channelPair(1 << 20);
    const released: Uint8Array[] = [];
    const frameBuf = new ArrayBuffer(128 * 1024);
    const sent: Uint8Array[] = [];
    const got: Uint8Array[] = [];
    for (let i = 0; i < 6; i++) {
      // a view into a larger buffer, as the frame writer's pool hands out
      const chunk = new Uint8Array(frameBuf, 0, 100_000);
      chunk.set(pattern(100_000, i + 1));
      sent.push(chunk.slice());
      await a.write(chunk, (c) => released.push(c));
      expect(released.length).toBe(i + 1); // copied out: the writer may reuse it now
      expect(frameBuf.byteLength).toBe(128 * 1024); // not detached
      const r = (await b.read())!;
      got.push(r.slice());
      b.recycle(r); // the reader is done: the buffer goes back
      await new Promise((res) => setTimeout(res, 5));
    }
    expect(got.map(sha256)).toEqual(sent.map(sha256));
    expect(a.poolStats.allocated).toBe(1);
    expect(a.poolStats.reused).toBe(5);
    expect(a.poolStats.returned).toBe(6);
    // a chunk that did not come from the peer's pool is not returned
    const small = new Uint8Array([1, 2, 3]);
    await a.write(small);
    b.recycle((await b.read())!);
    await new Promise((res) => setTimeout(res, 5));
    expect(a.poolStats.returned).toBe(6);
  });

  it('a Connection hands consumed chunks back: frames over the port reuse the pool', async () => {
    const [a, b] = channelPair(1 << 20);
    const core = await createCore();
    const ca = new Connection(a, core);
    const cb = new Connection(b, await createCore());
    const payloads = Array.from({ length: 12 }, (_, i) => pattern(200_000 + i * 1000, i + 3));
    const sending = (async () => {
      await ca.open();
      for (const p of payloads) await ca.send(FrameType.PAGES, p);
    })();
    for (const p of payloads) {
      const f = (await cb.recv())!;
      expect(f.type).toBe(FrameType.PAGES);
      expect(sha256(f.payload)).toBe(sha256(p));
    }
    await sending;
    expect(a.poolStats.reused).toBeGreaterThan(0);
    expect(a.poolStats.returned).toBeGreaterThan(0);
  });

  it('a reader that never recycles costs a new buffer per large write, nothing else', async () => {
    const [a, b] = channelPair(1 << 20);
    for (let i = 0; i < 3; i++) {
      await a.write(pattern(40_000, i + 7).subarray(0, 40_000), () => undefined);
      expect(sha256((await b.read())!)).toBe(sha256(pattern(40_000, i + 7)));
    }
    expect(a.poolStats).toEqual({ reused: 0, allocated: 3, returned: 0 });
  });

  it('works with DOM-style ports (addEventListener/start), half-closes, and closes the ports when both ended', async () => {
    const ch = new MessageChannel();
    let closed = 0;
    ch.port1.on('close', () => closed++);
    const a = track(messagePortTransport(domStyle(ch.port1 as unknown as Parameters<typeof domStyle>[0])));
    const b = track(messagePortTransport(domStyle(ch.port2 as unknown as Parameters<typeof domStyle>[0])));
    await a.write(new Uint8Array([1]));
    await a.end();
    expect([...(await b.read())!]).toEqual([1]);
    expect(await b.read()).toBeNull();
    await b.write(new Uint8Array([2]));
    await b.end();
    expect([...(await a.read())!]).toEqual([2]);
    expect(await a.read()).toBeNull();
    for (let i = 0; i < 50 && closed === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(1);
  });

  it('destroy() fails the peer with TRANSPORT_CLOSED', async () => {
    const [a, b] = channelPair();
    const pending = b.read();
    a.destroy(new Error('injected'));
    const e = await rejection(pending);
    expect(e.code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(e.message).toMatch(/injected/);
    expect((await rejection(a.write(new Uint8Array(1)))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('echoes 32 MiB through a worker thread over a transferred MessageChannel port', async () => {
    const ch = new MessageChannel();
    const worker = new Worker(workerUrl, { workerData: { dir: srcDir, port: ch.port2 }, transferList: [ch.port2] });
    cleanup.push(() => worker.terminate());
    const t = track(messagePortTransport(ch.port1, { label: 'main' }));
    const data = pattern(32 << 20, 77);
    const started = performance.now();
    const [, got] = await Promise.all([writeAll(t, data, 1 << 20), drain(t)]);
    const ms = performance.now() - started;
    expect(got.sha).toBe(sha256(data));
    console.log(`message-port worker echo 32 MiB: ${ms.toFixed(0)} ms (${((32 / ms) * 1000).toFixed(0)} MiB/s each way)`);
  });

  it('uses the Worker object and parentPort directly', async () => {
    const worker = new Worker(workerUrl, { workerData: { dir: srcDir } });
    cleanup.push(() => worker.terminate());
    const t = track(messagePortTransport(worker as unknown as MessagePortLike, { closePort: false }));
    const data = pattern(1 << 20, 5);
    const [, got] = await Promise.all([writeAll(t, data), drain(t)]);
    expect(got.sha).toBe(sha256(data));
  });

  it('a worker that dies fails the transport with TRANSPORT_CLOSED', async () => {
    const ch = new MessageChannel();
    const worker = new Worker(workerUrl, { workerData: { dir: srcDir, port: ch.port2 }, transferList: [ch.port2] });
    const t = track(messagePortTransport(ch.port1));
    await t.write(new Uint8Array([1]));
    expect([...(await t.read())!]).toEqual([1]);
    const pending = rejection(t.read());
    await worker.terminate();
    expect((await pending).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('rejects ports it cannot listen on', () => {
    expect(() => messagePortTransport({ postMessage: () => {} })).toThrowError(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
  });
});
