import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { MessageChannel } from 'node:worker_threads';
import { memoryPair } from '../src/transport/memory.js';
import { messagePortTransport } from '../src/transport/message-port.js';
import { shapeTransport, shapedPair, type ShapedTransport } from '../src/transport/shaped.js';
import { startShapingProxy, type ShapingProxy } from '../src/transport/shaped-proxy-node.js';
import { connectTcp } from '../src/transport/tcp.js';
import type { Transport } from '../src/transport/types.js';
import { ManualClock, drain, isPending, pattern, readAll, rejection, sha256, spawnFixture, writeAll } from './fixtures/transport-util.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
function track<T extends Transport>(t: T): T {
  cleanup.push(() => t.destroy());
  return t;
}

/** Read chunks until `bytes` arrived or the stream ended, recording the clock at each read. */
async function readTimed(t: Transport, clock: { now(): number }, out: Array<{ at: number; bytes: number }>): Promise<void> {
  for (;;) {
    const c = await t.read();
    if (c === null) return;
    out.push({ at: clock.now(), bytes: c.byteLength });
  }
}

describe('shaped link (manual clock: exact and deterministic)', () => {
  it('token bucket: after the burst, segments leave at the configured rate', async () => {
    const clock = new ManualClock();
    const [a, b] = shapedPair({ clock, bandwidthBytesPerSec: 1_000_000, burstBytes: 65_536, segmentBytes: 65_536, highWaterBytes: 16 << 20, innerHighWaterBytes: 16 << 20 });
    track(a);
    track(b);
    const got: Array<{ at: number; bytes: number }> = [];
    const reader = readTimed(b, clock, got);
    await a.write(pattern(1 << 20, 1)); // 16 segments of 64 KiB
    await clock.advance(0);
    // Segment k departs at k x 65.536 ms (the first rides on the burst).
    expect(got.length).toBe(1);
    await clock.advance(500);
    expect(got.length).toBe(8); // k = 0..7 depart at <= 458.752 ms
    await clock.advance(600);
    expect(got.length).toBe(16);
    expect(got.map((g) => g.at)).toEqual(Array.from({ length: 16 }, (_, k) => Math.ceil(k * 65.536)));
    expect(a.stats.bytesDelivered).toBe(1 << 20);
    // Throttled from 0 until the last segment's departure (15 x 65.536 ms).
    expect(a.stats.throttledMs).toBeCloseTo(15 * 65.536, 6);
    await a.end();
    await clock.advance(1);
    await reader;
  });

  it('delay and jitter: order is preserved, delays stay in range, the seed decides the schedule', async () => {
    async function run(seed: number): Promise<number[]> {
      const clock = new ManualClock();
      const [a, b] = shapedPair({ clock, delayMs: 50, jitterMs: 40, seed });
      track(a);
      track(b);
      const got: Array<{ at: number; bytes: number }> = [];
      const reader = readTimed(b, clock, got);
      const sent = pattern(100, seed);
      for (let i = 0; i < 100; i++) {
        await a.write(sent.slice(i, i + 1));
        await clock.advance(1);
      }
      const ended = a.end();
      await clock.advance(200);
      await ended;
      await reader;
      expect(got.length).toBe(100);
      return got.map((g, i) => g.at - i); // one-way delay of chunk i (sent at t = i)
    }
    const d1 = await run(7);
    const d1again = await run(7);
    const d2 = await run(8);
    expect(d1again).toEqual(d1);
    expect(d2).not.toEqual(d1);
    for (const d of d1) {
      expect(d).toBeGreaterThanOrEqual(10);
      expect(d).toBeLessThanOrEqual(91); // delay + jitter, plus one timer tick of rounding
    }
    // Arrival times never go backwards (order kept despite jitter).
    const arrivals = d1.map((d, i) => d + i);
    for (let i = 1; i < arrivals.length; i++) expect(arrivals[i]!).toBeGreaterThanOrEqual(arrivals[i - 1]!);
  });

  it('the bytes arrive in order and intact through delay, jitter and rate', async () => {
    const clock = new ManualClock();
    const [a, b] = shapedPair({ clock, delayMs: 20, jitterMs: 15, bandwidthBytesPerSec: 10_000_000, segmentBytes: 4096, seed: 3 });
    track(a);
    track(b);
    const data = pattern(3 << 20, 9);
    const reader = readAll(b);
    const writer = writeAll(a, data, 10_000);
    for (let i = 0; i < 2000 && (await isPending(writer, 1)); i++) await clock.advance(10);
    await writer;
    await clock.advance(1000);
    expect(sha256(await reader)).toBe(sha256(data));
  });

  it('stall(ms) holds delivery, then everything flows in order', async () => {
    const clock = new ManualClock();
    const [a, b] = shapedPair({ clock, delayMs: 10 });
    track(a);
    track(b);
    const got: Array<{ at: number; bytes: number }> = [];
    const reader = readTimed(b, clock, got);
    a.stall(1000);
    await a.write(new Uint8Array(10));
    await a.write(new Uint8Array(20));
    await clock.advance(999);
    expect(got).toEqual([]);
    await clock.advance(2);
    expect(got.map((g) => g.bytes)).toEqual([10, 20]);
    expect(a.stats.stalls).toBe(1);
    expect(a.stats.stalledMs).toBe(1000);
    // A stall also holds what this end reads.
    await b.write(new Uint8Array([42]));
    a.stall(500);
    const r = a.read();
    await clock.advance(499);
    expect(await isPending(r)).toBe(true);
    await clock.advance(2);
    expect([...(await r)!]).toEqual([42]);
    await a.end();
    await clock.advance(20);
    await reader;
  });

  it("passes the writer's release on: called once per chunk, after its last segment left, never for a corrupted copy or a dropped link", async () => {
    const clock = new ManualClock();
    const [ia, ib] = memoryPair({ highWaterBytes: 16 << 20 });
    // an inner transport that, like TCP, releases each chunk once it has taken it (in order)
    const inner: Transport = Object.assign(Object.create(ia) as Transport, {
      write: (c: Uint8Array, rel?: (c: Uint8Array) => void) => { const p = ia.write(c); rel?.(c); return p; },
    });
    const a = track(shapeTransport(inner, { clock, delayMs: 10, segmentBytes: 65_536, highWaterBytes: 16 << 20 }));
    track(ib);
    const released: Uint8Array[] = [];
    const release = (c: Uint8Array): void => { released.push(c); };
    const big = pattern(200_000, 3); // 4 segments
    const small = pattern(1000, 4);
    await a.write(big, release);
    await a.write(small, release);
    expect(released).toEqual([]); // in flight: the shaper still refers to both
    await clock.advance(10);
    expect(released.length).toBe(2);
    expect(released[0]).toBe(big); // the chunk itself, not a segment
    expect(released[1]).toBe(small);
    a.corruptNextByte();
    await a.write(pattern(1000, 5), release); // sent as a corrupted private copy: the original is not the link's
    await clock.advance(10);
    expect(released.length).toBe(2);
    expect(a.stats.bytesDelivered).toBe(200_000 + 1000 + 1000);
    await a.write(pattern(1000, 6), release);
    a.dropNow(); // lost in flight: never handed on, never released
    await clock.advance(20);
    expect(released.length).toBe(2);
  });

  it('segments of one chunk that are due together go out in one write; a rate keeps them apart', async () => {
    const clock = new ManualClock();
    const [ia, ib] = memoryPair({ highWaterBytes: 16 << 20 });
    const sizes: number[] = [];
    const inner: Transport = Object.assign(Object.create(ia) as Transport, {
      write: (c: Uint8Array, rel?: (c: Uint8Array) => void) => { sizes.push(c.byteLength); return ia.write(c, rel); },
    });
    const a = track(shapeTransport(inner, { clock, delayMs: 10, segmentBytes: 65_536, highWaterBytes: 16 << 20 }));
    track(ib);
    const big = pattern(200_000, 3);
    const other = pattern(100_000, 4);
    await a.write(big);
    await a.write(other);
    await clock.advance(10);
    // all due at once: one write per chunk (chunks are never merged with each other)
    expect(sizes).toEqual([200_000, 100_000]);
    const got = new Uint8Array(300_000);
    for (let off = 0; off < got.byteLength; ) { const c = (await ib.read())!; got.set(c, off); off += c.byteLength; }
    expect(sha256(got)).toBe(sha256(Uint8Array.from([...big, ...other])));
    // with a rate of one segment per 10 ms, each segment is due on its own
    sizes.length = 0;
    const [ja, jb] = memoryPair({ highWaterBytes: 16 << 20 });
    const inner2: Transport = Object.assign(Object.create(ja) as Transport, {
      write: (c: Uint8Array, rel?: (c: Uint8Array) => void) => { sizes.push(c.byteLength); return ja.write(c, rel); },
    });
    const b = track(shapeTransport(inner2, { clock, bandwidthBytesPerSec: 6_553_600, burstBytes: 65_536, segmentBytes: 65_536, highWaterBytes: 16 << 20 }));
    track(jb);
    await b.write(pattern(3 * 65_536, 5));
    for (let i = 0; i < 4; i++) await clock.advance(10);
    expect(sizes).toEqual([65_536, 65_536, 65_536]);
  });

  it('dropNow(): both directions fail with TRANSPORT_CLOSED, in-flight data is lost, the inner transport is destroyed', async () => {
    const clock = new ManualClock();
    const [ia, ib] = memoryPair();
    const a = track(shapeTransport(ia, { clock, delayMs: 100 }));
    const b = track(shapeTransport(ib, { clock, delayMs: 100 }));
    await a.write(new Uint8Array(100)); // in flight for 100 ms
    const readA = rejection(a.read());
    const readB = rejection(b.read());
    a.dropNow();
    expect((await readA).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await readB).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await rejection(a.write(new Uint8Array(1)))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await rejection(b.write(new Uint8Array(1)))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(ia.closed && ib.closed).toBe(true);
    expect(a.stats.drops).toBe(1);
    expect(a.stats.bytesDelivered).toBe(0);
    await clock.advance(200);
  });

  it('corruptNextByte(): exactly one byte of the next chunk differs on the wire; the writer buffer is untouched', async () => {
    const [a, b] = shapedPair({ seed: 11 });
    track(a);
    track(b);
    const first = pattern(1000, 1);
    const second = pattern(5000, 2);
    const third = pattern(1000, 3);
    await a.write(first);
    a.corruptNextByte();
    const secondCopy = second.slice();
    await a.write(second);
    await a.write(third);
    await a.end();
    const got = await readAll(b);
    expect(sha256(second)).toBe(sha256(secondCopy));
    const sent = new Uint8Array([...first, ...second, ...third]);
    const diffs: number[] = [];
    for (let i = 0; i < sent.length; i++) if (got[i] !== sent[i]) diffs.push(i);
    expect(diffs).toHaveLength(1);
    const at = diffs[0]!;
    expect(at).toBeGreaterThanOrEqual(1000);
    expect(at).toBeLessThan(6000);
    expect(got[at]).toBe(sent[at]! ^ 0xff);
    expect(a.stats.corruptions).toBe(1);
    expect(a.stats.lastCorruptedOffset).toBe(at);
    // A single-bit flip is available too.
    expect(() => a.corruptNextByte(0)).toThrowError(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
  });

  it('backpressure: a reader that does not read stops the writer; shaper and inner stay bounded', async () => {
    const [a, b] = shapedPair({ highWaterBytes: 256 << 10, innerHighWaterBytes: 128 << 10 });
    track(a);
    track(b);
    let accepted = 0;
    let blocked = false;
    for (let i = 0; i < 1000; i++) {
      const w = a.write(new Uint8Array(32 << 10));
      accepted += 32 << 10;
      if (await isPending(w, 10)) {
        blocked = true;
        break;
      }
    }
    expect(blocked).toBe(true);
    expect(a.queuedBytes).toBeLessThanOrEqual((256 << 10) + (32 << 10));
    expect(accepted).toBeLessThanOrEqual((256 << 10) + (128 << 10) + 2 * (64 << 10));
    const reading = drain(b);
    // Let the writer finish its pending write, then end.
    await a.end().catch(() => {});
    expect((await reading).bytes).toBe(accepted);
  });

  it('end() arrives after the data, delayed like the data', async () => {
    const clock = new ManualClock();
    const [a, b] = shapedPair({ clock, delayMs: 30 });
    track(a);
    track(b);
    await a.write(new Uint8Array([1, 2]));
    const ended = a.end();
    expect(a.closed).toBe(true);
    const r1 = b.read();
    await clock.advance(29);
    expect(await isPending(r1)).toBe(true);
    await clock.advance(1);
    expect([...(await r1)!]).toEqual([1, 2]);
    expect(await b.read()).toBeNull();
    await ended;
  });

  it('checks its options', () => {
    const [ia] = memoryPair();
    expect(() => shapeTransport(ia, { bandwidthBytesPerSec: 0 })).toThrowError(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(() => shapeTransport(ia, { delayMs: -1 })).toThrowError(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(() => shapeTransport(ia, { seed: 1.5 })).toThrowError(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    const s = shapeTransport(ia, { bandwidthBytesPerSec: 1e6, delayMs: 2000 });
    expect(s.highWaterBytes).toBe(4_000_000); // twice the bandwidth-delay product
  });
});

describe('shaped link over a transport that takes the buffer away (MessagePort transfer)', () => {
  it('counts delivered bytes although each whole chunk is detached when it is sent', async () => {
    const ch = new MessageChannel();
    const far = track(messagePortTransport(ch.port2, { label: 'p2' }));
    // segments as large as the chunks: each chunk goes out whole, so its buffer is transferred
    const a = track(shapeTransport(messagePortTransport(ch.port1, { label: 'p1' }), { segmentBytes: 1 << 20 }));
    const reader = drain(far);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) {
      const c = new Uint8Array(100_000).fill(i);
      chunks.push(c);
      await a.write(c);
    }
    await a.end();
    const got = await reader;
    expect(got.bytes).toBe(40 * 100_000);
    expect(chunks.every((c) => c.byteLength === 0)).toBe(true); // transferred, not copied
    expect(a.stats.bytesSent).toBe(40 * 100_000);
    expect(a.stats.bytesDelivered).toBe(40 * 100_000);
  });
});

describe('shaped link (real clock: lower bounds only)', () => {
  it('rate: 1.5 MiB at 4 MB/s takes at least 0.8 x bytes/rate', async () => {
    const [a, b] = shapedPair({ bandwidthBytesPerSec: 4_000_000, burstBytes: 16 << 10 });
    track(a);
    track(b);
    const data = pattern(1536 << 10, 4);
    const started = performance.now();
    const [, got] = await Promise.all([writeAll(a, data), drain(b)]);
    const ms = performance.now() - started;
    expect(got.sha).toBe(sha256(data));
    expect(ms).toBeGreaterThanOrEqual(((data.byteLength - (16 << 10)) / 4_000_000) * 1000 * 0.8);
    expect(a.stats.throttledMs).toBeGreaterThan(0);
    console.log(`shaped memory link, 4 MB/s: ${data.byteLength} B in ${ms.toFixed(0)} ms = ${((data.byteLength / ms) * 1000 / 1e6).toFixed(2)} MB/s`);
  });
});

describe('shaping proxy over real sockets (echo server in another process)', () => {
  async function setup(opts: Omit<Parameters<typeof startShapingProxy>[0], 'target'>): Promise<{ proxy: ShapingProxy; t: Transport }> {
    const echo = await spawnFixture<{ port: number }>('tcp-echo-server.mjs');
    cleanup.push(() => {
      echo.proc.kill('SIGKILL');
    });
    const { port } = await echo.first;
    const proxy = await startShapingProxy({ ...opts, target: { port } });
    cleanup.push(() => proxy.close());
    const t = track(await connectTcp({ port: proxy.port }));
    return { proxy, t };
  }

  it('rate and delay: the same lower bounds as the in-memory model, and a comparable time', async () => {
    const opts = { bandwidthBytesPerSec: 4_000_000, burstBytes: 16 << 10, delayMs: 40, seed: 5 };
    const { proxy, t } = await setup(opts);
    // Round trip of one byte: two one-way delays.
    let started = performance.now();
    await t.write(new Uint8Array([1]));
    await t.read();
    const rttMs = performance.now() - started;
    expect(rttMs).toBeGreaterThanOrEqual(2 * 40 * 0.8);
    // 1 MiB through the echo: shaped once each way, concurrently.
    const data = pattern(1 << 20, 6);
    started = performance.now();
    const [, got] = await Promise.all([writeAll(t, data), drain(t)]);
    const proxyMs = performance.now() - started;
    expect(got.sha).toBe(sha256(data));
    expect(proxyMs).toBeGreaterThanOrEqual(((data.byteLength - (16 << 10)) / 4_000_000) * 1000 * 0.8);
    const s = proxy.stats();
    expect(s.upstream.bytesDelivered).toBe(data.byteLength + 1);
    expect(s.downstream.bytesDelivered).toBe(data.byteLength + 1);
    expect(s.upstream.throttledMs).toBeGreaterThan(0);
    // The in-memory model of the same link: a comparable transfer time (within 3x either way).
    const [a, b] = shapedPair(opts);
    track(a);
    track(b);
    const modelStarted = performance.now();
    const echoLoop = (async () => {
      for (;;) {
        const c = await b.read();
        if (c === null) break;
        await b.write(c);
      }
      await b.end();
    })();
    await Promise.all([writeAll(a, data), drain(a), echoLoop]);
    const modelMs = performance.now() - modelStarted;
    console.log(`1 MiB echo at 4 MB/s + 40 ms: proxy ${proxyMs.toFixed(0)} ms, in-memory model ${modelMs.toFixed(0)} ms, rtt ${rttMs.toFixed(0)} ms`);
    expect(proxyMs / modelMs).toBeGreaterThan(1 / 3);
    expect(proxyMs / modelMs).toBeLessThan(3);
  });

  it('corrupts one byte upstream on request', async () => {
    const { proxy, t } = await setup({});
    const data = pattern(200_000, 8);
    proxy.corruptNextByte('upstream');
    const [, got] = await Promise.all([writeAll(t, data.slice(), 200_000), readAll(t)]);
    let diffs = 0;
    for (let i = 0; i < data.length; i++) if (got[i] !== data[i]) diffs++;
    expect(diffs).toBe(1);
    expect(proxy.stats().upstream.corruptions).toBe(1);
  });

  it('stall(ms) delays an echo by at least the stall', async () => {
    const { proxy, t } = await setup({});
    await t.write(new Uint8Array([1]));
    await t.read();
    proxy.stall(300);
    const started = performance.now();
    await t.write(new Uint8Array([2]));
    expect([...(await t.read())!]).toEqual([2]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(300 * 0.8);
  });

  it('dropAll() resets the client connection: its reads fail with TRANSPORT_CLOSED', async () => {
    const { proxy, t } = await setup({ delayMs: 5 });
    await t.write(new Uint8Array([1]));
    await t.read();
    const pending = rejection(t.read());
    expect(proxy.dropAll()).toBe(1);
    expect((await pending).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(proxy.stats().upstream.drops).toBe(1);
    // New connections still work after a drop.
    const t2 = track(await connectTcp({ port: proxy.port }));
    await t2.write(new Uint8Array([3]));
    expect([...(await t2.read())!]).toEqual([3]);
  });
});
