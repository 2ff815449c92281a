// An on-path attacker between two real processes (`pagewire serve` and `pagewire migrate`, real
// TCP through a proxy in this test). It lets the authenticated handshake through, then changes
// one byte of one page payload, or the COMPLETE message's digest commitment, and fixes the frame's
// xxh64 checksum (oracle: xxhash-wasm) so only the frame MAC can notice; or it replays or drops
// one page frame. With `--secret` both sides must fail (non-zero exit, source guest running),
// never verify. Without a secret the changed frame is applied and only the digest at the end
// catches it: the documented limit.
import { describe, it, expect, beforeAll } from 'vitest';
import net from 'node:net';
import xxhash from 'xxhash-wasm';
import { runCli, startServe } from './helpers/cli.js';
import { FrameType, FLAG_MAC, FRAME_HEADER_BYTES, MAC_BYTES, PREAMBLE_BYTES, frameSeed } from '../src/protocol/frame.js';

let h64: (data: Uint8Array, seed: bigint) => bigint;
beforeAll(async () => {
  const x = await xxhash();
  h64 = (d, s) => x.h64Raw(d, s);
});

/** What the attacker does to the source's stream. */
type Attack = 'page' | 'complete' | 'replay' | 'drop';

/** Recompute a frame's checksum after an edit (the checksum is unkeyed: anyone can). */
function fixChecksum(f: Buffer): void {
  const len = f.readUInt32LE(0);
  const seed = frameSeed(f[4]!, f[5]!, f.readUInt16LE(6), f.readUInt32LE(8));
  f.writeUInt32LE(Number(BigInt.asUintN(32, h64(f.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len), seed))), 12);
}

/**
 * Splits one direction of a pagewire stream into its preamble and whole frames and passes each
 * through `edit`, which returns the frames to forward in its place.
 */
function frameSplitter(edit: (frame: Buffer) => Buffer[]): (chunk: Buffer) => Buffer[] {
  let buf = Buffer.alloc(0);
  let preamble = false;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    const out: Buffer[] = [];
    if (!preamble) {
      if (buf.length < PREAMBLE_BYTES) return out;
      out.push(buf.subarray(0, PREAMBLE_BYTES));
      buf = buf.subarray(PREAMBLE_BYTES);
      preamble = true;
    }
    while (buf.length >= FRAME_HEADER_BYTES) {
      const n = FRAME_HEADER_BYTES + buf.readUInt32LE(0) + ((buf[5]! & FLAG_MAC) ? MAC_BYTES : 0);
      if (buf.length < n) break;
      out.push(...edit(Buffer.from(buf.subarray(0, n))));
      buf = buf.subarray(n);
    }
    return out;
  };
}

/** A TCP proxy to `port` that applies `attack` once to the source's frames. */
async function proxy(port: number, attack: Attack): Promise<{ server: net.Server; port: number; done: () => boolean }> {
  let fired = false;
  let pagesSeen = 0;
  const edit = (f: Buffer): Buffer[] => {
    if (fired) return [f];
    const type = f[4]!;
    const len = f.readUInt32LE(0);
    if (attack === 'complete' && type === FrameType.COMPLETE) {
      // one hex digit of the commitment (or of a clear digest) changed, JSON still valid
      const text = f.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + len).toString('latin1');
      const m = /"(mac|digest)":"([0-9a-f])/.exec(text);
      if (!m) return [f];
      const at = FRAME_HEADER_BYTES + m.index + m[0].length - 1;
      f[at] = m[2] === '0' ? 0x31 : 0x30;
      fixChecksum(f);
      fired = true;
      return [f];
    }
    if (attack === 'complete' || type !== FrameType.PAGES || len < 1024 || ++pagesSeen < 3) return [f];
    fired = true;
    if (attack === 'page') {
      f[FRAME_HEADER_BYTES + (len >>> 1)]! ^= 0x01;
      fixChecksum(f);
      return [f];
    }
    return attack === 'replay' ? [f, f] : [];
  };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port });
    const toTarget = frameSplitter(edit);
    client.on('data', (d: Buffer) => { for (const b of toTarget(d)) upstream.write(b); });
    upstream.on('data', (d: Buffer) => client.write(d));
    // an end is passed on after what came before it (the peer's last ERROR frame must get through)
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    const reset = (): void => { client.destroy(); upstream.destroy(); };
    client.on('error', reset);
    upstream.on('error', reset);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, done: () => fired };
}

function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

async function attacked(attack: Attack, secret: boolean): Promise<{ src: Record<string, unknown>; srcCode: number; dst: Record<string, unknown>; dstCode: number; fired: boolean }> {
  const auth = secret ? ['--secret', 'S'] : [];
  const serve = await startServe([...auth, '--json']);
  const p = await proxy(serve.port, attack);
  try {
    const src = await runCli(['migrate', '--to', `127.0.0.1:${p.port}`, '--size', '8MiB', '--workload', 'idle', '--codecs', 'raw', ...auth, '--json'], 60_000);
    const dst = await serve.result;
    return { src: lastJson(src.stdout), srcCode: src.code, dst: lastJson(dst.stdout), dstCode: dst.code, fired: p.done() };
  } finally {
    serve.child.kill('SIGKILL');
    p.server.close();
  }
}

describe('an on-path proxy that rewrites a --secret migration between two processes', () => {
  for (const [attack, what] of [
    ['page', 'one byte of one page payload, checksum fixed'],
    ['complete', 'the digest commitment in COMPLETE, checksum fixed'],
    ['replay', 'a page frame sent twice'],
    ['drop', 'a page frame left out'],
  ] as const) {
    it(`${what}: both sides fail (exit 3), the source guest keeps running, nothing verifies`, async () => {
      const r = await attacked(attack, true);
      expect(r.fired).toBe(true);
      expect(r.srcCode, JSON.stringify(r.src)).toBe(3);
      expect(r.dstCode, JSON.stringify(r.dst)).toBe(3);
      expect(r.src['verified']).toBe(false);
      expect(r.dst['verified']).toBe(false);
      expect(r.src['guestRunning']).toBe(true);
      // a changed frame is caught by its MAC; a replayed or missing one by its signed sequence number
      const expected = attack === 'page' || attack === 'complete' ? 'AUTH_FAILED' : 'PROTOCOL_VIOLATION';
      expect((r.dst['error'] as { code: string }).code, JSON.stringify([r.dst, r.src])).toBe(expected);
      // The source fails with the target's code when the target's ERROR frame reaches it; over TCP
      // the target's close can reset the connection before the source reads that frame, and the
      // source then runs out of reconnects: the target ended the session (RESUME_FAILED).
      expect([expected, 'RESUME_FAILED'], JSON.stringify([r.dst, r.src])).toContain((r.src['error'] as { code: string }).code);
    }, 90_000);
  }

  it('without a secret the changed page frame is accepted and applied; only the final digest catches it (VERIFY_FAILED, exit 4)', async () => {
    // (an attacker who also rewrote the digest commitment, which it can compute from what it saw,
    // would make it verify: no integrity against an on-path attacker without a secret or TLS)
    const r = await attacked('page', false);
    expect(r.fired).toBe(true);
    expect(r.dstCode).toBe(4);
    expect(r.srcCode).toBe(4);
    expect(r.src['guestRunning']).toBe(true);
  }, 90_000);
});
