/**
 * The source: a simulated guest that keeps writing while a MigrationSource sends its memory over
 * the MessagePort, shaped to the chosen bandwidth and one-way delay.
 */
import { createCore, GuestMemory, memoryDigest, messagePortTransport, MigrationSource, type Transport } from 'pagewire';
import { fillInitial, shapeTransport, SimulatedGuest } from 'pagewire/sim';
import { engineOptions, errorInfo, LINK_SAMPLE_MS, type StartMessage, type WorkerMessage } from './messages.js';

const post = (m: WorkerMessage): void => { (self as unknown as Worker).postMessage(m); };

/**
 * Largest piece the shaped link schedules at once: what the link carries in 20 ms, at least 64 KiB.
 * A piece smaller than the chunk written is a view into it, and the MessagePort transport must copy
 * a view into a fresh ArrayBuffer to send it, where a whole chunk's buffer is transferred without
 * a copy: with 64 KiB pieces the copies took about half of the source worker's time at 1 Gbit/s
 * (docs/BROWSER.md). 20 ms keeps slow links smooth (10 Mbit/s: 64 KiB pieces).
 */
function linkSegmentBytes(linkBytesPerSec: number): number {
  return Math.max(64 * 1024, Math.round(linkBytesPerSec * 0.02));
}

/** Counts the bytes written through an unshaped transport (the shaped one counts its own). */
function counted(inner: Transport, count: { bytes: number }): Transport {
  return {
    get label() { return inner.label; },
    get closed() { return inner.closed; },
    write: (chunk) => { count.bytes += chunk.byteLength; return inner.write(chunk); },
    read: () => inner.read(),
    end: () => inner.end(),
    destroy: (err) => inner.destroy(err),
  };
}

self.addEventListener('message', (ev: MessageEvent<StartMessage>) => {
  if (ev.data?.type !== 'start') return;
  run(ev.data).catch((e: unknown) => post({ type: 'failed', role: 'source', error: errorInfo(e) }));
}, { once: true });

async function run({ config: c, port }: StartMessage): Promise<void> {
  const preparing = performance.now();
  const core = await createCore();
  const pages = c.guestBytes / c.pageSize;
  const memory = GuestMemory.inCore(core, pages, c.pageSize);
  fillInitial(memory, 'mixed', c.seed);
  const guest = new SimulatedGuest(memory, { workload: c.workload, rateBytesPerSec: c.dirtyRateBytesPerSec, writeSize: 'line', seed: c.seed });
  post({ type: 'ready', role: 'source', pages });

  const written = { bytes: 0 };
  let transport: Transport = messagePortTransport(port, { label: 'source port', windowBytes: c.portWindowBytes });
  let shaped: ReturnType<typeof shapeTransport> | null = null;
  if (c.linkBytesPerSec > 0 || c.delayMs > 0) {
    shaped = shapeTransport(transport, {
      bandwidthBytesPerSec: c.linkBytesPerSec > 0 ? c.linkBytesPerSec : undefined,
      delayMs: c.delayMs, seed: c.seed, label: 'source link',
      ...(c.linkBytesPerSec > 0 ? { segmentBytes: linkSegmentBytes(c.linkBytesPerSec) } : {}),
    });
    transport = shaped;
  } else {
    transport = counted(transport, written);
  }
  const delivered = (): number => shaped?.stats.bytesDelivered ?? written.bytes;
  const { mode, codecs } = engineOptions(c.engine);
  const source = new MigrationSource(memory, guest.dirtyLog, transport, {
    mode, codecs, downtimeLimitMs: c.downtimeLimitMs, maxRounds: c.maxRounds,
    ...(c.linkBytesPerSec > 0 ? { linkBytesPerSec: c.linkBytesPerSec } : {}),
    onPhase: (phase, round) => post({ type: 'phase', role: 'source', phase, round }),
  }, guest.hooks());

  const t0 = performance.now();
  const prepareMs = t0 - preparing;
  let lastProgress = 0;
  source.on('progress', (p) => {
    const now = performance.now();
    if (now - lastProgress < 50) return; // at most 20 updates a second
    lastProgress = now;
    post({ type: 'progress', t: now - t0, progress: p });
  });
  source.on('round', (r) => post({ type: 'round', t: performance.now() - t0, round: r }));
  source.on('switchover', (s) => post({ type: 'switchover', round: s.round, reason: s.reason, mode: s.mode }));
  // The link's throughput in every phase, post-copy included (it emits no progress events).
  post({ type: 'link', t: 0, deliveredBytes: 0 });
  const sampler = setInterval(() => post({ type: 'link', t: performance.now() - t0, deliveredBytes: delivered() }), LINK_SAMPLE_MS);

  guest.start();
  try {
    const report = await source.migrate();
    clearInterval(sampler);
    post({ type: 'link', t: performance.now() - t0, deliveredBytes: delivered(), final: true });
    // The guest stays paused after a successful migration: this digest is of memory at pause time.
    const digest = memoryDigest(memory, core);
    const st = guest.stats;
    post({ type: 'done', role: 'source', report, memoryDigest: digest, extra: { guestWrites: st.writes, throttledMs: shaped?.stats.throttledMs ?? 0, prepareMs, deliveredBytes: delivered() } });
  } finally {
    clearInterval(sampler);
    guest.stop();
  }
}
