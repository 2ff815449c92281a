/**
 * Target side of parallel channels with one worker per channel: each channel's frames are
 * parsed, checksummed, decoded, hashed (and its memory pre-faulted) on the channel's own thread,
 * over its range of the shared guest memory (src/migration/target-channel-worker.ts).
 *
 * This coordinator (the thread that accepts connections) does three things:
 * - routes each accepted connection to its channel's worker: it reads the source's preamble and
 *   HELLO (bounded: the handshake frame cap and deadline), takes the channel from the HELLO's
 *   region names (`c<k>:...`, see splitMemory), and pipes the connection, those bytes first,
 *   through a MessageChannel to worker k. A resumed connection of a dropped channel is routed
 *   the same way, so a dropped channel resumes like a single migration (its worker's target
 *   holds the session and its position). Authentication stays with the worker's target: a
 *   connection that names a channel proves nothing until that target admits it.
 * - lets the guest run once every channel verified (device state from the channel that sent it);
 * - on any channel's failure stops every worker: the guest never runs.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore, type Core } from '../core/core.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { Transport } from '../transport/types.js';
import { messagePortTransport, type MessagePortLike } from '../transport/message-port.js';
import { pipeTransports } from '../transport/pipe.js';
import { FrameReader } from '../protocol/codec.js';
import { FrameType } from '../protocol/frame.js';
import { parseHello, peerText } from '../protocol/messages.js';
import { Connection, withTimeout } from '../protocol/connection.js';
import { DEFAULT_MAX_HANDSHAKE_FRAME_BYTES } from '../limits.js';
import type { ChannelRegion } from './channels.js';
import type { TargetHooks } from './target.js';
import type { TargetChannelInit, TargetChannelOptions, TargetCoordinatorMessage, TargetWorkerMessage } from './target-channel-worker.js';
import { memoryDigest } from '../memory/digest.js';
import { Emitter, type MigrationEvents, type MigrationReport } from './report.js';

/** A target channel worker as the coordinator sees it (a Node Worker or a Web Worker, adapted). */
export interface TargetWorker {
  postMessage(msg: TargetCoordinatorMessage, transfer?: unknown[]): void;
  onMessage(fn: (msg: TargetWorkerMessage) => void): void;
  onError(fn: (err: Error) => void): void;
  terminate(): Promise<unknown> | void;
}

/** Starts a target channel worker with its init message. */
export type SpawnTargetWorker = (init: TargetChannelInit) => TargetWorker;

/** Options of {@link WorkerParallelTarget}. */
export interface WorkerParallelTargetOptions extends TargetChannelOptions {
  /** Creates a worker (`nodeTargetChannelSpawner()` from pagewire/node, `webTargetChannelSpawner(url)` in browsers). */
  spawn: SpawnTargetWorker;
  /** Each worker pre-faults its part ahead of its stream (default false). */
  prefault?: boolean;
  /**
   * Each worker listens on a port of its own on this host ({@link WorkerParallelTarget.listen}
   * says which) and reads its connections itself: no thread pipes the stream. Without it,
   * `run(accept)` routes connections on one port to the workers by their HELLO.
   */
  listen?: { host: string };
  /** One-way delay (and jitter) on each worker's side of its connections (a simulated link's return path). */
  shape?: { delayMs: number; jitterMs: number; seed: number };
}

/**
 * The target of a parallel migration, one worker per channel; each worker allocates its part of
 * the guest (SharedArrayBuffer regions) from its channel's HELLO. Events: drop, complete, error.
 */
export class WorkerParallelTarget extends Emitter<MigrationEvents> {
  private workers: TargetWorker[] = [];
  private parts: ChannelRegion[][] = [];
  private memory: GuestMemory | null = null;
  private readonly pipes: Transport[] = [];
  private readonly pumping: Promise<void>[] = [];
  private failure: PagewireError | null = null;
  private onFailure: ((e: PagewireError) => void) | null = null;
  private started: { done: Promise<void>; ports: Promise<number[]>; ready: Promise<void> } | null = null;
  private readonly reports: MigrationReport[] = [];
  private deviceState: Uint8Array | null = null;

  /**
   * @param channels the source's channel count
   * @throws PagewireError INVALID_ARGUMENT for a count outside 1..64
   */
  constructor(readonly channels: number, private readonly options: WorkerParallelTargetOptions, private readonly hooks: TargetHooks = {}) {
    super();
    if (!Number.isInteger(channels) || channels < 1 || channels > 64) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `channels must be an integer in 1..64, got ${String(channels)}`);
  }

  /** The whole received guest memory, the channels' parts in order (after {@link run}). */
  get guestMemory(): GuestMemory | null {
    return this.memory;
  }

  /**
   * Serve all channels until every one verified (or one failed).
   * @param accept the next incoming connection (called until the migration ends; the signal cancels
   *   the last call). Without it connections come from the workers' own listeners (`options.listen`)
   *   or from {@link connect}.
   * @throws PagewireError the first channel's failure (the guest never ran)
   */
  async run(accept?: (signal?: AbortSignal) => Promise<Transport>): Promise<MigrationReport> {
    const n = this.channels;
    const core = await createCore();
    const stop = new AbortController();
    try {
      const started = this.start();
      if (accept && !this.options.listen) void this.acceptLoop(accept, stop.signal, core);
      await started.done;
    } catch (err) {
      this.emit('error', err as PagewireError);
      throw err;
    } finally {
      stop.abort();
      await this.stopAll();
    }
    const reports = this.reports;
    const regions = this.parts.flat();
    const memory = GuestMemory.external(regions.map((r) => new Uint8Array(r.buffer, r.byteOffset, r.byteLength)), reports[0]!.pageSize, regions.map((r) => r.name));
    this.memory = memory;
    const sum = (f: (r: MigrationReport) => number): number => reports.reduce((a, r) => a + f(r), 0);
    const report: MigrationReport = {
      ...reports[0]!, sessionId: reports.map((r) => r.sessionId).join(','), verified: reports.every((r) => r.verified),
      wireBytes: sum((r) => r.wireBytes), rawBytes: sum((r) => r.rawBytes), guestPages: memory.pageCount,
      digest: memoryDigest(memory, core), channels: n, totalTimeMs: Math.max(...reports.map((r) => r.totalTimeMs)),
      downtimeMs: Math.max(...reports.map((r) => r.downtimeMs)), drops: sum((r) => r.drops), corruptionsDetected: sum((r) => r.corruptionsDetected),
    };
    this.emit('complete', report);
    return report;
  }

  /**
   * A new in-memory connection to channel k's worker (a MessageChannel: the worker gets one port,
   * the caller the other as a Transport); call it again for a resumed connection. Starts the workers
   * if {@link run} has not yet.
   */
  connect(k = 0): Transport {
    return messagePortTransport(this.connectPort(k), { label: `channel ${k}` });
  }

  /**
   * Like {@link connect}, but the caller's end is a bare MessagePort to transfer to another thread:
   * a ParallelMigrationSource link `{ kind: 'port', port: target.connectPort(k) }` joins source
   * worker k to target worker k with no thread between them (in a browser: not through the page).
   * @throws PagewireError INVALID_ARGUMENT for a channel outside 0..channels-1
   */
  connectPort(k = 0): MessagePortLike {
    if (!Number.isInteger(k) || k < 0 || k >= this.channels) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `channel must be 0..${this.channels - 1}, got ${String(k)}`);
    this.start();
    const { port1, port2 } = new MessageChannel();
    this.workers[k]!.postMessage({ t: 'conn', port: port2 }, [port2]);
    return port1 as unknown as MessagePortLike;
  }

  /**
   * Start the workers (once) and wait until each has compiled its core and can take connections:
   * call it before the source's clock starts, so the workers' start-up is not in the migration.
   */
  ready(): Promise<void> {
    return this.start().ready;
  }

  /** Stop every worker (the guest never runs); `run` rejects with ABORTED and this message. */
  abort(message: string): void {
    this.fail(new PagewireError(ErrorCode.ABORTED, message));
  }

  /**
   * With `options.listen`: start the workers, each on a listener of its own; the port of each
   * channel, in channel order (the source connects channel k to port k).
   * @throws PagewireError when a worker cannot listen
   */
  listen(): Promise<number[]> {
    if (!this.options.listen) return Promise.reject(new PagewireError(ErrorCode.INVALID_ARGUMENT, 'WorkerParallelTarget.listen needs options.listen'));
    return this.start().ports;
  }

  /** Spawn the workers (once): `done` when every channel finished, `ports` once all listen. */
  private start(): { done: Promise<void>; ports: Promise<number[]>; ready: Promise<void> } {
    if (this.started) return this.started;
    const n = this.channels;
    const { spawn, prefault, listen, shape, ...opts } = this.options;
    const done = deferred<void>();
    const ports = deferred<number[]>();
    const ready = deferred<void>();
    this.onFailure = (e) => { done.reject(e); ports.reject(e); ready.reject(e); };
    this.started = { done: done.promise, ports: ports.promise, ready: ready.promise };
    const bound: number[] = new Array<number>(n);
    let listening = 0;
    let readied = 0;
    let verified = 0;
    let finished = 0;
    for (let k = 0; k < n; k++) {
      const w = spawn({ channel: k, options: opts, prefault: prefault === true, ...(listen ? { listen: { host: listen.host } } : {}), ...(shape ? { shape } : {}) });
      this.workers.push(w);
      w.onError((err) => this.fail(new PagewireError(ErrorCode.ABORTED, `target channel ${k} worker failed: ${err.message}`, { cause: err })));
      w.onMessage((m) => {
        if (m.t === 'ready') { if (++readied === n) ready.resolve(); }
        else if (m.t === 'listening') { bound[k] = m.port; if (++listening === n) ports.resolve(bound); }
        else if (m.t === 'memory') this.parts[k] = m.regions;
        else if (m.t === 'deviceState') this.deviceState = m.state;
        else if (m.t === 'drop') this.emit('drop', { error: `channel ${k}: ${m.error}`, attempt: 0 });
        else if (m.t === 'error') this.fail(new PagewireError((m.code in ErrorCode ? m.code : 'ABORTED') as ErrorCode, `channel ${k}: ${m.message}`));
        else if (m.t === 'done') { this.reports[k] = m.report; if (++finished === n) done.resolve(); }
        else if (++verified === n) void this.runGuest(this.deviceState).catch((e: unknown) => this.fail(asError(e)));
      });
    }
    return this.started;
  }

  /** Every channel verified: device state, then the guest runs; then the workers finish. */
  private async runGuest(state: Uint8Array | null): Promise<void> {
    if (state) await this.hooks.deviceState?.(state);
    await this.hooks.guestMayRun?.();
    for (const w of this.workers) w.postMessage({ t: 'go' });
  }

  private async acceptLoop(accept: (signal?: AbortSignal) => Promise<Transport>, signal: AbortSignal, core: Core): Promise<void> {
    while (!signal.aborted && !this.failure) {
      let t: Transport;
      try {
        t = await accept(signal);
      } catch (err) {
        if (!signal.aborted) this.fail(asError(err));
        return;
      }
      void this.route(t, core);
    }
  }

  /** Read the HELLO, pipe the connection to its channel's worker. A connection that fails here ends only itself. */
  private async route(t: Transport, core: Core): Promise<void> {
    let k: number;
    let chunks: Uint8Array[];
    try {
      ({ k, chunks } = await withTimeout(peekChannel(t, core, this.channels), this.options.handshakeTimeoutMs ?? 10_000, 'handshake'));
    } catch (err) {
      const e = asError(err);
      if (e.code === ErrorCode.LAYOUT_MISMATCH) {
        // a source that speaks the protocol but not with this channel count: tell it why
        const conn = new Connection(t, core);
        await withTimeout(conn.open(), 1000).then(() => conn.fail(e), () => t.destroy(e));
        conn.dispose();
      } else t.destroy(e);
      return;
    }
    const w = this.workers[k];
    if (!w || this.failure) { t.destroy(this.failure ?? undefined); return; }
    const { port1, port2 } = new MessageChannel();
    const local = messagePortTransport(port1 as never, { label: `channel ${k} pipe` });
    this.pipes.push(t, local);
    w.postMessage({ t: 'conn', port: port2 }, [port2]);
    const p = pipeTransports(t, local, chunks);
    this.pumping.push(p);
    await p;
  }

  private fail(e: PagewireError): void {
    if (this.failure) return;
    this.failure = e;
    for (const w of this.workers) w.postMessage({ t: 'abort', message: e.message });
    for (const t of this.pipes) t.destroy(e);
    this.onFailure?.(e);
  }

  private async stopAll(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    // a worker's 'done' may overtake its last frames (another port): let the pipes drain first
    if (!this.failure) await withTimeout(Promise.all(this.pumping), PIPE_DRAIN_MS, 'draining channel connections').catch(() => undefined);
    for (const t of this.pipes.splice(0)) if (!t.closed) t.destroy();
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

/** Longest wait for the channel connections to pass their last frames on after every channel finished. */
const PIPE_DRAIN_MS = 5_000;

/** A promise and its settle functions; its rejection is never unhandled (not every caller waits on it). */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve: (v: T) => void = () => undefined;
  let reject: (e: unknown) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

function asError(e: unknown): PagewireError {
  return e instanceof PagewireError ? e : new PagewireError(ErrorCode.ABORTED, String((e as Error)?.message ?? e), { cause: e });
}

/**
 * The channel a connection is for, from its HELLO (bounded by the handshake frame cap); the
 * chunks read, to be replayed to the worker.
 * @throws PagewireError PROTOCOL_VIOLATION, LAYOUT_MISMATCH, TRANSPORT_CLOSED, frame errors
 */
async function peekChannel(t: Transport, core: Core, channels: number): Promise<{ k: number; chunks: Uint8Array[] }> {
  const reader = new FrameReader(core, { maxFrameBytes: DEFAULT_MAX_HANDSHAKE_FRAME_BYTES });
  const chunks: Uint8Array[] = [];
  try {
    for (;;) {
      const c = await t.read();
      if (c === null) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'the connection ended before its HELLO');
      chunks.push(c);
      reader.push(c);
      const f = reader.next();
      if (!f) continue;
      if (f.type !== FrameType.HELLO) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'the first frame of a channel connection must be HELLO');
      const name = parseHello(f.payload).regions[0]?.name ?? '';
      const m = /^c(\d+):/.exec(name);
      const k = m ? Number(m[1]) : -1;
      if (!(k >= 0 && k < channels)) {
        throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, `this target receives ${channels} channels (regions c0:... to c${channels - 1}:...); a connection for region "${peerText(name, 64)}" is not one of them (give the source --channels ${channels})`);
      }
      return { k, chunks };
    }
  } finally {
    reader.dispose();
  }
}
