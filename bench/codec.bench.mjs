// Page codec pipeline on the real corpus (issue 3): wire bytes per round and encoder/decoder
// throughput for raw (QEMU's default), qemu-like (zero + XBZRLE 64 MiB cache + raw, XBZRLE after
// the first pass), LZ4-only (zero + LZ4 blocks of raw pages) and pagewire's full choice.
// Round 0 sends snapshot 0 (every page), round k sends dirty-k against snapshot k. Guest memory in
// the core (in place); times are one encode()/apply() per round over all its pages, single thread.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as pw from '../dist/index.js';

const CONFIGS = [
  { name: 'raw', opts: { codecs: 'raw' } },
  { name: 'qemu-like', opts: { codecs: 'qemu' } },
  { name: 'lz4-only', opts: { codecs: ['zero', 'lz4'], lz4: 'always' } },
  { name: 'full', opts: { codecs: 'all' } },
  { name: 'full-10gbe', opts: { codecs: 'all', linkBytesPerSec: 1.25e9 } },
  { name: 'full-no-lz4', opts: { codecs: ['zero', 'dup', 'xbzrle', 'rle'] } },
];

function loadCorpus(dir, name) {
  const d = join(dir, name);
  if (!existsSync(join(d, 'snapshot-0.bin'))) return null;
  const manifest = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8'));
  const snaps = [];
  const dirty = [null];
  for (let k = 0; existsSync(join(d, `snapshot-${k}.bin`)); k++) {
    snaps.push(new Uint8Array(readFileSync(join(d, `snapshot-${k}.bin`))));
    if (k > 0) { const b = readFileSync(join(d, `dirty-${k}.u32`)); dirty.push(new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))); }
  }
  return { name, pageSize: manifest.page_size ?? 4096, snaps, dirty };
}

async function replay(c, opts, reps) {
  const pages = c.snaps[0].byteLength / c.pageSize;
  const srcCore = await pw.createCore();
  const dstCore = await pw.createCore();
  const src = pw.GuestMemory.inCore(srcCore, pages, c.pageSize);
  const dst = pw.GuestMemory.inCore(dstCore, pages, c.pageSize);
  const all = Uint32Array.from({ length: pages }, (_, i) => i);
  const rounds = [];
  let bestEnc = null;
  let bestDec = null;
  for (let rep = 0; rep < reps; rep++) {
    const enc = await pw.PageEncoder.create(src, opts);
    const dec = await pw.PageDecoder.create(dst, enc.codecNames());
    const encMs = [];
    const decMs = [];
    for (let k = 0; k < c.snaps.length; k++) {
      srcCore.u8().set(c.snaps[k], src.basePtr);
      const idx = k === 0 ? all : c.dirty[k];
      const t0 = performance.now();
      const out = enc.encode(idx, 0, idx.length, { final: k === c.snaps.length - 1 });
      const t1 = performance.now();
      dec.apply(out);
      const t2 = performance.now();
      encMs.push(t1 - t0);
      decMs.push(t2 - t1);
      if (rep === 0) rounds.push({ pages: idx.length, wire: out.byteLength });
    }
    // verify once: the target holds the last snapshot
    if (rep === 0 && !Buffer.from(dst.pages(0, pages)).equals(Buffer.from(c.snaps[c.snaps.length - 1]))) throw new Error(`${c.name}: target differs`);
    bestEnc = bestEnc ? bestEnc.map((v, i) => Math.min(v, encMs[i])) : encMs;
    bestDec = bestDec ? bestDec.map((v, i) => Math.min(v, decMs[i])) : decMs;
    if (rep === reps - 1) rounds.stats = enc.stats;
    enc.dispose();
    dec.dispose();
  }
  return rounds.map((r, i) => ({ ...r, encMs: bestEnc[i], decMs: bestDec[i] })).concat([]).map((r) => r) && {
    rounds: rounds.map((r, i) => ({ ...r, encMs: bestEnc[i], decMs: bestDec[i] })),
    stats: rounds.stats,
  };
}

const gbps = (bytes, ms) => (ms > 0 ? bytes / ms / 1e6 : 0);

export default async function (ctx) {
  await pw.ready();
  await pw.loadLz4();
  const reps = ctx.quick ? 2 : 5;
  for (const name of ['vm-redis', 'proc-redis']) {
    const c = loadCorpus(ctx.corpusDir, name);
    if (!c) { ctx.log(`codec: corpus ${name} missing, skipped`); continue; }
    const res = {};
    for (const cfg of CONFIGS) {
      res[cfg.name] = await replay(c, cfg.opts, reps);
      const r = res[cfg.name].rounds;
      const ps = c.pageSize;
      const total = r.reduce((a, x) => a + x.wire, 0);
      const dirtyRounds = r.slice(1);
      const dirtyWire = dirtyRounds.reduce((a, x) => a + x.wire, 0);
      const dirtyPages = dirtyRounds.reduce((a, x) => a + x.pages, 0);
      const dirtyEncMs = dirtyRounds.reduce((a, x) => a + x.encMs, 0);
      const dirtyDecMs = dirtyRounds.reduce((a, x) => a + x.decMs, 0);
      const allPages = r.reduce((a, x) => a + x.pages, 0);
      const allEncMs = r.reduce((a, x) => a + x.encMs, 0);
      const allDecMs = r.reduce((a, x) => a + x.decMs, 0);
      const row = {
        kind: 'codec-corpus', corpus: name, codec: cfg.name,
        wireBytesPerRound: r.map((x) => x.wire).join(' '),
        totalWireBytes: total, dirtyRoundsWireBytes: dirtyWire,
        encodeGBps: +gbps(allPages * ps, allEncMs).toFixed(2),
        encodeGBpsDirtyRounds: +gbps(dirtyPages * ps, dirtyEncMs).toFixed(2),
        encodePagesPerSec: Math.round(allPages / (allEncMs / 1000)),
        decodeGBps: +gbps(allPages * ps, allDecMs).toFixed(2),
        decodePagesPerSec: Math.round(allPages / (allDecMs / 1000)),
      };
      const s = res[cfg.name].stats;
      row.codecPages = Object.entries(s.codecs).filter(([, v]) => v.pages > 0).map(([k, v]) => `${k}:${v.pages}`).join(' ') + (s.lz4.pages ? ` (lz4 blocks over ${s.lz4.pages})` : '');
      ctx.addScenario(row);
      ctx.log(`codec ${name} ${cfg.name}: wire ${r.map((x) => x.wire).join(' ')} enc ${row.encodeGBps} GB/s dec ${row.decodeGBps} GB/s`);
    }
    const tot = (n) => res[n].rounds.reduce((a, x) => a + x.wire, 0);
    const dirt = (n) => res[n].rounds.slice(1).reduce((a, x) => a + x.wire, 0);
    const r = res.full.rounds;
    const dirtyPages = r.slice(1).reduce((a, x) => a + x.pages, 0);
    const target = {
      kind: 'codec-targets', corpus: name,
      fullVsQemuTotal: +(tot('full') / tot('qemu-like')).toFixed(3), targetTotal: 0.6,
      fullVsQemuDirtyRounds: +(dirt('full') / dirt('qemu-like')).toFixed(3), targetDirty: 0.85,
      fullEncodeGBps: +gbps(r.reduce((a, x) => a + x.pages, 0) * c.pageSize, r.reduce((a, x) => a + x.encMs, 0)).toFixed(2),
      fullEncodeGBpsDirtyRounds: +gbps(dirtyPages * c.pageSize, r.slice(1).reduce((a, x) => a + x.encMs, 0)).toFixed(2),
      noLz4EncodeGBps: +gbps(res['full-no-lz4'].rounds.reduce((a, x) => a + x.pages, 0) * c.pageSize, res['full-no-lz4'].rounds.reduce((a, x) => a + x.encMs, 0)).toFixed(2),
      noLz4VsQemuTotal: +(tot('full-no-lz4') / tot('qemu-like')).toFixed(3),
      targetEncodeGBps: 1.0,
    };
    target.met = target.fullVsQemuTotal <= 0.6 && target.fullVsQemuDirtyRounds <= 0.85 && target.fullEncodeGBps >= 1.0;
    ctx.addScenario(target);
    ctx.log(`codec targets ${name}: ${JSON.stringify(target)}`);
  }
}
