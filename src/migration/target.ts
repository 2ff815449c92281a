/**
 * The target endpoint: accepts a migration, applies page records to its guest memory, checks the
 * memory digest when the source completes, and only then lets its guest run.
 *
 * A target survives dropped links: it keeps its memory and its position (the sequence number of
 * the last frame it applied) and accepts the same session on a new connection; the source then
 * re-sends only what the target did not apply. If no connection comes back before
 * `resumeDeadlineMs`, the migration is reported incomplete and the guest never runs.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore, type Core } from '../core/core.js';
import { GuestMemory, checkPageSize, type MemoryLayout } from '../memory/guest-memory.js';
import type { Transport } from '../transport/types.js';
import { Connection, withTimeout } from '../protocol/connection.js';
import { FrameType, frameTypeName, type Frame } from '../protocol/frame.js';
import {
  echoOptions, encodeAck, encodeJson, encodePageHashes, parseAuth, parseComplete, parseHello, parseRoundEnd, parsePageList, parsePing, PAGE_HASHES_PER_FRAME,
  type ChallengeMessage, type DoneMessage, type HelloMessage, type WelcomeMessage,
} from '../protocol/messages.js';
import { authFailed, authProof, completeNames, frameKeys, randomHex, requireFrameMac, sameProof } from '../protocol/auth.js';
import { memoryDigest, pageHashes } from '../memory/digest.js';
import type { PageHashTable } from '../memory/page-hash-table.js';
import { Emitter, type MigrationEvents, type MigrationReport, type RoundReport } from './report.js';
import { defaultClock, type Clock } from './common.js';
import { createDecoder, trackAppliedHashes, type DecoderLike } from '../codec/adapter.js';
import { sendKnownPages } from './known-pages.js';
import { ConnectionGate, DEFAULT_GATE_LIMITS, type Admitted, type RejectedConnection } from './target-gate.js';
import { DEFAULT_MAX_GUEST_BYTES, DEFAULT_MAX_HANDSHAKE_FRAME_BYTES, checkGuestBytes } from '../limits.js';

/** Hypervisor hooks of the target. All optional. */
export interface TargetHooks {
  /** Load the device state blob (before the guest runs). */
  deviceState?(state: Uint8Array): void | Promise<void>;
  /** The memory is complete and verified: the guest may run now. */
  guestMayRun?(): void | Promise<void>;
  /**
   * Pages were just written into guest memory by a PAGES frame (e.g. to copy them on to a file
   * the hypervisor maps: src/qemu). `pages` is a view valid only during the call.
   */
  pagesWritten?(pages: Uint32Array): void;
}

/** Options of {@link MigrationTarget}. */
export interface TargetOptions {
  /** Shared secret: the source must prove it knows it before any memory is written. */
  secret?: string;
  /** Largest frame accepted, bytes (default 32 MiB). */
  maxFrameBytes?: number;
  /** Handshake deadline, ms (default 10 000). */
  handshakeTimeoutMs?: number;
  /** Fail when the source sends nothing for this long, ms (default 60 000). */
  idleTimeoutMs?: number;
  /** Wait this long for a dropped source to come back, ms (default 60 000). */
  resumeDeadlineMs?: number;
  /** Largest guest a HELLO may ask the target to allocate, bytes (default 16 GiB). */
  maxGuestBytes?: number;
  /** Largest frame accepted before the source is authenticated, bytes (default 1 MiB). */
  maxHandshakeFrameBytes?: number;
  /** Handshakes in progress at once when accepting connections (default 64; the oldest is dropped beyond). */
  maxPendingHandshakes?: number;
  /** Handshakes in progress at once from one source address (default 8; the oldest is dropped beyond). */
  maxPendingPerAddress?: number;
  /** Told of each connection turned away before admission (garbage, silence, wrong secret, unknown session). */
  onRejected?(r: RejectedConnection): void;
  /**
   * Advertise the non-zero pages this memory already holds (an earlier snapshot, a page cache)
   * when the source asks, so it skips them (src/migration/known-pages.ts).
   */
  advertiseKnownPages?: boolean;
  /**
   * The memory the target receives into is all zero before the migration (fresh core memory, e.g.
   * a QEMU destination's new RAM file): pages the source never sends (it may skip zero pages)
   * count as zero in the digest without being read.
   */
  memoryZeroed?: boolean;
  clock?: Clock;
}

/** Memory given up front, or made from the layout the source announces. */
export type TargetMemory = GuestMemory | ((layout: MemoryLayout) => GuestMemory | Promise<GuestMemory>);

/**
 * Where the target gets its connections: one transport, or a function returning the next one (it
 * is called again as soon as a connection arrives, so connections are admitted concurrently; the
 * signal, when the function honours it, cancels a pending accept once the target is done).
 */
export type TargetTransports = Transport | ((signal?: AbortSignal) => Promise<Transport>);

const MiB = 1024 * 1024;
/** Full-verification repair passes a target grants before it gives up. */
const MAX_REPAIRS = 2;

/** Target endpoint of a migration. */
export class MigrationTarget extends Emitter<MigrationEvents> {
  private readonly memorySource: TargetMemory;
  private readonly hooks: TargetHooks;
  private readonly opts: Required<Omit<TargetOptions, 'secret' | 'clock' | 'onRejected'>> & TargetOptions;
  private readonly clock: Clock;
  private memory: GuestMemory | null = null;
  private core: Core | null = null;
  private decoder: DecoderLike | null = null;
  /** Per-page hashes of the pages as written (pre-copy's incremental digest), or null. */
  private hashTable: PageHashTable | null = null;
  private sessionId = '';
  private hello: HelloMessage | null = null;
  private appliedSeq = -1;
  private round = 0;
  private complete = false;
  private deviceState: Uint8Array | null = null;
  private rounds: RoundReport[] = [];
  private wireBytes = 0;
  private pagesApplied = 0;
  private drops = 0;
  private corruptions = 0;
  private repairs = 0;
  private lastPrecopyEndAt = 0;
  private guestRunAt = 0;
  private digest = '';
  private postcopyActive = false;
  /** HELLO to the end of the handshake, for the session's first connection (ms). */
  private setupTimeMs = 0;
  /** The transport of the connection being served, if any. */
  private active: Transport | null = null;
  private postcopyState: import('./postcopy-target.js').PostcopyTargetState | null = null;

  /** Post-copy state: null until the source switches over early (POSTCOPY), then the missing pages and faults. */
  get postcopy(): import('./postcopy-target.js').PostcopyTargetState | null {
    return this.postcopyState;
  }

  constructor(memory: TargetMemory, options: TargetOptions = {}, hooks: TargetHooks = {}) {
    super();
    this.memorySource = memory;
    this.hooks = hooks;
    this.opts = {
      maxFrameBytes: 32 * MiB, handshakeTimeoutMs: 10_000, idleTimeoutMs: 60_000, resumeDeadlineMs: 60_000,
      maxGuestBytes: DEFAULT_MAX_GUEST_BYTES, maxHandshakeFrameBytes: DEFAULT_MAX_HANDSHAKE_FRAME_BYTES, advertiseKnownPages: false, memoryZeroed: false,
      maxPendingHandshakes: DEFAULT_GATE_LIMITS.maxPending, maxPendingPerAddress: DEFAULT_GATE_LIMITS.maxPendingPerAddress, ...options,
    };
    this.clock = options.clock ?? defaultClock;
    if (options.secret === '') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'an empty secret would turn authentication off: omit it, or give a non-empty one');
  }

  /** The guest memory (after the handshake). */
  get guestMemory(): GuestMemory | null {
    return this.memory;
  }

  /**
   * Serve one migration to its end.
   * @param transports one transport, or a function that accepts the next connection (needed to
   *   survive a dropped link: the same session continues on it)
   * @returns the target's report; `verified` is true and the guest was allowed to run
   * @throws PagewireError when the migration failed (the guest never ran)
   */
  async run(transports: TargetTransports): Promise<MigrationReport> {
    const t0 = this.clock();
    // With a way to accept connections, each one is admitted by the gate first (its own deadline
    // and frame ceiling); one that fails before admission ends only itself.
    const gate = typeof transports === 'function'
      ? new ConnectionGate(transports, (t) => this.admit(t), { maxPending: this.opts.maxPendingHandshakes, maxPendingPerAddress: this.opts.maxPendingPerAddress },
        (r) => this.opts.onRejected?.(r), (a) => this.supersede(a))
      : null;
    try {
      for (let first = true; ; first = false) {
        let admitted: Admitted;
        if (gate) {
          admitted = first ? await gate.next() : await withTimeout(gate.next(), this.opts.resumeDeadlineMs, 'waiting for the source to reconnect');
        } else if (first) {
          admitted = await this.admit(transports as Transport);
        } else {
          throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'the connection dropped and this target has no way to accept another');
        }
        try {
          await this.serveConnection(admitted);
          break;
        } catch (err) {
          if (this.complete) break;
          // A transient link failure (drop, corruption, stall) waits for the source to come back.
          const resumable = !this.postcopy && err instanceof PagewireError && (err.code === ErrorCode.TRANSPORT_CLOSED || err.code === ErrorCode.CHECKSUM_MISMATCH || err.code === ErrorCode.TIMEOUT) && typeof transports === 'function';
          if (!resumable) throw err;
          if ((err as PagewireError).code === ErrorCode.CHECKSUM_MISMATCH) this.corruptions++;
          this.drops++;
          this.emit('drop', { error: (err as Error).message, attempt: this.drops });
        }
      }
    } catch (err) {
      let e = err instanceof PagewireError ? err : new PagewireError(ErrorCode.ABORTED, String((err as Error)?.message ?? err), { cause: err });
      if (this.postcopy?.started && !this.complete) {
        // The guest ran on incomplete memory: its faults fail, the migration is not verified.
        this.postcopy.fail(e);
        e = this.postcopy.error as PagewireError;
      }
      this.emit('error', e);
      throw e;
    } finally {
      gate?.close();
      this.hashTable?.dispose();
      this.decoder?.dispose();
    }
    const report = this.report(t0);
    this.emit('complete', report);
    return report;
  }

  private report(t0: number): MigrationReport {
    const pageSize = this.memory?.pageSize ?? 0;
    const rawBytes = this.rounds.reduce((n, r) => n + r.rawBytes, 0);
    const pc = this.postcopy;
    return {
      role: 'target', sessionId: this.sessionId,
      mode: pc && this.hello?.mode !== 'hybrid' ? 'postcopy' : (this.hello?.mode as MigrationReport['mode']) ?? 'precopy',
      verified: this.complete, converged: true, totalTimeMs: this.clock() - t0, setupTimeMs: this.setupTimeMs,
      downtimeMs: this.lastPrecopyEndAt > 0 ? this.guestRunAt - this.lastPrecopyEndAt : 0, expectedDowntimeMs: 0,
      wireBytes: this.wireBytes, rawBytes, pageSize, guestPages: this.memory?.pageCount ?? 0, rounds: this.rounds, codecs: {},
      precopyBytes: 0, downtimeBytes: 0, postcopyBytes: 0, digest: this.digest, throttlePct: 0, drops: this.drops,
      resentBytes: 0, corruptionsDetected: this.corruptions, channels: 1, reason: '', options: echoOptions(this.hello?.options ?? {}),
      codecStats: this.decoder?.stats,
      ...(pc ? { faults: pc.faults, faultLatencyMs: pc.latencySummary() } : {}),
    };
  }

  // ---------------------------------------------------------------- one connection

  /**
   * Admission of one connection: preamble, HELLO, authentication, then the session checks, all
   * within the handshake deadline and with frames capped at `maxHandshakeFrameBytes`. The session
   * checks come after authentication: a stranger learns nothing of the session and changes nothing.
   * @throws PagewireError (the connection is closed)
   */
  private async admit(transport: Transport): Promise<Admitted> {
    const conn = new Connection(transport, this.core ?? (this.core = await createCore()), {
      maxFrameBytes: Math.min(this.opts.maxFrameBytes, this.opts.maxHandshakeFrameBytes), writeTimeoutMs: this.opts.idleTimeoutMs,
    });
    try {
      let helloAt = 0;
      const hello = await withTimeout((async () => {
        await conn.open();
        const h = parseHello((await conn.expect(FrameType.HELLO)).payload);
        helloAt = this.clock();
        await this.authenticate(conn, h);
        await this.checkSession(conn, h);
        return h;
      })(), this.opts.handshakeTimeoutMs, 'handshake');
      return { conn, hello, transport, helloAt };
    } catch (err) {
      await closeAfter(conn, err);
      conn.dispose();
      throw err;
    }
  }

  /** Whether `hello` may continue or start the session. @throws PagewireError RESUME_FAILED, PROTOCOL_VIOLATION */
  private async checkSession(conn: Connection, hello: HelloMessage): Promise<void> {
    if (hello.resume) {
      if (!this.hello || hello.sessionId !== this.sessionId) {
        // Unknown session: tell the (authenticated) source there is nothing to resume.
        await conn.send(FrameType.WELCOME, encodeJson({ sessionId: hello.sessionId, resume: null, maxFrameBytes: this.opts.maxFrameBytes } satisfies WelcomeMessage));
        throw new PagewireError(ErrorCode.RESUME_FAILED, `source asked to resume session ${hello.sessionId}, which this target does not hold`);
      }
    } else if (this.hello && (hello.sessionId !== this.sessionId || this.appliedSeq >= 0)) {
      // The same session may start over only if nothing was applied yet (its handshake dropped).
      throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'a new session was offered while another one is in progress');
    }
  }

  /** An admitted connection of the session in progress replaces the one in use (the source reconnected). */
  private supersede(a: Admitted): void {
    if (this.active && a.hello.sessionId === this.sessionId && this.active !== a.transport) {
      this.active.destroy(new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'the source reconnected: this connection is replaced by the new one'));
    }
  }

  private async serveConnection(a: Admitted): Promise<void> {
    const { conn, hello, transport } = a;
    this.active = transport;
    try {
      const welcomeBytes = await withTimeout(this.welcome(conn, hello, a.helloAt), this.opts.handshakeTimeoutMs, 'handshake');
      conn.maxFrameBytes = this.opts.maxFrameBytes;
      // Acks count the bytes of frames after the handshake on this connection, as the source does.
      const ackBase = welcomeBytes;
      for (;;) {
        const f = await withTimeout(conn.recv(), this.opts.idleTimeoutMs, 'waiting for the source');
        if (!f) {
          if (this.complete) return;
          throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'the source closed the connection before the migration completed');
        }
        this.wireBytes += f.payload.byteLength + conn.frameOverhead;
        const finished = await this.onFrame(conn, f, ackBase);
        if (finished) {
          await conn.close();
          return;
        }
      }
    } catch (err) {
      await closeAfter(conn, err);
      throw err;
    } finally {
      if (this.active === transport) this.active = null;
      conn.dispose();
    }
  }

  /**
   * After admission: make the session (first HELLO), send WELCOME (and KNOWN_PAGES). The first
   * session's setup time runs from its HELLO to here: authentication, memory, decoder, digest
   * table, known-pages hashing.
   * @returns bytes read up to and including the handshake
   */
  private async welcome(conn: Connection, hello: HelloMessage, helloAt: number): Promise<number> {
    const first = !hello.resume && !this.hello;
    if (first) await this.setup(hello);
    const welcome: WelcomeMessage = {
      sessionId: hello.sessionId,
      resume: hello.resume ? { appliedSeq: this.appliedSeq, round: this.round, complete: this.complete, ...(this.complete ? { digest: this.digest } : {}) } : null,
      maxFrameBytes: this.opts.maxFrameBytes,
    };
    await conn.send(FrameType.WELCOME, encodeJson(welcome));
    if (!hello.resume && hello.options['knownPages'] === true) {
      await sendKnownPages((p) => conn.send(FrameType.KNOWN_PAGES, p), this.memory!, this.core!, this.opts.advertiseKnownPages === true);
    }
    if (first) this.setupTimeMs = this.clock() - helloAt;
    this.emit('phase', { phase: 'handshake', round: this.round });
    return conn.bytesRead;
  }

  private async authenticate(conn: Connection, hello: HelloMessage): Promise<void> {
    const secret = this.opts.secret;
    if (!secret) {
      // A source that wants mutual authentication refuses a WELCOME that comes without CHALLENGE.
      return;
    }
    if (!hello.nonce) authFailed('this target requires a shared secret and the source has none (give it --secret-file, PAGEWIRE_SECRET or --secret)');
    requireFrameMac(conn.peerMinor, 'source');
    const nonce = randomHex(16);
    const proof = await authProof(secret, 'target', hello.sessionId, hello.nonce, nonce);
    await conn.send(FrameType.CHALLENGE, encodeJson({ nonce, proof } satisfies ChallengeMessage));
    const a = parseAuth((await conn.expect(FrameType.AUTH)).payload);
    const expect = await authProof(secret, 'source', hello.sessionId, hello.nonce, nonce);
    if (!sameProof(a.proof, expect)) authFailed('the source\'s proof does not match this target\'s secret: the two sides have different secrets');
    // every later frame, both ways, is authenticated with this connection's keys
    conn.authenticate(await frameKeys(secret, 'target', hello.sessionId, hello.nonce, nonce));
  }

  /** First handshake of a session: check or make the memory, make the decoder. */
  private async setup(hello: HelloMessage): Promise<void> {
    const layout: MemoryLayout = { pageSize: hello.pageSize, regions: hello.regions };
    try {
      checkPageSize(hello.pageSize);
    } catch (cause) {
      // the peer's mistake, not a usage error of this side
      throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, `the source's page size ${hello.pageSize} is not a power of two in 512..65536`, { cause });
    }
    const total = hello.regions.reduce((n, r) => n + r.pageCount, 0) * hello.pageSize;
    let memory: GuestMemory;
    if (typeof this.memorySource === 'function') {
      checkGuestBytes(total, this.opts.maxGuestBytes, 'the source');
      memory = await this.memorySource(layout);
    } else {
      memory = this.memorySource;
    }
    checkLayout(memory, layout);
    this.memory = memory;
    if (memory.core) this.core = memory.core;
    this.decoder = await createDecoder(memory, hello.codecs);
    // the incremental digest: hashes of the pages as written (pages never written are hashed at
    // COMPLETE); post-copy digests what it received instead
    this.hashTable = hello.mode === 'precopy' && hello.options['verifyMemory'] !== true ? trackAppliedHashes(this.decoder, memory) : null;
    if (this.opts.memoryZeroed) this.hashTable?.assumeZero();
    this.sessionId = hello.sessionId;
    this.hello = hello;
  }

  // ---------------------------------------------------------------- frames

  /** @returns true when the migration is complete */
  private async onFrame(conn: Connection, f: Frame, ackBase: number): Promise<boolean> {
    switch (f.type) {
      case FrameType.PAGES: {
        const n = this.decoder!.apply(f.payload);
        this.pagesApplied += n;
        this.postcopy?.onPagesApplied(this.decoder!.lastPages());
        this.hooks.pagesWritten?.(this.decoder!.lastPages());
        this.appliedSeq = f.seq;
        await this.ack(conn, f, ackBase);
        // pagesSent: applied so far; a target does not know how many remain
        this.emit('progress', {
          round: this.round, pagesSent: this.pagesApplied, pagesRemaining: 0, bytesSent: this.wireBytes, bandwidthBytesPerSec: 0,
          expectedDowntimeMs: 0, phase: this.postcopyActive ? 'postcopy' : 'precopy',
        });
        return false;
      }
      case FrameType.ROUND_END: {
        const m = parseRoundEnd(f.payload);
        this.rounds.push({
          round: m.round, final: m.final, pages: m.pages, wireBytes: m.wireBytes, rawBytes: m.pages * this.memory!.pageSize,
          codecs: m.codecs ?? {}, dirtyPages: 0, dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: 0, durationMs: 0, expectedDowntimeMs: 0, throttlePct: 0,
        });
        this.round = m.round + 1;
        if (!m.final) this.lastPrecopyEndAt = this.clock();
        this.emit('round', this.rounds[this.rounds.length - 1]!);
        this.appliedSeq = f.seq;
        await this.ack(conn, f, ackBase);
        return false;
      }
      case FrameType.DEVICE_STATE:
        this.deviceState = f.payload.slice();
        this.appliedSeq = f.seq;
        await this.ack(conn, f, ackBase);
        return false;
      case FrameType.PING:
        // protocol 1.2: acknowledged in order, echoing the source's time stamp (its RTT sample)
        this.appliedSeq = f.seq;
        await this.ack(conn, f, ackBase, parsePing(f.payload));
        return false;
      case FrameType.POSTCOPY:
      case FrameType.PAGE_LIST: {
        const pc = await import('./postcopy-target.js');
        await pc.onPostcopyFrame(this.postcopyState, conn, f, {
          memory: this.memory!, clock: this.clock, core: this.core!,
          adopt: (st) => { this.postcopyState = st; },
          startGuest: async () => { await this.runGuest(); },
          parsePages: (p: Uint8Array) => parsePageList(p, this.memory!.pageCount),
        });
        this.postcopyActive = true;
        this.appliedSeq = f.seq;
        await this.ack(conn, f, ackBase);
        return false;
      }
      case FrameType.COMPLETE: {
        const m = parseComplete(f.payload);
        // Post-copy: the guest runs and writes, so the digest is over the content as received.
        this.digest = this.postcopy ? this.postcopy.receivedDigest() : this.hashTable ? this.hashTable.digest() : memoryDigest(this.memory!, this.core!);
        // protocol 1.3: the source commits to its digest; ours must open the commitment
        const ok = completeNames(this.digest, m);
        this.appliedSeq = f.seq;
        // (never in post-copy: the guest wrote its memory, a repair would overwrite its writes)
        if (!ok && m.repair && this.repairs < MAX_REPAIRS && !this.postcopy) {
          // Full verification: send our per-page hashes; the source re-sends what differs.
          this.repairs++;
          const hashes = pageHashes(this.memory!, this.core!);
          for (let first = 0; first < hashes.length; first += PAGE_HASHES_PER_FRAME) {
            await conn.send(FrameType.PAGE_HASHES, encodePageHashes(first, hashes.subarray(first, Math.min(hashes.length, first + PAGE_HASHES_PER_FRAME))));
          }
          await conn.send(FrameType.DONE, encodeJson({ verified: false, digest: this.digest, repair: true } satisfies DoneMessage));
          return false;
        }
        if (ok && !this.guestRunAt) await this.runGuest();
        this.complete = ok;
        const pcStats = this.postcopy ? { faults: this.postcopy.faults, faultLatencyMs: this.postcopy.latencySummary() } : {};
        const done: DoneMessage = { verified: ok, digest: this.digest, ...pcStats };
        await conn.send(FrameType.DONE, encodeJson(done));
        if (!ok) {
          throw new PagewireError(ErrorCode.VERIFY_FAILED, `memory digest ${this.digest} differs from the source's ${m.commitment ? '(committed to, not sent)' : m.digest}: the guest will not run`);
        }
        return true;
      }
      default:
        throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `unexpected ${frameTypeName(f.type)} frame from the source`);
    }
  }

  private async runGuest(): Promise<void> {
    if (this.deviceState) await this.hooks.deviceState?.(this.deviceState);
    await this.hooks.guestMayRun?.();
    this.guestRunAt = this.clock();
  }

  private async ack(conn: Connection, f: Frame, ackBase: number, echoTimeMs = 0): Promise<void> {
    await conn.send(FrameType.ACK, encodeAck({ appliedSeq: f.seq, bytesApplied: conn.bytesRead - ackBase, echoTimeMs }, conn.peerMinor));
  }
}

/** Close a connection after `err`: tell the peer why unless the link itself failed. Never throws. */
async function closeAfter(conn: Connection, err: unknown): Promise<void> {
  if (!(err instanceof PagewireError) || (err.code !== ErrorCode.TRANSPORT_CLOSED && err.code !== ErrorCode.TIMEOUT)) {
    await conn.fail(err);
  } else {
    conn.transport.destroy();
  }
}

/** @throws PagewireError LAYOUT_MISMATCH */
export function checkLayout(memory: GuestMemory, layout: MemoryLayout): void {
  if (memory.pageSize !== layout.pageSize) {
    throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, `page size differs: source ${layout.pageSize}, target ${memory.pageSize}`);
  }
  const a = memory.regions;
  const b = layout.regions;
  if (a.length !== b.length || a.some((r, i) => r.pageCount !== b[i]!.pageCount)) {
    const fmt = (rs: readonly { pageCount: number }[]): string => rs.map((r) => r.pageCount).join('+');
    throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, `memory layout differs: source ${fmt(b)} pages, target ${fmt(a)} pages`);
  }
}

