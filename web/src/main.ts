/**
 * The simulator page: reads the form, starts a source and a target worker joined by a
 * MessageChannel, draws what the source reports while the migration runs, and checks the end:
 * both endpoints verified, and the target's memory digest equal to the source's at pause time.
 */
import type { MigrationReport, ProgressEvent, RoundReport } from 'pagewire';
import { barChart, lineChart } from './charts.js';
import { LINK_SAMPLE_MS, type Engine, type SimConfig, type StartMessage, type WorkerMessage, type WorkloadName } from './messages.js';

const MiB = 1024 * 1024;
/** Credit window of the MessagePort transports (see docs/BROWSER.md for why not larger). */
const DEFAULT_PORT_WINDOW = 2 * MiB;
/** The delivered rate is drawn over windows of at least this many ms (two link samples). */
const THROUGHPUT_WINDOW_MS = 2 * LINK_SAMPLE_MS;
const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function fmtBytes(n: number): string {
  if (n >= 1024 * MiB) return `${(n / 1024 / MiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(n >= 100 * MiB ? 0 : 1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${Math.round(n)} B`;
}
const fmtCount = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : String(Math.round(n)));
const fmtMs = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`);
/** A rate in MB/s, in kB/s below 0.1 MB/s (a small figure never reads "0.0 MB/s"). */
const fmtRate = (bps: number): string => (bps >= 1e5 ? `${(bps / 1e6).toFixed(bps >= 1e8 ? 0 : 1)} MB/s`
  : bps >= 1e3 ? `${(bps / 1e3).toFixed(bps >= 1e4 ? 0 : 1)} kB/s` : `${Math.round(bps)} B/s`);

/** `?window=KiB` in the page's address overrides the MessagePort credit window (for experiments). */
function portWindow(): number {
  const q = Number(new URLSearchParams(location.search).get('window'));
  return Number.isInteger(q) && q >= 64 ? q * 1024 : DEFAULT_PORT_WINDOW;
}

function readConfig(): SimConfig {
  const num = (id: string): number => Number(($(id) as HTMLInputElement).value);
  const linkMbit = num('link');
  return {
    guestBytes: num('guest-size') * MiB,
    pageSize: 4096,
    workload: ($('workload') as HTMLSelectElement).value as WorkloadName,
    dirtyRateBytesPerSec: Math.max(0, num('dirty-rate')) * MiB,
    linkBytesPerSec: (linkMbit * 1e6) / 8,
    delayMs: Math.max(0, num('delay')),
    engine: ($('engine') as HTMLSelectElement).value as Engine,
    downtimeLimitMs: Math.max(1, num('downtime-limit')),
    maxRounds: Math.max(1, Math.floor(num('max-rounds'))),
    seed: 1,
    portWindowBytes: portWindow(),
  };
}

interface Run {
  config: SimConfig;
  workers: Worker[];
  rounds: RoundReport[];
  /** The source's bandwidth estimate over time (ms since the migration started, bytes/s). */
  bandwidth: Array<[number, number]>;
  /** Bytes per second delivered by the link between consecutive link samples. */
  throughput: Array<[number, number]>;
  lastSample: [number, number] | null;
  /** Time of the latest sample, ms since start. */
  lastT: number;
  /** Expected downtime after each pre-copy round. */
  downtime: Array<[number, number]>;
  /** Set at the switch-over: 'postcopy' once the target's guest runs before all pages arrived. */
  switchMode: 'precopy' | 'postcopy' | null;
  /** The first link sample after a switch-over to post-copy (ms, delivered bytes). */
  switchSample: [number, number] | null;
  done: Partial<Record<'source' | 'target', { report: MigrationReport; memoryDigest: string; extra: Record<string, number> }>>;
  finished: boolean;
}

let run: Run | null = null;
let drawQueued = false;

function setStatus(text: string, error = false): void {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

/** A run with nothing reported yet: what the charts show before the first round. */
function emptyRun(config: SimConfig): Run {
  return { config, workers: [], rounds: [], bandwidth: [], throughput: [], lastSample: null, lastT: 0, downtime: [], switchMode: null, switchSample: null, done: {}, finished: false };
}

function draw(): void {
  drawQueued = false;
  if (!run) return;
  const r = run;
  const labels = r.rounds.map((x) => (x.final ? 'S' : String(x.round)));
  barChart($('chart-pages') as unknown as SVGSVGElement, [
    { label: 'pages sent', color: '#2858c8', values: r.rounds.map((x) => x.pages) },
    { label: 'dirtied during round', color: '#e08a1e', values: r.rounds.map((x) => x.dirtyPages) },
  ], labels, fmtCount);
  barChart($('chart-wire') as unknown as SVGSVGElement, [
    { label: 'raw (pages x size)', color: '#a9b3c6', values: r.rounds.map((x) => x.rawBytes) },
    { label: 'on the wire', color: '#17733a', values: r.rounds.map((x) => x.wireBytes) },
  ], labels, fmtBytes, MiB);
  const link = r.config.linkBytesPerSec;
  const lastT = r.lastT;
  lineChart($('chart-bandwidth') as unknown as SVGSVGElement, [
    { label: 'delivered', color: '#17733a', points: r.throughput.map(([t, v]) => [t, v / 1e6]) },
    { label: 'source estimate', color: '#2858c8', points: r.bandwidth.map(([t, v]) => [t, v / 1e6]) },
    ...(link > 0 ? [{ label: `link ${fmtRate(link)}`, color: '#8a93a5', dashed: true, reference: true, points: [[0, link / 1e6], [lastT, link / 1e6]] as Array<[number, number]> }] : []),
  ], (v) => `${v.toFixed(v >= 10 || Number.isInteger(v) ? 0 : 1)} MB/s`, lastT);
  lineChart($('chart-downtime') as unknown as SVGSVGElement, [
    { label: 'expected downtime', color: '#b23b3b', points: r.downtime },
    { label: 'limit', color: '#8a93a5', dashed: true, points: [[0, r.config.downtimeLimitMs], [Math.max(lastT, 1), r.config.downtimeLimitMs]] },
  ], (v) => `${v.toFixed(0)} ms`, lastT, r.config.engine === 'postcopy' ? 'none: post-copy switches over at once' : 'estimated at the end of each round');
}

function queueDraw(): void {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(draw);
}

function stopRun(): void {
  if (!run) return;
  for (const w of run.workers) w.terminate();
  run.finished = true;
  ($('start') as HTMLButtonElement).disabled = false;
  ($('stop') as HTMLButtonElement).disabled = true;
}

function fail(role: string, code: string, message: string): void {
  if (!run || run.finished) return;
  stopRun();
  setStatus(`${role} failed: ${code} ${message}`, true);
  const sum = $('summary');
  sum.hidden = false;
  sum.dataset['state'] = 'failed';
  $('sum-digest').innerHTML = `<span class="bad">not verified</span>: ${escapeHtml(code)} ${escapeHtml(message)}`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/**
 * How the migration ended with respect to convergence, in one place for the status line (`short`)
 * and the summary (`long`), so that the two never disagree.
 */
function convergence(engine: Engine, rep: MigrationReport): { short: string; long: string; cls: 'ok' | 'bad' | '' } {
  if (engine === 'postcopy') {
    return { short: 'post-copy (convergence does not apply)', long: `not applicable: ${rep.reason}`, cls: '' };
  }
  if (rep.mode === 'postcopy' || rep.mode === 'hybrid' && rep.postcopyBytes > 0) {
    return { short: 'switched to post-copy', long: `no, switched to post-copy (${rep.reason})`, cls: '' };
  }
  return rep.converged
    ? { short: 'converged', long: `yes (${rep.reason})`, cls: 'ok' }
    : { short: 'did not converge', long: `no (${rep.reason})`, cls: 'bad' };
}

/** LZ4 block counters of the source's encoder (report.codecStats.lz4), when present. */
function lz4Counts(rep: MigrationReport): { pages: number; inBytes: number; outBytes: number } | null {
  const l = (rep.codecStats as { lz4?: { pages?: unknown; inBytes?: unknown; outBytes?: unknown } } | undefined)?.lz4;
  if (!l || typeof l.pages !== 'number' || typeof l.inBytes !== 'number' || typeof l.outBytes !== 'number') return null;
  return { pages: l.pages, inBytes: l.inBytes, outBytes: l.outBytes };
}

/**
 * The codec mix: each record codec's pages and record bytes, then what LZ4 did to the records it
 * compressed, and the payload after LZ4 (the wire bytes less frame and block headers).
 * @returns the text and the payload bytes after LZ4
 */
function codecLine(rep: MigrationReport): { text: string; payloadBytes: number } {
  const used = Object.entries(rep.codecs).filter(([, v]) => v.pages > 0);
  const records = used.reduce((n, [, v]) => n + v.bytes, 0);
  const parts = used.map(([k, v]) => `${k} ${fmtCount(v.pages)} pages / ${fmtBytes(v.bytes)}`);
  const lz4 = lz4Counts(rep);
  if (lz4 && lz4.pages > 0) {
    const payloadBytes = records - lz4.inBytes + lz4.outBytes;
    return {
      text: `${parts.join(', ')} (record bytes); then LZ4 on the records of ${fmtCount(lz4.pages)} pages: ${fmtBytes(lz4.inBytes)} to ${fmtBytes(lz4.outBytes)}; ` +
        `${fmtBytes(payloadBytes)} after LZ4`,
      payloadBytes,
    };
  }
  return { text: parts.length > 0 ? `${parts.join(', ')}; ${fmtBytes(records)} in all (no LZ4)` : '-', payloadBytes: records };
}

function finish(r: Run): void {
  const s = r.done.source!;
  const t = r.done.target!;
  stopRun();
  const rep = s.report;
  const digestsEqual = s.memoryDigest === t.memoryDigest && rep.digest === t.report.digest;
  const verified = rep.verified && t.report.verified && digestsEqual;
  const conv = convergence(r.config.engine, rep);
  const sum = $('summary');
  sum.hidden = false;
  sum.dataset['state'] = verified ? 'verified' : 'mismatch';
  sum.dataset['converged'] = String(rep.converged);
  $('sum-digest').innerHTML = verified
    ? `<span class="ok" id="verified">verified</span> <code id="digest">${s.memoryDigest}</code> (target memory digest = source memory digest at pause time)`
    : `<span class="bad" id="verified">NOT verified</span>: source <code>${s.memoryDigest}</code>, target <code>${t.memoryDigest}</code>`;
  $('sum-converged').innerHTML = conv.cls ? `<span class="${conv.cls}">${escapeHtml(conv.long.slice(0, conv.long.indexOf(' ')))}</span>${escapeHtml(conv.long.slice(conv.long.indexOf(' ')))}` : escapeHtml(conv.long);
  const total = fmtMs(rep.totalTimeMs);
  $('sum-total').textContent = `${total} (setup ${fmtMs(rep.setupTimeMs)}; before it the workers prepared the guest in ${fmtMs(s.extra['prepareMs'] ?? 0)})`;
  const preRounds = rep.rounds.filter((x) => !x.final).length;
  $('sum-downtime').textContent = `${fmtMs(rep.downtimeMs)} measured, ` +
    (preRounds > 0 ? `${fmtMs(rep.expectedDowntimeMs)} expected` : 'no estimate (no pre-copy round)') + `; limit ${fmtMs(r.config.downtimeLimitMs)}`;
  const ratio = rep.rawBytes > 0 ? rep.rawBytes / Math.max(1, rep.wireBytes) : 1;
  $('sum-wire').textContent = `${fmtBytes(rep.wireBytes)} for ${fmtBytes(rep.rawBytes)} of pages (${ratio.toFixed(2)}x), guest ${fmtBytes(rep.guestPages * rep.pageSize)}`;
  $('sum-rounds').textContent = `${rep.rounds.length} (${preRounds} pre-copy + ${rep.mode === 'precopy' ? 'stop-and-copy' : 'post-copy'}), mode ${rep.mode}`;
  $('sum-codecs').textContent = codecLine(rep).text;
  $('sum-postcopy').textContent = rep.mode === 'precopy'
    ? 'not used'
    : `${fmtBytes(rep.postcopyBytes)} after switch-over, ${t.report.faults ?? 0} faults` +
      (t.report.faultLatencyMs ? ` (median ${fmtMs(t.report.faultLatencyMs.median)}, p99 ${fmtMs(t.report.faultLatencyMs.p99)})` : '') +
      `, ${t.extra['guestAccesses'] ?? 0} target guest accesses`;
  setStatus(`Done in ${total}: ${verified ? 'verified' : 'NOT verified'}, ${conv.short}.`, !verified);
  (window as unknown as { pagewireSim: unknown }).pagewireSim = {
    config: r.config, source: s, target: t, verified, throughput: r.throughput, bandwidth: r.bandwidth, downtime: r.downtime,
  };
  draw();
}

/** What the status line says while a round runs. */
function roundStatus(r: Run, p: ProgressEvent): string {
  const last = r.rounds.length > 0 ? r.rounds[r.rounds.length - 1]! : null;
  const bw = p.bandwidthBytesPerSec > 0 ? `link ${fmtRate(p.bandwidthBytesPerSec)}` : 'link not measured yet';
  if (p.phase === 'stop-and-copy') return `Stop-and-copy (guest paused): ${fmtCount(p.pagesRemaining)} pages remaining, ${bw}`;
  const expected = last ? `expected downtime ${fmtMs(last.expectedDowntimeMs)} after round ${last.round}` : 'expected downtime known after round 0';
  return `Round ${p.round}: ${fmtCount(p.pagesRemaining)} pages remaining, ${bw}, ${expected}`;
}

function onMessage(r: Run, m: WorkerMessage): void {
  if (run !== r || r.finished) return;
  switch (m.type) {
    case 'ready':
      if (m.role === 'source') setStatus(`Source guest ready: ${fmtCount(m.pages)} pages. Connecting to the target…`);
      return;
    case 'phase':
      if (m.role !== 'source') return;
      if (m.phase === 'handshake') setStatus('Handshake with the target…');
      else if (m.phase.startsWith('round')) setStatus(`Round ${m.round}: sending…`);
      else if (m.phase === 'stop-and-copy' && r.switchMode !== 'postcopy') setStatus('Stop-and-copy (guest paused): sending the last dirty pages and the device state…');
      else if (m.phase === 'complete') setStatus('Verifying: comparing the memory digests of both sides…');
      return;
    case 'progress':
      r.lastT = Math.max(r.lastT, m.t);
      // 0 means "no estimate yet" (the source estimates after its first acknowledgements or round)
      if (m.progress.bandwidthBytesPerSec > 0) r.bandwidth.push([m.t, m.progress.bandwidthBytesPerSec]);
      setStatus(roundStatus(r, m.progress));
      queueDraw();
      return;
    case 'link':
      r.lastT = Math.max(r.lastT, m.t);
      // a rate over at least THROUGHPUT_WINDOW_MS: a late timer in a busy worker would make spikes
      if (r.lastSample === null) r.lastSample = [m.t, m.deliveredBytes];
      else if (m.t - r.lastSample[0] >= THROUGHPUT_WINDOW_MS || m.final) {
        if (m.t > r.lastSample[0]) r.throughput.push([m.t, ((m.deliveredBytes - r.lastSample[1]) * 1000) / (m.t - r.lastSample[0])]);
        r.lastSample = [m.t, m.deliveredBytes];
      }
      if (r.switchMode === 'postcopy') {
        // the average since the switch-over: a window with nothing delivered says nothing of the link
        r.switchSample ??= [m.t, m.deliveredBytes];
        const bytes = m.deliveredBytes - r.switchSample[1];
        if (bytes > 0 && m.t > r.switchSample[0]) {
          setStatus(`Post-copy: the target's guest runs; ${fmtBytes(bytes)} delivered since the switch-over, ${fmtRate((bytes * 1000) / (m.t - r.switchSample[0]))} on average`);
        }
      }
      queueDraw();
      return;
    case 'round':
      r.lastT = Math.max(r.lastT, m.t);
      r.rounds.push(m.round);
      if (m.round.bandwidthBytesPerSec > 0) r.bandwidth.push([m.t, m.round.bandwidthBytesPerSec]);
      // the stop-and-copy round has no estimate of its own (the guest is already paused)
      if (!m.round.final) r.downtime.push([m.t, m.round.expectedDowntimeMs]);
      queueDraw();
      return;
    case 'switchover':
      r.switchMode = m.mode === 'postcopy' ? 'postcopy' : 'precopy';
      setStatus(m.mode === 'postcopy'
        ? `Post-copy after ${m.round} pre-copy round${m.round === 1 ? '' : 's'}: the target's guest runs, missing pages are pushed and faulted in`
        : `Switch-over after round ${m.round - 1}: ${m.reason}`);
      return;
    case 'done':
      r.done[m.role] = { report: m.report, memoryDigest: m.memoryDigest, extra: m.extra };
      if (r.done.source && r.done.target) finish(r);
      return;
    case 'failed':
      fail(m.role, m.error.code, m.error.message);
      return;
  }
}

function start(): void {
  stopRun();
  const config = readConfig();
  const source = new Worker(new URL('./source.worker.ts', import.meta.url), { type: 'module', name: 'pagewire source' });
  const target = new Worker(new URL('./target.worker.ts', import.meta.url), { type: 'module', name: 'pagewire target' });
  const r: Run = { ...emptyRun(config), workers: [source, target] };
  run = r;
  for (const [w, role] of [[source, 'source'], [target, 'target']] as const) {
    w.addEventListener('message', (ev: MessageEvent<WorkerMessage>) => onMessage(r, ev.data));
    w.addEventListener('error', (ev) => { if (run === r) fail(role, 'WORKER_ERROR', ev.message || 'the worker could not start'); });
  }
  const sum = $('summary');
  sum.hidden = true;
  sum.dataset['state'] = 'running';
  delete sum.dataset['converged'];
  for (const dd of sum.querySelectorAll('dd')) dd.textContent = '';
  ($('start') as HTMLButtonElement).disabled = true;
  ($('stop') as HTMLButtonElement).disabled = false;
  setStatus('Starting workers…');
  draw();
  // The link: one MessageChannel, one port per endpoint (transferred, not copied).
  const channel = new MessageChannel();
  target.postMessage({ type: 'start', config, port: channel.port2 } satisfies StartMessage, [channel.port2]);
  source.postMessage({ type: 'start', config, port: channel.port1 } satisfies StartMessage, [channel.port1]);
}

$('config').addEventListener('submit', (ev) => { ev.preventDefault(); start(); });
$('stop').addEventListener('click', () => { if (run && !run.finished) { stopRun(); setStatus('Stopped.'); $('summary').dataset['state'] = 'stopped'; } });

// Empty charts until the first migration starts.
run = emptyRun(readConfig());
run.finished = true;
draw();
