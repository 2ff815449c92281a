/**
 * `pagewire simulate`, `serve`, `migrate` and `demo`: the migration engine with a simulated guest,
 * over in-memory or real TCP transports, with a shaped link and injected faults.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GuestMemory } from '../memory/guest-memory.js';
import { writeRawImage } from '../memory/dump-node.js';
import { cliTargetMemory, hugePageBytes, prefaultFlag } from './target-memory.js';
import { PagewireError, ErrorCode } from '../errors.js';
import { MigrationSource, type SourceOptions } from '../migration/source.js';
import { MigrationTarget } from '../migration/target.js';
import { FaultingGuestRunner } from '../migration/postcopy-target.js';
import { migrateChannels, serveChannels, simulateChannels } from './channels.js';
import { WorkerParallelTarget } from '../migration/target-channels.js';
import { nodeTargetChannelSpawner } from '../migration/channels-node.js';
import { SimulatedGuest } from '../sim/guest.js';
import type { WorkloadKind } from '../sim/workloads.js';
import { FaultInjector } from '../migration/faults.js';
import type { MigrationReport } from '../migration/report.js';
import type { Transport } from '../transport/types.js';
import { memoryPair } from '../transport/memory.js';
import { shapeTransport } from '../transport/shaped.js';
import { connectTcp, listenTcp } from '../transport/tcp.js';
import type { TransportListener } from '../transport/listener.js';
import { GUEST_OPTIONS, guestArgs, parse, resolveSecret, type GuestArgs } from './options.js';
import { createCliGuest, type CliGuest } from './guest.js';
import { ProgressLine, roundLine, summary } from './output.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { formatBytes, parseCount } from './units.js';
import type { MetricsServer } from './metrics.js';
import { peerText } from '../protocol/messages.js';

const out = (s: string): void => { process.stdout.write(s + '\n'); };
const err = (s: string): void => { process.stderr.write(s + '\n'); };

/** The JSON report: the source's report plus the figures outside tools read. */
export function jsonReport(rep: MigrationReport, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...rep, ...extra };
}

/** Wrap a source-side transport with link shaping (rate + one-way delay) and faults. */
export function shapeSource(t: Transport, g: GuestArgs, inj: FaultInjector | null): Transport {
  let x = t;
  if (g.linkBytesPerSec > 0 || g.delayMs > 0 || g.jitterMs > 0) {
    x = shapeTransport(x, { bandwidthBytesPerSec: g.linkBytesPerSec || undefined, delayMs: g.delayMs, jitterMs: g.jitterMs, seed: g.seed, label: 'source link' });
  }
  return inj ? inj.wrap(x) : x;
}

/** The reverse direction (acks) sees the same one-way delay. */
export function shapeTarget(t: Transport, g: GuestArgs): Transport {
  if (g.delayMs > 0 || g.jitterMs > 0) return shapeTransport(t, { delayMs: g.delayMs, jitterMs: g.jitterMs, seed: g.seed + 1, label: 'target link' });
  return t;
}

export function attachOutput(src: Pick<MigrationSource, 'on'>, g: GuestArgs, totalPages: number): () => void {
  if (g.json || g.quiet) return () => undefined;
  const progress = new ProgressLine(process.stderr);
  src.on('progress', (p) => progress.update(p, totalPages));
  src.on('round', (r) => { progress.clear(); progress.round(r); out(roundLine(r)); });
  src.on('switchover', (s) => { progress.clear(); out(`switch-over after round ${s.round - 1}: ${s.reason}`); });
  src.on('drop', (d) => { progress.clear(); err(`link dropped (attempt ${d.attempt}): ${d.error}`); });
  src.on('resumed', (r) => { out(`resumed: target had applied frame #${r.appliedSeq}; ${r.resentPages} pages to send again`); });
  return () => progress.clear();
}

function sourceOptions(g: GuestArgs, inj: FaultInjector | null, guest: CliGuest): SourceOptions {
  return {
    ...g.source,
    ...(inj ? { onPhase: (p: string) => inj.onPhase(p), retryBackoffMs: 50 } : {}),
    ...guest.sourceOptions,
  };
}

/** `pagewire simulate`: both endpoints in this process. */
export async function simulate(argv: string[]): Promise<number> {
  const v = parse(argv, { ...GUEST_OPTIONS, transport: { type: 'string', default: 'memory' }, prefault: { type: 'string', default: 'on' }, 'target-thread': { type: 'string', default: 'on' } });
  if (v['help']) { out(SIMULATE_HELP); return EXIT.OK; }
  const g = guestArgs(v);
  const transport = String(v['transport']);
  if (!['memory', 'tcp'].includes(transport)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--transport must be memory or tcp, got "${transport}"`);
  const inj = g.inject ? new FaultInjector(g.inject) : null;
  const prefault = prefaultFlag(v['prefault']);
  const ownThread = v['target-thread'];
  if (ownThread !== 'on' && ownThread !== 'off') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--target-thread must be on or off, got "${String(ownThread)}"`);
  if (g.channels > 1) return simulateChannels(g, await createCliGuest(g), transport, prefault);
  // A pre-copy target runs on a thread of its own (over tcp with its own socket, in memory over a
  // MessageChannel), like a second host: source and target work in parallel (post-copy targets
  // stay here: the guest they run faults pages in from this thread).
  if (ownThread === 'on' && g.source.mode === 'precopy' && g.source.onNonConvergence !== 'postcopy') {
    return simulateTargetThread(g, await createCliGuest(g), transport, prefault, inj);
  }
  const targetMemory = cliTargetMemory(prefault);
  const guest = await createCliGuest(g);
  let listener: TransportListener | null = null;
  let connect: () => Promise<Transport>;
  let accept: () => Promise<Transport>;
  // Once the source has failed, the target waits for no further connection (nothing else would
  // end its wait for a resume: with in-memory transports no timer keeps the process alive).
  let stopped: PagewireError | null = null;
  let stopAccepting: (e: PagewireError) => void = () => undefined;
  if (transport === 'tcp') {
    listener = await listenTcp({ host: '127.0.0.1', port: 0 });
    const port = listener.port;
    const l = listener;
    connect = async () => shapeSource(await connectTcp({ host: '127.0.0.1', port }), g, inj);
    accept = async () => {
      if (stopped) throw stopped;
      return shapeTarget(await l.accept(), g);
    };
    stopAccepting = () => { void l.close(); };
  } else {
    const queue: Transport[] = [];
    const waiting: { resolve: (t: Transport) => void; reject: (e: unknown) => void }[] = [];
    connect = async () => {
      const [a, b] = memoryPair();
      const tb = shapeTarget(b, g);
      const w = waiting.shift();
      if (w) w.resolve(tb); else queue.push(tb);
      return shapeSource(a, g, inj);
    };
    accept = () => {
      if (stopped) return Promise.reject(stopped);
      const t = queue.shift();
      return t ? Promise.resolve(t) : new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    };
    stopAccepting = (e) => { for (const w of waiting.splice(0)) w.reject(e); };
  }
  const source = new MigrationSource(guest.memory, guest.dirtyLog, connect, sourceOptions(g, inj, guest), guest.hooks);
  let runner: FaultingGuestRunner | null = null;
  const target: MigrationTarget = new MigrationTarget((layout) => targetMemory.memory(layout), { secret: g.secret, resumeDeadlineMs: 30_000 }, {
    pagesWritten: (pages) => targetMemory.pagesWritten(pages),
    // post-copy and hybrid: the guest runs on the target from the switch-over on and faults on
    // missing pages (reads, so source and target memories stay comparable byte for byte)
    guestMayRun: () => { if (g.source.mode !== 'precopy' || g.source.onNonConvergence === 'postcopy') runner = startTargetGuest(target, g); },
  });
  const done = attachOutput(source, g, guest.memory.pageCount);
  if (!g.json && !g.quiet) out(`simulate: ${formatBytes(g.sizeBytes)} guest, workload ${g.workload}, codecs ${g.codecs}, mode ${g.source.mode}, transport ${transport}${inj ? `, faults ${g.inject}` : ''}`);
  guest.start();
  try {
    const migrated = source.migrate().catch((e: unknown) => {
      stopped = new PagewireError(ErrorCode.ABORTED, 'the source failed: the target stops waiting for it', { cause: e });
      stopAccepting(stopped);
      throw e;
    });
    const [rs, rt] = await Promise.allSettled([migrated, target.run(accept)]);
    done();
    await targetMemory.stop();
    await (runner as FaultingGuestRunner | null)?.stop();
    return finishBoth(rs, rt, g, guest, target.guestMemory, { transport, targetThread: false, cachePrefaultMs: guest.cachePrefaultMs }, inj);
  } finally {
    guest.stop();
    await targetMemory.stop();
    await listener?.close();
  }
}

/**
 * `simulate` (pre-copy): the source on this thread, the target on a worker thread (pre-faulting
 * its memory on one more with --prefault) that listens on its own loopback port (tcp) or gets a
 * MessageChannel per connection (memory).
 */
async function simulateTargetThread(g: GuestArgs, guest: CliGuest, transport: string, prefault: boolean, inj: FaultInjector | null): Promise<number> {
  const tcp = transport === 'tcp';
  const target = new WorkerParallelTarget(1, {
    spawn: nodeTargetChannelSpawner(), prefault, shape: { delayMs: g.delayMs, jitterMs: g.jitterMs, seed: g.seed + 1 },
    resumeDeadlineMs: 30_000, ...(g.secret ? { secret: g.secret } : {}), ...(tcp ? { listen: { host: '127.0.0.1' } } : {}),
  });
  const port = tcp ? (await target.listen())[0]! : 0;
  // the worker's start-up (a thread, its modules, the core) happens before the migration's clock
  await target.ready();
  const connect = async (): Promise<Transport> => shapeSource(tcp ? await connectTcp({ host: '127.0.0.1', port }) : target.connect(0), g, inj);
  const source = new MigrationSource(guest.memory, guest.dirtyLog, connect, sourceOptions(g, inj, guest), guest.hooks);
  const done = attachOutput(source, g, guest.memory.pageCount);
  if (!g.json && !g.quiet) out(`simulate: ${formatBytes(g.sizeBytes)} guest, workload ${g.workload}, codecs ${g.codecs}, mode ${g.source.mode}, transport ${transport} (target on its own thread)${inj ? `, faults ${g.inject}` : ''}`);
  guest.start();
  try {
    const migrated = source.migrate().catch((e: unknown) => {
      // the target stops waiting for a resume that will not come
      target.abort('the source failed: the target stops waiting for it');
      throw e;
    });
    const [rs, rt] = await Promise.allSettled([migrated, target.run()]);
    done();
    return finishBoth(rs, rt, g, guest, target.guestMemory, { transport, targetThread: true, cachePrefaultMs: guest.cachePrefaultMs }, inj);
  } finally {
    guest.stop();
  }
}

/**
 * Both endpoints of a simulate run settled: the first failure is thrown (the source's first);
 * otherwise the source's report, with the corruptions either side detected and a byte comparison
 * of the two memories, is printed by {@link finish}.
 */
export function finishBoth(rs: PromiseSettledResult<MigrationReport>, rt: PromiseSettledResult<MigrationReport>, g: GuestArgs, guest: CliGuest,
  targetMemory: GuestMemory | null, extra: Record<string, unknown>, inj: FaultInjector | null): number {
  if (rs.status === 'rejected') throw rs.reason;
  if (rt.status === 'rejected') throw rt.reason;
  const rep = rs.value;
  // both sides see the same corrupted frame (the target detects it, the source hears of it)
  rep.corruptionsDetected = Math.max(rep.corruptionsDetected, rt.value.corruptionsDetected);
  const identical = sameBytes(guest.memory, targetMemory!);
  return finish(rep, g, { ...extra, identical, guestRunning: guest.running(), ...(inj ? { faultsFired: inj.fired } : {}) }, inj);
}

/** Print the report (JSON or human) and choose the exit code. */
export function finish(rep: MigrationReport, g: GuestArgs, extra: { identical: boolean } & Record<string, unknown>, inj: FaultInjector | null): number {
  const notFired = unfiredFaults(inj);
  if (g.json) out(JSON.stringify(jsonReport(rep, { ...extra, hugePagesRequested: /glibc\.malloc\.hugetlb=[12]/.test(process.env['GLIBC_TUNABLES'] ?? ''), hugePagesBytes: hugePageBytes(), ...(inj ? { faultsNotFired: notFired } : {}) })));
  else out('\n' + summary(rep) + `\nbyte comparison of source and target memory: ${extra.identical ? 'identical' : 'DIFFERENT'}`);
  const code = rep.verified && extra.identical ? EXIT.OK : EXIT.VERIFY_FAILED;
  return reportUnfired(notFired, code);
}

/** The faults of --inject that never hit the wire (their phase never came, or came without a write). */
export function unfiredFaults(inj: FaultInjector | null): string[] {
  if (!inj) return [];
  const fired = [...inj.fired];
  const left: string[] = [];
  for (const f of inj.faults) {
    const name = `${f.kind}@${f.phase}`;
    const i = fired.indexOf(name);
    if (i >= 0) fired.splice(i, 1);
    else left.push(f.kind === 'stall' ? `${name}:${f.durationMs}ms` : name);
  }
  return left;
}

/**
 * A fault that did not fire means the test the user asked for did not happen: say so, and do
 * not exit 0.
 */
export function reportUnfired(notFired: string[], code: number): number {
  if (notFired.length === 0) return code;
  err(`pagewire: the injected fault${notFired.length > 1 ? 's' : ''} ${notFired.join(', ')} did not fire (the migration never reached ${notFired.length > 1 ? 'their phases' : 'its phase'} with a write to break): the fault test did not happen`);
  return code === EXIT.OK ? EXIT.FAILED : code;
}

/** The guest continuing on a post-copy target: the same workload, its accesses fault missing pages in. */
function startTargetGuest(target: MigrationTarget, g: GuestArgs): FaultingGuestRunner {
  let sim: SimulatedGuest | null = null;
  const lazy = {
    nextAccess: (): number => {
      sim ??= new SimulatedGuest(target.guestMemory!, { workload: g.workload === 'corpus' ? 'hotset' : (g.workload as WorkloadKind), seed: g.seed + 7 });
      return sim.nextAccess();
    },
    writePage: (p: number): void => { sim?.writePage(p); },
  };
  const rate = Math.max(1000, Math.round(g.dirtyRateBytesPerSec / g.pageSize));
  const runner = new FaultingGuestRunner(target, lazy, { ratePagesPerSec: rate, writes: false });
  runner.start();
  return runner;
}

export function sameBytes(a: GuestMemory, b: GuestMemory): boolean {
  if (a.pageCount !== b.pageCount) return false;
  const chunk = 256;
  for (let p = 0; p < a.pageCount; p += chunk) {
    const n = Math.min(chunk, a.pageCount - p);
    const x = a.pages(p, n);
    const y = b.pages(p, n);
    if (!x || !y) {
      for (let i = 0; i < n; i++) if (!equal(a.page(p + i), b.page(p + i))) return false;
    } else if (!equal(x, y)) return false;
  }
  return true;
}

function equal(x: Uint8Array, y: Uint8Array): boolean {
  return Buffer.compare(x, y) === 0; // memcmp
}

/** `pagewire serve`: a target that receives one migration (or many with --keep). */
export async function serve(argv: string[]): Promise<number> {
  if (argv.some((a) => a.startsWith('--qemu-'))) return (await import('./qemu.js')).serveQemu(argv);
  const v = parse(argv, {
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '4444' }, keep: { type: 'boolean', default: false },
    secret: { type: 'string' }, 'secret-file': { type: 'string' }, json: { type: 'boolean', default: false }, 'max-guest': { type: 'string', default: '16GiB' },
    'dump-memory': { type: 'string' }, metrics: { type: 'string' }, prefault: { type: 'string', default: 'on' }, channels: { type: 'string', default: '1' },
    quiet: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
  });
  if (v['help']) { out(SERVE_HELP); return EXIT.OK; }
  const prefault = prefaultFlag(v['prefault']);
  const channels = parseCount(String(v['channels']), '--channels', 1, 64);
  const port = Number(v['port']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--port must be 0..65535, got "${String(v['port'])}"`);
  const json = v['json'] === true;
  const { parseSize } = await import('./units.js');
  const maxGuestBytes = parseSize(String(v['max-guest']), '--max-guest');
  const secret = resolveSecret(v);
  const metrics = await startMetrics(v['metrics']);
  const listener = await listenTcp({ host: String(v['host']), port }).catch(async (e: unknown) => { await metrics?.close(); throw e; });
  // The bound port on stderr (machine-readable), so callers can use --port 0.
  err(`listening on ${listener.host}:${listener.port}`);
  let code: number = EXIT.OK;
  try {
    do {
      if (channels > 1) {
        const dump = typeof v['dump-memory'] === 'string' ? v['dump-memory'] : null;
        code = await serveChannels(listener, channels, { secret, maxGuestBytes, prefault, json, quiet: v['quiet'] === true, dumpMemory: dump, metrics });
        continue;
      }
      const targetMemory = cliTargetMemory(prefault);
      const target = new MigrationTarget((layout) => targetMemory.memory(layout), {
        secret, maxGuestBytes, resumeDeadlineMs: 30_000,
        // a connection turned away before admission ends only itself; say so (one line each)
        onRejected: (r) => { if (!json && v['quiet'] !== true) err(`rejected a connection from ${r.remote}: ${r.error.code}: ${peerText(r.error.message, 512)}`); },
      }, { pagesWritten: (pages) => targetMemory.pagesWritten(pages) });
      if (!json && v['quiet'] !== true) {
        target.on('drop', (d) => err(`connection dropped (${d.error}); waiting for the source to resume`));
      }
      const unwatch = metrics?.metrics.watch('target', target);
      try {
        const rep = await target.run((signal) => listener.accept({ signal }));
        if (typeof v['dump-memory'] === 'string' && target.guestMemory) await writeRawImage(target.guestMemory, v['dump-memory']);
        if (json) out(JSON.stringify(rep));
        else out(`received ${rep.guestPages} pages in ${rep.rounds.length} rounds, ${formatBytes(rep.wireBytes)} on the wire; verified: ${rep.verified ? 'yes' : 'NO'} (digest ${rep.digest})`);
        code = rep.verified ? EXIT.OK : EXIT.VERIFY_FAILED;
      } catch (e) {
        const pe = e as PagewireError;
        if (json) out(JSON.stringify({ role: 'target', verified: false, error: { code: pe.code ?? 'INTERNAL', message: pe.message } }));
        else err(`migration failed: ${pe.code ?? ''} ${peerText(String(pe.message), 4096)}`);
        code = exitCodeFor(e);
        metrics?.metrics.failed('target');
      } finally {
        unwatch?.();
        await targetMemory.stop();
      }
    } while (v['keep'] === true);
  } finally {
    await listener.close();
    await metrics?.close();
  }
  return code;
}

/**
 * HOST:PORT (IPv6 as [::1]:PORT) from an option value.
 * @throws PagewireError INVALID_ARGUMENT saying what is wrong with the value
 */
export function hostPort(value: string, what: string, allowPortZero = false): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d+)$/.exec(value);
  if (!m) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${what} "${value}" is not HOST:PORT (example: ${what} 10.0.0.2:4444)`);
  const port = Number(m[3]);
  if (port < (allowPortZero ? 0 : 1) || port > 65535) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${what} "${value}": the port must be ${allowPortZero ? 0 : 1}..65535`);
  return { host: m[1] ?? m[2]!, port };
}

/**
 * `--metrics HOST:PORT`: serve Prometheus metrics there (prom-client is loaded only then); the
 * address goes to stderr as "metrics on http://HOST:PORT/metrics" (port 0 picks one).
 */
export async function startMetrics(value: unknown): Promise<MetricsServer | null> {
  if (typeof value !== 'string') return null;
  const { host, port } = hostPort(value, '--metrics', true);
  const { serveMetrics } = await import('./metrics.js');
  const server = await serveMetrics(host, port);
  err(`metrics on http://${host.includes(':') ? `[${host}]` : host}:${server.port}/metrics`);
  return server;
}

/** `pagewire migrate --to HOST:PORT`: a source with a simulated guest. */
export async function migrate(argv: string[]): Promise<number> {
  if (argv.some((a) => a.startsWith('--qemu-'))) return (await import('./qemu.js')).migrateQemu(argv);
  const v = parse(argv, { ...GUEST_OPTIONS, to: { type: 'string' }, 'dump-memory': { type: 'string' }, metrics: { type: 'string' } });
  if (v['help']) { out(MIGRATE_HELP); return EXIT.OK; }
  if (typeof v['to'] !== 'string') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--to HOST:PORT is required (where `pagewire serve` listens)');
  const { host, port } = hostPort(v['to'], '--to');
  const g = guestArgs(v);
  if (g.channels > 1) return migrateChannels(g, await createCliGuest(g), host, port, await startMetrics(v['metrics']), typeof v['dump-memory'] === 'string' ? v['dump-memory'] : null);
  const inj = g.inject ? new FaultInjector(g.inject) : null;
  const guest = await createCliGuest(g);
  const connect = async () => shapeSource(await connectTcp({ host, port, timeoutMs: 10_000 }), g, inj);
  const source = new MigrationSource(guest.memory, guest.dirtyLog, connect, sourceOptions(g, inj, guest), guest.hooks);
  const metrics = await startMetrics(v['metrics']);
  const dump = typeof v['dump-memory'] === 'string' ? v['dump-memory'] : null;
  return runCliSource(source, g, guest, inj, { metrics, dump, headline: `migrate: ${formatBytes(g.sizeBytes)} guest, workload ${g.workload}, codecs ${g.codecs} -> ${host}:${port}` });
}

/** A source of `migrate` (one channel or several) that the CLI runs. */
export interface CliSource extends Pick<MigrationSource, 'on'> {
  migrate(): Promise<MigrationReport>;
}

/**
 * Run a `migrate` source to its end: progress, the report (JSON or human), metrics, the memory
 * dump at pause time, the exit code. The source guest keeps running when it fails.
 */
export async function runCliSource(
  source: CliSource, g: GuestArgs, guest: CliGuest, inj: FaultInjector | null,
  o: { metrics: MetricsServer | null; dump: string | null; headline: string; afterMigrate?: () => void },
): Promise<number> {
  const done = attachOutput(source, g, guest.memory.pageCount);
  o.metrics?.metrics.watch('source', source);
  if (!g.json && !g.quiet) out(o.headline);
  guest.start();
  try {
    const rep = await source.migrate();
    done();
    o.afterMigrate?.();
    // The guest stays paused after a successful migration: memory is as it was at pause time.
    if (o.dump) await writeRawImage(guest.memory, o.dump);
    const notFired = unfiredFaults(inj);
    if (g.json) out(JSON.stringify(jsonReport(rep, { transport: 'tcp', guestRunning: guest.running(), cachePrefaultMs: guest.cachePrefaultMs, ...(inj ? { faultsFired: inj.fired, faultsNotFired: notFired } : {}) })));
    else out('\n' + summary(rep));
    return reportUnfired(notFired, rep.verified ? EXIT.OK : EXIT.VERIFY_FAILED);
  } catch (e) {
    done();
    o.afterMigrate?.();
    const pe = e as PagewireError;
    if (g.json) out(JSON.stringify({ role: 'source', verified: false, guestRunning: guest.running(), error: { code: pe.code ?? 'INTERNAL', message: pe.message } }));
    else err(`migration failed: ${pe.code ?? ''} ${peerText(String(pe.message), 4096)}; the source guest keeps running`);
    o.metrics?.metrics.failed('source');
    return exitCodeFor(e);
  } finally {
    guest.stop();
    await o.metrics?.close();
  }
}

/**
 * `pagewire demo` (what `npm start` runs): a target in a child process (`serve --port 0`), a source
 * here with a 256 MiB hot-set guest, over loopback TCP.
 */
export async function demo(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) { out(DEMO_HELP); return EXIT.OK; }
  const args = ['--size', '256MiB', '--workload', 'hotset', '--dirty-rate', '20MiB/s', '--write-size', '4096', '--link', '1gbit', ...argv];
  // Refuse bad options before a target process exists.
  const v = parse(args, { ...GUEST_OPTIONS, 'dump-memory': { type: 'string' } });
  const g = guestArgs(v);
  if (g.channels > 1) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--channels > 1 is for simulate, and migrate to a `pagewire serve --channels N` target');
  const bin = fileURLToPath(new URL('../../bin/pagewire.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const targetExit = new Promise<number>((r) => child.on('exit', (c) => r(c ?? 1)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new PagewireError(ErrorCode.TIMEOUT, 'the target process did not start listening')), 15_000);
      child.stderr.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /listening on [^\s]+:(\d+)/.exec(buf);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      });
      child.on('exit', (c) => { clearTimeout(timer); reject(new PagewireError(ErrorCode.TRANSPORT_CLOSED, `the target process exited early (${c})`)); });
    });
    let targetOut = '';
    child.stdout.on('data', (d: Buffer) => { targetOut += d.toString(); });
    out(`pagewire demo: target process ${child.pid} listening on 127.0.0.1:${port}; source runs here`);
    const code = await migrate(['--to', `127.0.0.1:${port}`, ...args]);
    // a source that failed before connecting leaves the target waiting: give it a moment, then stop it
    const timer = setTimeout(() => child.kill('SIGTERM'), code === EXIT.OK ? 30_000 : 2_000);
    const tcode = await targetExit;
    clearTimeout(timer);
    out(`target process: ${targetOut.trim() || '(no report)'} (exit ${tcode})`);
    return code !== EXIT.OK ? code : tcode;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** The guest and policy options, as each command takes them. */
function commonHelp(command: 'simulate' | 'migrate' | 'demo'): string {
  const lines = COMMON_HELP.split('\n');
  const simulateOnly = command === 'demo' ? ['--prefault', '--channels'] : ['--prefault'];
  const sourceOnly = ['--dump-memory'];
  const keep = (l: string): boolean => {
    const opt = /^ {2}(--[a-z-]+)/.exec(l)?.[1];
    if (opt === undefined) return true;
    return command === 'simulate' ? !sourceOnly.includes(opt) : !simulateOnly.includes(opt);
  };
  // an option's continuation lines (deeper indent) go with it
  const out: string[] = [];
  let keeping = true;
  for (const l of lines) {
    if (/^ {2}--/.test(l) || !/^ {3,}/.test(l)) keeping = keep(l);
    if (keeping) out.push(l);
  }
  return out.join('\n');
}

const COMMON_HELP = `guest and policy options:
  --size 256MiB            guest memory size
  --page-size 4096         page size (power of two, 512..65536)
  --workload hotset        idle | uniform | hotset | zipf | sequential | corpus:DIR (replay memory
                           snapshots and dirty lists from DIR; docs/SIMULATION.md has the format)
  --dirty-rate 20MiB/s     how fast the guest writes (bytes/s or N pages/s)
  --write-size 64          bytes per write
  --seed 1                 deterministic workload and contents
  --image FILE             guest memory from a raw image (pmemsave, corpus snapshot) or an ELF core
                           (dump-guest-memory, gcore); the workload then writes into it
  --max-guest 16GiB        refuse images whose memory is larger (LIMIT_EXCEEDED, before allocating)
  --link 1gbit             link bandwidth (10gbit, 1gbit, 100mbit, 10mbit; 0 = unlimited)
  --delay 0ms              one-way link delay (RTT = 2x), applied in userspace
  --jitter 0ms             delay jitter
  --codecs all             raw (QEMU default) | qemu (zero + XBZRLE) | all (pagewire)
  --cache-size 64MiB       XBZRLE delta cache size
  --cache-prefault on      fault the source's cache memory in with the guest, before the
                           migration clock (JSON: cachePrefaultMs); off: in round 0
  --downtime-limit 300     allowed downtime, ms
  --max-rounds 30          pre-copy rounds before the non-convergence action
  --on-nonconvergence switchover   switchover | fail | postcopy
  --max-bandwidth RATE     cap the migration's bandwidth
  --mode precopy           precopy | postcopy | hybrid (the guest continues on the target from the
                           switch-over; its accesses to missing pages fault and are served first)
  --reorder                send rarely dirtied pages first, hold hot pages back
  --auto-converge          throttle the guest when not converging
  --channels 1             parallel channels: worker threads over shared guest memory on both sides
                           (pre-copy only; the link rate is paced per channel; migrate needs a
                           \`pagewire serve --channels N\` target; --inject hits channel 0, which
                           resumes over TCP like a single channel)
  --prefault off           on: the target's memory lives in shared buffers (huge pages where the CLI
                           gets them) and, without huge pages, a worker thread pre-faults it ahead
                           of the stream (needs a free core to pay); off: guests up to 3 GiB live
                           in the decoder's core
  --secret S               shared secret (both sides must have it; visible to other users in ps:
                           prefer --secret-file FILE (its first line) or PAGEWIRE_SECRET=S)
  --verify digest          digest (incremental: per-page hashes kept as pages are sent and written) | memory (hash
                           all memory at the switch-over on both sides) | full (memory, and on a mismatch compare
                           per-page hashes and re-send what differs)
  --dump-memory FILE       write guest memory at pause time to FILE
  --inject SPEC            faults: drop@handshake, drop@roundN, drop@stop-and-copy, drop@complete, corrupt@roundN, stall@roundN:3s
  --json                   print the final report as one JSON object
  --quiet                  no per-round output`;

export const SIMULATE_HELP = `pagewire simulate [options] [--transport memory|tcp] [--target-thread on|off] [--prefault on|off]
Runs a source and a target in this process with a simulated guest that keeps writing. A pre-copy
target runs on a worker thread, like a second host (tcp: with its own loopback socket; memory:
through a MessageChannel; --target-thread off: on this thread); --prefault on (the default)
puts its fresh memory on huge pages where it can, else pre-faults it ahead of the stream on one
more thread.
${commonHelp('simulate')}
exit codes: 0 verified, 2 usage, 3 failed (source guest keeps running), 4 verification failed`;

export const SERVE_HELP = `pagewire serve --host 127.0.0.1 --port 4444 [--keep] [--secret S | --secret-file FILE] [--json] [--max-guest 16GiB] [--metrics HOST:PORT] [--prefault on|off] [--channels N]
Receives one migration (like QEMU -incoming), verifies it, prints its report and exits
(--dump-memory FILE writes the received memory to FILE); --keep serves
one migration after another. --port 0 picks a free port (printed on stderr as "listening on HOST:PORT").
With --qemu-qmp/--qemu-ram/--qemu-incoming it receives a running QEMU guest (pagewire serve --qemu-qmp X --help).
--metrics HOST:PORT serves Prometheus metrics at http://HOST:PORT/metrics (pagewire_migration_*:
the current or last migration; pagewire_*_total: counters over all of them; docs/METRICS.md).
--prefault on (the default): the received memory lives in shared buffers (huge pages where the CLI
gets them) and, without huge pages, a worker thread pre-faults it ahead of the stream; off: in the
decoder's wasm memory.
--channels N: receive a \`pagewire migrate --channels N\` migration, one worker thread per channel
(each channel's part of the guest is checked against --max-guest).
exit codes: 0 verified, 2 usage, 3 failed, 4 verification failed`;

export const DEMO_HELP = `pagewire demo [options]
What \`npm start\` runs: a target in a child process (\`pagewire serve --port 0\`) and a source here
with a 256 MiB hot-set guest writing 20 MiB/s, over loopback TCP with a 1 Gbit/s link; rounds and a
summary are printed. Options are those of migrate (they override the defaults above).
${commonHelp('demo')}
exit codes: 0 verified, 2 usage, 3 failed (source guest keeps running), 4 verification failed`;

export const MIGRATE_HELP = `pagewire migrate --to HOST:PORT [options]
A source with a simulated guest that migrates to a \`pagewire serve\` target.
With --qemu-qmp/--qemu-ram it migrates a running QEMU guest instead (pagewire migrate --qemu-qmp X --help).
  --metrics HOST:PORT      serve Prometheus metrics at http://HOST:PORT/metrics while it runs
${commonHelp('migrate')}
exit codes: 0 verified, 2 usage, 3 failed (source guest keeps running), 4 verification failed`;
