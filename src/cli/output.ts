/**
 * Human output of the CLI: a per-round table, a summary, and a one-line progress display on a
 * terminal (plain lines when stdout is not a terminal).
 */
import type { MigrationReport, RoundReport, ProgressEvent } from '../migration/report.js';
import { formatBytes, formatMs, formatRate } from './units.js';

function pad(s: string, n: number, left = false): string {
  return left ? s.padEnd(n) : s.padStart(n);
}

/** Render rows as an aligned text table. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => pad(c, w[i]!, i === 0)).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

function codecMix(r: { codecs: RoundReport['codecs'] }): string {
  return Object.entries(r.codecs)
    .filter(([, v]) => v.pages > 0)
    .sort((a, b) => b[1].pages - a[1].pages)
    .map(([k, v]) => `${k}:${v.pages}`)
    .join(' ');
}

/** One line per round. */
export function roundLine(r: RoundReport): string {
  return `round ${r.final ? 'final' : r.round}: ${r.pages} pages, ${formatBytes(r.wireBytes)} on the wire (${r.rawBytes > 0 ? ((100 * r.wireBytes) / r.rawBytes).toFixed(1) : '0'}% of raw), ` +
    `${formatMs(r.durationMs)}, ${formatRate(r.bandwidthBytesPerSec)}, dirtied ${r.dirtyPages} pages, expected downtime ${formatMs(r.expectedDowntimeMs)}  [${codecMix(r)}]`;
}

/** The rounds table and the summary of a source report. */
export function summary(rep: MigrationReport): string {
  const rows = rep.rounds.map((r) => [
    r.final ? 'final' : String(r.round), String(r.pages), formatBytes(r.wireBytes),
    r.rawBytes > 0 ? `${((100 * r.wireBytes) / r.rawBytes).toFixed(1)}%` : '-', formatMs(r.durationMs),
    formatRate(r.bandwidthBytesPerSec), String(r.dirtyPages), formatMs(r.expectedDowntimeMs), codecMix(r),
  ]);
  const t = table(['round', 'pages', 'wire', 'of raw', 'time', 'bandwidth', 'dirtied', 'exp. downtime', 'codecs'], rows);
  const ratio = rep.rawBytes > 0 ? rep.wireBytes / rep.rawBytes : 0;
  const lines = [
    t,
    '',
    `mode ${rep.mode}, ${rep.rounds.length} rounds, ${rep.converged ? 'converged' : 'did NOT converge'} (${rep.reason})`,
    `verified: ${rep.verified ? 'yes' : 'NO'}  digest ${rep.digest}`,
    `total time ${formatMs(rep.totalTimeMs)}, downtime ${formatMs(rep.downtimeMs)} (expected ${formatMs(rep.expectedDowntimeMs)}), setup ${formatMs(rep.setupTimeMs)}`,
    `wire ${formatBytes(rep.wireBytes)} for ${formatBytes(rep.rawBytes)} of pages (${(100 * ratio).toFixed(1)}%); guest ${formatBytes(rep.guestPages * rep.pageSize)}`,
  ];
  if (rep.throttlePct > 0) lines.push(`auto-converge throttle: ${rep.throttlePct}%`);
  if (rep.faults !== undefined) lines.push(`post-copy faults: ${rep.faults}, latency median ${formatMs(rep.faultLatencyMs?.median ?? 0)}, p99 ${formatMs(rep.faultLatencyMs?.p99 ?? 0)}`);
  if (rep.drops > 0 || rep.corruptionsDetected > 0) lines.push(`link drops survived: ${rep.drops}, bytes re-sent: ${formatBytes(rep.resentBytes)}, corruptions detected: ${rep.corruptionsDetected}`);
  return lines.join('\n');
}

/**
 * A progress display: rewrites one line on a terminal (bar, round, pages and estimated bytes
 * left, rate, expected downtime), prints nothing otherwise.
 * - Bytes left: pages left times the wire bytes per page of this round so far, or of the last
 *   round before this one has sent anything.
 * - Rate: the measured link bandwidth once acknowledgements gave one; before that, the bytes sent
 *   over the time since the first progress event (marked "sending"), never a made-up 0.
 * - Expected downtime: from the last finished pre-copy round; before one finished, the line says
 *   it is known after round 0.
 */
export class ProgressLine {
  private last = 0;
  private wirePerPage = 0;
  private expectedMs = NaN;
  private round_ = -1;
  private roundBaseBytes = 0;
  private lastBytes = 0;
  private firstAtMs = NaN;
  constructor(private readonly stream: { isTTY?: boolean; write(s: string): unknown }, private readonly intervalMs = 100) {}

  /** Learn the wire bytes per page and the expected downtime from a finished round. */
  round(r: RoundReport): void {
    if (r.pages > 0) this.wirePerPage = r.wireBytes / r.pages;
    if (!r.final) this.expectedMs = r.expectedDowntimeMs;
  }

  /**
   * The line for a progress event (no terminal codes).
   * @param nowMs the clock (milliseconds) for the rate before a bandwidth was measured
   */
  line(p: ProgressEvent, totalPages: number, nowMs = Date.now()): string {
    if (Number.isNaN(this.firstAtMs)) this.firstAtMs = nowMs;
    if (p.round !== this.round_) {
      this.round_ = p.round;
      this.roundBaseBytes = this.lastBytes;
    }
    this.lastBytes = p.bytesSent;
    const done = p.pagesSent / Math.max(1, p.pagesSent + p.pagesRemaining);
    const width = 24;
    const bar = '#'.repeat(Math.round(done * width)).padEnd(width, '.');
    const perPage = p.pagesSent > 0 && p.bytesSent > this.roundBaseBytes ? (p.bytesSent - this.roundBaseBytes) / p.pagesSent : this.wirePerPage;
    const left = perPage > 0 ? ` (~${formatBytes(p.pagesRemaining * perPage)})` : '';
    const elapsedS = (nowMs - this.firstAtMs) / 1000;
    const rate = p.bandwidthBytesPerSec > 0 ? formatRate(p.bandwidthBytesPerSec)
      : elapsedS >= 0.05 && p.bytesSent > 0 ? `sending ${formatRate(p.bytesSent / elapsedS)}` : 'measuring the rate';
    const exp = Number.isFinite(this.expectedMs) ? `expected downtime ${formatMs(this.expectedMs)}` : 'expected downtime known after round 0';
    return `[${bar}] ${p.phase} round ${p.round}: ${p.pagesRemaining} of ${totalPages} pages left${left}, ${formatBytes(p.bytesSent)} sent, ${rate}, ${exp}`;
  }

  update(p: ProgressEvent, totalPages: number): void {
    if (!this.stream.isTTY) return;
    const now = Date.now();
    if (now - this.last < this.intervalMs) return;
    this.last = now;
    this.stream.write(`\r${this.line(p, totalPages, now)}\x1b[K`);
  }

  clear(): void {
    if (this.stream.isTTY) this.stream.write('\r\x1b[K');
  }
}
