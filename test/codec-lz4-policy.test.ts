// The LZ4 'auto' decision (src/codec/lz4-policy.ts) as a pure table: recorded block statistics of
// the real corpus (test/fixtures/lz4-blocks.json: the encoder's blocks, what LZ4 made of each) are
// replayed through it with a modelled compressor cost, at each link speed.
import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { Lz4AutoPolicy, LZ4_PRIOR, type Lz4PolicyOptions } from '../src/codec/lz4-policy.js';
import { PageEncoder } from '../src/codec/encoder.js';
import { PageDecoder } from '../src/codec/decoder.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { createCore } from '../src/core/core.js';
import { loadCorpus } from './helpers/corpus.js';

type Block = [inBytes: number, outBytes: number];
const FIXTURE = JSON.parse(readFileSync(new URL('./fixtures/lz4-blocks.json', import.meta.url), 'utf8')) as Record<string, Block[][]>;
const GUESTS = ['vm-redis', 'proc-redis'] as const;

const MBIT = 1e6 / 8;
const GBIT = 1e9 / 8;

/** The compressor's cost model: 1.8 ns per byte on data that compresses, a third on data that does not (skipping). */
function costMs([inBytes, outBytes]: Block, nsPerByte = 1.8): number {
  const saved = 1 - outBytes / inBytes;
  return (inBytes * (saved > 0.1 ? nsPerByte : nsPerByte / 3)) / 1e6;
}

interface Replay { compressed: number; tried: number; sentCompressedBytes: number; savedBytes: number; blocks: number; decisions: boolean[] }

/** Replay blocks through a policy; `slow` blocks (by index) take 10x their modelled time. */
function replay(p: Lz4AutoPolicy, blocks: Block[], opts: { slow?: number[]; nsPerByte?: number } = {}): Replay {
  const r: Replay = { compressed: 0, tried: 0, sentCompressedBytes: 0, savedBytes: 0, blocks: 0, decisions: [] };
  blocks.forEach((b, i) => {
    r.blocks++;
    const yes = p.next();
    r.decisions.push(yes);
    if (!yes) return;
    r.tried++;
    // the encoder sends it compressed only when it saves >= 3% (and reports the input size otherwise)
    const pays = b[1] < b[0] * 0.97;
    const ms = costMs(b, opts.nsPerByte) * (opts.slow?.includes(i) ? 10 : 1);
    p.record({ inBytes: b[0], outBytes: pays ? b[1] : b[0], ms });
    if (pays) { r.compressed++; r.sentCompressedBytes += b[0]; r.savedBytes += b[0] - b[1]; }
  });
  return r;
}

/** Record bytes of the blocks that pay on this link under the cost model (the best any policy can do). */
function payingBytes(blocks: Block[], bps: number): { bytes: number; saved: number } {
  let bytes = 0;
  let saved = 0;
  for (const b of blocks) {
    const linkNsSaved = ((b[0] - b[1]) * 1e9) / bps;
    if (b[1] < b[0] * 0.97 && linkNsSaved > costMs(b) * 1e6) { bytes += b[0]; saved += b[0] - b[1]; }
  }
  return { bytes, saved };
}

const policy = (o: Lz4PolicyOptions = {}): Lz4AutoPolicy => new Lz4AutoPolicy(o);

describe('LZ4 auto decision on recorded corpus blocks', () => {
  it("issue 14's case: vm-redis round 0 at 1 Gbit/s, an incompressible second block does not switch compression off", () => {
    const blocks = FIXTURE['vm-redis']![0]!;
    expect(blocks[1]![1]).toBeGreaterThanOrEqual(blocks[1]![0] * 0.97); // the recorded block really is incompressible
    const r = replay(policy({ linkBytesPerSec: GBIT }), blocks);
    const best = payingBytes(blocks, GBIT);
    // the old estimates compressed 768 of 8192 pages here; every block after the second is worth it
    expect(r.decisions.slice(2).every((d) => d)).toBe(true);
    expect(r.savedBytes).toBeGreaterThanOrEqual(0.95 * best.saved);
  });

  it('at 100 Mbit/s and 1 Gbit/s (the link is the bottleneck) compresses every block that saves, every round of both guests', () => {
    for (const g of GUESTS) {
      for (const bps of [100 * MBIT, GBIT]) {
        const p = policy({ linkBytesPerSec: bps });
        for (const [k, blocks] of FIXTURE[g]!.entries()) {
          const r = replay(p, blocks);
          const available = blocks.reduce((a, b) => a + (b[1] < b[0] * 0.97 ? b[0] - b[1] : 0), 0);
          expect(r.savedBytes, `${g} round ${k} at ${bps} B/s`).toBeGreaterThanOrEqual(0.97 * available);
        }
      }
    }
  });

  it('between, compresses the share that balances encoder and link (pure table)', () => {
    // prior: s 0.45, c 1.6 ns, b 1.0 + 0.3 ns; L = 1e9 / bps
    const share = (bps: number, prior = LZ4_PRIOR): number => new Lz4AutoPolicy({ linkBytesPerSec: bps, prior }).share();
    expect(share(100 * MBIT)).toBe(1);
    expect(share(GBIT)).toBe(1);
    expect(share(4 * GBIT)).toBeCloseTo((2 - 1.3) / (1.6 + 2 * 0.45), 6); // 0.28
    expect(share(10 * GBIT)).toBe(0); // L = 0.8 ns <= b: the encoder is already the bottleneck
    const fast = { saveFrac: 0.45, nsPerByte: 0.4, encodeNsPerByte: 0.2 }; // a faster machine
    expect(share(10 * GBIT, fast)).toBeCloseTo((0.8 - 0.5) / (0.4 + 0.8 * 0.45), 6); // 0.39
    // the same encoder with LZ4 at 0.8 ns per byte (= the link's): balancing would say 0.25, but
    // compressing a byte would cost as much CPU as sending it
    expect(share(10 * GBIT, { ...fast, nsPerByte: 0.8 })).toBe(0);
    expect(share(10 * GBIT, { ...fast, nsPerByte: 0.79 })).toBeGreaterThan(0);
    // a busy machine (encoder 60 ns and LZ4 9 ns per record byte) still compresses everything on
    // 100 Mbit/s, where a byte LZ4 saves is worth 36 ns of link; on 1 Gbit/s it stops
    const busy = { saveFrac: 0.45, nsPerByte: 9, encodeNsPerByte: 60 };
    expect(share(100 * MBIT, busy)).toBe(1);
    expect(share(GBIT, busy)).toBe(0);
    expect(new Lz4AutoPolicy().share()).toBe(1); // no link figure, no measured rate: try every block
    // replayed: at 4 Gbit/s about a quarter of the blocks go to the compressor
    const blocks = FIXTURE['proc-redis']!.flat();
    const r = replay(policy({ linkBytesPerSec: 4 * GBIT }), blocks);
    expect(r.tried / r.blocks).toBeGreaterThan(0.15);
    expect(r.tried / r.blocks).toBeLessThan(0.45);
  });

  it('at 10 Gbit/s with a 1.8 ns/byte compressor compresses nothing and probes at most once in 64 blocks', () => {
    for (const g of GUESTS) {
      const p = policy({ linkBytesPerSec: 10 * GBIT });
      const all = FIXTURE[g]!.flat();
      const r = replay(p, all);
      expect(r.tried).toBeLessThanOrEqual(Math.ceil(all.length / 64));
      expect(p.stats.probes).toBe(r.tried);
    }
  });

  it('at 10 Gbit/s compresses only where LZ4 measured faster than the link per byte, and the pipelined time never grows', () => {
    // replay both guests' recorded blocks with a fast encoder (0.2 ns per byte without LZ4) and
    // compressors of several speeds; the link needs L = 0.8 ns per byte
    const L = 1e9 / (10 * GBIT);
    const encodeNs = 0.2 + 0.3; // the core's codecs + the policy's framing allowance
    for (const g of GUESTS) {
      const blocks = FIXTURE[g]!.flat();
      const inBytes = blocks.reduce((a, x) => a + x[0], 0);
      const plain = Math.max(encodeNs * inBytes, L * inBytes); // no compression: encoder and link overlap
      for (const c of [1.8, 1.2, 0.8, 0.6, 0.4]) {
        const p = policy({ linkBytesPerSec: 10 * GBIT, prior: { saveFrac: 0.45, nsPerByte: c, encodeNsPerByte: 0.2 } });
        let cpu = encodeNs * inBytes;
        let wire = 0;
        blocks.forEach((x) => {
          const yes = p.next();
          const pays = x[1] < x[0] * 0.97;
          if (yes) {
            cpu += costMs(x, c) * 1e6;
            p.record({ inBytes: x[0], outBytes: pays ? x[1] : x[0], ms: costMs(x, c) });
          }
          wire += yes && pays ? x[1] : x[0];
        });
        const withPolicy = Math.max(cpu, L * wire);
        if (c >= L) {
          expect(p.stats.tried - p.stats.probes, `${g} c ${c}`).toBe(0); // nothing but rare probes
          expect(p.stats.probes).toBeLessThanOrEqual(Math.ceil(blocks.length / 64));
          expect(withPolicy / plain, `${g} c ${c}`).toBeLessThan(1.01); // a probe is all it may cost
        } else {
          expect(p.stats.compressed, `${g} c ${c}`).toBeGreaterThan(0);
          expect(withPolicy, `${g} c ${c}`).toBeLessThan(plain);
        }
      }
    }
  });

  it('a slow first call (10x, a cold tier or a pause) does not turn compression off at 1 Gbit/s', () => {
    const blocks = FIXTURE['proc-redis']![0]!;
    const base = replay(policy({ linkBytesPerSec: GBIT }), blocks);
    expect(base.tried).toBeGreaterThanOrEqual(blocks.length - 1);
    const r = replay(policy({ linkBytesPerSec: GBIT }), blocks, { slow: [0] });
    expect(r.tried).toBeGreaterThanOrEqual(base.tried - 1);
    // three slow blocks in the first seven raise the cost estimate: still about 90% compressed
    const r2 = replay(policy({ linkBytesPerSec: GBIT }), blocks, { slow: [0, 5, 6] });
    expect(r2.tried).toBeGreaterThanOrEqual(Math.floor(0.85 * blocks.length));
  });

  it('stops on a long incompressible stretch and comes back at the first probe after it', () => {
    const good: Block = [1 << 20, 500_000];
    const bad: Block = [1 << 20, 1 << 20];
    const blocks: Block[] = [...Array(4).fill(good), ...Array(16).fill(bad), ...Array(20).fill(good)];
    const r = replay(policy({ linkBytesPerSec: GBIT }), blocks);
    expect(r.decisions.slice(0, 4).every((d) => d)).toBe(true);
    expect(r.decisions.slice(4, 20).filter((d) => !d).length).toBeGreaterThanOrEqual(4); // stopped, probing
    const back = r.decisions.indexOf(true, 20);
    expect(back).toBeLessThanOrEqual(20 + 4); // the first probe in the good stretch
    expect(r.decisions.slice(back + 1).every((d) => d)).toBe(true);
  });

  it('uses the measured send rate when no link figure is given, and tries every block when there is none', () => {
    const blocks = FIXTURE['vm-redis']![0]!;
    const none = replay(policy(), blocks);
    expect(none.tried).toBe(blocks.length);
    const fast = policy();
    fast.setSendRate(10 * GBIT);
    expect(replay(fast, blocks).tried).toBeLessThanOrEqual(1);
    expect(fast.linkBytesPerSec()).toBe(10 * GBIT);
    const slow = policy();
    slow.setSendRate(100 * MBIT);
    expect(replay(slow, blocks).tried).toBe(blocks.length);
    // a given link figure wins over the measured rate; nonsense rates are ignored
    const given = policy({ linkBytesPerSec: 100 * MBIT });
    given.setSendRate(10 * GBIT);
    expect(given.linkBytesPerSec()).toBe(100 * MBIT);
    const bad = policy();
    bad.setSendRate(Number.NaN);
    expect(bad.linkBytesPerSec()).toBe(0);
  });

  it('starts from the corpus prior and reports blocks compressed, bytes saved and CPU spent', () => {
    const p = policy({ linkBytesPerSec: GBIT });
    expect(p.stats.saveFrac).toBe(LZ4_PRIOR.saveFrac);
    expect(p.stats.nsPerByte).toBe(LZ4_PRIOR.nsPerByte);
    expect(p.share()).toBe(1); // the prior says compress at 1 Gbit/s from the first block
    const r = replay(p, FIXTURE['proc-redis']![1]!);
    expect(p.stats.blocks).toBe(r.blocks);
    expect(p.stats.compressed).toBe(r.compressed);
    expect(p.stats.savedBytes).toBe(r.savedBytes);
    expect(p.stats.cpuMs).toBeGreaterThan(0);
    expect(p.stats.linkBytesPerSec).toBe(GBIT);
  });
});

type PaceCall = [recordBytes: number, ms: number, sendRateMBps: number];
const PACE = JSON.parse(readFileSync(new URL('./fixtures/lz4-pace.json', import.meta.url), 'utf8')) as Record<'loopback' | 'slow', { on: PaceCall[]; off: PaceCall[] }>;

/**
 * Replay recorded paces: call i takes the interval the recorded run of the chosen arm took at call
 * i (what the path did with every block compressed, or none). Returns the path's time and blocks.
 */
function replayPace(p: Lz4AutoPolicy, rec: { on: PaceCall[]; off: PaceCall[] }): { ms: number; compressed: number; calls: number; arms: boolean[] } {
  let ms = 0;
  let compressed = 0;
  const arms: boolean[] = [];
  const n = Math.min(rec.on.length, rec.off.length);
  for (let i = 0; i < n; i++) {
    p.setSendRate((p.stats.paceArm ? rec.on : rec.off)[i]![2] * 1e6); // as the page sender does before encoding
    const on = p.next();
    arms.push(on);
    const [bytes, t] = (on ? rec.on : rec.off)[i]!;
    if (on) { p.record({ inBytes: bytes, outBytes: Math.round(bytes * 0.55), ms: (bytes * 1.6) / 1e6 }); compressed++; }
    p.notePace(bytes, t);
    ms += t;
  }
  return { ms, compressed, calls: n, arms };
}

describe('LZ4 auto decision without a link figure: goodput trials on recorded paces', () => {
  const sum = (a: PaceCall[]): number => a.reduce((x, c) => x + c[1], 0);

  it('loopback TCP on one CPU (plain is faster): turns compression off after one trial of each arm', () => {
    const rec = PACE.loopback;
    expect(sum(rec.off)).toBeLessThan(sum(rec.on)); // the recording really is CPU-bound
    const p = policy();
    const r = replayPace(p, rec);
    expect(p.stats.trials).toBeGreaterThanOrEqual(2);
    expect(p.stats.paceOffMBps).toBeGreaterThan(p.stats.paceOnMBps);
    // compressed: the trials of 32 calls only (calls 0, 128 and 288: runs of 64, then 128)
    expect(r.compressed).toBeLessThanOrEqual(3 * 32);
    expect(r.arms.slice(64, 128).every((a) => !a)).toBe(true); // the first run is plain
    expect(r.ms).toBeLessThan(sum(rec.on));
    expect(r.ms).toBeLessThan(sum(rec.off) + 0.4 * (sum(rec.on) - sum(rec.off)));
  });

  it('a slow link (the measured rate says compression wins by far): compresses every block, no plain trial', () => {
    const p = policy();
    const r = replayPace(p, PACE.slow);
    expect(r.compressed).toBe(r.calls);
    expect(p.stats.paceOffMBps).toBe(0);
    expect(p.stats.paceOnMBps).toBeGreaterThan(0);
  });

  it('chooses by measured goodput, runs the winner longer while it keeps winning, and follows a change', () => {
    const p = policy();
    p.setSendRate(60e6); // a CPU-bound path's rate: s L = 7.5 ns, no shortcut
    const MiB = 1 << 20;
    const arms: boolean[] = [];
    // calls 0..599: compressed blocks take 10 ms, plain 8 ms (plain 25% faster); then it flips
    for (let i = 0; i < 1800; i++) {
      const on = p.next();
      arms.push(on);
      if (on) p.record({ inBytes: MiB, outBytes: MiB / 2, ms: 1.6 });
      p.notePace(MiB, i < 600 ? (on ? 10 : 8) : (on ? 5 : 8));
    }
    expect(arms.slice(0, 32).every((a) => a)).toBe(true); // trial on
    expect(arms.slice(32, 64).every((a) => !a)).toBe(true); // trial off
    expect(arms.slice(64, 128).every((a) => !a)).toBe(true); // run off (64)
    expect(arms.slice(128, 160).every((a) => a)).toBe(true); // trial on again
    expect(arms.slice(160, 288).every((a) => !a)).toBe(true); // off won again: run 128
    expect(p.stats.paceOffMBps).toBeCloseTo(MiB / 8 / 1e3, 6);
    // after the flip compression wins at the first trial that sees it (runs are at most 512 calls)
    // and stays on
    const back = arms.indexOf(true, 600 + 512 + 32);
    expect(back).toBeGreaterThan(0);
    expect(arms.slice(back).filter((a) => a).length).toBeGreaterThan(0.85 * (1800 - back));
    expect(p.stats.paceOnMBps).toBeCloseTo(MiB / 5 / 1e3, 6);
  });

  it('ignores intervals of round boundaries and pauses, and does nothing without a send rate or with a link figure', () => {
    const p = policy();
    p.setSendRate(60e6);
    for (let i = 0; i < 64; i++) { const on = p.next(); if (on) p.record({ inBytes: 1 << 20, outBytes: 1 << 19, ms: 1.6 }); p.notePace(1 << 20, i % 10 === 0 ? 5000 : on ? 8 : 10); }
    expect(p.stats.paceOnMBps).toBeCloseTo((1 << 20) / 8 / 1e3, 6); // the 5 s gaps left out
    expect(p.stats.paceOffMBps).toBeCloseTo((1 << 20) / 10 / 1e3, 6);
    expect(p.stats.paceArm).toBe(true);
    const noRate = policy();
    let yes = 0;
    for (let i = 0; i < 100; i++) { if (noRate.next()) yes++; noRate.notePace(1 << 20, 10); }
    expect(noRate.stats.trials).toBe(0);
    expect(yes).toBe(100);
    const given = policy({ linkBytesPerSec: GBIT });
    given.setSendRate(60e6);
    for (let i = 0; i < 100; i++) { given.next(); given.notePace(1 << 20, 10); }
    expect(given.stats.trials).toBe(0);
    expect(given.stats.paceArm).toBe(true);
  });
});

describe('LZ4 auto decision in the encoder', () => {
  /** Round 0 of vm-redis through a fresh encoder; the target checks the bytes. */
  async function round0(configure: (e: PageEncoder) => void, linkBytesPerSec?: number) {
    const c = loadCorpus('vm-redis');
    const pages = c.snapshots[0]!.byteLength / c.pageSize;
    const src = GuestMemory.inCore(await createCore(), pages, c.pageSize);
    const dst = GuestMemory.inCore(await createCore(), pages, c.pageSize);
    src.core!.u8().set(c.snapshots[0]!, src.basePtr);
    const enc = await PageEncoder.create(src, { codecs: 'all', ...(linkBytesPerSec ? { linkBytesPerSec } : {}) });
    const dec = await PageDecoder.create(dst, enc.codecNames());
    configure(enc);
    const all = Uint32Array.from({ length: pages }, (_, i) => i);
    dec.apply(enc.encode(all));
    expect(Buffer.from(dst.pages(0, pages)).equals(Buffer.from(c.snapshots[0]!))).toBe(true);
    const s = enc.stats;
    enc.dispose();
    dec.dispose();
    return s;
  }

  it('reports its decisions; on a slow link every block is tried (whatever this machine costs)', async () => {
    const s = await round0(() => undefined, 10 * MBIT);
    const d = s.lz4Decision;
    expect(d.blocks).toBeGreaterThanOrEqual(30);
    expect(d.tried).toBe(d.blocks);
    expect(d.savedBytes).toBe(s.lz4.inBytes - s.lz4.outBytes);
    expect(d.savedBytes).toBeGreaterThan(0.4 * s.lz4.inBytes);
    expect(d.cpuMs).toBeGreaterThan(0);
    expect(d.linkBytesPerSec).toBe(10 * MBIT);
  });

  it('without a link figure it follows the send rate handed to setSendRate()', async () => {
    const fast = await round0((e) => e.setSendRate(1e12)); // far beyond any encoder: compression cannot pay
    expect(fast.lz4Decision.linkBytesPerSec).toBe(1e12);
    expect(fast.lz4Decision.tried).toBeLessThanOrEqual(1);
    const slow = await round0((e) => e.setSendRate(10 * MBIT));
    expect(slow.lz4Decision.tried).toBe(slow.lz4Decision.blocks);
  });

  it('without a link figure, once a send rate is known, times its own calls and runs goodput trials (the target checks the bytes)', async () => {
    const c = loadCorpus('vm-redis');
    const pages = c.snapshots[0]!.byteLength / c.pageSize;
    const src = GuestMemory.inCore(await createCore(), pages, c.pageSize);
    const dst = GuestMemory.inCore(await createCore(), pages, c.pageSize);
    src.core!.u8().set(c.snapshots[0]!, src.basePtr);
    const enc = await PageEncoder.create(src, { codecs: 'all' });
    const dec = await PageDecoder.create(dst, enc.codecNames());
    enc.setSendRate(60e6); // a CPU-bound path's rate: no shortcut, both arms are tried
    // round 0 three times over, one block per call as the page sender calls it: 96 calls, each
    // arm's trial and the first run; the target applies every payload
    const order = Uint32Array.from({ length: pages }, (_, i) => i);
    let calls = 0;
    for (let pass = 0; pass < 3; pass++) {
      enc.resetCache(); // every page again in full, as in a first round
      for (let i = 0; i < pages; i += 256) { dec.apply(enc.encode(order, i, Math.min(256, pages - i))); calls++; }
      expect(Buffer.from(dst.pages(0, pages)).equals(Buffer.from(c.snapshots[0]!))).toBe(true);
    }
    const d = enc.stats.lz4Decision;
    expect(calls).toBeGreaterThanOrEqual(64);
    expect(d.trials).toBeGreaterThanOrEqual(2); // trial on, then trial off
    expect(d.paceOnMBps).toBeGreaterThan(0);
    expect(d.paceOffMBps).toBeGreaterThan(0);
    // the trial off sent its 32 blocks plain, whatever the timings
    expect(d.compressed).toBeLessThan(calls - 20);
    enc.dispose();
    dec.dispose();
  });

  it('with modelled costs (a virtual clock) decides from them alone: the same blocks every run', async () => {
    // 2048 pages of vm-redis (8 blocks), 10 Gbit/s
    const c = loadCorpus('vm-redis');
    const pages = 2048;
    const src = GuestMemory.inCore(await createCore(), pages, c.pageSize);
    src.core!.u8().set(c.snapshots[0]!.subarray(0, pages * c.pageSize), src.basePtr);
    const all = Uint32Array.from({ length: pages }, (_, i) => i);
    const run = async (compressNsPerByte: number) => {
      const enc = await PageEncoder.create(src, { codecs: 'all', linkBytesPerSec: 10 * GBIT, lz4ModelCosts: { compressNsPerByte, encodeNsPerPage: 80 } });
      const wire = enc.encode(all).byteLength;
      const d = { ...enc.stats.lz4Decision };
      enc.dispose();
      return { d, wire };
    };
    // a compressor of 0.55 ns and codecs of 80 ns per page: the balance share (about 0.48; the
    // first pass of 'all' makes no RLE trials, so its records are whole pages where RLE would
    // have shrunk them)
    const a = await run(0.55);
    const b = await run(0.55);
    expect(a.d.nsPerByte).toBeCloseTo(0.55, 9);
    expect(a.d.share).toBeGreaterThan(0.3);
    expect(a.d.share).toBeLessThan(0.8);
    expect(a.d.tried).toBeGreaterThan(0);
    expect(a.d.tried).toBeLessThan(a.d.blocks);
    expect({ ...a.d, cpuMs: 0 }).toEqual({ ...b.d, cpuMs: 0 });
    expect(a.d.cpuMs).toBeCloseTo(b.d.cpuMs, 9);
    expect(a.wire).toBe(b.wire);
    // the compressor at 1.6 ns (slower than the link's 0.8 ns per byte): none
    expect((await run(1.6)).d.tried).toBe(0);
    const bad = await PageEncoder.create(src, { lz4ModelCosts: { compressNsPerByte: 0, encodeNsPerPage: 1 } }).catch((e: { code?: string }) => e.code);
    expect(bad).toBe('INVALID_ARGUMENT');
  });
});
