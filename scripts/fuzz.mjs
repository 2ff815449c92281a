#!/usr/bin/env node
// Mutation fuzzer for the target side of the protocol and every decoder behind it.
//   npm run fuzz -- [--seconds 60] [--seed 1] [--out test/fuzz-corpus]
// Captures real source->target streams (codecs all, qemu, raw), mutates them (random bytes and
// structure-aware frame edits with valid checksums) and feeds each mutant to a fresh target.
// Findings (crash: a non-PagewireError or an unverified "success"; hang; unbounded memory) are
// written to --out as <kind>-<n>.bin; test/fuzz-regressions.test.ts replays every file there.
import { mkdirSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { capture, mutate, feedTarget, prng } from './fuzz-lib.mjs';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, seed: { type: 'string', default: String(Date.now() % 100000) }, out: { type: 'string', default: 'test/fuzz-corpus' } } });
const seconds = Number(values.seconds);
const seed = Number(values.seed);
const rnd = prng(seed);
mkdirSync(values.out, { recursive: true });
const existing = readdirSync(values.out).length;

const streams = [];
for (const codecs of ['all', 'qemu', 'raw']) streams.push(await capture({ codecs, seed }));
console.log(`fuzz: seed ${seed}, ${seconds} s, captured streams of ${streams.map((s) => s.length).join(', ')} bytes`);

const counts = { ok: 0, error: 0, crash: 0, hang: 0, memory: 0 };
const codes = {};
const deadline = Date.now() + seconds * 1000;
let n = 0;
let found = 0;
while (Date.now() < deadline) {
  const base = streams[rnd.int(streams.length)];
  let input = await mutate(base, rnd);
  if (rnd() < 0.2) input = await mutate(input, rnd); // stack mutations now and then
  const res = await feedTarget(input);
  counts[res.outcome]++;
  if (res.code) codes[res.code] = (codes[res.code] ?? 0) + 1;
  n++;
  if (res.outcome === 'crash' || res.outcome === 'hang' || res.outcome === 'memory') {
    const file = join(values.out, `${res.outcome}-${existing + found}.bin`);
    writeFileSync(file, input);
    found++;
    console.log(`FINDING ${res.outcome}: ${res.message ?? ''} -> ${file}`);
  }
}
console.log(`fuzz: ${n} inputs, outcomes ${JSON.stringify(counts)}`);
console.log(`fuzz: error codes ${JSON.stringify(codes)}`);
console.log(found ? `fuzz: ${found} findings written to ${values.out}` : 'fuzz: no findings');
process.exitCode = found ? 1 : 0;
