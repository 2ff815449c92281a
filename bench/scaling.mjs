#!/usr/bin/env node
// Channel scaling and single-channel throughput against the fresh-memory baseline, as one
// prepared run for a many-core machine (docs/BENCHMARKS.md, "Throughput").
//
//   node bench/scaling.mjs OUT.jsonl [--budget-s 420] [--scale 0.125]
//
// Writes one JSON line per measurement as it goes (so a run cut short keeps what it measured):
//   {kind:'machine'}, {kind:'baseline'} (fresh-memory copies of 512 MiB and 1 GiB),
//   {kind:'single'} (512 MiB idle over TCP, raw and all, one channel, target pre-fault off and on),
//   {kind:'channels'} (1 GiB idle over memory transport, codecs all, channels 1/2/4/8),
//   {kind:'large'} (6 GiB idle, if the budget allows).
// Every run is its own process (bench/throughput.bench.mjs's freshCopy / simulateCase).
import { appendFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { freshCopy, simulateCase } from './throughput.bench.mjs';

const args = process.argv.slice(2);
const out = args[0];
if (!out) {
  console.error('usage: node bench/scaling.mjs OUT.jsonl [--budget-s S]');
  process.exit(2);
}
const budgetAt = args.indexOf('--budget-s');
const budgetMs = (budgetAt >= 0 ? Number(args[budgetAt + 1]) : 420) * 1000;
const t0 = performance.now();
const scaleAt = args.indexOf('--scale');
// sizes times this (a local smoke test: --scale 0.125), rounded to whole MiB
const scale = scaleAt >= 0 ? Number(args[scaleAt + 1]) : 1;
const MiB = Math.max(1, Math.round(scale * 1024)) * 1024;
writeFileSync(out, '');
const emit = (row) => {
  const line = JSON.stringify({ ...row, atS: Math.round((performance.now() - t0) / 100) / 10 });
  appendFileSync(out, line + '\n');
  console.log(line);
};
const left = () => budgetMs - (performance.now() - t0);

emit({ kind: 'machine', cpu: cpus()[0]?.model, cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version });

function attempt(kind, fields, fn) {
  try {
    emit({ kind, ...fields, ...fn() });
  } catch (err) {
    emit({ kind, ...fields, error: String(err?.message ?? err).slice(0, 300) });
  }
}

for (const bytes of [512 * MiB, 1024 * MiB]) {
  for (let i = 0; i < 3; i++) attempt('baseline', { bytes }, () => freshCopy(bytes));
}
for (let i = 0; i < 2; i++) {
  for (const codecs of ['raw', 'all']) {
    // the target's pre-fault thread off (the default) and on: does it pay with free cores?
    for (const prefault of ['off', 'on']) {
      attempt('single', { sizeBytes: 512 * MiB, codecs, transport: 'tcp', prefault, rep: i }, () =>
        simulateCase({ workload: 'idle', transport: 'tcp', channels: 1, link: '0', codecs, prefault }, 512 * MiB));
    }
  }
}
for (let i = 0; i < 2; i++) {
  for (const channels of [1, 2, 4, 8]) {
    if (left() < 60_000) break;
    attempt('channels', { sizeBytes: 1024 * MiB, channels, transport: 'memory', codecs: 'all', rep: i }, () =>
      simulateCase({ workload: 'idle', transport: 'memory', channels, link: '0', codecs: 'all' }, 1024 * MiB));
  }
}
if (left() > 150_000) {
  attempt('large', { sizeBytes: 6 * 1024 * MiB, channels: 1, transport: 'memory', codecs: 'all' }, () =>
    simulateCase({ workload: 'idle', transport: 'memory', channels: 1, link: '0', codecs: 'all' }, 6 * 1024 * MiB, Math.floor(left() - 15_000)));
}
emit({ kind: 'end', elapsedS: Math.round((performance.now() - t0) / 1000) });
