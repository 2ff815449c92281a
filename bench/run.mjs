#!/usr/bin/env node
// pagewire benchmark harness (tinybench 6).
//
//   node bench/run.mjs [--quick] [--only SUBSTR]      (npm run bench builds dist/ first)
//
// Runs every bench/*.bench.mjs module in name order. Each module exports
//   export default async function (ctx) { ... }
// with ctx = {
//   quick,                 true under --quick (keep each module's share under ~30 s)
//   corpusDir,             absolute path of the unpacked corpus (.cache/corpus/{vm-redis,proc-redis})
//   bench(name, opts?),    a tinybench Bench preconfigured for quick/full runs (opts override)
//   collect(bench, group, meta), turn a finished Bench's tasks into micro rows:
//                          meta[taskName] = { bytes, pages?, vs?, note? } (bytes and pages per op;
//                          vs = name of the baseline task in the same group: ratio = ours / baseline)
//   addMicro(row),         { group, name, p50Ms, opsPerSec, mbPerSec?, pagesPerSec?, ratio?, vs?, note? }
//   addScenario(row),      any flat object (a migration run, a corpus codec summary, ...)
//   log(...args),          progress lines on stderr
// }
// Writes bench/results/<YYYY-MM-DD>.json = { machine, versions, date, quick, micro, scenarios }
// and bench/results/<YYYY-MM-DD>.md (a quick run does not overwrite a full run of the same day:
// it writes <date>-quick.*), then prints the tables; whole-migration rows (kind 'migration') also
// get SVG charts, <date>[-quick]-*.svg (bench/report.mjs).
import { Bench } from 'tinybench';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, type, release, arch } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { migrationMarkdown, writeCharts } from './report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;

const log = (...a) => console.error('[bench]', ...a);

function pkgVersion(name) {
  try {
    // Read node_modules directly: some packages do not export ./package.json.
    const p = join(root, 'node_modules', name, 'package.json');
    return JSON.parse(readFileSync(existsSync(p) ? p : createRequire(p).resolve(`${name}/package.json`), 'utf8')).version;
  } catch {
    return null;
  }
}

function ensureCorpus() {
  const corpusDir = join(root, '.cache', 'corpus');
  const unpack = join(root, '..', 'shared', 'corpus', 'unpack.mjs');
  if (!existsSync(unpack)) {
    log(`corpus unpacker not found at ${unpack}; corpus workloads will be skipped`);
    return corpusDir;
  }
  execFileSync(process.execPath, [unpack, corpusDir], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  return corpusDir;
}

const micro = [];
const scenarios = [];

function bench(name, opts = {}) {
  return new Bench({
    name,
    time: quick ? 120 : 1000,
    warmupTime: quick ? 30 : 200,
    warmupIterations: quick ? 2 : 5,
    iterations: quick ? 3 : 10,
    ...opts,
  });
}

function addMicro(row) {
  micro.push(row);
  return row;
}

function addScenario(row) {
  scenarios.push(row);
  return row;
}

/** Rows from a finished Bench; throughput from the median latency (robust on a noisy machine). */
function collect(b, group, meta = {}) {
  const rows = [];
  for (const task of b.tasks) {
    const r = task.result;
    if (r.state !== 'completed') {
      log(`${group} / ${task.name}: ${r.state}${r.error ? `: ${r.error.message}` : ''}`);
      continue;
    }
    const m = meta[task.name] ?? {};
    const p50Ms = r.latency.p50;
    const opsPerSec = p50Ms > 0 ? 1000 / p50Ms : r.throughput.mean;
    const row = { group, name: task.name, p50Ms, opsPerSec, samples: r.latency.samplesCount ?? undefined };
    if (m.bytes) row.mbPerSec = (m.bytes * opsPerSec) / 1e6;
    if (m.pages) row.pagesPerSec = m.pages * opsPerSec;
    if (m.vs) row.vs = m.vs;
    if (m.note) row.note = m.note;
    rows.push(row);
  }
  for (const row of rows) {
    if (!row.vs) continue;
    const base = rows.find((x) => x.name === row.vs);
    if (base) row.ratio = row.opsPerSec / base.opsPerSec;
  }
  for (const row of rows) addMicro(row);
  return rows;
}

function fmt(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return '';
  if (typeof n !== 'number') return String(n);
  if (Math.abs(n) >= 1e6 && digits === 0) return `${(n / 1e6).toFixed(2)}M`;
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function fmtTime(ms) {
  if (ms >= 1) return `${ms.toFixed(2)} ms`;
  if (ms >= 1e-3) return `${(ms * 1e3).toFixed(2)} us`;
  return `${(ms * 1e6).toFixed(0)} ns`;
}

function markdown(machine, versions, date) {
  const lines = [];
  lines.push(`# pagewire benchmarks, ${date}${quick ? ' (quick)' : ''}`, '');
  lines.push(`${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, ${machine.os}; ` +
    Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', '), '');
  if (micro.length) {
    lines.push('| group | case | p50 | MB/s | pages/s | ratio | note |', '|---|---|---:|---:|---:|---:|---|');
    for (const r of micro) {
      const ratio = r.ratio !== undefined ? `${r.ratio.toFixed(2)}x ${r.vs}` : '';
      lines.push(`| ${r.group} | ${r.name} | ${fmtTime(r.p50Ms)} | ${fmt(r.mbPerSec)} | ${fmt(r.pagesPerSec)} | ${ratio} | ${r.note ?? ''} |`);
    }
    lines.push('');
  }
  // whole migrations get their own table (bench/report.mjs); other rows one table per kind
  const migrations = scenarios.filter((s) => s.kind === 'migration');
  if (migrations.length) {
    lines.push('Whole migrations (bench/macro.bench.mjs; clock = which clock produced the row: `simulated` =',
      'virtual-clock model, `real` = the engine over an in-process shaped link in real time):', '');
    lines.push(migrationMarkdown(migrations), '');
  }
  for (const kind of [...new Set(scenarios.filter((s) => s.kind !== 'migration').map((s) => s.kind))]) {
    const rows = scenarios.filter((s) => s.kind === kind);
    const keys = [...new Set(rows.flatMap((s) => Object.keys(s)))];
    lines.push(`| ${keys.join(' | ')} |`, `|${keys.map(() => '---').join('|')}|`);
    for (const s of rows) lines.push(`| ${keys.map((k) => (typeof s[k] === 'number' ? fmt(s[k], Number.isInteger(s[k]) ? 0 : 3) : s[k] ?? '')).join(' | ')} |`);
    lines.push('');
  }
  return lines.join('\n');
}

async function main() {
  const corpusDir = ensureCorpus();
  const ctx = { quick, corpusDir, bench, collect, addMicro, addScenario, log };
  const files = readdirSync(here).filter((f) => f.endsWith('.bench.mjs')).sort()
    .filter((f) => !only || f.includes(only));
  for (const f of files) {
    const t0 = performance.now();
    log(`${f} ...`);
    const mod = await import(pathToFileURL(join(here, f)).href);
    await mod.default(ctx);
    globalThis.gc?.();
    log(`${f} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  const c = cpus();
  const machine = {
    cpu: c[0]?.model?.trim() ?? 'unknown',
    cores: c.length,
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${type()} ${release()} ${arch()}`,
  };
  const versions = {
    node: process.versions.node,
    v8: process.versions.v8,
    pagewire: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
    'xxhash-wasm': pkgVersion('xxhash-wasm'),
    'lz4-wasm': pkgVersion('lz4-wasm'),
    tinybench: pkgVersion('tinybench'),
  };
  const date = new Date().toISOString().slice(0, 10);
  const outDir = join(here, 'results');
  mkdirSync(outDir, { recursive: true });
  const base = quick && existsSync(join(outDir, `${date}.json`)) &&
    JSON.parse(readFileSync(join(outDir, `${date}.json`), 'utf8')).quick === false ? `${date}-quick` : date;
  const json = { machine, versions, date, quick, micro, scenarios };
  writeFileSync(join(outDir, `${base}.json`), `${JSON.stringify(json, null, 2)}\n`);
  const md = markdown(machine, versions, date);
  writeFileSync(join(outDir, `${base}.md`), `${md}\n`);
  console.log(md);
  log(`wrote bench/results/${base}.json and .md`);
  for (const svg of writeCharts(json, outDir, base)) log(`wrote bench/results/${svg}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
