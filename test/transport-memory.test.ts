import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, PagewireError } from '../src/errors.js';
import { memoryPair } from '../src/transport/memory.js';
import { drain, isPending, pattern, readAll, rejection, sha256, writeAll } from './fixtures/transport-util.js';

describe('memoryPair', () => {
  it('moves chunks in order both ways, without copying, and ends each direction on its own', async () => {
    const [a, b] = memoryPair();
    const c1 = new Uint8Array([1, 2, 3]);
    await a.write(c1);
    await a.write(new Uint8Array([4]));
    await b.write(new Uint8Array([9, 9]));
    expect(await b.read()).toBe(c1);
    expect([...(await b.read())!]).toEqual([4]);
    await a.end();
    expect(a.closed).toBe(true);
    expect(await b.read()).toBeNull();
    expect(await b.read()).toBeNull();
    // Half-close: b can still send, a can still read.
    expect(b.closed).toBe(false);
    await b.write(new Uint8Array([7]));
    expect([...(await a.read())!]).toEqual([9, 9]);
    expect([...(await a.read())!]).toEqual([7]);
    await b.end();
    expect(await a.read()).toBeNull();
    expect((await rejection(a.write(new Uint8Array(1)))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('a read waiting before the write gets the chunk', async () => {
    const [a, b] = memoryPair();
    const r = b.read();
    expect(await isPending(r)).toBe(true);
    await a.write(new Uint8Array([5]));
    expect([...(await r)!]).toEqual([5]);
  });

  it('write waits at the high-water mark until the reader reads (bounded buffer)', async () => {
    const [a, b] = memoryPair({ highWaterBytes: 1000 });
    await a.write(new Uint8Array(400));
    await a.write(new Uint8Array(400));
    const blocked = a.write(new Uint8Array(400));
    expect(await isPending(blocked)).toBe(true);
    expect(b.bufferedBytes).toBe(1200);
    await b.read();
    // 800 < 1000: the writer may go on.
    await blocked;
    expect(b.bufferedBytes).toBe(800);
  });

  it('a writer facing a reader that never reads stays bounded', async () => {
    const hwm = 64 << 10;
    const [a, b] = memoryPair({ highWaterBytes: hwm });
    let accepted = 0;
    let stalled = false;
    for (let i = 0; i < 10_000; i++) {
      const w = a.write(new Uint8Array(4096));
      accepted += 4096;
      if (await isPending(w, 1)) {
        stalled = true;
        break;
      }
    }
    expect(stalled).toBe(true);
    expect(b.bufferedBytes).toBeLessThanOrEqual(hwm + 4096);
    expect(accepted).toBeLessThanOrEqual(hwm + 4096);
  });

  it('destroy fails both ends: local with the given error, the peer with TRANSPORT_CLOSED', async () => {
    const [a, b] = memoryPair({ highWaterBytes: 10 });
    await a.write(new Uint8Array(5));
    const pendingWrite = a.write(new Uint8Array(20)).catch((e: unknown) => e);
    expect(await isPending(pendingWrite)).toBe(true);
    const pendingReadA = a.read();
    const boom = new PagewireError(ErrorCode.TIMEOUT, 'stalled');
    a.destroy(boom);
    expect(await rejection(pendingReadA)).toBe(boom);
    expect(await pendingWrite).toBe(boom);
    expect(a.closed).toBe(true);
    expect(b.closed).toBe(true);
    // The peer's queued data is dropped (abortive close) and its reads and writes fail.
    const eb = await rejection(b.read());
    expect(eb).toBeInstanceOf(PagewireError);
    expect(eb.code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await rejection(b.write(new Uint8Array(1)))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await rejection(b.end())).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('destroy with a foreign error wraps it as TRANSPORT_CLOSED with the cause', async () => {
    const [a] = memoryPair();
    const cause = new Error('socket hang up');
    a.destroy(cause);
    const e = (await rejection(a.read())) as PagewireError;
    expect(e.code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(e.cause).toBe(cause);
  });

  it('an end already received stays a clean end when the peer is destroyed later; a local destroy fails reads', async () => {
    const [a, b] = memoryPair();
    await a.write(new Uint8Array([1]));
    await a.end();
    a.destroy();
    expect([...(await b.read())!]).toEqual([1]);
    expect(await b.read()).toBeNull();
    expect((await rejection(b.write(new Uint8Array(1)))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    const [c, d] = memoryPair();
    await c.write(new Uint8Array([1]));
    await c.end();
    d.destroy();
    expect((await rejection(d.read())).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('rejects a bad high-water mark', () => {
    expect(() => memoryPair({ highWaterBytes: 0 })).toThrow(PagewireError);
    try {
      memoryPair({ highWaterBytes: -1 });
    } catch (e) {
      expect((e as PagewireError).code).toBe(ErrorCode.INVALID_ARGUMENT);
    }
  });

  it('any chunking of a stream arrives intact (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 40 }), fc.integer({ min: 1, max: 8192 }), async (sizes, hwm) => {
        const [a, b] = memoryPair({ highWaterBytes: hwm });
        const total = sizes.reduce((x, y) => x + y, 0);
        const data = pattern(total, 7);
        const reader = readAll(b);
        let o = 0;
        for (const s of sizes) {
          await a.write(data.slice(o, o + s));
          o += s;
        }
        await a.end();
        expect(sha256(await reader)).toBe(sha256(data));
      }),
      { seed: 42, numRuns: 100 },
    );
  });

  it('moves 64 MiB with integrity', async () => {
    const [a, b] = memoryPair();
    const data = pattern(64 << 20, 3);
    const [, got] = await Promise.all([writeAll(a, data, 256 << 10), drain(b)]);
    expect(got.bytes).toBe(data.byteLength);
    expect(got.sha).toBe(sha256(data));
  });
});
