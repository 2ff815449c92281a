// Throughput of whole migrations against the physical limit of a fresh target: how fast the
// engine moves guest memory (guest bytes / total time of `pagewire simulate`), next to copying
// the same bytes into freshly allocated memory (bench/fresh-copy.mjs) measured in the same run.
//
// Every migration and every baseline runs in its own process (fresh memory, as on a new target);
// a baseline runs before each migration and the ratio uses the median of all of them, so a noisy
// neighbour weighs on both sides. Two baselines: the copy into plain 4 KiB-page memory (`ratio`,
// what the issue's target is stated against) and into transparent huge pages (`ratioHuge`: glibc's
// hugetlb tunable, what bin/pagewire.js asks for on Linux). Migrations run with huge pages (the
// CLI's default) and, for the single-channel rows, without (PAGEWIRE_HUGEPAGES=off). Rows: kind 'throughput' (JSON + the generic table) and the chart
// bench/results/<date>[-quick]-throughput.svg.
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync, writeFileSync } from 'node:fs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const CLI = join(root, 'bin', 'pagewire.js');
const MiB = 1024 * 1024;

/** The cases: the done-when rows (one TCP channel, raw and all), then the grid. */
export function throughputPlan(quick, cores = cpus().length) {
  const sizeBytes = quick ? 128 * MiB : 512 * MiB;
  const channels = [1, 2, 4].filter((c) => c === 1 || c <= Math.max(2, cores));
  // the done-when rows: huge pages on (the CLI's default) and off; the target's pre-fault thread
  // on (the default) and, for raw, off
  const cases = [];
  for (const codecs of ['raw', 'all']) {
    for (const hugepages of ['on', 'off']) cases.push({ workload: 'idle', transport: 'tcp', channels: 1, link: '0', codecs, hugepages, prefault: 'on' });
  }
  cases.push({ workload: 'idle', transport: 'tcp', channels: 1, link: '0', codecs: 'raw', hugepages: 'off', prefault: 'off' });
  const workloads = quick ? ['idle'] : ['idle', 'hotset'];
  const links = quick ? ['0'] : ['0', '10Gbit'];
  for (const workload of workloads) {
    for (const transport of ['memory', 'tcp']) {
      for (const c of quick ? channels.slice(0, 2) : channels) {
        for (const link of links) {
          if (workload === 'idle' && transport === 'tcp' && c === 1 && link === '0') continue; // above
          cases.push({ workload, transport, channels: c, link, codecs: 'all' });
        }
      }
    }
  }
  return { sizeBytes, cases };
}

function runJson(args, timeoutMs, env = {}) {
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * MiB, env: { ...process.env, ...env } });
  const lines = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`${args.slice(0, 3).join(' ')}: no JSON (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}): ${(r.stderr ?? '').slice(-300)}`);
  return lines.map((l) => JSON.parse(l));
}

/** One fresh-memory copy of `bytes` in a new process (into transparent huge pages with `huge`). */
export function freshCopy(bytes, huge = false) {
  return runJson([join(here, 'fresh-copy.mjs'), String(bytes)], 120_000, huge ? { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' } : { GLIBC_TUNABLES: '' })[0];
}

/** One `pagewire simulate` run of a case. */
export function simulateCase(c, sizeBytes, timeoutMs = 600_000) {
  const args = [CLI, 'simulate', '--size', String(sizeBytes), '--workload', c.workload, '--transport', c.transport,
    '--channels', String(c.channels), '--link', c.link, '--codecs', c.codecs, '--prefault', c.prefault ?? 'on', '--json'];
  const rep = runJson(args, timeoutMs, { PAGEWIRE_HUGEPAGES: c.hugepages ?? 'on' }).at(-1);
  return {
    verified: rep.verified === true && rep.identical === true, totalTimeMs: rep.totalTimeMs, downtimeMs: rep.downtimeMs, hugePagesBytes: rep.hugePagesBytes ?? null,
    rounds: rep.rounds?.length ?? 0, wireBytes: rep.wireBytes, gbPerSec: sizeBytes / rep.totalTimeMs / 1e6,
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Horizontal bars of GB/s per case with the baseline as a line. */
export function throughputSvg(rows, baselineGbPerSec, title, hugeGbPerSec = 0) {
  const W = 760;
  const left = 330;
  const barH = 16;
  const top = 40;
  const H = top + rows.length * (barH + 6) + 40;
  const max = Math.max(baselineGbPerSec, hugeGbPerSec, ...rows.map((r) => r.gbPerSec ?? 0)) * 1.1 || 1;
  const x = (v) => left + ((W - left - 20) * v) / max;
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`, `<text x="10" y="20" font-size="14">${esc(title)}</text>`];
  rows.forEach((r, i) => {
    const y = top + i * (barH + 6);
    const label = `${r.workload} ${r.transport} ch${r.channels} link ${r.link === '0' ? 'unlimited' : r.link} ${r.codecs}${r.prefault === 'off' ? ' no pre-fault' : ''}${r.hugepages === 'off' ? ' 4K pages' : ''}`;
    out.push(`<text x="${left - 6}" y="${y + barH - 4}" text-anchor="end">${esc(label)}</text>`);
    if (r.gbPerSec) {
      out.push(`<rect x="${left}" y="${y}" width="${x(r.gbPerSec) - left}" height="${barH}" fill="${r.channels > 1 ? '#2ca02c' : '#1f77b4'}"/>`);
      out.push(`<text x="${x(r.gbPerSec) + 4}" y="${y + barH - 4}">${r.gbPerSec.toFixed(2)} GB/s (${r.ratio.toFixed(2)}x)</text>`);
    } else out.push(`<text x="${left + 4}" y="${y + barH - 4}" fill="#d62728">failed</text>`);
  });
  const bx = x(baselineGbPerSec);
  out.push(`<line x1="${bx}" y1="${top - 8}" x2="${bx}" y2="${H - 30}" stroke="#d62728" stroke-dasharray="4 3"/>`,
    `<text x="${bx}" y="${H - 14}" text-anchor="middle" fill="#d62728">fresh copy, 4K pages ${baselineGbPerSec.toFixed(2)} GB/s</text>`);
  if (hugeGbPerSec > 0) {
    const hx = x(hugeGbPerSec);
    out.push(`<line x1="${hx}" y1="${top - 8}" x2="${hx}" y2="${H - 30}" stroke="#9467bd" stroke-dasharray="4 3"/>`,
      `<text x="${hx}" y="${H - 2}" text-anchor="middle" fill="#9467bd">fresh copy, huge pages ${hugeGbPerSec.toFixed(2)} GB/s</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}

export default async function (ctx) {
  const { sizeBytes, cases } = throughputPlan(ctx.quick);
  const baselines = [];
  const hugeBaselines = [];
  const rows = [];
  for (const c of cases) {
    const b = freshCopy(sizeBytes);
    baselines.push(b.gbPerSec);
    const h = freshCopy(sizeBytes, true);
    hugeBaselines.push(h.gbPerSec);
    ctx.log(`throughput: ${c.workload} ${c.transport} ch${c.channels} link ${c.link} ${c.codecs}${c.prefault === 'off' ? ' prefault off' : ''}${c.hugepages === 'off' ? ' 4K pages' : ''} (baselines ${b.gbPerSec.toFixed(3)} / huge ${h.gbPerSec.toFixed(3)} GB/s)`);
    let r;
    try {
      r = simulateCase(c, sizeBytes);
      if (!r.verified) throw new Error('migration did not verify');
    } catch (err) {
      rows.push({ ...c, sizeBytes, error: String(err.message ?? err).slice(0, 200) });
      continue;
    }
    rows.push({ ...c, sizeBytes, ...r, pairedBaselineGbPerSec: b.gbPerSec });
  }
  const base = median(baselines);
  const huge = median(hugeBaselines);
  for (const r of rows) {
    if (r.gbPerSec) { r.ratio = r.gbPerSec / base; r.ratioHuge = r.gbPerSec / huge; }
    ctx.addScenario({ kind: 'throughput', ...r, baselineGbPerSec: base, hugeBaselineGbPerSec: huge });
  }
  const date = new Date().toISOString().slice(0, 10);
  const out = join(here, 'results');
  mkdirSync(out, { recursive: true });
  const file = `${date}${ctx.quick ? '-quick' : ''}-throughput.svg`;
  writeFileSync(join(out, file), throughputSvg(rows, base, `guest moved per second, ${sizeBytes / MiB} MiB guest, ${cpus().length} cores (${date})`, huge));
  ctx.log(`wrote bench/results/${file}; fresh-memory copy median ${base.toFixed(3)} GB/s (huge pages ${huge.toFixed(3)} GB/s) over ${baselines.length} runs`);
}
