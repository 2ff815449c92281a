/** Hand-written SVG charts: grouped bars per round and lines over time. No chart library. */

const NS = 'http://www.w3.org/2000/svg';
const W = 460;
const H = 200;
const PAD = { left: 58, right: 10, top: 12, bottom: 30 };

export interface Series { label: string; color: string; values: number[] }
export interface LineSeries { label: string; color: string; points: Array<[number, number]>; dashed?: boolean; reference?: boolean }

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten. */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** Grid divisions of a line chart's axis. */
const STEPS = 4;

/**
 * Axis for whole quantities (pages, bytes): 4 or 5 divisions of 1, 2 or 5 times a power of ten
 * (never below 1), the smallest top that holds `top`; every tick is a whole number and no two
 * ticks read the same.
 * @returns the axis top and its number of divisions
 */
export function wholeAxis(top: number): { max: number; steps: number } {
  let best = { max: Infinity, steps: STEPS };
  for (const steps of [4, 5]) {
    const max = steps * Math.max(1, niceMax(top / steps));
    if (max < best.max) best = { max, steps };
  }
  return best;
}

/**
 * Clears the chart and draws its grid. With `yMax` null (no data yet) it draws no tick values, only
 * the grid and `emptyText` in the middle: an empty chart must not show a made-up scale.
 */
function frame(svg: SVGSVGElement, yMax: number | null, fmt: (v: number) => string, xLabel: string, emptyText = '', steps = STEPS): { x0: number; y0: number; w: number; h: number } {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const x0 = PAD.left;
  const y0 = H - PAD.bottom;
  const w = W - PAD.left - PAD.right;
  const h = H - PAD.top - PAD.bottom;
  for (let i = 0; i <= steps; i++) {
    const y = y0 - (h * i) / steps;
    svg.append(el('line', { x1: x0, x2: x0 + w, y1: y, y2: y, class: i === 0 ? 'axis' : 'grid' }));
    if (yMax !== null) svg.append(el('text', { x: x0 - 6, y: y + 4, class: 'tick y', 'text-anchor': 'end' }, fmt((yMax * i) / steps)));
  }
  svg.append(el('text', { x: x0 + w / 2, y: H - 4, class: 'tick', 'text-anchor': 'middle' }, xLabel));
  if (yMax === null) svg.append(el('text', { x: x0 + w / 2, y: y0 - h / 2, class: 'empty', 'text-anchor': 'middle' }, emptyText));
  return { x0, y0, w, h };
}

function legend(svg: SVGSVGElement, items: Array<{ label: string; color: string }>): void {
  let x = PAD.left + 6;
  for (const it of items) {
    svg.append(el('rect', { x, y: PAD.top - 2, width: 10, height: 10, fill: it.color }));
    const t = el('text', { x: x + 14, y: PAD.top + 7, class: 'legend' }, it.label);
    svg.append(t);
    x += 22 + it.label.length * 6.5;
  }
}

/**
 * Grouped bars, one group per round (the final stop-and-copy round labelled "S"). `unit` is the
 * display unit of the axis steps (MiB for bytes), used once the data reach it. Before the first
 * round the chart is empty: a grid, no tick values, and a note.
 */
export function barChart(svg: SVGSVGElement, series: Series[], labels: string[], fmt: (v: number) => string, unit = 1): void {
  const n = labels.length;
  if (n === 0) {
    frame(svg, null, fmt, 'round', 'no rounds yet');
    legend(svg, series);
    return;
  }
  const top = Math.max(0, ...series.flatMap((s) => s.values));
  const u = top >= 4 * unit ? unit : 1;
  const axis = wholeAxis(top / u);
  const max = axis.max * u;
  const { x0, y0, w, h } = frame(svg, max, fmt, 'round', '', axis.steps);
  const gw = w / Math.max(n, 4);
  const bw = Math.max(1, (gw * 0.8) / series.length);
  series.forEach((s, si) => {
    s.values.forEach((v, i) => {
      const bh = (h * v) / max;
      const r = el('rect', { class: `bar s${si}`, x: x0 + i * gw + gw * 0.1 + si * bw, y: y0 - bh, width: bw, height: Math.max(bh, v > 0 ? 1 : 0), fill: s.color });
      r.append(el('title', {}, `${labels[i]}: ${s.label} ${fmt(v)}`));
      svg.append(r);
    });
  });
  const step = Math.ceil(n / 16);
  labels.forEach((l, i) => {
    if (i % step === 0 || i === n - 1) svg.append(el('text', { x: x0 + i * gw + gw / 2, y: y0 + 13, class: 'tick', 'text-anchor': 'middle' }, l));
  });
  legend(svg, series);
}

/**
 * Lines over time (x in ms). A `reference` series (a link rate, a limit) sets the scale only when it
 * is within 3x of the data; otherwise it is left out and its legend says "off scale". With no samples
 * yet (dashed guides do not count) the chart is empty (grid, no tick values, `emptyText`), whatever the references.
 */
export function lineChart(svg: SVGSVGElement, series: LineSeries[], fmt: (v: number) => string, timeSpanMs = 0, emptyText = 'no samples yet'): void {
  const data = series.filter((s) => !s.reference).flatMap((s) => s.points);
  // dashed lines (a limit) are guides, not samples
  if (!series.some((s) => !s.reference && !s.dashed && s.points.length > 0)) {
    frame(svg, null, fmt, 'time (s)', emptyText);
    legend(svg, series);
    return;
  }
  const dataMax = Math.max(0, ...data.map((p) => p[1]));
  const shown = series.filter((s) => !s.reference || dataMax === 0 || Math.max(...s.points.map((p) => p[1])) <= 3 * dataMax);
  const all = shown.flatMap((s) => s.points);
  const tMax = Math.max(1, timeSpanMs, ...data.map((p) => p[0]));
  const top = Math.max(0, ...all.map((p) => p[1]));
  // whole steps once the values allow them (50 MB/s in steps of 10, not 12.5 shown as "13")
  const axis = top >= 4 ? wholeAxis(top) : { max: niceMax(top), steps: STEPS };
  const max = axis.max;
  const { x0, y0, w, h } = frame(svg, max, fmt, `time (s), ${(tMax / 1000).toFixed(1)} s shown`, '', axis.steps);
  for (const s of shown) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([t, v], i) => `${i === 0 ? 'M' : 'L'}${(x0 + (w * Math.min(t, tMax)) / tMax).toFixed(1)},${(y0 - (h * v) / max).toFixed(1)}`).join(' ');
    svg.append(el('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2, class: s.reference ? 'reference' : 'data', 'data-series': s.label, ...(s.dashed ? { 'stroke-dasharray': '5 4' } : {}) }));
    if (!s.reference && !s.dashed && s.points.length <= 60) {
      // dots, so that a series of one or two samples is visible
      for (const [t, v] of s.points) svg.append(el('circle', { cx: (x0 + (w * Math.min(t, tMax)) / tMax).toFixed(1), cy: (y0 - (h * v) / max).toFixed(1), r: 2.5, fill: s.color }));
    }
  }
  legend(svg, series.map((s) => (shown.includes(s) ? s : { ...s, label: `${s.label} (off scale)` })));
}
