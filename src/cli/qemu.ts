/**
 * `pagewire serve --qemu-*` and `pagewire migrate --qemu-*`: migrate a running QEMU guest, pagewire
 * carrying its RAM file and QEMU only its device state (x-ignore-shared; docs/QEMU.md).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { QemuSource, type QemuSourceReport } from '../qemu/source.js';
import { QemuTarget } from '../qemu/target.js';
import { checkIncomingUri, receiveIncomingUri, sendIncomingUri } from '../qemu/incoming.js';
import { FaultInjector } from '../migration/faults.js';
import { connectTcp, listenTcp } from '../transport/tcp.js';
import { GUEST_OPTIONS, guestArgs, parse } from './options.js';
import { attachOutput, hostPort, jsonReport, shapeSource } from './simulate.js';
import { summary } from './output.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { formatBytes, formatMs } from './units.js';

const out = (s: string): void => { process.stdout.write(s + '\n'); };
const err = (s: string): void => { process.stderr.write(s + '\n'); };

/** The policy options of `migrate` that apply to a QEMU guest (the guest itself is QEMU's). */
const POLICY_KEYS = [
  'link', 'delay', 'jitter', 'codecs', 'cache-size', 'downtime-limit', 'max-rounds', 'on-nonconvergence', 'max-bandwidth',
  'reorder', 'secret', 'verify', 'inject', 'json', 'quiet', 'help',
] as const;

function policyOptions(): Record<string, (typeof GUEST_OPTIONS)[keyof typeof GUEST_OPTIONS]> {
  return Object.fromEntries(POLICY_KEYS.map((k) => [k, GUEST_OPTIONS[k]]));
}

/** Default values of every guest option (guestArgs reads them all). */
function guestDefaults(): Record<string, string | boolean | undefined> {
  return Object.fromEntries(Object.entries(GUEST_OPTIONS).map(([k, o]) => [k, 'default' in o ? o.default : undefined]));
}

function required(v: Record<string, string | boolean | undefined>, key: string): string {
  const x = v[key];
  if (typeof x !== 'string' || x === '') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--${key} is required with a QEMU guest (pagewire ${key.startsWith('qemu-incoming') ? 'serve' : 'migrate'} --help)`);
  return x;
}

/** `pagewire serve --qemu-qmp DST.sock --qemu-ram DST.ram --qemu-incoming tcp:HOST:PORT2`. */
export async function serveQemu(argv: string[]): Promise<number> {
  const v = parse(argv, {
    host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '4444' },
    'qemu-qmp': { type: 'string' }, 'qemu-ram': { type: 'string' }, 'qemu-incoming': { type: 'string' },
    secret: { type: 'string' }, json: { type: 'boolean', default: false }, quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (v['help']) { out(QEMU_SERVE_HELP); return EXIT.OK; }
  const port = Number(v['port']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--port must be 0..65535, got "${String(v['port'])}"`);
  const incoming = checkIncomingUri(required(v, 'qemu-incoming'));
  const json = v['json'] === true;
  const qt = await QemuTarget.open({
    qmp: required(v, 'qemu-qmp'), ramPath: required(v, 'qemu-ram'), incomingUri: incoming, resumeDeadlineMs: 30_000,
    ...(typeof v['secret'] === 'string' ? { secret: v['secret'] } : {}),
  });
  const listener = await listenTcp({ host: String(v['host']), port });
  err(`listening on ${listener.host}:${listener.port}`);
  if (!json && v['quiet'] !== true) qt.target.on('drop', (d) => err(`connection dropped (${d.error}); waiting for the source to resume`));
  try {
    const rep = await qt.run(async () => {
      const t = await listener.accept();
      await sendIncomingUri(t, incoming, qt.fresh);
      return t;
    });
    if (json) out(JSON.stringify(rep));
    else out(`received ${rep.guestPages} pages in ${rep.rounds.length} rounds, ${formatBytes(rep.wireBytes)} on the wire; verified: yes; the guest runs here (QEMU ${rep.qemu.status}); guest pause ${rep.qemu.guestPauseMs >= 0 ? formatMs(rep.qemu.guestPauseMs) : 'unknown'} (source STOP to RESUME here)`);
    return EXIT.OK;
  } catch (e) {
    const pe = e as PagewireError;
    if (json) out(JSON.stringify({ role: 'target', verified: false, error: { code: pe.code ?? 'INTERNAL', message: pe.message } }));
    else err(`migration failed: ${pe.code ?? ''} ${pe.message}; the guest does not run here`);
    return exitCodeFor(e);
  } finally {
    qt.close();
    await listener.close();
  }
}

/** `pagewire migrate --to H:P --qemu-qmp SRC.sock --qemu-ram SRC.ram [--qemu-migrate-uri tcp:HOST:PORT2]`. */
export async function migrateQemu(argv: string[]): Promise<number> {
  const v = parse(argv, {
    ...policyOptions(), to: { type: 'string' },
    'qemu-qmp': { type: 'string' }, 'qemu-ram': { type: 'string' }, 'qemu-migrate-uri': { type: 'string' },
  });
  if (v['help']) { out(QEMU_MIGRATE_HELP); return EXIT.OK; }
  if (typeof v['to'] !== 'string') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--to HOST:PORT is required (where `pagewire serve --qemu-*` listens)');
  const { host, port } = hostPort(v['to'], '--to');
  const g = guestArgs({ ...guestDefaults(), ...v });
  if (g.source.onNonConvergence === 'postcopy') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--on-nonconvergence postcopy is not available with a QEMU guest (pre-copy only)');
  const given = typeof v['qemu-migrate-uri'] === 'string' ? checkIncomingUri(v['qemu-migrate-uri']) : undefined;
  let learned: string | undefined;
  let fresh: boolean | undefined;
  const inj = g.inject ? new FaultInjector(g.inject) : null;
  const connect = async () => {
    const r = await receiveIncomingUri(await connectTcp({ host, port, timeoutMs: 10_000 }));
    learned ??= r.uri;
    fresh ??= r.fresh;
    return shapeSource(r.transport, g, inj);
  };
  const qs = await QemuSource.open(connect, {
    ...g.source, qmp: required(v, 'qemu-qmp'), ramPath: required(v, 'qemu-ram'), migrateUri: given ?? (() => learned), freshTarget: () => fresh,
    ...(inj ? { onPhase: (p: string) => inj.onPhase(p), retryBackoffMs: 50 } : {}),
  });
  const done = attachOutput(qs.source, g, qs.memory.pageCount);
  if (!g.json && !g.quiet) out(`migrate: QEMU guest ${formatBytes(qs.memory.byteLength)} (${required(v, 'qemu-ram')}), codecs ${g.codecs} -> ${host}:${port}`);
  try {
    const rep: QemuSourceReport = await qs.migrate();
    done();
    if (g.json) out(JSON.stringify(jsonReport(rep, { transport: 'tcp', guestRunning: false })));
    else {
      out('\n' + summary(rep));
      out(`QEMU: ${rep.qemu.status}, its own stream ${formatBytes(rep.qemu.transferredBytes)}, its downtime ${formatMs(rep.qemu.downtimeMs)}; the guest runs on the destination`);
    }
    return EXIT.OK;
  } catch (e) {
    done();
    const pe = e as PagewireError;
    if (g.json) out(JSON.stringify({ role: 'source', verified: false, guestRunning: qs.running, error: { code: pe.code ?? 'INTERNAL', message: pe.message } }));
    else err(`migration failed: ${pe.code ?? ''} ${pe.message}; ${qs.running ? 'the source guest keeps running' : 'the source guest is NOT running (see QEMU)'}`);
    return exitCodeFor(e);
  } finally {
    qs.close();
  }
}

export const QEMU_SERVE_HELP = `pagewire serve --qemu-qmp DST.sock --qemu-ram DST.ram --qemu-incoming tcp:HOST:PORT2 [--host H] [--port P] [--secret S] [--json]
Receives a running QEMU guest's RAM into the destination QEMU's RAM file (QEMU started with
-incoming defer and the same memory-backend-file setup as the source; docs/QEMU.md), then lets
QEMU carry the device state to HOST:PORT2 and waits until the guest runs here. The source learns
HOST:PORT2 from this target when it connects.
exit codes: 0 the guest runs here, 2 usage, 3 failed (the guest does not run here), 4 verification failed`;

export const QEMU_MIGRATE_HELP = `pagewire migrate --to HOST:PORT --qemu-qmp SRC.sock --qemu-ram SRC.ram [--qemu-migrate-uri tcp:HOST:PORT2] [options]
Migrates a running QEMU guest: pagewire carries its RAM file to a \`pagewire serve --qemu-*\` target,
QEMU carries only the device state (x-ignore-shared; docs/QEMU.md). Pre-copy only.
options: --link 1gbit (the link's rate: shapes this side and guides codec choice; 0 = unshaped),
  --delay, --jitter, --codecs all|qemu|raw, --cache-size, --downtime-limit 300, --max-rounds 30,
  --on-nonconvergence switchover|fail, --max-bandwidth, --reorder, --secret S, --verify digest (memory and
  full are refused: this source keeps no copy of the guest's memory), --inject SPEC, --json, --quiet
exit codes: 0 the guest runs on the destination, 2 usage, 3 failed (the source guest keeps running), 4 verification failed`;
