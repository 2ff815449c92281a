#!/usr/bin/env node
// Mutation fuzzer for the target side of the protocol and every decoder behind it.
//   npm run fuzz -- [--seconds 60] [--seed 1] [--out test/fuzz-corpus] [--kind all|stream|snapshot|elf] [--keep] [--pages 256]
// Captures real source->target streams (codecs all, qemu, raw), mutates them (random bytes and
// structure-aware frame edits with valid checksums) and feeds each mutant to a fresh target.
// Also snapshot files (a real full snapshot, mutated the same way, restored and inspected) and
// ELF cores (header fields set to edge values, bytes flipped, files cut; loaded as guest memory).
// Findings (crash: a non-PagewireError or an unverified "success"; hang; unbounded memory) are
// written to --out as <outcome>-<n>.bin (stream), snap-<outcome>-<n>.bin, elf-<outcome>-<n>.bin;
// test/fuzz-regressions.test.ts replays every file there and requires the outcome recorded for it
// in expected.json (a finding has none until its bug is fixed and its outcome written there).
// --keep: also keep the first input of each kind that ends in a new error code, cut to its
// shortest prefix with the same outcome, as <kind>-<CODE>.bin with its outcome in expected.json:
// the regression corpus (one real input per way a hostile input is refused).
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { capture, mutate, feedTarget, prng, captureSnapshot, feedSnapshot, elfCore, mutateElf, feedElf } from './fuzz-lib.mjs';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, seed: { type: 'string', default: String(Date.now() % 100000) }, out: { type: 'string', default: 'test/fuzz-corpus' }, kind: { type: 'string', default: 'all' }, keep: { type: 'boolean', default: false }, pages: { type: 'string', default: '256' } } });
const kinds = values.kind === 'all' ? ['stream', 'snapshot', 'elf'] : [values.kind];
const seconds = Number(values.seconds);
const seed = Number(values.seed);
const rnd = prng(seed);
mkdirSync(values.out, { recursive: true });
const existing = readdirSync(values.out).length;
const expectedPath = join(values.out, 'expected.json');
const expected = existsSync(expectedPath) ? JSON.parse(readFileSync(expectedPath, 'utf8')) : {};
const feeders = { stream: feedTarget, snapshot: feedSnapshot, elf: feedElf };
const prefixes = { stream: 'stream', snapshot: 'snap', elf: 'elf' };
let kept = 0;

/**
 * The shortest prefix of `input` that `feed` still ends with `want`'s outcome and code (binary
 * search), or all of it when an empty input already ends that way (a cut would keep the code and
 * lose the input's point: the code is the one truncation gives).
 */
async function shortestPrefix(input, feed, want) {
  const same = (r) => r.outcome === want.outcome && r.code === want.code;
  if (same(await feed(input.subarray(0, 0)))) return input.slice();
  let lo = 0;
  let hi = input.length;
  while (lo + 1 < hi) {
    const mid = (lo + hi) >>> 1;
    if (same(await feed(input.subarray(0, mid)))) hi = mid;
    else lo = mid;
  }
  return input.slice(0, hi);
}

const streams = [];
for (const codecs of ['all', 'qemu', 'raw']) streams.push(await capture({ codecs, seed, pages: Number(values.pages) }));
const snapshot = await captureSnapshot({ seed });
const elf = elfCore();
console.log(`fuzz: seed ${seed}, ${seconds} s, kinds ${kinds.join(', ')}; captured streams of ${streams.map((s) => s.length).join(', ')} bytes, a ${snapshot.length}-byte snapshot, a ${elf.length}-byte ELF core`);

const counts = { ok: 0, error: 0, crash: 0, hang: 0, memory: 0 };
const codes = {};
const deadline = Date.now() + seconds * 1000;
let n = 0;
let found = 0;
while (Date.now() < deadline) {
  const kind = kinds[n % kinds.length];
  let input;
  let res;
  if (kind === 'snapshot') {
    input = await mutate(snapshot, rnd);
    if (rnd() < 0.2) input = await mutate(input, rnd);
    res = await feedSnapshot(input);
  } else if (kind === 'elf') {
    input = mutateElf(elf, rnd);
    res = await feedElf(input);
  } else {
    const base = streams[rnd.int(streams.length)];
    input = await mutate(base, rnd);
    if (rnd() < 0.2) input = await mutate(input, rnd); // stack mutations now and then
    res = await feedTarget(input);
  }
  counts[res.outcome]++;
  if (res.code) codes[res.code] = (codes[res.code] ?? 0) + 1;
  n++;
  if (values.keep && res.outcome === 'error') {
    const file = `${prefixes[kind]}-${res.code}.bin`;
    if (!(file in expected)) {
      const min = await shortestPrefix(input, feeders[kind], res);
      writeFileSync(join(values.out, file), min);
      expected[file] = { outcome: res.outcome, code: res.code };
      writeFileSync(expectedPath, JSON.stringify(expected, null, 2) + '\n');
      kept++;
      console.log(`kept ${file}: ${min.length} of ${input.length} bytes`);
    }
  }
  if (res.outcome === 'crash' || res.outcome === 'hang' || res.outcome === 'memory') {
    const file = join(values.out, `${kind === 'stream' ? '' : `${kind === 'snapshot' ? 'snap' : 'elf'}-`}${res.outcome}-${existing + found}.bin`);
    writeFileSync(file, input);
    found++;
    console.log(`FINDING ${res.outcome}: ${res.message ?? ''} -> ${file}`);
  }
}
console.log(`fuzz: ${n} inputs, outcomes ${JSON.stringify(counts)}`);
console.log(`fuzz: error codes ${JSON.stringify(codes)}`);
console.log(found ? `fuzz: ${found} findings written to ${values.out}` : 'fuzz: no findings');
if (values.keep) console.log(`fuzz: ${kept} new regression inputs kept in ${values.out} (expected.json)`);
process.exitCode = found ? 1 : 0;
