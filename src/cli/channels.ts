/**
 * `--channels N` of `pagewire simulate`, `migrate` and `serve`: N channel workers on each side
 * (src/migration/channels.ts on the source, src/migration/target-channels.ts on the target), each
 * with its own connection. Over TCP a dropped channel reconnects and resumes like a single one.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { ParallelMigrationSource } from '../migration/channels.js';
import { WorkerParallelTarget } from '../migration/target-channels.js';
import { nodeChannelSpawner, nodeTargetChannelSpawner } from '../migration/channels-node.js';
import { FaultInjector } from '../migration/faults.js';
import type { MigrationReport } from '../migration/report.js';
import type { TransportListener } from '../transport/listener.js';
import type { GuestArgs } from './options.js';
import type { CliGuest } from './guest.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { formatBytes } from './units.js';
import type { MetricsServer } from './metrics.js';
import { peerText } from '../protocol/messages.js';
import { attachOutput, finishBoth, runCliSource } from './simulate.js';
import { writeRawImage } from '../memory/dump-node.js';

const out = (s: string): void => { process.stdout.write(s + '\n'); };
const err = (s: string): void => { process.stderr.write(s + '\n'); };

type Link = { kind: 'port'; port: unknown } | { kind: 'tcp'; host: string; port: number };

/** The parallel source of the CLI: the link's rate paced per channel, --inject on channel 0. */
function channelSource(g: GuestArgs, guest: CliGuest, link: (k: number) => Link): { source: ParallelMigrationSource; inj: FaultInjector | null } {
  if (g.source.mode !== 'precopy') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--channels > 1 supports --mode precopy only');
  const n = g.channels;
  const inj = g.inject ? new FaultInjector(g.inject) : null;
  const pacing = g.linkBytesPerSec > 0 ? { maxBandwidthBytesPerSec: Math.floor((g.source.maxBandwidthBytesPerSec ?? g.linkBytesPerSec) / n) } : {};
  const source = new ParallelMigrationSource(guest.memory, guest.dirtyLog, {
    ...g.source, ...guest.sourceOptions, ...pacing, ...(inj ? { retryBackoffMs: 50 } : {}),
    channels: n, spawn: nodeChannelSpawner(), link, delay: { delayMs: g.delayMs, jitterMs: g.jitterMs, seed: g.seed },
    ...(inj ? { inject: (k: number) => (k === 0 ? g.inject : undefined) } : {}),
  }, guest.hooks);
  return { source, inj };
}

/** The faults that fired in the channel workers, recorded on the CLI's injector (for its report). */
function noteFired(inj: FaultInjector | null, source: ParallelMigrationSource): void {
  if (inj) inj.fired.push(...source.faultsFired);
}

/**
 * `simulate --channels N`: both sides in this process, each channel a worker thread on each side.
 * Faults (--inject, on channel 0) need --transport tcp: a MessagePort link cannot reconnect.
 */
export async function simulateChannels(g: GuestArgs, guest: CliGuest, transport: string, prefault: boolean): Promise<number> {
  if (g.inject && transport !== 'tcp') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--inject with --channels > 1 needs --transport tcp (a dropped channel resumes over a new TCP connection)');
  const n = g.channels;
  let link: (k: number) => Link;
  const tcp = transport === 'tcp';
  // each source worker links straight to its target worker: over TCP to a loopback port of the
  // target worker's own, in memory through a MessageChannel between the two (no thread between)
  const target = new WorkerParallelTarget(n, {
    spawn: nodeTargetChannelSpawner(), prefault, resumeDeadlineMs: 30_000, ...(g.secret ? { secret: g.secret } : {}),
    shape: { delayMs: g.delayMs, jitterMs: g.jitterMs, seed: g.seed + 1 }, ...(tcp ? { listen: { host: '127.0.0.1' } } : {}),
  });
  if (tcp) {
    const ports = await target.listen();
    link = (k) => ({ kind: 'tcp', host: '127.0.0.1', port: ports[k]! });
  } else {
    link = (k) => ({ kind: 'port', port: target.connectPort(k) });
  }
  await target.ready();
  const { source, inj } = channelSource(g, guest, link);
  const done = attachOutput(source, g, guest.memory.pageCount);
  if (!g.json && !g.quiet) out(`simulate: ${formatBytes(g.sizeBytes)} guest, workload ${g.workload}, codecs ${g.codecs}, ${n} channels (worker threads on both sides), transport ${transport}${inj ? `, faults ${g.inject} on channel 0` : ''}`);
  guest.start();
  try {
    const [rs, rt] = await Promise.allSettled([source.migrate(), target.run()]);
    done();
    noteFired(inj, source);
    return finishBoth(rs, rt, g, guest, target.guestMemory, { transport }, inj);
  } finally {
    guest.stop();
  }
}

/** `migrate --channels N --to HOST:PORT`: to a `pagewire serve --channels N` target. */
export async function migrateChannels(g: GuestArgs, guest: CliGuest, host: string, port: number, metrics: MetricsServer | null, dump: string | null): Promise<number> {
  const { source, inj } = channelSource(g, guest, () => ({ kind: 'tcp', host, port }));
  return runCliSource(source, g, guest, inj, {
    metrics, dump, afterMigrate: () => noteFired(inj, source),
    headline: `migrate: ${formatBytes(g.sizeBytes)} guest, workload ${g.workload}, codecs ${g.codecs}, ${g.channels} channels -> ${host}:${port}`,
  });
}

/** Options of {@link serveChannels}. */
export interface ServeChannelsOptions {
  secret: string | undefined;
  maxGuestBytes: number;
  prefault: boolean;
  json: boolean;
  quiet: boolean;
  dumpMemory: string | null;
  metrics: MetricsServer | null;
}

/** One migration of `serve --channels N`: prints the report, returns the exit code. */
export async function serveChannels(listener: TransportListener, n: number, o: ServeChannelsOptions): Promise<number> {
  const target = new WorkerParallelTarget(n, {
    spawn: nodeTargetChannelSpawner(), prefault: o.prefault, maxGuestBytes: o.maxGuestBytes, resumeDeadlineMs: 30_000, ...(o.secret ? { secret: o.secret } : {}),
  });
  if (!o.json && !o.quiet) target.on('drop', (d) => err(`connection dropped (${d.error}); waiting for the source to resume`));
  const unwatch = o.metrics?.metrics.watch('target', target);
  try {
    const rep: MigrationReport = await target.run((signal) => listener.accept({ signal }));
    if (o.dumpMemory && target.guestMemory) await writeRawImage(target.guestMemory, o.dumpMemory);
    if (o.json) out(JSON.stringify(rep));
    else out(`received ${rep.guestPages} pages over ${n} channels, ${formatBytes(rep.wireBytes)} on the wire; verified: ${rep.verified ? 'yes' : 'NO'} (digest ${rep.digest})`);
    return rep.verified ? EXIT.OK : EXIT.VERIFY_FAILED;
  } catch (e) {
    const pe = e as PagewireError;
    if (o.json) out(JSON.stringify({ role: 'target', verified: false, error: { code: pe.code ?? 'INTERNAL', message: pe.message } }));
    else err(`migration failed: ${pe.code ?? ''} ${peerText(String(pe.message), 4096)}`);
    o.metrics?.metrics.failed('target');
    return exitCodeFor(e);
  } finally {
    unwatch?.();
  }
}
