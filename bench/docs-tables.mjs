// Refresh the result tables of docs/BENCHMARKS.md from a results file:
//
//   node bench/docs-tables.mjs bench/results/2026-11-29.json [docs/BENCHMARKS.md]
//
// Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench -->` for the names below; the
// prose around the tables is not touched (re-read it against the new figures).
import { readFileSync, writeFileSync } from 'node:fs';
import { migrationMarkdown } from './report.mjs';

const [file, doc = 'docs/BENCHMARKS.md'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/docs-tables.mjs bench/results/<date>.json [docs/BENCHMARKS.md]');
  process.exit(2);
}
const json = JSON.parse(readFileSync(file, 'utf8'));
const m = json.scenarios.filter((s) => s.kind === 'migration');
const sim = m.filter((s) => s.clock === 'simulated');
const MiB = 2 ** 20;

function known() {
  const rows = json.scenarios.filter((s) => s.kind === 'known-pages');
  const lines = ['| link | engine | known pages | total time | downtime | wire | pages skipped | time vs without | wire vs without |', '|---|---|---|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(`| ${r.link} | ${r.engine} | ${r.knownPages ? 'yes' : 'no'} | ${(r.totalTimeMs / 1000).toFixed(2)} s | ${r.downtimeMs.toFixed(0)} ms | ${(r.wireBytes / 1e6).toFixed(1)} MB | ${r.knownPagesSkipped} | ${r.totalTimeVsWithout !== undefined ? `${r.totalTimeVsWithout.toFixed(2)}x` : ''} | ${r.wireBytesVsWithout !== undefined ? `${r.wireBytesVsWithout.toFixed(2)}x` : ''} |`);
  }
  return lines.join('\n');
}

function corpusEngine() {
  const rows = json.scenarios.filter((s) => s.kind === 'codec-engine');
  const targets = json.scenarios.filter((s) => s.kind === 'codec-engine-targets');
  const lines = ['| guest | link | codec | total time (runs) | downtime | wire | dirty rounds wire | LZ4 |', '|---|---|---|---:|---:|---:|---:|---|'];
  for (const r of rows) {
    lines.push(`| ${r.corpus} | ${r.link} | ${r.codec} | ${r.totalTimeMs.toFixed(0)} ms (${r.timesMs}) | ${r.downtimeMs.toFixed(0)} ms | ${(r.wireBytes / 1e6).toFixed(1)} MB | ${(r.dirtyRoundsWireBytes / 1e6).toFixed(1)} MB | ${r.lz4} |`);
  }
  lines.push('', '| guest | link | all/qemu wire | all/qemu time | all / faster of raw, qemu | all/qemu dirty rounds | issue 14 met | load |', '|---|---|---:|---:|---:|---:|---|---:|');
  for (const t of targets) {
    lines.push(`| ${t.corpus} | ${t.link} | ${t.allVsQemuWire.toFixed(3)} | ${t.allVsQemuTime.toFixed(3)} | ${t.allVsFastestTime.toFixed(3)} | ${t.allVsQemuDirtyRounds.toFixed(3)} | ${t.met ? 'yes' : 'no'} | ${t.load} |`);
  }
  return lines.join('\n');
}

const tables = {
  corpusEngine,
  hotset256: () => migrationMarkdown(sim.filter((s) => s.workload === 'hotset' && s.guestBytes === 256 * MiB)),
  hotset1g: () => migrationMarkdown(sim.filter((s) => s.workload === 'hotset' && s.guestBytes === 1024 * MiB && ['100mbit-50ms', '10mbit-100ms'].includes(s.link))),
  scale: () => migrationMarkdown(sim.filter((s) => s.workload === 'hotset' && s.link === '100mbit-50ms' && s.guestBytes >= 256 * MiB).sort((a, b) => a.guestBytes - b.guestBytes)),
  corpus: () => migrationMarkdown(sim.filter((s) => s.workload.startsWith('corpus:') && s.link === '100mbit-50ms')),
  real: () => migrationMarkdown(m.filter((s) => s.guestBytes === 16 * MiB).sort((a, b) => (a.link + a.engine + a.clock).localeCompare(b.link + b.engine + b.clock))),
  known,
};

let text = readFileSync(doc, 'utf8');
for (const [name, make] of Object.entries(tables)) {
  const re = new RegExp(`(<!-- bench:${name} -->\\n)[\\s\\S]*?(<!-- /bench -->)`);
  if (!re.test(text)) { console.error(`${doc}: no <!-- bench:${name} --> block`); continue; }
  text = text.replace(re, (_, a, b) => `${a}${make()}\n${b}`);
}
writeFileSync(doc, text);
console.log(`updated ${doc} from ${file}`);
