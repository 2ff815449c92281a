/**
 * Parallel channels (like QEMU's multifd): the guest memory is split into N contiguous page
 * ranges; each range is migrated by its own worker (worker_threads in Node, Web Workers in
 * browsers) with its own MigrationSource, connection, encoder and delta cache, reading the guest
 * memory in place from a SharedArrayBuffer. A page always travels on the same channel, so
 * per-page ordering holds; each channel's digest covers its range, all of them the whole memory.
 *
 * The coordinator (this module, in the thread that runs the guest) keeps the rounds in step:
 *
 *   worker k: round r sent -> onRound(r, before)  --> coordinator: barrier over all channels,
 *             ONE dirty sync of the guest's log, each channel gets the pages of its range
 *   worker k: decide(measurement)                 --> coordinator: barrier, the same
 *             ConvergencePolicy as a single source over the channels' measurements combined
 *             (pages, bytes, bandwidth and bytes in flight summed; duration, RTT and
 *             verification cost the slowest channel's) -> the decision to all
 *   worker k: pause()                             --> coordinator: barrier, pauses the guest once,
 *             last dirty sync, each channel its pages; then every channel sends its final round
 *   worker k: deviceState()                       --> channel 0 carries the device state
 *
 * On the target, {@link ParallelMigrationTarget} runs one MigrationTarget per channel over views
 * of its memory (a channel is recognised by the region names of its HELLO) and lets the guest
 * run only when every channel verified. If any channel fails, all workers are stopped, the
 * target's guest never runs and the source guest resumes.
 *
 * Browser-safe: workers are created by a `spawn` function (`nodeChannelSpawner` in
 * src/migration/channels-node.ts, or `webChannelSpawner` in src/migration/channels-web.ts).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore } from '../core/core.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { Transport } from '../transport/types.js';
import { MigrationTarget, type TargetHooks, type TargetOptions } from './target.js';
import type { DirtyLogLike, SourceHooks, SourceOptions } from './source.js';
import { ConvergencePolicy, DEFAULT_POLICY, type PolicyDecision, type PolicyOptions, type RoundMeasurement } from './policy.js';
import { memoryDigest } from '../memory/digest.js';
import { Emitter, addCodecCounts, type MigrationEvents, type MigrationReport, type RoundReport, type CodecCounts } from './report.js';
import { defaultClock, type Clock } from './common.js';

/** One region slice handed to a channel worker (structured-cloneable). */
export interface ChannelRegion {
  name: string;
  buffer: SharedArrayBuffer | ArrayBuffer;
  byteOffset: number;
  byteLength: number;
}

/** How a channel worker reaches the target. */
export type ChannelLink =
  | { kind: 'port'; port: unknown }
  | { kind: 'tcp'; host: string; port: number };

/** First message to a channel worker. */
export interface ChannelInit {
  channel: number;
  channels: number;
  pageSize: number;
  regions: ChannelRegion[];
  /** Per-channel source options (serializable: no clock or callbacks). */
  options: SourceOptions;
  link: ChannelLink;
  /** Faults to inject on this channel's connections (a FaultInjector spec; tests and --inject). */
  inject?: string;
  /** One-way delay (and jitter) on this channel's writes: a simulated link's forward path. */
  delay?: LinkDelay;
}

/** A simulated link's one-way delay, as a worker applies it to its side of a connection. */
export interface LinkDelay {
  delayMs: number;
  jitterMs: number;
  seed: number;
}

/** Messages a worker sends to the coordinator. */
export type WorkerMessage =
  | { t: 'call'; id: number; op: 'round'; round: number; bytesSent: number }
  | { t: 'call'; id: number; op: 'decide'; round: number; measurement: RoundMeasurement; bytesSent: number }
  | { t: 'call'; id: number; op: 'pause' | 'resume' | 'deviceState'; bytesSent: number }
  | { t: 'done'; report: MigrationReport; faultsFired?: string[] }
  | { t: 'error'; code: string; message: string };

/** Replies of the coordinator. */
export type CoordinatorMessage =
  | { t: 'reply'; id: number; dirty?: Uint32Array; decision?: PolicyDecision; state?: Uint8Array }
  | { t: 'abort'; message: string };

/** What the coordinator needs of a worker (a Node Worker or a Web Worker, adapted). */
export interface ChannelWorker {
  postMessage(msg: unknown, transfer?: unknown[]): void;
  onMessage(fn: (msg: WorkerMessage) => void): void;
  onError(fn: (err: Error) => void): void;
  terminate(): Promise<unknown> | void;
}

/** Starts a channel worker with its init message (and the objects to transfer). */
export type SpawnChannelWorker = (init: ChannelInit, transfer: unknown[]) => ChannelWorker;

/** Page range of each channel: contiguous, sizes differing by at most one page. */
export function channelRanges(pageCount: number, channels: number): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = [];
  const base = Math.floor(pageCount / channels);
  const extra = pageCount % channels;
  let first = 0;
  for (let k = 0; k < channels; k++) {
    const count = base + (k < extra ? 1 : 0);
    out.push({ first, count });
    first += count;
  }
  return out;
}

/**
 * Split external guest memory into per-channel views (no copy). Region names are prefixed with
 * `c<k>:` so a target recognises the channel from the HELLO's layout.
 * @throws PagewireError INVALID_ARGUMENT for memory in a core, or more channels than pages
 */
export function splitMemory(memory: GuestMemory, channels: number): { memory: GuestMemory; regions: ChannelRegion[]; first: number; count: number }[] {
  checkChannels(channels);
  if (memory.core) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'parallel channels need external guest memory (SharedArrayBuffer regions on the source)');
  if (memory.pageCount < channels) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${channels} channels need at least as many pages, the guest has ${memory.pageCount}`);
  const views = memory.regionViews();
  const ps = memory.pageSize;
  return channelRanges(memory.pageCount, channels).map(({ first, count }, k) => {
    const regions: ChannelRegion[] = [];
    const end = first + count;
    memory.regions.forEach((r, i) => {
      const a = Math.max(first, r.firstPage);
      const b = Math.min(end, r.firstPage + r.pageCount);
      if (a >= b) return;
      const v = views[i]!;
      regions.push({ name: `c${k}:${r.name}`, buffer: v.buffer as ArrayBuffer, byteOffset: v.byteOffset + (a - r.firstPage) * ps, byteLength: (b - a) * ps });
    });
    const sub = GuestMemory.external(regions.map((r) => new Uint8Array(r.buffer, r.byteOffset, r.byteLength)), ps, regions.map((r) => r.name));
    return { memory: sub, regions, first, count };
  });
}

function checkChannels(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `channels must be an integer in 1..64, got ${String(n)}`);
}

/** Options of {@link ParallelMigrationSource}. */
export interface ParallelSourceOptions extends SourceOptions {
  /** Channels (workers), 1..64. */
  channels: number;
  /** Creates a worker (`nodeChannelSpawner()` from pagewire/node, `webChannelSpawner(url)` in browsers). */
  spawn: SpawnChannelWorker;
  /** Where channel k connects: a MessagePort (transferred to its worker) or a TCP address. */
  link(channel: number): ChannelLink;
  /** Faults to inject on channel k's connections (FaultInjector spec), if any. */
  inject?(channel: number): string | undefined;
  /** One-way delay each channel applies to what it sends (a simulated link; the rate is `maxBandwidthBytesPerSec`). */
  delay?: LinkDelay;
}

interface Pending { id: number; k: number; measurement?: RoundMeasurement }

/**
 * Source side of a parallel migration. Events: round (summed over channels), switchover,
 * complete, error. The guest memory must be external with SharedArrayBuffer regions.
 */
export class ParallelMigrationSource extends Emitter<MigrationEvents> {
  private readonly memory: GuestMemory;
  private readonly dirtyLog: DirtyLogLike;
  private readonly opts: ParallelSourceOptions;
  private readonly hooks: SourceHooks;
  private readonly policy: PolicyOptions;
  private readonly clock: Clock;
  private workers: ChannelWorker[] = [];
  private ranges: { first: number; count: number }[] = [];
  private waiting = new Map<string, Pending[]>();
  private bytesSent: number[] = [];
  private paused = false;
  private pausedAt = 0;
  private readonly convergence: ConvergencePolicy;
  private rounds: RoundReport[] = [];
  private reason = '';
  private converged = false;
  private failed: ((e: PagewireError) => void) | null = null;
  /** Faults that fired on the channels' connections (see ParallelSourceOptions.inject). */
  readonly faultsFired: string[] = [];

  constructor(memory: GuestMemory, dirtyLog: DirtyLogLike, options: ParallelSourceOptions, hooks: SourceHooks = {}) {
    super();
    checkChannels(options.channels);
    this.memory = memory;
    this.dirtyLog = dirtyLog;
    this.opts = options;
    this.hooks = hooks;
    const pol: Partial<PolicyOptions> = {};
    for (const k of Object.keys(DEFAULT_POLICY) as (keyof PolicyOptions)[]) if (options[k] !== undefined) (pol as Record<string, unknown>)[k] = options[k];
    this.policy = { ...DEFAULT_POLICY, ...pol };
    this.convergence = new ConvergencePolicy('precopy', this.policy, memory.pageSize);
    if (this.policy.onNonConvergence === 'postcopy' || (options.mode && options.mode !== 'precopy')) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'parallel channels support pre-copy only');
    }
    this.clock = options.clock ?? defaultClock;
    if (memory.core || memory.regionViews().some((v) => !(typeof SharedArrayBuffer !== 'undefined' && v.buffer instanceof SharedArrayBuffer))) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'parallel channels need guest memory in SharedArrayBuffer regions (GuestMemory.allocateExternal(layout, true))');
    }
  }

  /**
   * Run the migration on all channels.
   * @returns the summed report (`channels` = N, `digest` over the whole memory)
   * @throws PagewireError the first channel's failure; all workers are stopped and the guest resumes
   */
  async migrate(): Promise<MigrationReport> {
    const t0 = this.clock();
    const n = this.opts.channels;
    const split = splitMemory(this.memory, n);
    this.ranges = split.map((s) => ({ first: s.first, count: s.count }));
    this.bytesSent = new Array<number>(n).fill(0);
    const { channels: _c, spawn: _s, link: _l, clock: _k, onPhase: _p, inject: _i, delay, ...rest } = this.opts;
    // The coordinator decides for every channel (hooks.decide in the worker).
    const perChannel: SourceOptions = {
      ...rest,
      // a bandwidth cap is for the whole migration: each channel gets its share
      ...(rest.maxBandwidthBytesPerSec ? { maxBandwidthBytesPerSec: rest.maxBandwidthBytesPerSec / n } : {}),
      ...(rest.linkBytesPerSec ? { linkBytesPerSec: rest.linkBytesPerSec / n } : {}),
    };
    const reports: MigrationReport[] = new Array(n);
    let verifiedAt = 0;
    this.dirtyLog.start();
    try {
      await new Promise<void>((resolve, reject) => {
        let done = 0;
        this.failed = (e) => reject(e);
        split.forEach((s, k) => {
          const link = this.opts.link(k);
          const transfer = link.kind === 'port' ? [link.port] : [];
          const inject = this.opts.inject?.(k);
          const w = this.opts.spawn({ channel: k, channels: n, pageSize: this.memory.pageSize, regions: s.regions, options: perChannel, link, ...(inject ? { inject } : {}), ...(delay && (delay.delayMs > 0 || delay.jitterMs > 0) ? { delay: { ...delay, seed: delay.seed + k } } : {}) }, transfer);
          this.workers.push(w);
          w.onError((err) => this.fail(new PagewireError(ErrorCode.ABORTED, `channel ${k} worker failed: ${err.message}`, { cause: err })));
          w.onMessage((m) => {
            try {
              if (m.t === 'done') {
                reports[k] = m.report;
                if (m.faultsFired) this.faultsFired.push(...m.faultsFired);
                // every channel's target verified: the guest may run there, the downtime ends
                if (++done === n) { verifiedAt = this.clock(); resolve(); }
              } else if (m.t === 'error') {
                this.fail(new PagewireError((m.code in ErrorCode ? m.code : 'ABORTED') as ErrorCode, `channel ${k}: ${m.message}`));
              } else {
                this.bytesSent[k] = m.bytesSent;
                void this.onCall(k, m).catch((e: unknown) => this.fail(e instanceof PagewireError ? e : new PagewireError(ErrorCode.ABORTED, String(e), { cause: e })));
              }
            } catch (e) {
              this.fail(e instanceof PagewireError ? e : new PagewireError(ErrorCode.ABORTED, String(e), { cause: e }));
            }
          });
        });
      });
    } catch (err) {
      const e = err as PagewireError;
      await this.stopAll();
      try { this.dirtyLog.stop(); } catch { /* stopped */ }
      if (this.paused) {
        this.paused = false;
        try { await this.hooks.resume?.(); } catch { /* the migration's error matters more */ }
      }
      this.emit('error', e);
      throw e;
    }
    // (terminating the finished workers took ~0.4 s here: after the downtime, not part of it)
    await this.stopAll();
    const downtimeMs = verifiedAt - this.pausedAt;
    const core = await createCore();
    const digest = memoryDigest(this.memory, core);
    const sum = (f: (r: MigrationReport) => number): number => reports.reduce((a, r) => a + f(r), 0);
    const codecs: CodecCounts = {};
    for (const r of reports) addCodecCounts(codecs, r.codecs);
    // Rounds summed over channels (every channel runs the same rounds).
    const rounds: RoundReport[] = reports[0]!.rounds.map((r0, i) => {
      const all = reports.map((r) => r.rounds[i]!).filter(Boolean);
      const c: CodecCounts = {};
      for (const r of all) addCodecCounts(c, r.codecs);
      return {
        ...r0, pages: all.reduce((a, r) => a + r.pages, 0), wireBytes: all.reduce((a, r) => a + r.wireBytes, 0), rawBytes: all.reduce((a, r) => a + r.rawBytes, 0),
        codecs: c, durationMs: Math.max(...all.map((r) => r.durationMs)), bandwidthBytesPerSec: all.reduce((a, r) => a + r.bandwidthBytesPerSec, 0),
        dirtyPages: this.rounds[i]?.dirtyPages ?? 0, dirtyRateBytesPerSec: this.rounds[i]?.dirtyRateBytesPerSec ?? 0,
        expectedDowntimeMs: this.rounds[i]?.expectedDowntimeMs ?? 0, throttlePct: this.rounds[i]?.throttlePct ?? r0.throttlePct,
      };
    });
    const report: MigrationReport = {
      role: 'source', sessionId: reports.map((r) => r.sessionId).join(','), mode: 'precopy', verified: reports.every((r) => r.verified),
      converged: this.converged, totalTimeMs: this.clock() - t0, setupTimeMs: Math.max(...reports.map((r) => r.setupTimeMs)), downtimeMs,
      expectedDowntimeMs: this.convergence.expectedDowntimeMs, rttMs: Math.max(...reports.map((r) => r.rttMs ?? 0)), wireBytes: sum((r) => r.wireBytes), rawBytes: sum((r) => r.rawBytes), pageSize: this.memory.pageSize,
      guestPages: this.memory.pageCount, rounds, codecs, precopyBytes: sum((r) => r.precopyBytes), downtimeBytes: sum((r) => r.downtimeBytes),
      postcopyBytes: 0, digest, throttlePct: this.convergence.throttlePct, drops: sum((r) => r.drops), resentBytes: sum((r) => r.resentBytes),
      corruptionsDetected: sum((r) => r.corruptionsDetected), channels: n, reason: this.reason,
      options: { ...reports[0]!.options, channels: n, ...this.policy }, codecStats: reports.map((r) => r.codecStats),
    };
    this.emit('complete', report);
    return report;
  }

  private fail(e: PagewireError): void {
    const f = this.failed;
    this.failed = null;
    f?.(e);
  }

  private async stopAll(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }

  private reply(k: number, msg: CoordinatorMessage, transfer: unknown[] = []): void {
    this.workers[k]?.postMessage(msg, transfer);
  }

  /** Barrier: resolves with all N calls of the same kind once the last one arrived. */
  private async onCall(k: number, m: WorkerMessage & { t: 'call' }): Promise<void> {
    if (m.op === 'deviceState') {
      const state = k === 0 ? ((await this.hooks.deviceState?.()) ?? new Uint8Array(0)) : new Uint8Array(0);
      this.reply(k, { t: 'reply', id: m.id, state });
      return;
    }
    if (m.op === 'resume') {
      this.reply(k, { t: 'reply', id: m.id });
      return;
    }
    const key = m.op === 'round' || m.op === 'decide' ? `${m.op}${m.round}` : 'pause';
    const list = this.waiting.get(key) ?? [];
    list.push({ id: m.id, k, ...(m.op === 'decide' ? { measurement: m.measurement } : {}) });
    this.waiting.set(key, list);
    if (list.length < this.opts.channels) return;
    this.waiting.delete(key);
    const ids = new Array<number>(this.opts.channels);
    for (const p of list) ids[p.k] = p.id;
    if (m.op === 'pause') {
      this.emit('phase', { phase: 'stop-and-copy', round: this.rounds.length });
      this.pausedAt = this.clock();
      await this.hooks.pause?.();
      this.paused = true;
      this.distribute(this.dirtyLog.sync(), ids);
      this.dirtyLog.stop();
      return;
    }
    if (m.op === 'round') {
      await this.hooks.onRound?.(m.round, true);
      const dirty = this.dirtyLog.sync();
      this.pendingDirty = dirty.length;
      this.distribute(dirty, ids);
      return;
    }
    if (m.op !== 'decide') return;
    const ms = list.map((p) => p.measurement!);
    const decision = await this.decideRound(m.round, ms);
    for (let c = 0; c < ids.length; c++) this.reply(c, { t: 'reply', id: ids[c]!, decision });
    if (decision.action === 'fail') throw new PagewireError(ErrorCode.NOT_CONVERGED, decision.reason);
  }

  private pendingDirty = 0;

  /** Split a global dirty list by channel range, as local page indices, and reply. */
  private distribute(dirty: Uint32Array, ids: number[]): void {
    const n = this.opts.channels;
    const counts = new Uint32Array(n);
    const per = this.ranges;
    const chan = (p: number): number => {
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (per[mid]!.first <= p) lo = mid;
        else hi = mid - 1;
      }
      return lo;
    };
    for (let i = 0; i < dirty.length; i++) counts[chan(dirty[i]!)]!++;
    const lists = Array.from(counts, (c) => new Uint32Array(c));
    const fill = new Uint32Array(n);
    for (let i = 0; i < dirty.length; i++) {
      const p = dirty[i]!;
      const c = chan(p);
      lists[c]![fill[c]!++] = p - per[c]!.first;
    }
    for (let c = 0; c < n; c++) this.reply(c, { t: 'reply', id: ids[c]!, dirty: lists[c]! }, [lists[c]!.buffer]);
  }

  /** The decision for all channels: the channels' measurements combined, one policy. */
  private async decideRound(round: number, ms: RoundMeasurement[]): Promise<PolicyDecision> {
    const sum = (f: (x: RoundMeasurement) => number): number => ms.reduce((a, x) => a + f(x), 0);
    const max = (f: (x: RoundMeasurement) => number): number => Math.max(...ms.map(f));
    const m: RoundMeasurement = {
      round, pagesSent: sum((x) => x.pagesSent), wireBytes: sum((x) => x.wireBytes), durationMs: max((x) => x.durationMs),
      dirtyPagesAfter: sum((x) => x.dirtyPagesAfter), bandwidthBytesPerSec: sum((x) => x.bandwidthBytesPerSec),
      rttMs: max((x) => x.rttMs), inFlightBytes: sum((x) => x.inFlightBytes), verifyCostMs: max((x) => x.verifyCostMs),
    };
    const forced = await this.hooks.onRound?.(round, false);
    const d = this.convergence.afterRound(m, forced ?? undefined);
    const rr: RoundReport = {
      round, final: false, pages: m.pagesSent, wireBytes: m.wireBytes, rawBytes: m.pagesSent * this.memory.pageSize, codecs: {}, dirtyPages: this.pendingDirty,
      dirtyRateBytesPerSec: (this.pendingDirty * this.memory.pageSize * 1000) / m.durationMs, bandwidthBytesPerSec: m.bandwidthBytesPerSec, durationMs: m.durationMs,
      expectedDowntimeMs: d.expectedDowntimeMs, throttlePct: this.convergence.throttlePct,
    };
    this.rounds.push(rr);
    this.emit('round', rr);
    if (d.action === 'throttle') await this.hooks.throttle?.(d.throttlePct);
    if (d.action === 'switchover' || d.action === 'postcopy') {
      this.reason = d.reason;
      this.converged = d.action === 'switchover' ? d.converged : false;
      this.emit('switchover', { round: round + 1, reason: d.reason, expectedDowntimeMs: d.expectedDowntimeMs, mode: 'precopy' });
    }
    return d;
  }
}

/**
 * Target side of a parallel migration: one MigrationTarget per channel over views of `memory`;
 * the guest runs once every channel verified its range.
 */
export class ParallelMigrationTarget extends Emitter<MigrationEvents> {
  private readonly parts: GuestMemory[];
  private readonly claimed: boolean[];
  private readonly hooks: TargetHooks;
  private readonly options: TargetOptions;
  private deviceState: Uint8Array | null = null;
  private arrived = 0;
  private barrier: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  private transports: Transport[] = [];

  /**
   * @param memory external guest memory (ArrayBuffer or SharedArrayBuffer regions)
   * @param channels the source's channel count
   */
  constructor(readonly memory: GuestMemory, readonly channels: number, options: TargetOptions = {}, hooks: TargetHooks = {}) {
    super();
    this.parts = splitMemory(memory, channels).map((s) => s.memory);
    this.claimed = this.parts.map(() => false);
    this.options = options;
    this.hooks = hooks;
  }

  /**
   * Serve all channels.
   * @param accept the next incoming connection (called once per channel)
   * @throws PagewireError the first channel's failure (the guest never ran)
   */
  async run(accept: () => Promise<Transport>): Promise<MigrationReport> {
    const n = this.channels;
    const targets = Array.from({ length: n }, () => new MigrationTarget((layout) => this.claim(layout.regions[0]?.name ?? ''), this.options, {
      deviceState: (s) => { if (s.byteLength > 0) this.deviceState = s.slice(); },
      guestMayRun: () => this.arrive(),
    }));
    let reports: MigrationReport[];
    try {
      reports = await Promise.all(targets.map(async (t) => {
        try {
          const tr = await accept();
          this.transports.push(tr);
          if (this.failure) tr.destroy(this.failure);
          return await t.run(tr);
        } catch (err) {
          this.abort(err as Error);
          throw err;
        }
      }));
    } catch (err) {
      this.emit('error', err as Error);
      throw err;
    }
    const core = await createCore();
    const sum = (f: (r: MigrationReport) => number): number => reports.reduce((a, r) => a + f(r), 0);
    const report: MigrationReport = {
      ...reports[0]!, sessionId: reports.map((r) => r.sessionId).join(','), verified: reports.every((r) => r.verified),
      wireBytes: sum((r) => r.wireBytes), rawBytes: sum((r) => r.rawBytes), guestPages: this.memory.pageCount,
      digest: memoryDigest(this.memory, core), channels: n, totalTimeMs: Math.max(...reports.map((r) => r.totalTimeMs)),
      downtimeMs: Math.max(...reports.map((r) => r.downtimeMs)), drops: sum((r) => r.drops), corruptionsDetected: sum((r) => r.corruptionsDetected),
    };
    this.emit('complete', report);
    return report;
  }

  private claim(regionName: string): GuestMemory {
    const m = /^c(\d+):/.exec(regionName);
    const k = m ? Number(m[1]) : -1;
    if (!(k >= 0 && k < this.channels) || this.claimed[k]) {
      throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, `connection for channel ${m ? k : '?'} (region ${regionName}) does not fit ${this.channels} channels or came twice`);
    }
    this.claimed[k] = true;
    return this.parts[k]!;
  }

  /** A channel verified: wait for all, then start the guest once. */
  private arrive(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.barrier.push({ resolve, reject });
      if (++this.arrived < this.channels) return;
      const all = this.barrier;
      this.barrier = [];
      void (async () => {
        try {
          if (this.deviceState) await this.hooks.deviceState?.(this.deviceState);
          await this.hooks.guestMayRun?.();
          for (const w of all) w.resolve();
        } catch (e) {
          for (const w of all) w.reject(e as Error);
        }
      })();
    });
  }

  private abort(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const t of this.transports) t.destroy(err);
    const all = this.barrier;
    this.barrier = [];
    for (const w of all) w.reject(err);
  }
}
