/**
 * The source: a simulated guest that keeps writing while a MigrationSource sends its memory over
 * the MessagePort, shaped to the chosen bandwidth and one-way delay.
 */
import {
  createCore, fillInitial, GuestMemory, memoryDigest, messagePortTransport, MigrationSource,
  shapeTransport, SimulatedGuest, type Transport,
} from 'pagewire';
import { engineOptions, errorInfo, type StartMessage, type WorkerMessage } from './messages.js';

const post = (m: WorkerMessage): void => { (self as unknown as Worker).postMessage(m); };

self.addEventListener('message', (ev: MessageEvent<StartMessage>) => {
  if (ev.data?.type !== 'start') return;
  run(ev.data).catch((e: unknown) => post({ type: 'failed', role: 'source', error: errorInfo(e) }));
}, { once: true });

async function run({ config: c, port }: StartMessage): Promise<void> {
  const core = await createCore();
  const pages = c.guestBytes / c.pageSize;
  const memory = GuestMemory.inCore(core, pages, c.pageSize);
  fillInitial(memory, 'mixed', c.seed);
  const guest = new SimulatedGuest(memory, { workload: c.workload, rateBytesPerSec: c.dirtyRateBytesPerSec, writeSize: 'line', seed: c.seed });
  post({ type: 'ready', role: 'source', pages });

  let transport: Transport = messagePortTransport(port, { label: 'source port', windowBytes: c.portWindowBytes });
  let shaped: ReturnType<typeof shapeTransport> | null = null;
  if (c.linkBytesPerSec > 0 || c.delayMs > 0) {
    shaped = shapeTransport(transport, {
      bandwidthBytesPerSec: c.linkBytesPerSec > 0 ? c.linkBytesPerSec : undefined,
      delayMs: c.delayMs, seed: c.seed, label: 'source link',
    });
    transport = shaped;
  }
  const { mode, codecs } = engineOptions(c.engine);
  const source = new MigrationSource(memory, guest.dirtyLog, transport, {
    mode, codecs, downtimeLimitMs: c.downtimeLimitMs, maxRounds: c.maxRounds,
    ...(c.linkBytesPerSec > 0 ? { linkBytesPerSec: c.linkBytesPerSec } : {}),
    onPhase: (phase, round) => post({ type: 'phase', role: 'source', phase, round }),
  }, guest.hooks());

  const t0 = performance.now();
  let lastProgress = 0;
  source.on('progress', (p) => {
    const now = performance.now();
    if (now - lastProgress < 50) return; // at most 20 updates a second
    lastProgress = now;
    post({ type: 'progress', t: now - t0, progress: p, deliveredBytes: shaped?.stats.bytesDelivered ?? p.bytesSent });
  });
  source.on('round', (r) => post({ type: 'round', t: performance.now() - t0, round: r }));
  source.on('switchover', (s) => post({ type: 'switchover', round: s.round, reason: s.reason, mode: s.mode }));

  guest.start();
  try {
    const report = await source.migrate();
    // The guest stays paused after a successful migration: this digest is of memory at pause time.
    const digest = memoryDigest(memory, core);
    const st = guest.stats;
    post({ type: 'done', role: 'source', report, memoryDigest: digest, extra: { guestWrites: st.writes, throttledMs: shaped?.stats.throttledMs ?? 0 } });
  } finally {
    guest.stop();
  }
}
