/**
 * Prometheus metrics for `pagewire serve --metrics HOST:PORT` and `pagewire migrate --metrics
 * HOST:PORT` (text exposition format at GET /metrics, through prom-client).
 *
 * Built only from the public events of MigrationSource and MigrationTarget (round, progress,
 * phase, switchover, drop, complete, error), so it survives changes inside the engine.
 *
 * Two kinds of series, all labelled `role` (source | target):
 * - `pagewire_migration_*` gauges describe the current migration, or the last one after it ended
 *   (they are reset when the next one starts): phase, round, pages and bytes remaining, wire
 *   bytes, dirty rate, bandwidth, expected downtime, drops, re-sent bytes, the stall indicator,
 *   and after the end verified/downtime/total time;
 * - `pagewire_*_total` counters add up over the process's life (migrations by result, wire bytes,
 *   drops), as Prometheus counters should.
 *
 * Stall indicator: `pagewire_migration_stalled` is 1 while a migration is active and no event has
 * come for `stallAfterMs` (default 10 s: no frame applied on a target, no batch sent on a source),
 * computed at scrape time; `pagewire_migration_seconds_since_progress` gives the figure itself, and
 * `pagewire_migration_nonshrinking_rounds` the pre-copy rounds in a row whose dirty set did not
 * shrink by 10% (the convergence policy's own stall signal).
 *
 * What each side knows: the source has everything; a target learns rounds, pages applied and wire
 * bytes from the stream, not the source's dirty rate, bandwidth or expected downtime (those
 * series stay absent there).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { MigrationEvents, MigrationReport } from '../migration/report.js';
import { ErrorCode, PagewireError } from '../errors.js';

/** Phases reported by `pagewire_migration_phase` (one series per phase, 1 for the current one). */
export const METRIC_PHASES = ['handshake', 'precopy', 'stop-and-copy', 'postcopy', 'complete', 'failed'] as const;
export type MetricPhase = (typeof METRIC_PHASES)[number];

/** What the metrics need of an endpoint: its events. */
export interface MigrationEventSource {
  on<K extends keyof MigrationEvents>(name: K, fn: (ev: MigrationEvents[K]) => void): () => void;
}

export interface MetricsOptions {
  /** No event for this long marks an active migration as stalled, ms (default 10 000). */
  stallAfterMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

type Role = 'source' | 'target';

/** Per-role state of the current (or last) migration. */
interface Current {
  active: boolean;
  phase: MetricPhase;
  lastEventAt: number;
  wirePerPage: number;
  lastDirty: number;
  nonShrinking: number;
  /** Pages sent in finished rounds (source). */
  pagesSent: number;
}

/** The metrics registry and the endpoints it watches. */
export class MigrationMetrics {
  readonly registry = new Registry();
  private readonly now: () => number;
  private readonly stallAfterMs: number;
  private readonly current = new Map<Role, Current>();

  private readonly phase: Gauge<'role' | 'phase'>;
  private readonly active: Gauge<'role'>;
  private readonly round: Gauge<'role'>;
  private readonly pagesRemaining: Gauge<'role'>;
  private readonly bytesRemaining: Gauge<'role'>;
  private readonly pagesTransferred: Gauge<'role'>;
  private readonly wireBytes: Gauge<'role'>;
  private readonly dirtyRate: Gauge<'role'>;
  private readonly bandwidth: Gauge<'role'>;
  private readonly expectedDowntime: Gauge<'role'>;
  private readonly drops: Gauge<'role'>;
  private readonly resentBytes: Gauge<'role'>;
  private readonly throttle: Gauge<'role'>;
  private readonly nonShrinking: Gauge<'role'>;
  private readonly verified: Gauge<'role'>;
  private readonly downtime: Gauge<'role'>;
  private readonly totalTime: Gauge<'role'>;
  private readonly startTime: Gauge<'role'>;
  private readonly endTime: Gauge<'role'>;
  private readonly migrationsTotal: Counter<'role' | 'result'>;
  private readonly wireBytesTotal: Counter<'role'>;
  private readonly dropsTotal: Counter<'role'>;

  constructor(options: MetricsOptions = {}) {
    this.now = options.now ?? Date.now;
    this.stallAfterMs = options.stallAfterMs ?? 10_000;
    const r = [this.registry];
    const g = (name: string, help: string): Gauge<'role'> => new Gauge({ name, help, labelNames: ['role'], registers: r });
    this.phase = new Gauge({ name: 'pagewire_migration_phase', help: 'Phase of the current or last migration (1 for the current phase)', labelNames: ['role', 'phase'], registers: r });
    this.active = g('pagewire_migration_active', '1 while a migration runs');
    this.round = g('pagewire_migration_round', 'Current pre-copy round (the last one after the end)');
    this.pagesRemaining = g('pagewire_migration_pages_remaining', 'Pages still to send in this round (source)');
    this.bytesRemaining = g('pagewire_migration_bytes_remaining', 'Estimated wire bytes still to send in this round (pages remaining times wire bytes per page so far)');
    this.pagesTransferred = g('pagewire_migration_pages_transferred', 'Pages sent (source) or applied (target) in this migration');
    this.wireBytes = g('pagewire_migration_wire_bytes', 'Bytes on the wire in this migration');
    this.dirtyRate = g('pagewire_migration_dirty_rate_bytes_per_second', 'Bytes the guest dirtied per second during the last round (source)');
    this.bandwidth = g('pagewire_migration_bandwidth_bytes_per_second', 'Measured link bandwidth (source)');
    this.expectedDowntime = g('pagewire_migration_expected_downtime_seconds', 'Expected downtime had the guest been stopped after the last round (source)');
    this.drops = g('pagewire_migration_drops', 'Connections lost and survived in this migration');
    this.resentBytes = g('pagewire_migration_resent_bytes', 'Wire bytes sent again after drops in this migration (known at the end)');
    this.throttle = g('pagewire_migration_throttle_percent', 'Auto-converge throttle in force (source)');
    this.nonShrinking = g('pagewire_migration_nonshrinking_rounds', 'Pre-copy rounds in a row whose dirty set did not shrink by 10% (source)');
    this.verified = g('pagewire_migration_verified', '1 when the last migration ended verified, 0 when it failed');
    this.downtime = g('pagewire_migration_downtime_seconds', 'Downtime of the last migration');
    this.totalTime = g('pagewire_migration_total_time_seconds', 'Total time of the last migration');
    this.startTime = g('pagewire_migration_start_time_seconds', 'Unix time the current or last migration started');
    this.endTime = g('pagewire_migration_end_time_seconds', 'Unix time the last migration ended');
    const stalled = new Gauge({
      name: 'pagewire_migration_stalled', help: '1 while a migration is active and nothing progressed for the stall time', labelNames: ['role'], registers: r,
      collect: () => {
        for (const [role, c] of this.current) stalled.set({ role }, c.active && this.now() - c.lastEventAt >= this.stallAfterMs ? 1 : 0);
      },
    });
    const since = new Gauge({
      name: 'pagewire_migration_seconds_since_progress', help: 'Seconds since the last event of the current migration (0 when none is active)', labelNames: ['role'], registers: r,
      collect: () => {
        for (const [role, c] of this.current) since.set({ role }, c.active ? (this.now() - c.lastEventAt) / 1000 : 0);
      },
    });
    this.migrationsTotal = new Counter({ name: 'pagewire_migrations_total', help: 'Migrations ended, by result', labelNames: ['role', 'result'], registers: r });
    this.wireBytesTotal = new Counter({ name: 'pagewire_wire_bytes_total', help: 'Bytes on the wire over all migrations', labelNames: ['role'], registers: r });
    this.dropsTotal = new Counter({ name: 'pagewire_link_drops_total', help: 'Connections lost and survived over all migrations', labelNames: ['role'], registers: r });
  }

  private setPhase(role: Role, phase: MetricPhase): void {
    const c = this.current.get(role)!;
    c.phase = phase;
    for (const p of METRIC_PHASES) this.phase.set({ role, phase: p }, p === phase ? 1 : 0);
  }

  private touch(role: Role): Current {
    const c = this.current.get(role)!;
    c.lastEventAt = this.now();
    return c;
  }

  /** Start a migration's series: reset the per-migration gauges of `role`. */
  private begin(role: Role): void {
    const now = this.now();
    this.current.set(role, { active: true, phase: 'handshake', lastEventAt: now, wirePerPage: 0, lastDirty: -1, nonShrinking: 0, pagesSent: 0 });
    for (const gauge of [this.round, this.pagesRemaining, this.bytesRemaining, this.pagesTransferred, this.wireBytes, this.drops, this.resentBytes,
      this.throttle, this.nonShrinking]) gauge.set({ role }, 0);
    for (const gauge of [this.dirtyRate, this.bandwidth, this.expectedDowntime, this.verified, this.downtime, this.totalTime, this.endTime]) gauge.remove({ role });
    this.active.set({ role }, 1);
    this.startTime.set({ role }, now / 1000);
    this.setPhase(role, 'handshake');
  }

  private end(role: Role, rep: MigrationReport | null, failed: boolean): void {
    const c = this.current.get(role);
    if (!c || !c.active) return;
    c.active = false;
    this.active.set({ role }, 0);
    this.setPhase(role, failed ? 'failed' : 'complete');
    this.endTime.set({ role }, this.now() / 1000);
    this.verified.set({ role }, !failed && rep?.verified === true ? 1 : 0);
    this.migrationsTotal.inc({ role, result: failed ? 'failed' : rep?.verified === true ? 'verified' : 'unverified' });
    if (rep) {
      this.wireBytes.set({ role }, rep.wireBytes);
      this.wireBytesTotal.inc({ role }, rep.wireBytes);
      this.resentBytes.set({ role }, rep.resentBytes);
      this.drops.set({ role }, rep.drops);
      this.downtime.set({ role }, rep.downtimeMs / 1000);
      this.totalTime.set({ role }, rep.totalTimeMs / 1000);
      this.pagesRemaining.set({ role }, 0);
      this.bytesRemaining.set({ role }, 0);
    }
  }

  /**
   * Follow one migration of a source or target endpoint (call before it starts). Its series are
   * reset at its first event, so a server waiting for the next connection still shows the last
   * migration.
   * @returns a function that stops following it
   */
  watch(role: Role, endpoint: MigrationEventSource): () => void {
    let begun = false;
    const on = <K extends keyof MigrationEvents>(name: K, fn: (ev: MigrationEvents[K]) => void): (() => void) => endpoint.on(name, (ev) => {
      if (!begun) { begun = true; this.begin(role); }
      fn(ev);
    });
    const offs = [
      on('phase', (p) => {
        this.touch(role);
        if (p.phase === 'handshake') this.setPhase(role, 'handshake');
        else if (p.phase === 'round') this.setPhase(role, 'precopy');
        else if (p.phase === 'stop-and-copy' || p.phase === 'postcopy') this.setPhase(role, p.phase);
        this.round.set({ role }, p.round);
      }),
      on('progress', (p) => {
        const c = this.touch(role);
        if (c.phase === 'handshake') this.setPhase(role, 'precopy');
        this.round.set({ role }, p.round);
        this.wireBytes.set({ role }, p.bytesSent);
        if (role === 'target') {
          // a target's progress: pages applied and bytes received so far in this migration
          this.pagesTransferred.set({ role }, p.pagesSent);
          return;
        }
        this.pagesRemaining.set({ role }, p.pagesRemaining);
        if (c.wirePerPage > 0) this.bytesRemaining.set({ role }, p.pagesRemaining * c.wirePerPage);
        if (p.bandwidthBytesPerSec > 0) this.bandwidth.set({ role }, p.bandwidthBytesPerSec);
      }),
      on('round', (r) => {
        const c = this.touch(role);
        if (c.phase === 'handshake') this.setPhase(role, 'precopy');
        if (r.pages > 0) c.wirePerPage = r.wireBytes / r.pages;
        this.round.set({ role }, r.round);
        if (role === 'source') {
          c.pagesSent += r.pages;
          this.pagesTransferred.set({ role }, c.pagesSent);
          this.dirtyRate.set({ role }, r.dirtyRateBytesPerSec);
          if (r.bandwidthBytesPerSec > 0) this.bandwidth.set({ role }, r.bandwidthBytesPerSec);
          if (!r.final) this.expectedDowntime.set({ role }, r.expectedDowntimeMs / 1000);
          this.throttle.set({ role }, r.throttlePct);
          this.pagesRemaining.set({ role }, r.dirtyPages);
          this.bytesRemaining.set({ role }, r.dirtyPages * c.wirePerPage);
          if (!r.final) {
            c.nonShrinking = c.lastDirty >= 0 && r.dirtyPages > c.lastDirty * 0.9 ? c.nonShrinking + 1 : 0;
            c.lastDirty = r.dirtyPages;
            this.nonShrinking.set({ role }, c.nonShrinking);
          }
        }
      }),
      on('switchover', (s) => {
        this.touch(role);
        this.expectedDowntime.set({ role }, s.expectedDowntimeMs / 1000);
        this.setPhase(role, s.mode === 'postcopy' ? 'postcopy' : 'stop-and-copy');
      }),
      on('drop', () => {
        this.touch(role);
        this.drops.inc({ role });
        this.dropsTotal.inc({ role });
      }),
      on('complete', (rep) => this.end(role, rep, false)),
      on('error', () => this.end(role, null, true)),
    ];
    return () => { for (const off of offs) off(); };
  }

  /** Mark `role`'s migration as ended when the endpoint threw without an 'error' event. */
  failed(role: Role): void {
    this.end(role, null, true);
  }

  /** The exposition text (what GET /metrics answers). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** A metrics HTTP endpoint: GET /metrics; everything else 404. */
export interface MetricsServer {
  readonly metrics: MigrationMetrics;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serve `metrics` on HOST:PORT (port 0 picks one).
 * @throws PagewireError TRANSPORT_CLOSED when the address cannot be bound
 */
export async function serveMetrics(host: string, port: number, metrics = new MigrationMetrics()): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(req.method === 'GET' ? 404 : 405, { 'content-type': 'text/plain' }).end('pagewire: GET /metrics\n');
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (cause) => reject(new PagewireError(ErrorCode.TRANSPORT_CLOSED, `--metrics ${host}:${port}: ${(cause as Error).message}`, { cause })));
    server.listen({ host, port }, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    metrics, host, port: bound,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
