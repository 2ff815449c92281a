/**
 * The body of a target channel worker (browser-safe): one MigrationTarget over this channel's
 * range of the shared guest memory. It parses, verifies, decodes and hashes its channel's frames
 * on its own thread; the coordinator (src/migration/target-channels.ts) only routes connections
 * to it and lets the guest run once every channel verified.
 *
 *   coordinator -> worker: { t: 'conn', port }   a connection of this channel (first or resumed),
 *                                                as a MessagePort the coordinator pipes it through
 *                          (or, with `listen`, the worker accepts its connections itself)
 *                          { t: 'go' }           every channel verified: the guest may run
 *                          { t: 'abort', message }
 *   worker -> coordinator: { t: 'ready' }        started, core compiled: connections may come
 *                          { t: 'listening', port }   (with `listen`) its own listener is up
 *                          { t: 'memory', regions }   its part of the guest memory, allocated
 *                                                (SharedArrayBuffer) from its HELLO's layout
 *                          { t: 'deviceState', state }   (the channel that carries it)
 *                          { t: 'verified' }     this channel's memory verified, waiting for 'go'
 *                          { t: 'drop', error }  its connection dropped (it waits for a resume)
 *                          { t: 'done', report } | { t: 'error', code, message }
 *
 * Entries: target-channel-worker-node.ts (worker_threads), target-channel-worker-web.ts (Web Workers).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { GuestMemory, type MemoryLayout } from '../memory/guest-memory.js';
import { messagePortTransport, type MessagePortLike } from '../transport/message-port.js';
import type { Transport } from '../transport/types.js';
import { shapeTransport } from '../transport/shaped.js';
import { createCore } from '../core/core.js';
import { warmUpCoreLz4 } from '../codec/lz4.js';
import type { TransportListener } from '../transport/listener.js';
import { MigrationTarget } from './target.js';
import type { ChannelRegion } from './channels.js';
import type { MigrationReport } from './report.js';

/** Target options a worker can receive (structured-cloneable: no callbacks, no clock). */
export interface TargetChannelOptions {
  secret?: string;
  /** Largest part of the guest one channel may ask its worker to allocate, bytes. */
  maxGuestBytes?: number;
  maxFrameBytes?: number;
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
  resumeDeadlineMs?: number;
}

/** First message to a target channel worker. */
export interface TargetChannelInit {
  channel: number;
  options: TargetChannelOptions;
  /** Pre-fault this part ahead of the stream (where the entry can: Node). */
  prefault: boolean;
  /**
   * The worker listens for its channel's connections itself, on this host (port 0: any free
   * one), so no other thread touches the stream (Node entry). Without it, connections come as
   * `conn` messages.
   */
  listen?: { host: string; port?: number };
  /** One-way delay (and jitter) on the worker's side of each connection: a simulated link's return path. */
  shape?: { delayMs: number; jitterMs: number; seed: number };
}

/** Messages of the coordinator. */
export type TargetCoordinatorMessage =
  | { t: 'conn'; port: unknown }
  | { t: 'go' }
  | { t: 'abort'; message: string };

/** Messages of a worker. */
export type TargetWorkerMessage =
  | { t: 'ready' }
  | { t: 'listening'; port: number }
  | { t: 'memory'; regions: ChannelRegion[] }
  | { t: 'deviceState'; state: Uint8Array }
  | { t: 'verified' }
  | { t: 'drop'; error: string }
  | { t: 'done'; report: MigrationReport }
  | { t: 'error'; code: string; message: string };

/** The worker's side of the control channel. */
export interface TargetChannelControl {
  post(msg: TargetWorkerMessage, transfer?: unknown[]): void;
  onMessage(fn: (msg: TargetCoordinatorMessage) => void): void;
}

/** What the platform entry adds (Node: a pre-fault worker of its own, TCP listeners). */
export interface TargetChannelExtras {
  prefault?(memory: GuestMemory): { advance(pages: ArrayLike<number>): void; stop(): Promise<void> } | null;
  /** Start the pre-fault thread ahead, so its start-up is not inside the migration. */
  preparePrefault?(): Promise<void>;
  listen?(host: string, port: number): Promise<TransportListener>;
}

/** Run one target channel to its end; reports `done` or `error` to the coordinator. */
export async function runTargetChannelWorker(init: TargetChannelInit, ctl: TargetChannelControl, extras: TargetChannelExtras = {}): Promise<void> {
  const box: { pf: ReturnType<NonNullable<TargetChannelExtras['prefault']>>; listener: TransportListener | null } = { pf: null, listener: null };
  try {
    const conns: Transport[] = [];
    let waiting: { resolve: (t: Transport) => void; reject: (e: Error) => void } | null = null;
    let go: { resolve: () => void; reject: (e: Error) => void } | null = null;
    let aborted: PagewireError | null = null;
    const sh = init.shape;
    const incoming = (raw: Transport): void => {
      const t = sh && (sh.delayMs > 0 || sh.jitterMs > 0) ? shapeTransport(raw, { delayMs: sh.delayMs, jitterMs: sh.jitterMs, seed: sh.seed, label: 'target link' }) : raw;
      if (aborted) { t.destroy(aborted); return; }
      if (waiting) { const w = waiting; waiting = null; w.resolve(t); } else conns.push(t);
    };
    ctl.onMessage((m) => {
      if (m.t === 'conn') {
        incoming(messagePortTransport(m.port as MessagePortLike, { label: `channel ${init.channel}` }));
      } else if (m.t === 'go') {
        go?.resolve();
      } else {
        aborted = new PagewireError(ErrorCode.ABORTED, m.message);
        waiting?.reject(aborted);
        go?.reject(aborted);
        for (const t of conns.splice(0)) t.destroy(aborted);
        void box.listener?.close();
      }
    });
    if (init.listen) {
      if (!extras.listen) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'this platform cannot listen from a target channel worker');
      const l = await extras.listen(init.listen.host, init.listen.port ?? 0);
      box.listener = l;
      ctl.post({ t: 'listening', port: l.port });
      void (async () => {
        for (;;) {
          let t: Transport;
          try { t = await l.accept(); } catch { return; }
          incoming(t);
        }
      })();
    }
    const accept = (signal?: AbortSignal): Promise<Transport> => {
      if (aborted) return Promise.reject(aborted);
      const t = conns.shift();
      if (t) return Promise.resolve(t);
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
        signal?.addEventListener('abort', () => { waiting = null; reject(new PagewireError(ErrorCode.ABORTED, 'the target is done')); }, { once: true });
      });
    };
    // compile the core now, not when the first connection is already waiting
    // (and the pre-fault thread: its start-up would land in round 0)
    // (and LZ4's optimised code: the decoder would otherwise wait for it inside the handshake)
    const warm = async (): Promise<void> => warmUpCoreLz4(await createCore());
    await Promise.all([warm().catch(() => undefined), init.prefault ? extras.preparePrefault?.() : undefined]);
    ctl.post({ t: 'ready' });
    // this channel's part, shared so the coordinator can read the whole guest afterwards
    const memory = (layout: MemoryLayout): GuestMemory => {
      const m = GuestMemory.forLayout(layout, { shared: true });
      const views = m.regionViews();
      ctl.post({ t: 'memory', regions: views.map((v, i) => ({ name: m.regions[i]!.name, buffer: v.buffer as SharedArrayBuffer, byteOffset: v.byteOffset, byteLength: v.byteLength })) });
      if (init.prefault) box.pf = extras.prefault?.(m) ?? null;
      return m;
    };
    const target = new MigrationTarget(memory, init.options, {
      deviceState: (s) => { if (s.byteLength > 0) ctl.post({ t: 'deviceState', state: s.slice() }); },
      guestMayRun: () => new Promise<void>((resolve, reject) => {
        if (aborted) { reject(aborted); return; }
        go = { resolve, reject };
        ctl.post({ t: 'verified' });
      }),
      pagesWritten: (pages) => box.pf?.advance(pages),
    });
    target.on('drop', (d) => ctl.post({ t: 'drop', error: d.error }));
    const report = await target.run(accept);
    ctl.post({ t: 'done', report: JSON.parse(JSON.stringify(report)) as MigrationReport });
  } catch (err) {
    const e = err as PagewireError;
    ctl.post({ t: 'error', code: String(e?.code ?? 'ABORTED'), message: String(e?.message ?? err) });
  } finally {
    await box.listener?.close();
    await box.pf?.stop();
  }
}
