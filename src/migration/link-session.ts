/**
 * The source's link session: one migration session over one or more connections. It opens a
 * connection, runs the handshake (HELLO, optional CHALLENGE/AUTH, WELCOME), reads the target's
 * frames in a receive loop, sends frames under flow control, remembers the page frames the target
 * has not acknowledged, and reconnects after a dropped link (see resume in docs/PROTOCOL.md).
 *
 *   connect: preamble, HELLO -> [CHALLENGE -> AUTH ->] WELCOME [-> PING (protocol >= 1.2)]
 *   send:    wait for window room, pace, record (seq, pages) as unacknowledged, write
 *   receive: ACK (window, bandwidth, RTT echo, unacknowledged frames dropped), the rest to the owner
 *   resume:  new connection with `resume: true`; frames after the target's appliedSeq are lost:
 *            their pages go back to the owner (`requeue`) and count as re-sent bytes
 *
 * It knows frames and pages as numbers only: what a page is, and what to send, is the owner's.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Core } from '../core/core.js';
import type { Transport, TransportFactory } from '../transport/types.js';
import { Connection, withTimeout } from '../protocol/connection.js';
import { FrameType, DEFAULT_MAX_FRAME_BYTES, type Frame } from '../protocol/frame.js';
import { encodeJson, parseAck, parseChallenge, parseWelcome, encodePing, type HelloMessage } from '../protocol/messages.js';
import { authFailed, authProof, frameKeys, randomHex, requireFrameMac, sameProof } from '../protocol/auth.js';
import { DEFAULT_MAX_HANDSHAKE_FRAME_BYTES } from '../limits.js';
import { sleep, type Clock } from './common.js';
import { FlowControl } from './flow-control.js';
import type { SourceStats } from './source-stats.js';

/** Lowest protocol minor that acknowledges PING with an ACK echoing its time stamp. */
export const MINOR_PING_ECHO = 2;

/** Options of a link session (the source's, resolved). */
export interface LinkSessionOptions {
  handshakeTimeoutMs: number;
  ackTimeoutMs: number;
  maxRetries: number;
  retryBackoffMs: number;
  resumeDeadlineMs: number;
  windowBytes: number;
  maxBandwidthBytesPerSec?: number;
  yieldIntervalMs?: number;
  secret?: string;
}

/** What the session needs from the migration that owns it. */
export interface LinkOwner {
  /** The HELLO to send (resume: whether the connection continues the session). */
  hello(resume: boolean, nonce: string): HelloMessage;
  /** Target frames other than ACK (DONE, PAGE_REQUEST, KNOWN_PAGES, PAGE_HASHES...). */
  onFrame(f: Frame): void;
  /** The link failed: wake whatever waits on target frames. */
  onLinkError(e: PagewireError): void;
  /** Pages encoded for a frame that never left, or of frames the target lost: not held there. */
  forget(pages: Uint32Array): void;
  /** Pages of frames the target lost after a resume: send them again. */
  requeue(pages: Uint32Array): void;
  /** A resumed connection's WELCOME (its `resume` field checked for null already). */
  onResumed(r: { appliedSeq: number; round: number; complete: boolean }, resentPages: number): void;
  /** A connection was lost (`attempt` counts from 1). */
  onDrop(error: string, attempt: number): void;
  /** A handshake starts. */
  onHandshake(): void;
}

interface SentFrame { seq: number; pages: Uint32Array; bytes: number }

/** Connection, handshake, receive loop, reconnect and unacknowledged frames of one session. */
export class LinkSession {
  readonly flow: FlowControl;
  /** The target's guest may have run (post-copy switch-over): no reconnect. */
  committed = false;
  /** The target said in a resume WELCOME that it completed. */
  targetComplete = false;
  /** The digest that WELCOME named, if any. */
  targetDigest: string | undefined;
  /**
   * Reconnect budget of the session: attempts and the time of the first drop since the target
   * last made progress (acknowledged a frame it had not acknowledged before). A reconnect alone
   * does not renew it: a target that completes handshakes but never acknowledges runs it out.
   */
  private budget = { attempts: 0, since: -1, pagesAckedAtDrop: -1 };
  /** Pages of page frames the target acknowledged (its progress; a PING's ACK is not progress). */
  private pagesAcked = 0;
  private conn: Connection | null = null;
  private pumpDone: Promise<void> = Promise.resolve();
  private linkError: PagewireError | null = null;
  private unacked: SentFrame[] = [];
  private appliedSeq = -1;
  /** Sequence numbers continue across connections of a session. */
  private nextSeq = 0;

  constructor(
    readonly sessionId: string,
    private readonly transportSource: Transport | TransportFactory,
    private readonly core: Core,
    private readonly owner: LinkOwner,
    private readonly stats: SourceStats,
    private readonly opts: LinkSessionOptions,
    private readonly clock: Clock,
  ) {
    this.flow = new FlowControl(clock, opts.windowBytes, opts.maxBandwidthBytesPerSec, opts.yieldIntervalMs);
  }

  /** The peer's protocol minor (-1 before a handshake). */
  get peerMinor(): number {
    return this.conn?.peerMinor ?? -1;
  }

  /** Sequence number the next frame will carry. */
  get seq(): number {
    return this.requireConn().nextSeq;
  }

  /** First connection, retried like a resume when the link drops during the handshake. */
  async connectFirst(): Promise<void> {
    let delay = this.opts.retryBackoffMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.connect(false);
        return;
      } catch (err) {
        if (!this.canResume(err) || attempt >= this.opts.maxRetries) throw err;
        this.stats.drops++;
        this.owner.onDrop(String((err as Error).message), attempt + 1);
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /** Whether `err` is a link failure the session can survive by reconnecting. */
  canResume(err: unknown): boolean {
    if (typeof this.transportSource !== 'function') return false;
    // a target whose guest runs does not wait for a reconnect (post-copy is not resumable yet)
    if (this.committed) return false;
    if (!(err instanceof PagewireError)) return false;
    return err.code === ErrorCode.TRANSPORT_CLOSED || err.code === ErrorCode.CHECKSUM_MISMATCH || err.code === ErrorCode.TIMEOUT;
  }

  /** The error that ended the current connection, if any. */
  get error(): PagewireError | null {
    return this.linkError;
  }

  /**
   * Send a frame with flow control; `pages` are the pages it carries (for resume bookkeeping).
   * @param payload the bytes, or a function that returns a current view of them (a payload in core
   *   memory: a view taken before waiting for room would be detached if that memory grew meanwhile)
   * @returns wire bytes of the frame
   */
  async sendFrame(type: FrameType, payload: Uint8Array | (() => Uint8Array), pages: Uint32Array | null): Promise<number> {
    const conn = this.requireConn();
    const bytes = conn.frameOverhead + (typeof payload === 'function' ? payload() : payload).byteLength;
    try {
      while (!this.flow.hasRoom()) {
        if (this.linkError) throw this.linkError;
        await this.flow.ackSignal.wait(this.opts.ackTimeoutMs, 'waiting for acknowledgements');
      }
      if (this.linkError) throw this.linkError;
      await this.flow.pace(bytes);
    } catch (err) {
      // Encoded but never sent: the encoder already counts these pages as held by the target
      // (delta base, unchanged, duplicate source); they must not be, or a resend would skip them.
      if (pages) this.owner.forget(pages);
      throw err;
    }
    const seq = conn.nextSeq;
    if (pages) this.unacked.push({ seq, pages: pages.slice(), bytes });
    this.flow.onSent(bytes);
    this.stats.countWire(bytes);
    try {
      await conn.send(type, typeof payload === 'function' ? payload() : payload);
    } catch (err) {
      throw this.linkError ?? err;
    }
    return bytes;
  }

  /** Wait until at most `allowBytes` are unacknowledged (a link failure surfaces at the next send). */
  async drain(allowBytes: number): Promise<void> {
    while (this.flow.sentOnConn - this.flow.ackedOnConn > allowBytes) {
      if (this.linkError) return;
      try {
        await this.flow.ackSignal.wait(this.opts.ackTimeoutMs, 'waiting for acknowledgements');
      } catch {
        return;
      }
    }
  }

  /** Resolves when the target has applied frame `seq`; rejects on a link failure. */
  async waitApplied(seq: number, what: string): Promise<void> {
    while (!(this.appliedSeq >= 0 && seqLE(seq, this.appliedSeq))) {
      if (this.linkError) throw this.linkError;
      await this.flow.ackSignal.wait(this.opts.ackTimeoutMs, what);
    }
  }

  /**
   * Ask for an RTT sample: a PING with our clock, which a target of protocol 1.2 or later
   * acknowledges in order with an ACK echoing it. Older targets are not sent one.
   * @param wait resolve when the echo came back (nothing else may hold the event loop meanwhile,
   *   or the sample would count that too)
   */
  async probeRtt(wait = false): Promise<void> {
    if (this.peerMinor < MINOR_PING_ECHO) return;
    const seq = this.requireConn().nextSeq;
    await this.sendFrame(FrameType.PING, encodePing(this.clock()), null);
    if (wait) await this.waitApplied(seq, 'waiting for the PING echo');
  }

  /**
   * Reconnect with backoff; on success the pages of unapplied frames are pending again.
   * @throws PagewireError RESUME_FAILED when no attempt succeeded; AUTH_FAILED, LAYOUT_MISMATCH,
   *   VERSION_MISMATCH at once
   */
  async resume(cause: unknown): Promise<void> {
    const started = this.clock();
    const old = this.conn;
    this.conn = null;
    if (old) {
      this.nextSeq = old.nextSeq;
      old.transport.destroy(cause instanceof Error ? cause : undefined);
      await this.pumpDone.catch(() => undefined);
      old.dispose();
    }
    if (cause instanceof PagewireError && cause.code === ErrorCode.CHECKSUM_MISMATCH) this.stats.corruptionsDetected++;
    // The budget carries over from earlier drops unless the target made progress since.
    const b = this.budget;
    if (b.since < 0 || this.pagesAcked !== b.pagesAckedAtDrop) {
      b.attempts = 0;
      b.since = started;
      b.pagesAckedAtDrop = this.pagesAcked;
    }
    let delay = this.opts.retryBackoffMs;
    let lastErr: unknown = cause;
    while (b.attempts < this.opts.maxRetries) {
      const attempt = ++b.attempts;
      this.owner.onDrop(String((lastErr as Error)?.message ?? lastErr), attempt);
      if (this.clock() - b.since > this.opts.resumeDeadlineMs) break;
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
      try {
        await this.connect(true);
        this.stats.drops++;
        return;
      } catch (err) {
        lastErr = err;
        // A damaged preamble or frame of this attempt (the target says VERSION_MISMATCH or
        // FRAME_CORRUPT) is the link's fault, not a real mismatch: the first handshake succeeded.
        if (err instanceof PagewireError && (err.code === ErrorCode.AUTH_FAILED || err.code === ErrorCode.LAYOUT_MISMATCH)) throw err;
      }
    }
    throw new PagewireError(ErrorCode.RESUME_FAILED, `could not resume after the link dropped (${b.attempts} attempts in ${Math.round(this.clock() - b.since)} ms without progress; budget maxRetries ${this.opts.maxRetries}, resumeDeadlineMs ${this.opts.resumeDeadlineMs}): ${String((lastErr as Error)?.message ?? lastErr)}`, { cause: lastErr });
  }

  /** Tell the target why we stop (best effort) and close. */
  async fail(err: PagewireError): Promise<void> {
    const conn = this.conn;
    this.conn = null;
    if (conn) await conn.fail(err);
  }

  /** Close the connection cleanly. */
  async close(): Promise<void> {
    await this.conn?.close();
  }

  dispose(): void {
    this.conn?.dispose();
  }

  private requireConn(): Connection {
    if (!this.conn) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'no connection');
    return this.conn;
  }

  private async connect(resume: boolean): Promise<void> {
    this.owner.onHandshake();
    const t = this.transportSource;
    const transport = await (typeof t === 'function' ? t() : t);
    // A target that stops reading ends the connection after ackTimeoutMs (write deadline); until
    // the handshake is done its frames are held to the handshake ceiling.
    const conn = new Connection(transport, this.core, { firstSeq: this.nextSeq, writeTimeoutMs: this.opts.ackTimeoutMs, maxFrameBytes: DEFAULT_MAX_HANDSHAKE_FRAME_BYTES });
    this.conn = conn;
    this.linkError = null;
    this.flow.newConnection();
    const handshake = async (): Promise<void> => {
      await conn.open();
      const nonce = this.opts.secret ? randomHex(16) : '';
      const helloAt = this.clock();
      await conn.send(FrameType.HELLO, encodeJson(this.owner.hello(resume, nonce)));
      let f = await conn.expect(FrameType.CHALLENGE, FrameType.WELCOME);
      // HELLO -> first answer: a round trip plus the target's setup (an upper bound)
      this.flow.onRttSample(this.clock() - helloAt);
      if (f.type === FrameType.CHALLENGE) {
        const secret = this.opts.secret;
        if (!secret) authFailed('the target requires a shared secret and this source has none (give --secret-file, PAGEWIRE_SECRET or --secret)');
        const ch = parseChallenge(f.payload);
        const expect = await authProof(secret, 'target', this.sessionId, nonce, ch.nonce);
        if (!sameProof(expect, ch.proof)) authFailed('the target\'s proof does not match our secret: the two sides have different secrets (or this is not the target you meant)');
        requireFrameMac(conn.peerMinor, 'target');
        const proof = await authProof(secret, 'source', this.sessionId, nonce, ch.nonce);
        const keys = await frameKeys(secret, 'source', this.sessionId, nonce, ch.nonce);
        await conn.send(FrameType.AUTH, encodeJson({ proof }));
        // every later frame, both ways (WELCOME on), is authenticated with this connection's keys
        conn.authenticate(keys);
        f = await conn.expect(FrameType.WELCOME);
      } else if (this.opts.secret) {
        authFailed('the target has no secret (it accepted without authenticating itself), but this source has one: refusing an unauthenticated target');
      }
      const w = parseWelcome(f.payload);
      if (w.sessionId !== this.sessionId) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'target answered for another session');
      if (resume) this.afterResumeWelcome(w.resume);
    };
    try {
      await withTimeout(handshake(), this.opts.handshakeTimeoutMs, 'handshake');
      conn.maxFrameBytes = DEFAULT_MAX_FRAME_BYTES; // the target's later frames (hashes, known pages) are larger
    } catch (err) {
      this.conn = null;
      await conn.fail(err);
      conn.dispose();
      throw err;
    }
    this.pumpDone = this.pump(conn);
    try {
      // the link is idle now: the cleanest RTT sample of the session (waited for, one round trip)
      await this.probeRtt(true);
    } catch (err) {
      // No echo within the ack timeout: carry on unsampled. The rounds' own acknowledgement waits
      // then decide, through the reconnect budget (a target that never acknowledges ends in
      // RESUME_FAILED, not in a handshake TIMEOUT that skips the budget).
      if (err instanceof PagewireError && err.code === ErrorCode.TIMEOUT && !this.linkError) return;
      this.conn = null;
      conn.transport.destroy(err instanceof Error ? err : undefined);
      await this.pumpDone.catch(() => undefined);
      conn.dispose();
      throw err;
    }
  }

  private afterResumeWelcome(r: { appliedSeq: number; round: number; complete: boolean; digest?: string } | null): void {
    if (!r) throw new PagewireError(ErrorCode.RESUME_FAILED, 'the target does not know this session any more');
    this.targetComplete = r.complete;
    this.targetDigest = r.digest;
    const applied = r.appliedSeq;
    // Frames after `applied` never reached the target's memory: their pages are pending again and
    // the delta cache must forget the versions it recorded for them.
    let pages = 0;
    for (const fr of this.unacked) {
      if (applied >= 0 && seqLE(fr.seq, applied)) continue;
      this.owner.forget(fr.pages);
      this.owner.requeue(fr.pages);
      pages += fr.pages.length;
      this.stats.resentBytes += fr.bytes;
    }
    this.unacked = [];
    this.owner.onResumed(r, pages);
  }

  private async pump(conn: Connection): Promise<void> {
    try {
      for (;;) {
        const f = await conn.recv();
        if (!f) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'target closed the connection');
        if (f.type === FrameType.ACK) this.onAck(f.payload);
        else this.owner.onFrame(f);
      }
    } catch (err) {
      if (this.conn !== conn) return;
      const e = err instanceof PagewireError ? err : new PagewireError(ErrorCode.TRANSPORT_CLOSED, String(err), { cause: err });
      this.linkError = e;
      this.flow.ackSignal.fail(e);
      this.owner.onLinkError(e);
      conn.transport.destroy();
    }
  }

  private onAck(payload: Uint8Array): void {
    const a = parseAck(payload, this.peerMinor);
    this.appliedSeq = a.appliedSeq === 0xffffffff ? -1 : a.appliedSeq;
    if (this.appliedSeq >= 0) {
      while (this.unacked.length > 0 && seqLE(this.unacked[0]!.seq, a.appliedSeq)) this.pagesAcked += this.unacked.shift()!.pages.length;
    }
    if (a.echoTimeMs > 0) this.flow.onRttSample(this.clock() - a.echoTimeMs);
    this.flow.onAck(a.bytesApplied);
  }
}

/** Is sequence number a <= b (mod 2^32, assuming they are within 2^31)? */
export function seqLE(a: number, b: number): boolean {
  return ((b - a) >>> 0) < 0x80000000;
}
