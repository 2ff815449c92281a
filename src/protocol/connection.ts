/**
 * A framed connection over a Transport: sends the preamble, writes frames with backpressure,
 * reads whole verified frames. One per transport; a resumed session makes a new one.
 *
 * After {@link authenticate} (protocol 1.3, a shared secret) every frame sent carries a MAC tag
 * and every frame received must carry a valid one: a frame without one, or with a wrong one, is
 * AUTH_FAILED (an attacker's work, never resumed), while a frame that fails its xxh64 checksum
 * stays CHECKSUM_MISMATCH (an accident, resumed). The checksum is checked first.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Core } from '../core/core.js';
import type { Transport } from '../transport/types.js';
import { FrameReader, FrameWriter, type FrameReaderOptions } from './codec.js';
import { encodePreamble, frameTypeName, FrameType, FLAG_MAC, FRAME_HEADER_BYTES, MAC_BYTES, type Frame } from './frame.js';
import { errorPayload, parseError } from './messages.js';
import { frameTag, frameTagValid, type FrameKeys } from './auth.js';

/** How long {@link Connection.close} waits for the peer to end its direction before tearing the link down. */
export const CLOSE_GRACE_MS = 2000;

/** Counters of one connection. */
export interface ConnectionStats {
  bytesSent: number;
  bytesReceived: number;
  framesSent: number;
  framesReceived: number;
}

export class Connection {
  readonly stats: ConnectionStats = { bytesSent: 0, bytesReceived: 0, framesSent: 0, framesReceived: 0 };
  private readonly reader: FrameReader;
  private readonly writer: FrameWriter;
  private eof = false;
  private lastSeq = -1;

  private readonly writeTimeoutMs: number;
  /** When the write in progress started (Date.now()), 0 when none is pending. */
  private writeSince = 0;
  private watchdog: ReturnType<typeof setInterval> | null = null;
  /** Frame keys once the connection is authenticated (protocol 1.3 with a secret). */
  private keys: FrameKeys | null = null;
  /** Tags are computed concurrently, frames leave in order: each write waits for the previous one's turn. */
  private sendTail: Promise<unknown> = Promise.resolve();

  /**
   * @param options frame reader options; `firstSeq` of the writer; `writeTimeoutMs`: a write
   *   (the transport's backpressure) pending longer than this destroys the transport with TIMEOUT,
   *   so a peer that stops reading cannot hold this side for ever (default: no limit)
   */
  constructor(readonly transport: Transport, core: Core, options: FrameReaderOptions & { firstSeq?: number; writeTimeoutMs?: number } = {}) {
    // chunks the reader has copied out go back to the transport (MessagePort: to the writer's pool)
    this.reader = new FrameReader(core, transport.recycle ? { ...options, onConsumed: (c) => transport.recycle!(c) } : options);
    this.writer = new FrameWriter(core);
    if (options.firstSeq !== undefined) this.writer.seq = options.firstSeq >>> 0;
    this.writeTimeoutMs = options.writeTimeoutMs ?? 0;
  }

  /** One write with the write deadline (one watchdog timer per connection, not one per frame). */
  private async write(bytes: Uint8Array, release?: (chunk: Uint8Array) => void): Promise<void> {
    if (this.writeTimeoutMs <= 0) return this.transport.write(bytes, release);
    if (!this.watchdog) {
      const period = Math.max(10, Math.floor(this.writeTimeoutMs / 4));
      this.watchdog = setInterval(() => {
        if (this.writeSince > 0 && Date.now() - this.writeSince > this.writeTimeoutMs) {
          this.transport.destroy(new PagewireError(ErrorCode.TIMEOUT, `the peer stopped reading: a write waited more than ${this.writeTimeoutMs} ms`));
        }
      }, period);
      (this.watchdog as { unref?: () => void }).unref?.();
    }
    this.writeSince = Date.now();
    try {
      await this.transport.write(bytes, release);
    } finally {
      this.writeSince = 0;
    }
  }

  /** Bytes of whole frames read so far (preamble included). */
  get bytesRead(): number {
    return this.reader.bytesRead;
  }

  /**
   * Largest frame payload accepted from now on (e.g. small during the handshake, the negotiated
   * ceiling after it).
   */
  set maxFrameBytes(n: number) {
    this.reader.maxFrameBytes = n;
  }

  /** The peer's protocol minor version (-1 until its preamble was read). */
  get peerMinor(): number {
    return this.reader.peerMinor;
  }

  /** Sequence number the next frame will carry. */
  get nextSeq(): number {
    return this.writer.seq;
  }

  /** Whether frames are authenticated (after {@link authenticate}). */
  get authenticated(): boolean {
    return this.keys !== null;
  }

  /** Wire bytes a frame costs beyond its payload (header, and the tag when authenticated). */
  get frameOverhead(): number {
    return FRAME_HEADER_BYTES + (this.keys ? MAC_BYTES : 0);
  }

  /**
   * From now on sign every frame sent and require a valid tag on every frame received. Both sides
   * switch at the same point of the handshake (the source after sending AUTH, the target after
   * checking it), so no frame is in flight from the other side's previous mode.
   */
  authenticate(keys: FrameKeys): void {
    this.keys = keys;
  }

  /** Send the preamble (first thing on a connection). */
  async open(): Promise<void> {
    const pre = encodePreamble();
    this.stats.bytesSent += pre.byteLength;
    await this.write(pre);
  }

  /**
   * Send one frame; resolves when the transport can take more.
   * @returns the frame's sequence number
   */
  async send(type: FrameType, payload: Uint8Array, flags = 0): Promise<number> {
    const seq = this.writer.seq;
    const keys = this.keys;
    if (!keys) {
      const frame = this.writer.frame(type, payload, flags);
      this.stats.bytesSent += frame.byteLength;
      this.stats.framesSent++;
      await this.write(frame, this.writer.release);
      return seq;
    }
    const frame = this.writer.frame(type, payload, flags | FLAG_MAC, MAC_BYTES);
    const signed = frame.byteLength - MAC_BYTES;
    this.stats.bytesSent += frame.byteLength;
    this.stats.framesSent++;
    // The tag is computed now (Web Crypto copies the bytes at the call); the write waits for the
    // frames sent before this one, so they leave in sequence order.
    const tag = frameTag(keys.send, frame.subarray(0, signed));
    const turn = this.sendTail.then(async () => {
      frame.set(await tag, signed);
      return { written: this.write(frame, this.writer.release) };
    });
    this.sendTail = turn.catch(() => undefined);
    await (await turn).written;
    return seq;
  }

  /**
   * Next verified frame, or null at a clean end of stream. An ERROR frame from the peer is
   * turned into a thrown PagewireError carrying the peer's code.
   */
  async recv(): Promise<Frame | null> {
    for (;;) {
      const f = this.reader.next();
      if (f) {
        this.stats.framesReceived++;
        if (this.keys) await this.checkTag(f);
        else if ((f.flags & FLAG_MAC) !== 0) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `${frameTypeName(f.type)} frame #${f.seq} carries a MAC on a connection that has no keys`);
        if (f.type === FrameType.ERROR) throw peerError(f.payload);
        // Within a connection sequence numbers go up by one: a duplicated, dropped or reordered
        // frame is a protocol violation (the first frame may start anywhere: resumed sessions).
        if (this.lastSeq >= 0 && f.seq !== ((this.lastSeq + 1) >>> 0)) {
          throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `${frameTypeName(f.type)} frame #${f.seq} arrived after #${this.lastSeq}: frames must arrive in order, once`);
        }
        this.lastSeq = f.seq;
        return f;
      }
      if (this.eof) {
        if (this.reader.pending > 0) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, `connection ended inside a frame (${this.reader.pending} bytes of a partial frame)`);
        return null;
      }
      const chunk = await this.transport.read();
      if (chunk === null) this.eof = true;
      else {
        this.stats.bytesReceived += chunk.byteLength;
        this.reader.push(chunk);
      }
    }
  }

  /** @throws PagewireError AUTH_FAILED when `f` has no tag or a wrong one */
  private async checkTag(f: Frame): Promise<void> {
    const m = this.reader.macView();
    if (!m) {
      const what = f.type === FrameType.ERROR ? `ERROR (${peerError(f.payload).message})` : frameTypeName(f.type);
      throw new PagewireError(ErrorCode.AUTH_FAILED, `the peer sent an unauthenticated ${what} frame #${f.seq} on an authenticated connection: refused`);
    }
    if (!(await frameTagValid(this.keys!.recv, m.signed, m.tag))) {
      throw new PagewireError(ErrorCode.AUTH_FAILED, `${frameTypeName(f.type)} frame #${f.seq} failed authentication (its MAC does not match): the stream was changed on the way`);
    }
  }

  /**
   * Next frame, which must be one of `types`.
   * @throws PagewireError PROTOCOL_VIOLATION (other type), TRANSPORT_CLOSED (end of stream)
   */
  async expect(...types: FrameType[]): Promise<Frame> {
    const f = await this.recv();
    if (!f) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, `connection closed while waiting for ${types.map(frameTypeName).join('/')}`);
    if (!types.includes(f.type)) {
      throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `expected ${types.map(frameTypeName).join('/')}, got ${frameTypeName(f.type)}`);
    }
    return f;
  }

  /** Best effort: tell the peer why we stop, then close. Never throws. */
  async fail(err: unknown): Promise<void> {
    try {
      if (!this.transport.closed) {
        await withTimeout(this.send(FrameType.ERROR, errorPayload(err)), 1000);
        await withTimeout(this.transport.end(), 1000);
      }
    } catch {
      // the link may already be gone; the local error is what matters
    }
    this.transport.destroy();
  }

  /**
   * Close cleanly: end our direction, and give the peer {@link CLOSE_GRACE_MS} to end its own.
   * After that the transport is torn down whatever the peer does, so no socket outlives the
   * migration: a half-closed TCP socket waits for the peer's FIN and keeps a Node process alive
   * until it comes (a loaded or hostile peer may never send it). The timer itself does not hold
   * the process; once the peer ended, the transport is closed and the destroy does nothing.
   */
  async close(): Promise<void> {
    try {
      await withTimeout(this.transport.end(), 2000);
    } catch {
      this.transport.destroy();
      return;
    }
    const transport = this.transport;
    const timer = setTimeout(() => transport.destroy(), CLOSE_GRACE_MS);
    (timer as { unref?: () => void }).unref?.();
  }

  dispose(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    this.reader.dispose();
    this.writer.dispose();
  }
}

function peerError(payload: Uint8Array): PagewireError {
  try {
    const e = parseError(payload);
    const code = (Object.values(ErrorCode) as string[]).includes(e.code) ? (e.code as ErrorCode) : ErrorCode.ABORTED;
    return new PagewireError(code, `peer failed: ${e.message}`);
  } catch (cause) {
    return new PagewireError(ErrorCode.ABORTED, 'peer failed and sent an unreadable ERROR frame', { cause });
  }
}

/** Resolve/reject like `p`, or reject with TIMEOUT after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PagewireError(ErrorCode.TIMEOUT, `${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
