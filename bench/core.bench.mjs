// Core one-shot API (issue 2) against its peers, side by side in one run, on buffers outside the
// core's memory exactly as the API is called: xxHash64 per page vs xxhash-wasm h64 per page,
// xxh64 of one 64 MiB buffer, zero-page detection, XBZRLE on sparse changes and on the worst case,
// RLE, and Uint8Array.prototype.set (memcpy) of the same bytes as the physical-limit reference.
// Workloads are real memory images (../shared/corpus) plus synthetic pages; every result is
// asserted before it is timed, and every buffer is written before it is read.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import xxhashWasm from 'xxhash-wasm';
import * as pw from '../dist/index.js';
import { sharedCore } from '../dist/core/core.js';

const PAGE = 4096;
const MiB = 1 << 20;

function check(cond, what) {
  if (!cond) throw new Error(`bench assertion failed: ${what}`);
}

function equalBig(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** 64 MiB of real memory: vm-redis and proc-redis images, repeated to fill; random if absent. */
function corpusBuffer(corpusDir, bytes) {
  const out = new Uint8Array(bytes);
  const files = [
    join(corpusDir, 'vm-redis', 'snapshot-0.bin'), join(corpusDir, 'proc-redis', 'snapshot-0.bin'),
    join(corpusDir, 'vm-redis', 'snapshot-4.bin'), join(corpusDir, 'proc-redis', 'snapshot-4.bin'),
  ].filter((f) => existsSync(f));
  let off = 0;
  for (let k = 0; off < bytes && files.length; k++) {
    const img = readFileSync(files[k % files.length]);
    const n = Math.min(img.length, bytes - off);
    out.set(img.subarray(0, n), off);
    off += n;
  }
  let x = 0x9e3779b9;
  for (; off < bytes; off++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[off] = x & 0xff;
  }
  return { data: out, real: files.length > 0 };
}

export default async function core(ctx) {
  await pw.ready();
  const { h64Raw } = await xxhashWasm();
  const { data: big, real } = corpusBuffer(ctx.corpusDir, 64 * MiB);
  const source = real ? 'corpus' : 'random (corpus missing)';
  const pages64 = big.length / PAGE;
  const small = big.subarray(0, MiB); // the cache-resident 1 MiB batch
  const pages1 = small.length / PAGE;
  const dst = new Uint8Array(64 * MiB).fill(1); // memcpy target, written before use

  // ---- hashing ---------------------------------------------------------------------------
  const perPage = (buf, out) => {
    for (let k = 0, n = buf.length / PAGE; k < n; k++) out[k] = h64Raw(buf.subarray(k * PAGE, (k + 1) * PAGE));
    return out;
  };
  const ref64 = perPage(big, new BigUint64Array(pages64));
  check(equalBig(pw.hashPages(big, PAGE), ref64), 'hashPages == xxhash-wasm per page (64 MiB)');
  const ref1 = perPage(small, new BigUint64Array(pages1));
  check(equalBig(pw.hashPages(small, PAGE), ref1), 'hashPages == xxhash-wasm per page (1 MiB)');
  check(pw.xxh64(big) === h64Raw(big), 'xxh64 == h64 (64 MiB)');
  const out64 = new BigUint64Array(pages64);
  const out1 = new BigUint64Array(pages1);

  let b = ctx.bench('hash 64 MiB');
  b.add('pagewire hashPages', () => { pw.hashPages(big, PAGE); })
    .add('xxhash-wasm h64 per page', () => { perPage(big, out64); })
    .add('Uint8Array.set 64 MiB', () => { dst.set(big); });
  await b.run();
  ctx.collect(b, `hash pages, 64 MiB ${source}`, {
    'pagewire hashPages': { bytes: big.length, pages: pages64, vs: 'xxhash-wasm h64 per page' },
    'xxhash-wasm h64 per page': { bytes: big.length, pages: pages64 },
    'Uint8Array.set 64 MiB': { bytes: big.length, pages: pages64, note: 'memcpy reference' },
  });

  b = ctx.bench('hash 1 MiB');
  b.add('pagewire hashPages', () => { pw.hashPages(small, PAGE); })
    .add('xxhash-wasm h64 per page', () => { perPage(small, out1); })
    .add('Uint8Array.set 1 MiB', () => { dst.set(small); });
  await b.run();
  ctx.collect(b, `hash pages, 1 MiB batch ${source}`, {
    'pagewire hashPages': { bytes: small.length, pages: pages1, vs: 'xxhash-wasm h64 per page' },
    'xxhash-wasm h64 per page': { bytes: small.length, pages: pages1 },
    'Uint8Array.set 1 MiB': { bytes: small.length, pages: pages1, note: 'memcpy reference' },
  });

  b = ctx.bench('xxh64 64 MiB');
  b.add('pagewire xxh64', () => { pw.xxh64(big); })
    .add('xxhash-wasm h64', () => { h64Raw(big); });
  await b.run();
  ctx.collect(b, 'xxh64, one 64 MiB buffer', {
    'pagewire xxh64': { bytes: big.length, vs: 'xxhash-wasm h64' },
    'xxhash-wasm h64': { bytes: big.length },
  });

  // ---- zero pages ------------------------------------------------------------------------
  const jsZero = (buf, out) => {
    const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
    const per = PAGE >>> 2;
    for (let k = 0, n = buf.length / PAGE; k < n; k++) {
      let z = 1;
      for (let i = k * per, e = i + per; i < e; i++) if (w[i] !== 0) { z = 0; break; }
      out[k] = z;
    }
    return out;
  };
  const zref = jsZero(big, new Uint8Array(pages64));
  const zflags = pw.zeroPages(big, PAGE);
  check(zflags.every((v, i) => v === zref[i]), 'zeroPages == JS scan');
  const zeroCount = zref.reduce((a, v) => a + v, 0);
  const allZero = new Uint8Array(MiB).fill(1).fill(0); // written, then zeroed: real pages
  check(pw.zeroPages(allZero, PAGE).every((v) => v === 1), 'zero MiB is zero');
  const zout = new Uint8Array(pages64);
  b = ctx.bench('zero pages');
  b.add('pagewire zeroPages 64 MiB', () => { pw.zeroPages(big, PAGE); })
    .add('JS u32 scan 64 MiB', () => { jsZero(big, zout); })
    .add('pagewire zeroPages 1 MiB all-zero', () => { pw.zeroPages(allZero, PAGE); })
    .add('JS u32 scan 1 MiB all-zero', () => { jsZero(allZero, zout); });
  await b.run();
  ctx.collect(b, `zero pages (${((100 * zeroCount) / pages64).toFixed(0)}% zero in the 64 MiB ${source})`, {
    'pagewire zeroPages 64 MiB': { bytes: big.length, pages: pages64, vs: 'JS u32 scan 64 MiB' },
    'JS u32 scan 64 MiB': { bytes: big.length, pages: pages64 },
    'pagewire zeroPages 1 MiB all-zero': { bytes: MiB, pages: pages1, vs: 'JS u32 scan 1 MiB all-zero' },
    'JS u32 scan 1 MiB all-zero': { bytes: MiB, pages: pages1 },
  });

  // ---- XBZRLE ----------------------------------------------------------------------------
  // 256 old pages of real memory; new pages = old pages with a workload's change.
  const N = 256;
  const oldPages = big.slice(8 * MiB, 8 * MiB + N * PAGE);
  const mutate = (kind) => {
    const p = oldPages.slice();
    for (let k = 0; k < N; k++) {
      const base = k * PAGE;
      if (kind === '1-word') { for (let i = 0; i < 8; i++) p[base + 1024 + i] ^= 0xa5; }
      else if (kind === '16-words') { for (let w = 0; w < 16; w++) for (let i = 0; i < 8; i++) p[base + w * 256 + 8 + i] ^= 0x5a; }
      else if (kind === '256-byte-run') { for (let i = 0; i < 256; i++) p[base + 2048 + i] ^= 0xff; }
      else if (kind === 'every-other-byte') { for (let i = 0; i < PAGE; i += 2) p[base + i] ^= 0x01; }
    }
    return p;
  };
  const dstPage = new Uint8Array(PAGE).fill(3);
  b = ctx.bench('xbzrle');
  const meta = {};
  const sizes = {};
  for (const kind of ['1-word', '16-words', '256-byte-run', 'every-other-byte']) {
    const newPages = mutate(kind);
    let bytes = 0;
    let overflow = 0;
    for (let k = 0; k < N; k++) {
      const o = oldPages.subarray(k * PAGE, (k + 1) * PAGE);
      const n = newPages.subarray(k * PAGE, (k + 1) * PAGE);
      const e = pw.xbzrleEncode(o, n);
      if (e === null) { overflow++; continue; }
      const back = o.slice();
      pw.xbzrleDecode(e, back);
      check(Buffer.from(back).equals(Buffer.from(n)), `xbzrle ${kind} round trip`);
      bytes += e.length;
    }
    if (kind === 'every-other-byte') check(overflow === N, 'worst case overflows');
    else check(overflow === 0, `${kind} fits`);
    sizes[kind] = overflow === N ? 'overflow' : `${(bytes / N).toFixed(0)} B/page`;
    const name = `xbzrleEncode ${kind}`;
    b.add(name, () => {
      for (let k = 0; k < N; k++) pw.xbzrleEncode(oldPages.subarray(k * PAGE, (k + 1) * PAGE), newPages.subarray(k * PAGE, (k + 1) * PAGE));
    });
    meta[name] = { bytes: N * PAGE, pages: N, vs: 'Uint8Array.set per page', note: sizes[kind] };
    if (kind === '1-word') {
      const encs = [];
      for (let k = 0; k < N; k++) encs.push(pw.xbzrleEncode(oldPages.subarray(k * PAGE, (k + 1) * PAGE), newPages.subarray(k * PAGE, (k + 1) * PAGE)));
      const target = oldPages.slice(0, PAGE);
      b.add('xbzrleDecode 1-word', () => { for (let k = 0; k < N; k++) pw.xbzrleDecode(encs[k], target); });
      meta['xbzrleDecode 1-word'] = { bytes: N * PAGE, pages: N, vs: 'Uint8Array.set per page' };
    }
  }
  b.add('Uint8Array.set per page', () => { for (let k = 0; k < N; k++) dstPage.set(oldPages.subarray(k * PAGE, (k + 1) * PAGE)); });
  meta['Uint8Array.set per page'] = { bytes: N * PAGE, pages: N, note: 'memcpy reference, 4 KiB' };
  // The core alone, pages already in its memory (what a batch pipeline pays, without the copies).
  const core = sharedCore();
  const ex = core.exports;
  const oldPtr = core.alloc(N * PAGE);
  const newPtr = core.alloc(N * PAGE);
  const outPtr = core.alloc(2 * PAGE);
  for (const kind of ['1-word', 'every-other-byte']) {
    const newPages = mutate(kind);
    const name = `core xbzrleEncode ${kind} (in core memory)`;
    b.add(name, () => {
      for (let k = 0; k < N; k++) ex.xbzrleEncode(oldPtr + k * PAGE, newPtr + k * PAGE, PAGE, outPtr, PAGE);
    }, {
      beforeAll() {
        core.u8().set(oldPages, oldPtr);
        core.u8().set(newPages, newPtr);
        const r = ex.xbzrleEncode(oldPtr, newPtr, PAGE, outPtr, PAGE);
        check(kind === '1-word' ? r === 11 : r === -1, `core ${kind} result`);
      },
    });
    meta[name] = { bytes: N * PAGE, pages: N, vs: 'Uint8Array.set per page', note: 'no call boundary' };
  }
  await b.run();
  core.release(outPtr, 2 * PAGE);
  core.release(newPtr, N * PAGE);
  core.release(oldPtr, N * PAGE);
  ctx.collect(b, 'XBZRLE, 256 pages of 4 KiB (corpus old pages)', meta);

  // Real deltas: vm-redis image 0 -> 1, the dirty pages only.
  const vmDir = join(ctx.corpusDir, 'vm-redis');
  if (existsSync(join(vmDir, 'dirty-1.u32'))) {
    const s0 = readFileSync(join(vmDir, 'snapshot-0.bin'));
    const s1 = readFileSync(join(vmDir, 'snapshot-1.bin'));
    const d = readFileSync(join(vmDir, 'dirty-1.u32'));
    const dirty = new Uint32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
    let bytes = 0;
    let overflow = 0;
    let identical = 0;
    const times = [];
    for (let rep = 0; rep < 5; rep++) {
      bytes = 0;
      overflow = 0;
      identical = 0;
      const t0 = performance.now();
      for (const p of dirty) {
        const e = pw.xbzrleEncode(s0.subarray(p * PAGE, (p + 1) * PAGE), s1.subarray(p * PAGE, (p + 1) * PAGE));
        if (e === null) overflow++;
        else if (e.length === 0) identical++;
        else bytes += e.length;
      }
      times.push(performance.now() - t0);
    }
    const ms = times.sort((x, y) => x - y)[2];
    ctx.addScenario({
      scenario: 'XBZRLE vm-redis 0->1 dirty pages', pages: dirty.length,
      encodedPct: (100 * bytes) / ((dirty.length - overflow - identical) * PAGE),
      overflowPct: (100 * overflow) / dirty.length, mbPerSec: (dirty.length * PAGE) / ms / 1000,
    });
  }

  // ---- RLE -------------------------------------------------------------------------------
  const runPages = new Uint8Array(N * PAGE);
  for (let k = 0; k < N; k++) {
    const base = k * PAGE;
    runPages.fill(k & 0xff, base, base + 1024); // a byte run
    const dv = new DataView(runPages.buffer, base + 1024, 2048);
    for (let i = 0; i < 2048; i += 8) dv.setBigUint64(i, 0x0000ffff00000001n + BigInt(k), true); // word run
    for (let i = 3072; i < PAGE; i++) runPages[base + i] = (i * 7 + k) & 0xff; // literal tail
  }
  const realPages = big.subarray(0, N * PAGE);
  const rleOf = (buf) => {
    let bytes = 0;
    for (let k = 0; k < N; k++) {
      const page = buf.subarray(k * PAGE, (k + 1) * PAGE);
      const e = pw.rleEncode(page);
      const back = new Uint8Array(PAGE);
      pw.rleDecode(e, back);
      check(Buffer.from(back).equals(Buffer.from(page)), 'rle round trip');
      bytes += e.length;
    }
    return bytes;
  };
  const runBytes = rleOf(runPages);
  const realBytes = rleOf(realPages);
  const runEnc = [];
  for (let k = 0; k < N; k++) runEnc.push(pw.rleEncode(runPages.subarray(k * PAGE, (k + 1) * PAGE)));
  const decOut = new Uint8Array(PAGE).fill(9);
  b = ctx.bench('rle');
  b.add('rleEncode run pages', () => { for (let k = 0; k < N; k++) pw.rleEncode(runPages.subarray(k * PAGE, (k + 1) * PAGE)); })
    .add('rleDecode run pages', () => { for (let k = 0; k < N; k++) pw.rleDecode(runEnc[k], decOut); })
    .add('rleEncode corpus pages', () => { for (let k = 0; k < N; k++) pw.rleEncode(realPages.subarray(k * PAGE, (k + 1) * PAGE)); })
    .add('Uint8Array.set per page', () => { for (let k = 0; k < N; k++) dstPage.set(realPages.subarray(k * PAGE, (k + 1) * PAGE)); });
  await b.run();
  ctx.collect(b, 'RLE, 256 pages of 4 KiB', {
    'rleEncode run pages': { bytes: N * PAGE, pages: N, vs: 'Uint8Array.set per page', note: `${((100 * runBytes) / (N * PAGE)).toFixed(1)}% of raw` },
    'rleDecode run pages': { bytes: N * PAGE, pages: N, vs: 'Uint8Array.set per page' },
    'rleEncode corpus pages': { bytes: N * PAGE, pages: N, vs: 'Uint8Array.set per page', note: `${((100 * realBytes) / (N * PAGE)).toFixed(1)}% of raw` },
    'Uint8Array.set per page': { bytes: N * PAGE, pages: N, note: 'memcpy reference, 4 KiB' },
  });

  // RLE over a whole real image: how much of real memory is runs.
  {
    let bytes = 0;
    const times = [];
    for (let rep = 0; rep < 3; rep++) {
      bytes = 0;
      const t0 = performance.now();
      for (let k = 0; k < pages64; k += 4) bytes += pw.rleEncode(big.subarray(k * PAGE, (k + 1) * PAGE)).length;
      times.push(performance.now() - t0);
    }
    const ms = times.sort((x, y) => x - y)[1];
    ctx.addScenario({
      scenario: `RLE every 4th page of the 64 MiB ${source}`, pages: pages64 / 4,
      encodedPct: (100 * bytes) / ((pages64 / 4) * PAGE), mbPerSec: ((pages64 / 4) * PAGE) / ms / 1000,
    });
  }
}
