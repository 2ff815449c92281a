/**
 * The simulator page: reads the form, starts a source and a target worker joined by a
 * MessageChannel, draws what the source reports while the migration runs, and checks the end:
 * both endpoints verified, and the target's memory digest equal to the source's at pause time.
 */
import type { MigrationReport, RoundReport } from 'pagewire';
import { barChart, lineChart } from './charts.js';
import type { Engine, SimConfig, StartMessage, WorkerMessage, WorkloadName } from './messages.js';

const MiB = 1024 * 1024;
/** Credit window of the MessagePort transports (see docs/BROWSER.md for why not larger). */
const DEFAULT_PORT_WINDOW = 2 * MiB;
const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function fmtBytes(n: number): string {
  if (n >= 1024 * MiB) return `${(n / 1024 / MiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(n >= 100 * MiB ? 0 : 1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${Math.round(n)} B`;
}
const fmtCount = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : String(Math.round(n)));
const fmtMs = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`);
const fmtRate = (bps: number): string => `${(bps / 1e6).toFixed(bps >= 1e8 ? 0 : 1)} MB/s`;

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
  bandwidth: Array<[number, number]>;
  /** Wire bytes per second delivered by the link between progress samples. */
  throughput: Array<[number, number]>;
  lastSent: [number, number] | null;
  /** Time of the latest sample, ms since start. */
  lastT: number;
  downtime: Array<[number, number]>;
  done: Partial<Record<'source' | 'target', { report: MigrationReport; memoryDigest: string; extra: Record<string, number> }>>;
  finished: boolean;
  startedAt: number;
}

let run: Run | null = null;
let drawQueued = false;

function setStatus(text: string, error = false): void {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', error);
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
  ], (v) => `${v.toFixed(v >= 10 ? 0 : 1)} MB/s`, lastT);
  lineChart($('chart-downtime') as unknown as SVGSVGElement, [
    { label: 'expected downtime', color: '#b23b3b', points: r.downtime },
    { label: 'limit', color: '#8a93a5', dashed: true, points: [[0, r.config.downtimeLimitMs], [Math.max(lastT, 1), r.config.downtimeLimitMs]] },
  ], (v) => `${v.toFixed(0)} ms`, lastT);
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

function finish(r: Run): void {
  const s = r.done.source!;
  const t = r.done.target!;
  stopRun();
  const rep = s.report;
  const digestsEqual = s.memoryDigest === t.memoryDigest && rep.digest === t.report.digest;
  const verified = rep.verified && t.report.verified && digestsEqual;
  const sum = $('summary');
  sum.hidden = false;
  sum.dataset['state'] = verified ? 'verified' : 'mismatch';
  sum.dataset['converged'] = String(rep.converged);
  $('sum-digest').innerHTML = verified
    ? `<span class="ok" id="verified">verified</span> <code id="digest">${s.memoryDigest}</code> (target memory digest = source memory digest at pause time)`
    : `<span class="bad" id="verified">NOT verified</span>: source <code>${s.memoryDigest}</code>, target <code>${t.memoryDigest}</code>`;
  $('sum-converged').innerHTML = r.config.engine === 'postcopy'
    ? `not applicable (${escapeHtml(rep.reason)})`
    : rep.converged
    ? `<span class="ok">yes</span> (${escapeHtml(rep.reason)})`
    : `<span class="bad">no</span> (${escapeHtml(rep.reason)})`;
  $('sum-total').textContent = `${fmtMs(rep.totalTimeMs)} (setup ${fmtMs(rep.setupTimeMs)})`;
  $('sum-downtime').textContent = `${fmtMs(rep.downtimeMs)} measured, ${fmtMs(rep.expectedDowntimeMs)} expected; limit ${fmtMs(r.config.downtimeLimitMs)}`;
  const ratio = rep.rawBytes > 0 ? rep.rawBytes / Math.max(1, rep.wireBytes) : 1;
  $('sum-wire').textContent = `${fmtBytes(rep.wireBytes)} for ${fmtBytes(rep.rawBytes)} of pages (${ratio.toFixed(2)}x), guest ${fmtBytes(rep.guestPages * rep.pageSize)}`;
  $('sum-rounds').textContent = `${rep.rounds.length} (${rep.rounds.filter((x) => !x.final).length} pre-copy + final), mode ${rep.mode}`;
  $('sum-codecs').textContent = Object.entries(rep.codecs).filter(([, v]) => v.pages > 0)
    .map(([k, v]) => `${k} ${fmtCount(v.pages)} pages / ${fmtBytes(v.bytes)}`).join(', ') || '-';
  $('sum-postcopy').textContent = rep.mode === 'precopy'
    ? 'not used'
    : `${fmtBytes(rep.postcopyBytes)} after switch-over, ${t.report.faults ?? 0} faults` +
      (t.report.faultLatencyMs ? ` (median ${fmtMs(t.report.faultLatencyMs.median)}, p99 ${fmtMs(t.report.faultLatencyMs.p99)})` : '') +
      `, ${t.extra['guestAccesses'] ?? 0} target guest accesses`;
  setStatus(`Done in ${fmtMs(performance.now() - r.startedAt)}: ${verified ? 'verified' : 'NOT verified'}, ${rep.converged ? 'converged' : 'did not converge'}.`, !verified);
  (window as unknown as { pagewireSim: unknown }).pagewireSim = { config: r.config, source: s, target: t, verified };
  draw();
}

function onMessage(r: Run, m: WorkerMessage): void {
  if (run !== r || r.finished) return;
  switch (m.type) {
    case 'ready':
      if (m.role === 'source') setStatus(`Source guest ready: ${m.pages} pages. Migrating…`);
      return;
    case 'phase':
      if (m.role === 'source') setStatus(`Source: ${m.phase}${m.phase.startsWith('round') ? '' : ` (round ${m.round})`}`);
      return;
    case 'progress':
      r.lastT = Math.max(r.lastT, m.t);
      if (r.lastSent !== null && m.t > r.lastSent[0]) r.throughput.push([m.t, ((m.deliveredBytes - r.lastSent[1]) * 1000) / (m.t - r.lastSent[0])]);
      r.lastSent = [m.t, m.deliveredBytes];
      // 0 means "no estimate yet" (the source estimates after its first acknowledgements or round)
      if (m.progress.bandwidthBytesPerSec > 0) r.bandwidth.push([m.t, m.progress.bandwidthBytesPerSec]);
      if (m.progress.expectedDowntimeMs > 0) r.downtime.push([m.t, m.progress.expectedDowntimeMs]);
      setStatus(`Round ${m.progress.round} (${m.progress.phase}): ${fmtCount(m.progress.pagesRemaining)} pages remaining, ` +
        `${fmtRate(m.progress.bandwidthBytesPerSec)}, expected downtime ${fmtMs(m.progress.expectedDowntimeMs)}`);
      queueDraw();
      return;
    case 'round':
      r.lastT = Math.max(r.lastT, m.t);
      r.rounds.push(m.round);
      if (m.round.bandwidthBytesPerSec > 0) r.bandwidth.push([m.t, m.round.bandwidthBytesPerSec]);
      r.downtime.push([m.t, m.round.expectedDowntimeMs]);
      queueDraw();
      return;
    case 'switchover':
      setStatus(`Switch-over after round ${m.round} (${m.mode}): ${m.reason}`);
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
  const r: Run = { config, workers: [source, target], rounds: [], bandwidth: [], throughput: [], lastSent: null, lastT: 0, downtime: [], done: {}, finished: false, startedAt: performance.now() };
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
