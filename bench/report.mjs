// Report pieces for whole-migration rows (bench/macro.bench.mjs): the markdown table and SVG charts
// written by hand (no chart library).
//
//   node bench/report.mjs bench/results/2026-11-29.json     re-draws the charts of a results file
//
// Charts (<base> = the results file name without .json):
//   <base>-wire-per-round.svg   wire bytes per round by engine (log scale), one scenario
//   <base>-vs-bandwidth.svg     total time and downtime against link bandwidth by engine (log-log)
//   <base>-wire-by-workload.svg wire bytes relative to raw per workload and engine (100 Mbit/s WAN)
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ENGINES = ['raw', 'qemu', 'pagewire', 'pagewire-reorder', 'postcopy', 'hybrid'];
const COLORS = { raw: '#7f7f7f', qemu: '#d62728', pagewire: '#1f77b4', 'pagewire-reorder': '#17becf', postcopy: '#ff7f0e', hybrid: '#2ca02c' };
const DASH = { 'pagewire-reorder': '6 3', hybrid: '2 3' };
const LINK_ORDER = ['10mbit-100ms', '100mbit-50ms', '1gbit', '10gbit'];
const LINK_BPS = { '10mbit-100ms': 10e6, '100mbit-50ms': 100e6, '1gbit': 1e9, '10gbit': 10e9 };

function gib(b) {
  return b >= 2 ** 30 ? `${b / 2 ** 30} GiB` : `${Math.round(b / 2 ** 20)} MiB`;
}

function num(n, d = 0) {
  return n === undefined || n === null ? '' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
}

function secs(ms) {
  return ms >= 10_000 ? `${num(ms / 1000, 1)} s` : ms >= 1000 ? `${num(ms / 1000, 2)} s` : `${num(ms, 0)} ms`;
}

function bytes(b) {
  return b >= 1e9 ? `${num(b / 1e9, 2)} GB` : b >= 1e6 ? `${num(b / 1e6, 1)} MB` : `${num(b / 1e3, 1)} kB`;
}

/** Markdown table of migration rows (one line per run). */
export function migrationMarkdown(rows) {
  const lines = [
    '| clock | guest | workload | link | engine | total time | downtime | wire | rounds | converged | faults p50 / p99 | time vs raw | wire vs raw | downtime vs raw |',
    '|---|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    if (r.error) {
      lines.push(`| ${r.clock} | ${gib(r.guestBytes)} | ${r.workload} | ${r.link} | ${r.engine} | failed: ${r.error} |  |  |  |  |  |  |  |  |`);
      continue;
    }
    const f = r.faultLatencyMs ? `${num(r.faultLatencyMs.median, 1)} / ${num(r.faultLatencyMs.p99, 1)} ms (${r.faults})` : '';
    const ratio = (x) => (x === undefined || x === null ? '' : `${num(x, 2)}x`);
    lines.push(`| ${r.clock} | ${gib(r.guestBytes)} | ${r.workload} | ${r.link} | ${r.engine} | ${secs(r.totalTimeMs)} | ${secs(r.downtimeMs)} | ${bytes(r.wireBytes)} | ${r.rounds} | ${r.converged ? 'yes' : 'no'} | ${f} | ${ratio(r.totalTimeVsRaw)} | ${ratio(r.wireBytesVsRaw)} | ${ratio(r.downtimeVsRaw)} |`);
  }
  return lines.join('\n');
}

// ------------------------------------------------------------------ SVG

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

function fmtTick(v, unit) {
  if (unit === 'bytes') return v >= 1e9 ? `${v / 1e9} GB` : v >= 1e6 ? `${v / 1e6} MB` : v >= 1e3 ? `${v / 1e3} kB` : `${v} B`;
  if (unit === 'ms') return v >= 1000 ? `${v / 1000} s` : `${v} ms`;
  if (unit === 'bps') return v >= 1e9 ? `${v / 1e9} Gbit/s` : `${v / 1e6} Mbit/s`;
  return String(v);
}

/**
 * One panel: series of points on log or linear axes.
 * series = [{ name, color, dash?, points: [[x, y], ...] }]
 */
function panel({ x0, y0, w, h, title, series, xLog, yLog = true, xUnit, yUnit, xLabels }) {
  const pts = series.flatMap((s) => s.points).filter(([, y]) => y > 0);
  if (pts.length === 0) return '';
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let xlo = Math.min(...xs); let xhi = Math.max(...xs);
  let ylo = Math.min(...ys); let yhi = Math.max(...ys);
  if (yLog) { ylo = 10 ** Math.floor(Math.log10(ylo)); yhi = 10 ** Math.ceil(Math.log10(yhi)); } else { ylo = 0; yhi *= 1.1; }
  if (xLog) { xlo = 10 ** Math.floor(Math.log10(xlo)); xhi = 10 ** Math.ceil(Math.log10(xhi)); } else if (xhi === xlo) { xhi = xlo + 1; }
  const L = 70; const R = 30; const T = 28; const B = 40;
  const pw = w - L - R; const ph = h - T - B;
  const sx = (x) => x0 + L + (xLog ? (Math.log10(x) - Math.log10(xlo)) / (Math.log10(xhi) - Math.log10(xlo)) : (x - xlo) / (xhi - xlo)) * pw;
  const sy = (y) => y0 + T + ph - (yLog ? (Math.log10(Math.max(y, ylo)) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo)) : (y - ylo) / (yhi - ylo)) * ph;
  const out = [];
  out.push(`<text x="${x0 + L + pw / 2}" y="${y0 + 16}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  out.push(`<rect x="${x0 + L}" y="${y0 + T}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  const yt = yLog ? logTicks(ylo, yhi) : [0, 0.25, 0.5, 0.75, 1].map((f) => ylo + f * (yhi - ylo));
  for (const v of yt) {
    if (v < ylo || v > yhi) continue;
    out.push(`<line x1="${x0 + L}" x2="${x0 + L + pw}" y1="${sy(v)}" y2="${sy(v)}" stroke="#eee"/>`);
    out.push(`<text x="${x0 + L - 4}" y="${sy(v) + 4}" text-anchor="end" font-size="11">${esc(fmtTick(yLog ? v : +v.toPrecision(2), yUnit))}</text>`);
  }
  const xt = xLabels ? xLabels.map((l) => l[0]) : xLog ? logTicks(xlo, xhi) : [...new Set(xs)].sort((a, b) => a - b);
  for (const v of xt) {
    const label = xLabels ? xLabels.find((l) => l[0] === v)[1] : fmtTick(v, xUnit);
    out.push(`<line x1="${sx(v)}" x2="${sx(v)}" y1="${y0 + T}" y2="${y0 + T + ph}" stroke="#f2f2f2"/>`);
    out.push(`<text x="${sx(v)}" y="${y0 + T + ph + 16}" text-anchor="middle" font-size="11">${esc(label)}</text>`);
  }
  for (const s of series) {
    const p = s.points.filter(([, y]) => y > 0);
    if (p.length === 0) continue;
    const d = p.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    for (const [x, y] of p) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(`${s.name}: ${fmtTick(+y.toPrecision(3), yUnit)}`)}</title></circle>`);
  }
  return out.join('\n');
}

function legend(x, y, names) {
  return names.map((n, i) => `<line x1="${x + i * 130}" x2="${x + i * 130 + 22}" y1="${y}" y2="${y}" stroke="${COLORS[n]}" stroke-width="3"${DASH[n] ? ` stroke-dasharray="${DASH[n]}"` : ''}/><text x="${x + i * 130 + 27}" y="${y + 4}" font-size="12">${esc(n)}</text>`).join('\n');
}

function svg(w, h, title, body, foot) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${w / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>
${body}
<text x="10" y="${h - 6}" font-size="10" fill="#666">${esc(foot)}</text>
</svg>
`;
}

/** Pick the scenario shown in the per-round and bandwidth charts: hot set, simulated, largest guest present. */
function pickHotset(rows) {
  const sim = rows.filter((r) => r.clock === 'simulated' && r.workload === 'hotset' && !r.error);
  const sizes = [...new Set(sim.map((r) => r.guestBytes))].sort((a, b) => a - b);
  const size = sizes.includes(2 ** 28) ? 2 ** 28 : sizes[sizes.length - 1];
  return sim.filter((r) => r.guestBytes === size);
}

/** Write the charts; returns the file names written. */
export function writeCharts(json, outDir, base) {
  const rows = (json.scenarios ?? []).filter((r) => r.kind === 'migration');
  const written = [];
  const foot = `pagewire ${json.versions?.pagewire ?? ''}, ${json.date}${json.quick ? ' (quick run)' : ''}, simulated clock (src/sim/virtual/model.ts); ${json.machine?.cpu ?? ''}`;
  const hot = pickHotset(rows);
  if (hot.length) {
    const size = gib(hot[0].guestBytes);
    // 1. wire bytes per round, one panel per link present
    const links = LINK_ORDER.filter((l) => hot.some((r) => r.link === l));
    const W = 460; const H = 300;
    const cols = Math.min(2, links.length);
    const rowsN = Math.ceil(links.length / cols);
    const parts = links.map((l, i) => panel({
      x0: (i % cols) * W, y0: 30 + Math.floor(i / cols) * H, w: W, h: H, title: `${l}`, xUnit: '', yUnit: 'bytes',
      series: ENGINES.filter((e) => hot.some((r) => r.link === l && r.engine === e)).map((e) => {
        const r = hot.find((x) => x.link === l && x.engine === e);
        return { name: e, color: COLORS[e], dash: DASH[e], points: (r.roundWireBytes ?? []).map((b, k) => [k, b]) };
      }),
    }));
    const svgW = cols * W; const svgH = 30 + rowsN * H + 50;
    const name = `${base}-wire-per-round.svg`;
    writeFileSync(join(outDir, name), svg(svgW, svgH, `Wire bytes per round (x: round, last = stop-and-copy or post-copy), ${size} hot-set guest`,
      parts.join('\n') + legend(20, svgH - 28, ENGINES), foot));
    written.push(name);

    // 2. total time and downtime against bandwidth
    const series = (field) => ENGINES.filter((e) => hot.some((r) => r.engine === e)).map((e) => ({
      name: e, color: COLORS[e], dash: DASH[e],
      points: LINK_ORDER.map((l) => hot.find((r) => r.engine === e && r.link === l)).filter(Boolean).map((r) => [LINK_BPS[r.link], r[field]]),
    }));
    const xLabels = LINK_ORDER.filter((l) => hot.some((r) => r.link === l)).map((l) => [LINK_BPS[l], l]);
    if (xLabels.length >= 2) {
      const body = panel({ x0: 0, y0: 30, w: 520, h: 340, title: 'Total time', series: series('totalTimeMs'), xLog: true, xUnit: 'bps', yUnit: 'ms', xLabels })
        + panel({ x0: 520, y0: 30, w: 520, h: 340, title: 'Downtime (post-copy: until the target runs)', series: series('downtimeMs'), xLog: true, xUnit: 'bps', yUnit: 'ms', xLabels })
        + legend(20, 400, ENGINES);
      const n2 = `${base}-vs-bandwidth.svg`;
      writeFileSync(join(outDir, n2), svg(1040, 430, `Total time and downtime against link bandwidth, ${size} hot-set guest (2000 page writes/s)`, body, foot));
      written.push(n2);
    }
  }
  // 3. wire bytes relative to raw by workload, on the WAN link
  const wan = rows.filter((r) => r.clock === 'simulated' && r.link === '100mbit-50ms' && r.wireBytesVsRaw !== undefined && !r.error);
  const label = (r) => `${r.workload.replace('corpus:', '')} ${gib(r.guestBytes)}`;
  const groups = [...new Set(wan.map(label))];
  if (groups.length) {
    const bw = 14; const gap = 24; const L = 60; const T = 40; const ph = 260;
    const gw = ENGINES.length * bw + gap;
    const w = Math.max(600, L + groups.length * gw + 20);
    const out = [];
    const sy = (v) => T + ph - (Math.min(v, 1.2) / 1.2) * ph;
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      out.push(`<line x1="${L}" x2="${w - 10}" y1="${sy(v)}" y2="${sy(v)}" stroke="${v === 1 ? '#999' : '#eee'}"/><text x="${L - 4}" y="${sy(v) + 4}" text-anchor="end" font-size="11">${v}x</text>`);
    }
    groups.forEach((g, gi) => {
      const x = L + 10 + gi * gw;
      ENGINES.forEach((e, ei) => {
        const r = wan.find((x2) => label(x2) === g && x2.engine === e);
        if (!r) return;
        out.push(`<rect x="${x + ei * bw}" y="${sy(r.wireBytesVsRaw)}" width="${bw - 2}" height="${sy(0) - sy(r.wireBytesVsRaw)}" fill="${COLORS[e]}"><title>${esc(`${e}: ${r.wireBytesVsRaw}x raw (${bytes(r.wireBytes)})`)}</title></rect>`);
      });
      out.push(`<text x="${x + (ENGINES.length * bw) / 2}" y="${T + ph + 16}" text-anchor="middle" font-size="11">${esc(g)}</text>`);
    });
    out.push(legend(20, T + ph + 44, ENGINES));
    const n3 = `${base}-wire-by-workload.svg`;
    writeFileSync(join(outDir, n3), svg(Math.max(w, 800), T + ph + 80, 'Wire bytes relative to raw pre-copy, 100 Mbit/s 50 ms RTT link', out.join('\n'), foot));
    written.push(n3);
  }
  return written;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) { console.error('usage: node bench/report.mjs bench/results/<date>.json'); process.exit(2); }
  const json = JSON.parse(readFileSync(file, 'utf8'));
  const names = writeCharts(json, dirname(file), basename(file, '.json'));
  console.log(names.join('\n'));
  console.log(migrationMarkdown(json.scenarios.filter((r) => r.kind === 'migration')));
}
