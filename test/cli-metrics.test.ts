/**
 * Prometheus metrics: `pagewire serve --metrics` and `pagewire migrate --metrics` answer GET /metrics
 * in the text exposition format during a real migration between two processes over TCP, and the
 * serving target keeps the last migration's values after it ended. MigrationMetrics itself: the
 * stall indicator and the reset at the next migration, on a fake endpoint with an injected clock.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { BIN, runCli } from './helpers/cli.js';
import { MigrationMetrics } from '../src/cli/metrics.js';
import { Emitter, type MigrationEvents, type MigrationReport, type RoundReport } from '../src/migration/report.js';

const children: ChildProcess[] = [];
afterAll(() => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); });

/** Spawn the CLI; resolve once stderr matched every pattern (first capture groups). */
function start(args: string[], patterns: RegExp[]): Promise<{ child: ChildProcess; found: string[]; exit: Promise<number>; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let err = '';
    const exit = new Promise<number>((r) => child.on('exit', (c) => r(c ?? -1)));
    child.stdout.resume();
    const timer = setTimeout(() => reject(new Error(`pagewire ${args.join(' ')} did not start: ${err}`)), 30_000);
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const found = patterns.map((p) => p.exec(err)?.[1]);
      if (found.every((f) => f !== undefined)) { clearTimeout(timer); resolve({ child, found: found as string[], exit, stderr: () => err }); }
    });
  });
}

function get(port: number, path = '/metrics'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one series (`name{labels}`) in exposition text, or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const METRICS = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/;

describe('pagewire serve/migrate --metrics', () => {
  it('GET /metrics during a migration on both sides, and the target keeps the last values after it', async () => {
    const serve = await start(['serve', '--port', '0', '--keep', '--quiet', '--metrics', '127.0.0.1:0'], [/listening on [^\s]+:(\d+)/, METRICS]);
    const [tcpPort, serveMetrics] = serve.found.map(Number) as [number, number];
    const idle = await get(serveMetrics);
    expect(idle.status).toBe(200);
    expect(idle.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(idle.body).toMatch(/# TYPE pagewire_migration_phase gauge/);

    // 32 MiB of random-ish pages over a 50 Mbit/s shaped link: several seconds of pre-copy
    const migrate = await start(['migrate', '--to', `127.0.0.1:${tcpPort}`, '--size', '32MiB', '--link', '50mbit', '--codecs', 'raw',
      '--dirty-rate', '2MiB/s', '--quiet', '--json', '--metrics', '127.0.0.1:0'], [METRICS]);
    const sourceMetrics = Number(migrate.found[0]);
    let during: { source: string; target: string } | null = null;
    for (let i = 0; i < 200 && during === null; i++) {
      const [s, t] = await Promise.all([get(sourceMetrics).catch(() => null), get(serveMetrics)]);
      if (s && (value(s.body, 'pagewire_migration_wire_bytes{role="source"}') ?? 0) > 0 && (value(t.body, 'pagewire_migration_pages_transferred{role="target"}') ?? 0) > 0) {
        during = { source: s.body, target: t.body };
      } else {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    expect(during, `no scrape saw the migration running\n${migrate.stderr()}`).not.toBeNull();
    const s = during!.source;
    expect(value(s, 'pagewire_migration_active{role="source"}')).toBe(1);
    expect(value(s, 'pagewire_migration_phase{role="source",phase="precopy"}')).toBe(1);
    expect(value(s, 'pagewire_migration_phase{role="source",phase="complete"}')).toBe(0);
    expect(value(s, 'pagewire_migration_pages_remaining{role="source"}')).toBeGreaterThan(0);
    expect(value(s, 'pagewire_migration_stalled{role="source"}')).toBe(0);
    for (const name of ['round', 'bytes_remaining', 'drops', 'resent_bytes', 'nonshrinking_rounds', 'seconds_since_progress', 'throttle_percent']) {
      expect(value(s, `pagewire_migration_${name}{role="source"}`), name).toBeGreaterThanOrEqual(0);
    }
    expect(value(during!.target, 'pagewire_migration_active{role="target"}')).toBe(1);

    expect(await migrate.exit).toBe(0);
    let after = '';
    for (let i = 0; i < 100; i++) { // the target completes just after the source has its answer
      after = (await get(serveMetrics)).body;
      if (value(after, 'pagewire_migration_active{role="target"}') === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(value(after, 'pagewire_migration_active{role="target"}')).toBe(0);
    expect(value(after, 'pagewire_migration_phase{role="target",phase="complete"}')).toBe(1);
    expect(value(after, 'pagewire_migration_verified{role="target"}')).toBe(1);
    expect(value(after, 'pagewire_migration_wire_bytes{role="target"}')).toBeGreaterThan(32 << 20);
    expect(value(after, 'pagewire_migration_pages_transferred{role="target"}')).toBeGreaterThanOrEqual(8192);
    expect(value(after, 'pagewire_migration_downtime_seconds{role="target"}')).toBeGreaterThanOrEqual(0);
    expect(value(after, 'pagewire_migration_stalled{role="target"}')).toBe(0);
    expect(value(after, 'pagewire_migrations_total{role="target",result="verified"}')).toBe(1);
    expect(value(after, 'pagewire_wire_bytes_total{role="target"}')).toBe(value(after, 'pagewire_migration_wire_bytes{role="target"}'));
    expect((await get(serveMetrics, '/other')).status).toBe(404);
    serve.child.kill('SIGTERM');
    await serve.exit;
  }, 120_000);

  it('a bad --metrics address is a usage error', async () => {
    const r = await runCli(['serve', '--metrics', 'nowhere']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--metrics "nowhere" is not HOST:PORT/);
  });
});

function roundReport(round: number, dirtyPages: number): RoundReport {
  return { round, final: false, pages: 100, wireBytes: 409_600, rawBytes: 409_600, codecs: {}, dirtyPages, dirtyRateBytesPerSec: 1e6,
    bandwidthBytesPerSec: 1.25e7, durationMs: 30, expectedDowntimeMs: 250, throttlePct: 0 };
}

describe('MigrationMetrics', () => {
  it('stall indicator from the clock, non-shrinking rounds, estimates; reset by the next migration', async () => {
    let now = 1_000_000;
    const m = new MigrationMetrics({ now: () => now, stallAfterMs: 10_000 });
    const ep = new Emitter<MigrationEvents>();
    m.watch('source', ep);
    ep.emit('round', roundReport(0, 90));
    ep.emit('round', roundReport(1, 88));
    ep.emit('round', roundReport(2, 95));
    ep.emit('progress', { round: 3, pagesSent: 20, pagesRemaining: 75, bytesSent: 1_300_000, bandwidthBytesPerSec: 1.25e7, expectedDowntimeMs: 0, phase: 'precopy' });
    let t = await m.text();
    expect(value(t, 'pagewire_migration_nonshrinking_rounds{role="source"}')).toBe(2);
    expect(value(t, 'pagewire_migration_bytes_remaining{role="source"}')).toBe(75 * 4096);
    expect(value(t, 'pagewire_migration_expected_downtime_seconds{role="source"}')).toBe(0.25);
    expect(value(t, 'pagewire_migration_dirty_rate_bytes_per_second{role="source"}')).toBe(1e6);
    expect(value(t, 'pagewire_migration_bandwidth_bytes_per_second{role="source"}')).toBe(1.25e7);
    expect(value(t, 'pagewire_migration_stalled{role="source"}')).toBe(0);
    now += 10_500;
    t = await m.text();
    expect(value(t, 'pagewire_migration_stalled{role="source"}')).toBe(1);
    expect(value(t, 'pagewire_migration_seconds_since_progress{role="source"}')).toBe(10.5);
    ep.emit('drop', { error: 'x', attempt: 1 });
    t = await m.text();
    expect(value(t, 'pagewire_migration_stalled{role="source"}')).toBe(0);
    expect(value(t, 'pagewire_migration_drops{role="source"}')).toBe(1);
    ep.emit('error', new Error('failed'));
    t = await m.text();
    expect(value(t, 'pagewire_migration_phase{role="source",phase="failed"}')).toBe(1);
    expect(value(t, 'pagewire_migration_verified{role="source"}')).toBe(0);
    expect(value(t, 'pagewire_migrations_total{role="source",result="failed"}')).toBe(1);
    now += 60_000;
    expect(value(await m.text(), 'pagewire_migration_stalled{role="source"}')).toBe(0); // ended: not stalled

    const next = new Emitter<MigrationEvents>();
    m.watch('source', next);
    expect(value(await m.text(), 'pagewire_migration_phase{role="source",phase="failed"}')).toBe(1); // until it begins
    next.emit('phase', { phase: 'handshake', round: 0 });
    t = await m.text();
    expect(value(t, 'pagewire_migration_drops{role="source"}')).toBe(0);
    expect(value(t, 'pagewire_migration_verified{role="source"}')).toBeUndefined();
    expect(value(t, 'pagewire_migration_phase{role="source",phase="handshake"}')).toBe(1);
    expect(value(t, 'pagewire_link_drops_total{role="source"}')).toBe(1);
    next.emit('complete', { verified: true, wireBytes: 5000, resentBytes: 10, drops: 0, downtimeMs: 120, totalTimeMs: 3000 } as MigrationReport);
    t = await m.text();
    expect(value(t, 'pagewire_migration_downtime_seconds{role="source"}')).toBe(0.12);
    expect(value(t, 'pagewire_migrations_total{role="source",result="verified"}')).toBe(1);
    expect(value(t, 'pagewire_wire_bytes_total{role="source"}')).toBe(5000);
  });
});
