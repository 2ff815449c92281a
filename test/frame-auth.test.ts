// Authenticated frames (protocol 1.3): a stream recorded from a real Connection with frame keys is
// replayed into another one after an attacker's edit. The attacker knows everything but the
// secret: it fixes the xxh64 checksum of any frame it changes (oracle: xxhash-wasm), so only the
// MAC can catch it. Changed, replayed, dropped, reordered, reflected and unauthenticated frames
// are AUTH_FAILED; an accidental flip (checksum not fixed) stays CHECKSUM_MISMATCH, which a
// migration resumes from.
import { describe, it, expect, beforeAll } from 'vitest';
import xxhash from 'xxhash-wasm';
import { createCore, type Core } from '../src/core/core.js';
import { Connection } from '../src/protocol/connection.js';
import { FrameType, FLAG_MAC, FRAME_HEADER_BYTES, MAC_BYTES, PREAMBLE_BYTES, frameSeed } from '../src/protocol/frame.js';
import { frameKeys, type FrameKeys } from '../src/protocol/auth.js';
import { memoryPair } from '../src/transport/memory.js';
import { ErrorCode, PagewireError } from '../src/errors.js';

let core: Core;
let h64: (data: Uint8Array, seed: bigint) => bigint;
const session = '0123456789abcdef0123456789abcdef';
const ns = 'aa'.repeat(16);
const nt = 'bb'.repeat(16);
let src: FrameKeys;
let dst: FrameKeys;

beforeAll(async () => {
  core = await createCore();
  const x = await xxhash();
  h64 = (d, s) => x.h64Raw(d, s);
  src = await frameKeys('s3cret', 'source', session, ns, nt);
  dst = await frameKeys('s3cret', 'target', session, ns, nt);
});

/** What one side wrote: the preamble, then each frame's bytes (header, payload, tag). */
interface Recorded { preamble: Uint8Array; frames: Uint8Array[] }

/** HELLO unauthenticated, then `n` PAGES frames with `keys` (as after a handshake). */
async function record(keys: FrameKeys, n: number, payloadBytes = 300): Promise<Recorded> {
  const [a, b] = memoryPair();
  const conn = new Connection(a, core);
  await conn.open();
  await conn.send(FrameType.HELLO, new TextEncoder().encode('{}'));
  conn.authenticate(keys);
  for (let i = 0; i < n; i++) await conn.send(FrameType.PAGES, new Uint8Array(payloadBytes).map((_, j) => (i * 31 + j) & 0xff));
  await a.end();
  const chunks: Uint8Array[] = [];
  for (let c = await b.read(); c; c = await b.read()) chunks.push(c.slice());
  conn.dispose();
  const all = new Uint8Array(chunks.reduce((s, c) => s + c.byteLength, 0));
  let off = 0;
  for (const c of chunks) { all.set(c, off); off += c.byteLength; }
  const frames: Uint8Array[] = [];
  for (off = PREAMBLE_BYTES; off < all.byteLength;) {
    const dv = new DataView(all.buffer, off);
    const len = FRAME_HEADER_BYTES + dv.getUint32(0, true) + ((all[off + 5]! & FLAG_MAC) ? MAC_BYTES : 0);
    frames.push(all.slice(off, off + len));
    off += len;
  }
  return { preamble: all.slice(0, PREAMBLE_BYTES), frames };
}

/** Rewrite the checksum of a frame after an edit, as an attacker would. */
function fixChecksum(f: Uint8Array): Uint8Array {
  const dv = new DataView(f.buffer, f.byteOffset);
  const len = dv.getUint32(0, true);
  const seed = frameSeed(f[4]!, f[5]!, dv.getUint16(6, true), dv.getUint32(8, true));
  dv.setUint32(12, Number(BigInt.asUintN(32, h64(f.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len), seed))), true);
  return f;
}

/** Feed `frames` to a receiving connection with `keys`; the sequence numbers of what it accepted, then how it ended. */
async function deliver(r: Recorded, frames: Uint8Array[], keys: FrameKeys): Promise<{ seqs: number[]; end: string }> {
  const [a, b] = memoryPair();
  const conn = new Connection(b, core);
  void (async () => {
    await a.write(r.preamble);
    for (const f of frames) await a.write(f);
    await a.end();
  })();
  const seqs: number[] = [];
  try {
    const hello = await conn.expect(FrameType.HELLO);
    seqs.push(hello.seq);
    conn.authenticate(keys);
    for (let f = await conn.recv(); f; f = await conn.recv()) seqs.push(f.seq);
    return { seqs, end: 'eof' };
  } catch (err) {
    return { seqs, end: err instanceof PagewireError ? err.code : String(err) };
  } finally {
    conn.dispose();
  }
}

describe('authenticated frames', () => {
  it('an untouched stream is accepted; every frame after the handshake carries a 32-byte tag', async () => {
    const r = await record(src, 4);
    expect(r.frames[0]![5]! & FLAG_MAC).toBe(0);
    for (const f of r.frames.slice(1)) expect(f[5]! & FLAG_MAC).toBe(FLAG_MAC);
    expect(await deliver(r, r.frames, dst)).toEqual({ seqs: [0, 1, 2, 3, 4], end: 'eof' });
  });

  it('one changed payload byte (checksum fixed by the attacker) is AUTH_FAILED at that frame, at every position', async () => {
    const r = await record(src, 3, 64);
    const f = r.frames[2]!;
    for (let pos = FRAME_HEADER_BYTES; pos < FRAME_HEADER_BYTES + 64; pos += 7) {
      const bad = f.slice();
      bad[pos]! ^= 0x01;
      const res = await deliver(r, [r.frames[0]!, r.frames[1]!, fixChecksum(bad), r.frames[3]!], dst);
      expect(res).toEqual({ seqs: [0, 1], end: ErrorCode.AUTH_FAILED });
    }
  });

  it('a changed header field or tag byte is refused; without a fixed checksum a flip stays CHECKSUM_MISMATCH (resumable)', async () => {
    const r = await record(src, 2, 64);
    const bad = r.frames[1]!.slice();
    bad[6] = 1; // channel 0 -> 1
    expect((await deliver(r, [r.frames[0]!, fixChecksum(bad), r.frames[2]!], dst)).end).toBe(ErrorCode.AUTH_FAILED);
    const tag = r.frames[1]!.slice();
    tag[tag.byteLength - 1]! ^= 0x80;
    expect((await deliver(r, [r.frames[0]!, tag, r.frames[2]!], dst)).end).toBe(ErrorCode.AUTH_FAILED);
    const flip = r.frames[1]!.slice();
    flip[FRAME_HEADER_BYTES + 5]! ^= 0x10;
    expect((await deliver(r, [r.frames[0]!, flip, r.frames[2]!], dst)).end).toBe(ErrorCode.CHECKSUM_MISMATCH);
  });

  it('a replayed, dropped or reordered frame is refused', async () => {
    const r = await record(src, 3);
    const [h, p1, p2, p3] = r.frames as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    const replay = await deliver(r, [h, p1, p2, p2, p3], dst);
    expect(replay.seqs).toEqual([0, 1, 2]);
    expect(replay.end).toBe(ErrorCode.PROTOCOL_VIOLATION);
    expect((await deliver(r, [h, p1, p3], dst)).end).toBe(ErrorCode.PROTOCOL_VIOLATION);
    expect((await deliver(r, [h, p2, p1, p3], dst)).end).toBe(ErrorCode.PROTOCOL_VIOLATION);
    // renumbering a frame to hide the gap changes its header: the MAC fails
    const renumbered = p3.slice();
    new DataView(renumbered.buffer).setUint32(8, 2, true);
    expect(await deliver(r, [h, p1, fixChecksum(renumbered)], dst)).toEqual({ seqs: [0, 1], end: ErrorCode.AUTH_FAILED });
  });

  it('a frame from another connection (other nonces) or reflected back to its sender (other direction) is refused', async () => {
    const other = await record(await frameKeys('s3cret', 'source', session, 'cc'.repeat(16), nt), 1);
    const r = await record(src, 1);
    expect((await deliver(r, [r.frames[0]!, other.frames[1]!], dst)).end).toBe(ErrorCode.AUTH_FAILED);
    // the source's own frame played back to the source: checked with the target->source key
    expect((await deliver(r, r.frames, src)).end).toBe(ErrorCode.AUTH_FAILED);
  });

  it('an unauthenticated frame, even an ERROR, is refused on an authenticated connection', async () => {
    const plain = await record(await frameKeys('s3cret', 'source', session, ns, nt), 0);
    const [a, b] = memoryPair();
    const w = new Connection(a, core);
    await w.open();
    await w.send(FrameType.HELLO, new Uint8Array(2));
    await w.send(FrameType.ERROR, new TextEncoder().encode('{"code":"ABORTED","message":"stop"}'));
    await a.end();
    const chunks: Uint8Array[] = [];
    for (let c = await b.read(); c; c = await b.read()) chunks.push(c.slice());
    w.dispose();
    const res = await deliver(plain, chunks.slice(1), dst);
    expect(res.end).toBe(ErrorCode.AUTH_FAILED);
  });
});
