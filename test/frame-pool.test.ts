/**
 * Pooled frame buffers: large frames are built in buffers the transport gives back once it no
 * longer refers to them (TCP: after the kernel took the bytes). Reuse must never change a byte
 * that is still queued: the reader checks every checksum and every payload byte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createCore } from '../src/core/core.js';
import { Connection } from '../src/protocol/connection.js';
import { FrameReader, FrameWriter } from '../src/protocol/codec.js';
import { FrameType } from '../src/protocol/frame.js';
import { connectTcp, listenTcp } from '../src/transport/tcp.js';
import type { Transport } from '../src/transport/types.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Payload k: `base` bytes (plus k) of a pattern that differs per frame in every byte. */
function payload(k: number, base = 128 * 1024): Uint8Array {
  const p = new Uint8Array(base + k);
  for (let i = 0; i < p.length; i++) p[i] = (i * 31 + k * 7 + (i >> 12)) & 0xff;
  return p;
}

describe('frame buffer pool', () => {
  it('reuses only released buffers; small frames are never pooled; a reused frame equals a fresh one', async () => {
    const core = await createCore();
    const w = new FrameWriter(core);
    const a = w.frame(FrameType.PAGES, payload(1));
    const b = w.frame(FrameType.PAGES, payload(2));
    expect(a.buffer).not.toBe(b.buffer); // a was not released: never handed out twice
    w.release(a);
    const c = w.frame(FrameType.PAGES, payload(3));
    expect(c.buffer).toBe(a.buffer);
    expect(w.reused).toBe(1);
    const small = w.frame(FrameType.ACK, new Uint8Array(40));
    w.release(small);
    expect(w.frame(FrameType.ACK, new Uint8Array(40)).buffer).not.toBe(small.buffer);
    // bytes of a frame built in a reused buffer parse exactly like any other frame
    const fresh = new FrameWriter(core);
    fresh.seq = w.seq;
    const want = fresh.frame(FrameType.PAGES, payload(4));
    w.release(c);
    const got = w.frame(FrameType.PAGES, payload(4));
    expect(got.buffer).toBe(c.buffer);
    expect(Buffer.compare(got, want)).toBe(0);
    // a buffer too small for the next frame is left in the pool, the frame gets a new one
    w.release(got);
    const big = w.frame(FrameType.PAGES, new Uint8Array(1 << 20));
    expect(big.buffer).not.toBe(got.buffer);
    const r = new FrameReader(core, { preamble: false });
    r.push(want);
    expect(r.next()!.payload).toEqual(payload(4));
  });

  it('over real TCP every frame arrives intact while buffers are recycled', async () => {
    const l = await listenTcp({ host: '127.0.0.1', port: 0 });
    cleanup.push(() => l.close());
    const [src, dst] = await Promise.all([connectTcp({ host: '127.0.0.1', port: l.port, timeoutMs: 5000 }), l.accept()]) as [Transport, Transport];
    cleanup.push(() => { src.destroy(); dst.destroy(); });
    // Frames below the socket's high-water mark: write() returns at once while the bytes still
    // wait in Node's queue (the reader starts late, so the kernel buffer fills): a buffer given
    // back too early would be overwritten by the next frame before it went out.
    const frames = 120;
    const size = 96 * 1024;
    const tx = new Connection(src, await createCore());
    const rx = new Connection(dst, await createCore());
    const send = (async () => {
      await tx.open();
      for (let k = 0; k < frames; k++) await tx.send(FrameType.PAGES, payload(k, size));
      await src.end();
    })();
    await new Promise((r) => setTimeout(r, 300));
    let got = 0;
    for (;;) {
      const f = await rx.recv();
      if (!f) break;
      expect(Buffer.compare(f.payload, payload(got, size))).toBe(0);
      got++;
    }
    await send;
    expect(got).toBe(frames);
    // TCP gave buffers back once flushed: later frames were built in reused memory
    const w = (tx as unknown as { writer: FrameWriter }).writer;
    expect(w.reused).toBeGreaterThan(0);
    expect(w.reused + w.allocated).toBe(frames);
  });
});
