#!/usr/bin/env node
// The throughput baseline: copy SIZE bytes of guest-like content, page by page, into freshly
// allocated memory (what a fresh target must do at the least: its first touch of every page).
// Run in its own process so the memory is as fresh as a new target's.
//
//   node bench/fresh-copy.mjs [BYTES] [--reps N]  ->  one JSON line per repetition:
//   {"bytes":..,"ms":..,"gbPerSec":..,"secondPassMs":..,"hugePagesBytes":..}
//
// With GLIBC_TUNABLES=glibc.malloc.hugetlb=1 in the environment (what bin/pagewire.js sets for
// itself on Linux) glibc asks for transparent huge pages for the buffer; `hugePagesBytes` is the
// process's AnonHugePages after the copy (null where /proc does not say).
//
// The source bytes are written before timing (a never-written buffer maps the kernel's shared
// zero page and reads unrealistically fast); `secondPassMs` copies again into the now-touched
// destination (the cost without first-touch faults).
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
function hugePageBytes() {
  try {
    const m = /^AnonHugePages:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
const bytes = Number(args.find((a) => /^\d+$/.test(a)) ?? 512 * 1024 * 1024);
const repsAt = args.indexOf('--reps');
const reps = repsAt >= 0 ? Number(args[repsAt + 1]) : 1;
const PAGE = 4096;
if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % PAGE !== 0) {
  console.error('usage: node bench/fresh-copy.mjs BYTES (a positive multiple of 4096) [--reps N]');
  process.exit(2);
}
// the same bytes a guest of this size holds, written once (64 MiB of varied content, repeated)
const SRC = Math.min(bytes, 64 * 1024 * 1024);
const src = new Uint8Array(SRC);
let s = 0x9e3779b9;
for (let i = 0; i < SRC; i += 4) {
  s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x297a2d39) >>> 0;
  src[i] = s & 0xff;
  src[i + 1] = (s >>> 8) & 0xff;
}
for (let r = 0; r < reps; r++) {
  const t0 = performance.now();
  const dst = new Uint8Array(new ArrayBuffer(bytes));
  for (let off = 0; off < bytes; off += PAGE) {
    const at = off % SRC;
    dst.set(src.subarray(at, at + PAGE), off);
  }
  const ms = performance.now() - t0;
  const t1 = performance.now();
  for (let off = 0; off < bytes; off += PAGE) {
    const at = off % SRC;
    dst.set(src.subarray(at, at + PAGE), off);
  }
  const secondPassMs = performance.now() - t1;
  console.log(JSON.stringify({ bytes, ms, gbPerSec: bytes / ms / 1e6, secondPassMs, hugePagesBytes: hugePageBytes() }));
}
