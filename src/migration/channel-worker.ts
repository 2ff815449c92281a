/**
 * The body of a channel worker (browser-safe): one MigrationSource over this channel's range of
 * the shared guest memory, with its own connection, encoder and delta cache. Its dirty log and
 * hooks are answered by the coordinator (src/migration/channels.ts) so that all channels run the
 * same rounds, sync the guest's dirty log once per round and pause the guest together.
 *
 * Entries: channel-worker-node.ts (worker_threads) and channel-worker-web.ts (Web Worker).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { Transport } from '../transport/types.js';
import { messagePortTransport, type MessagePortLike } from '../transport/message-port.js';
import { MigrationSource, type DirtyLogLike } from './source.js';
import type { ChannelInit, ChannelLink, CoordinatorMessage, WorkerMessage } from './channels.js';
import type { RoundMeasurement } from './policy.js';
import { FaultInjector } from './faults.js';
import { shapeTransport } from '../transport/shaped.js';

/** The worker's side of the control channel. */
export interface ChannelControl {
  post(msg: WorkerMessage): void;
  onMessage(fn: (msg: CoordinatorMessage) => void): void;
}

/** Opens this channel's transport (TCP needs the Node entry). */
export type OpenChannelTransport = (link: ChannelLink) => Promise<Transport>;

/** Default opener: MessagePort links only. */
export const openPortTransport: OpenChannelTransport = async (link) => {
  if (link.kind !== 'port') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `this worker cannot open ${link.kind} links`);
  return messagePortTransport(link.port as MessagePortLike);
};

/**
 * Run one channel to its end; reports `done` or `error` to the coordinator.
 * @param init the coordinator's init message
 * @param ctl the control channel
 * @param open how to open the link to the target
 */
export async function runChannelWorker(init: ChannelInit, ctl: ChannelControl, open: OpenChannelTransport = openPortTransport): Promise<void> {
  try {
    const memory = GuestMemory.external(init.regions.map((r) => new Uint8Array(r.buffer, r.byteOffset, r.byteLength)), init.pageSize, init.regions.map((r) => r.name));
    let nextId = 1;
    const calls = new Map<number, (m: CoordinatorMessage & { t: 'reply' }) => void>();
    let aborted: Error | null = null;
    ctl.onMessage((m) => {
      if (m.t === 'abort') {
        aborted = new PagewireError(ErrorCode.ABORTED, m.message);
        return;
      }
      const f = calls.get(m.id);
      calls.delete(m.id);
      f?.(m);
    });
    let bytesSent = 0;
    const call = (op: 'round' | 'decide' | 'pause' | 'resume' | 'deviceState', extra: { round?: number; measurement?: RoundMeasurement } = {}): Promise<CoordinatorMessage & { t: 'reply' }> => {
      if (aborted) return Promise.reject(aborted);
      const id = nextId++;
      return new Promise((resolve) => {
        calls.set(id, resolve);
        ctl.post({ t: 'call', id, op, bytesSent, ...extra } as WorkerMessage);
      });
    };
    let next: Uint32Array = new Uint32Array(0);
    const log: DirtyLogLike = {
      start() {},
      stop() {},
      sync() { const d = next; next = new Uint32Array(0); return d; },
    };
    // TCP links reconnect after a drop (the target routes the resumed connection to this
    // channel's target, which continues the session); a MessagePort link exists once
    const inj = init.inject ? new FaultInjector(init.inject) : null;
    const connect = async (): Promise<Transport> => {
      const opened = await open(init.link);
      const d = init.delay;
      const t = d ? shapeTransport(opened, { delayMs: d.delayMs, jitterMs: d.jitterMs, seed: d.seed, label: `channel ${init.channel} link` }) : opened;
      return inj ? inj.wrap(t) : t;
    };
    const options = inj ? { ...init.options, onPhase: (p: string) => inj.onPhase(p) } : init.options;
    const source = new MigrationSource(memory, log, init.link.kind === 'tcp' ? connect : await connect(), options, {
      // before each dirty sync: the coordinator syncs the guest's log once for all channels
      onRound: async (round, before) => {
        if (before) next = (await call('round', { round })).dirty ?? new Uint32Array(0);
      },
      // after it: the coordinator decides for all channels from all channels' measurements
      decide: async (m) => {
        const r = await call('decide', { round: m.round, measurement: m });
        if (!r.decision) throw new PagewireError(ErrorCode.ABORTED, 'the coordinator sent no decision');
        return r.decision;
      },
      pause: async () => { next = (await call('pause')).dirty ?? new Uint32Array(0); },
      resume: async () => { await call('resume'); },
      deviceState: async () => (await call('deviceState')).state ?? new Uint8Array(0),
    });
    source.on('progress', (e) => { bytesSent = e.bytesSent; });
    const report = await source.migrate();
    ctl.post({ t: 'done', report: JSON.parse(JSON.stringify(report)) as typeof report, ...(inj ? { faultsFired: inj.fired } : {}) });
  } catch (err) {
    const e = err as PagewireError;
    ctl.post({ t: 'error', code: String(e?.code ?? 'ABORTED'), message: String(e?.message ?? err) });
  }
}
