import { describe, it, expect } from 'vitest';
import { Prng } from '../src/sim/prng.js';
import {
  createWorkload, HotSetWorkload, ZipfWorkload, SequentialWorkload, IdleWorkload, Scatter,
} from '../src/sim/workloads.js';
import { fillInitial, ContentGenerator } from '../src/sim/content.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { PagewireError } from '../src/errors.js';

const code = (f: () => unknown): string => { try { f(); } catch (e) { return (e as PagewireError).code; } return 'none'; };

describe('Prng', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = new Prng(1);
    const b = new Prng(1);
    const c = new Prng(2);
    const xs = Array.from({ length: 8 }, () => a.u32());
    expect(Array.from({ length: 8 }, () => b.u32())).toEqual(xs);
    expect(Array.from({ length: 8 }, () => c.u32())).not.toEqual(xs);
    expect(new Prng(0).u32()).not.toBe(new Prng(0x100000000).u32() + 1); // seed 0 works
  });

  it('floats are uniform in [0, 1) (decile counts within 5% of the mean)', () => {
    const r = new Prng(3);
    const bins = new Array<number>(10).fill(0);
    const N = 200_000;
    let bad = 0;
    for (let i = 0; i < N; i++) {
      const x = r.float();
      if (!(x >= 0 && x < 1)) bad++;
      else bins[Math.floor(x * 10)]!++;
    }
    expect(bad).toBe(0);
    for (const b of bins) expect(Math.abs(b - N / 10)).toBeLessThan(N / 10 * 0.05);
  });
});

describe('Scatter', () => {
  it('is a bijection on [0, n) for assorted n', () => {
    for (const n of [1, 2, 7, 64, 1000, 65536, 1_000_003 * 2]) {
      if (n > 100_000) {
        // spot check: distinct images for a sample of ranks
        const s = new Scatter(n, 12345);
        const seen = new Set<number>();
        for (let r = 0; r < 5000; r++) seen.add(s.page(r));
        expect(seen.size).toBe(5000);
        continue;
      }
      const s = new Scatter(n, 777);
      const seen = new Uint8Array(n);
      for (let r = 0; r < n; r++) seen[s.page(r)]!++;
      expect(seen.every((v) => v === 1)).toBe(true);
    }
  });
});

describe('workloads produce the distributions they claim', () => {
  const N = 100_000;

  it('uniform: every 1/16 of memory gets 1/16 of the touches (within 5%)', () => {
    const w = createWorkload('uniform', 4096, new Prng(5));
    const bins = new Array<number>(16).fill(0);
    for (let i = 0; i < N; i++) bins[w.next() >>> 8]!++;
    for (const b of bins) expect(Math.abs(b - N / 16)).toBeLessThan(N / 16 * 0.05);
  });

  it('hotset: 90% of touches land in a 5% hot set; the hot set is spread over memory', () => {
    const w = createWorkload('hotset', 20_000, new Prng(6)) as HotSetWorkload;
    expect(w.hotPages).toBe(1000);
    let hot = 0;
    const distinctHot = new Set<number>();
    for (let i = 0; i < N; i++) {
      const p = w.next();
      if (w.isHot(p)) { hot++; distinctHot.add(p); }
    }
    expect(hot / N).toBeGreaterThan(0.88);
    expect(hot / N).toBeLessThan(0.92);
    expect(distinctHot.size).toBe(1000); // 90k touches over 1000 pages reach all of them
    let inFirstHalf = 0;
    for (let p = 0; p < 10_000; p++) if (w.isHot(p)) inFirstHalf++;
    expect(inFirstHalf).toBeGreaterThan(400);
    expect(inFirstHalf).toBeLessThan(600);
  });

  it('hotset: configurable fractions (20% of pages take 50% of touches)', () => {
    const w = createWorkload('hotset', 1000, new Prng(7), { hotFraction: 0.2, hotWriteFraction: 0.5 }) as HotSetWorkload;
    expect(w.hotPages).toBe(200);
    let hot = 0;
    for (let i = 0; i < N; i++) if (w.isHot(w.next())) hot++;
    expect(hot / N).toBeGreaterThan(0.48);
    expect(hot / N).toBeLessThan(0.52);
  });

  it('zipf s=1: P(rank 1) = 1/H(n), rank 1 twice as frequent as rank 2, thrice rank 3', () => {
    const n = 10_000;
    const w = createWorkload('zipf', n, new Prng(8)) as ZipfWorkload;
    const counts = new Uint32Array(n + 1);
    let bad = 0;
    for (let i = 0; i < N; i++) {
      const r = w.nextRank();
      if (r >= 1 && r <= n) counts[r]!++;
      else bad++;
    }
    expect(bad).toBe(0);
    let harmonic = 0;
    for (let k = 1; k <= n; k++) harmonic += 1 / k;
    const p1 = counts[1]! / N;
    expect(Math.abs(p1 - 1 / harmonic) / (1 / harmonic)).toBeLessThan(0.05);
    expect(counts[1]! / counts[2]!).toBeGreaterThan(1.8);
    expect(counts[1]! / counts[2]!).toBeLessThan(2.2);
    expect(counts[1]! / counts[3]!).toBeGreaterThan(2.7);
    expect(counts[1]! / counts[3]!).toBeLessThan(3.3);
    // the top 100 ranks carry H(100)/H(n) of the mass
    let top = 0;
    for (let k = 1; k <= 100; k++) top += counts[k]!;
    let h100 = 0;
    for (let k = 1; k <= 100; k++) h100 += 1 / k;
    expect(Math.abs(top / N - h100 / harmonic)).toBeLessThan(0.02);
  });

  it('zipf s=1.5 and s=0.5 follow r^-s; pages are the ranks scattered', () => {
    for (const s of [0.5, 1.5]) {
      const n = 5000;
      const w = createWorkload('zipf', n, new Prng(9), { zipfS: s }) as ZipfWorkload;
      const counts = new Uint32Array(n + 1);
      for (let i = 0; i < N; i++) counts[w.nextRank()]!++;
      let z = 0;
      for (let k = 1; k <= n; k++) z += k ** -s;
      for (const k of [1, 2, 4]) {
        const want = k ** -s / z;
        expect(Math.abs(counts[k]! / N - want) / want).toBeLessThan(0.1);
      }
      // next() maps ranks through the scatter: the most popular page is pageOfRank(1)
      const pages = new Map<number, number>();
      for (let i = 0; i < 20_000; i++) { const p = w.next(); pages.set(p, (pages.get(p) ?? 0) + 1); }
      const best = [...pages.entries()].sort((a, b) => b[1] - a[1])[0]![0];
      expect(best).toBe(w.pageOfRank(1));
    }
  });

  it('zipf s=0 is uniform', () => {
    const w = createWorkload('zipf', 16, new Prng(10), { zipfS: 0 }) as ZipfWorkload;
    const counts = new Uint32Array(17);
    for (let i = 0; i < 32_000; i++) counts[w.nextRank()]!++;
    for (let k = 1; k <= 16; k++) expect(Math.abs(counts[k]! - 2000)).toBeLessThan(200);
  });

  it('sequential scans with a stride and wraps', () => {
    const w = createWorkload('sequential', 10, new Prng(1), { stride: 3, startPage: 8 }) as SequentialWorkload;
    expect(Array.from({ length: 6 }, () => w.next())).toEqual([8, 1, 4, 7, 0, 3]);
    const s = createWorkload('sequential', 5, new Prng(1));
    expect(Array.from({ length: 7 }, () => s.next())).toEqual([0, 1, 2, 3, 4, 0, 1]);
  });

  it('idle touches only its housekeeping pages', () => {
    const w = createWorkload('idle', 100_000, new Prng(11), { idlePages: 8 }) as IdleWorkload;
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) seen.add(w.next());
    expect(seen.size).toBe(8);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from(w.pages).sort((a, b) => a - b));
  });

  it('rejects bad parameters with INVALID_ARGUMENT', () => {
    const r = new Prng(1);
    expect(code(() => createWorkload('hotset', 10, r, { hotFraction: 0 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => createWorkload('hotset', 10, r, { hotWriteFraction: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => createWorkload('zipf', 10, r, { zipfS: -1 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => createWorkload('sequential', 10, r, { stride: 0 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => createWorkload('sequential', 10, r, { startPage: 10 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => createWorkload('bogus' as 'idle', 10, r))).toBe('INVALID_ARGUMENT');
    expect(code(() => createWorkload('uniform', 0, r))).toBe('INVALID_ARGUMENT');
  });
});

describe('fillInitial', () => {
  const isZero = (v: Uint8Array): boolean => v.every((b) => b === 0);

  it('mixed: about 20% zero pages, 25% text, 5% duplicates; deterministic per seed', () => {
    const a = GuestMemory.external(new ArrayBuffer(4096 * 4096));
    const stats = fillInitial(a, 'mixed', 21);
    const total = Object.values(stats).reduce((x, y) => x + y, 0);
    expect(total).toBe(4096);
    expect(stats.zero / total).toBeGreaterThan(0.17);
    expect(stats.zero / total).toBeLessThan(0.23);
    expect(stats.text / total).toBeGreaterThan(0.22);
    expect(stats.duplicate / total).toBeGreaterThan(0.03);
    let zeros = 0;
    for (let p = 0; p < 4096; p++) if (isZero(a.page(p))) zeros++;
    expect(zeros).toBeGreaterThanOrEqual(stats.zero); // duplicates of zero pages add a few
    expect(zeros / 4096).toBeLessThan(0.26);
    const b = GuestMemory.external(new ArrayBuffer(4096 * 4096));
    fillInitial(b, 'mixed', 21);
    expect(Buffer.compare(a.pages(0, 4096)!, b.pages(0, 4096)!)).toBe(0);
    const c = GuestMemory.external(new ArrayBuffer(4096 * 4096));
    fillInitial(c, 'mixed', 22);
    expect(Buffer.compare(a.pages(0, 4096)!, c.pages(0, 4096)!)).not.toBe(0);
  });

  it('single-class fills: text is printable ASCII, random has no zero page, zero is zero', () => {
    const m = GuestMemory.external(new ArrayBuffer(64 * 4096));
    fillInitial(m, 'text', 1);
    const bytes = m.pages(0, 64)!;
    expect(bytes.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127))).toBe(true);
    fillInitial(m, 'random', 1);
    for (let p = 0; p < 64; p++) expect(isZero(m.page(p))).toBe(false);
    fillInitial(m, 'zero', 1);
    expect(isZero(m.pages(0, 64)!)).toBe(true);
    fillInitial(m, 'struct', 1);
    // records: 16 bytes of zero padding at the end of each 64-byte record
    expect(isZero(m.page(0).subarray(48, 64))).toBe(true);
    expect(code(() => fillInitial(m, 'bogus' as 'zero', 1))).toBe('INVALID_ARGUMENT');
  });

  it('writes every page across region boundaries and in core memory layouts alike', () => {
    const ext = GuestMemory.external([new ArrayBuffer(3 * 4096), new ArrayBuffer(5 * 4096)]);
    const one = GuestMemory.external(new ArrayBuffer(8 * 4096));
    fillInitial(ext, 'random', 4);
    fillInitial(one, 'random', 4);
    for (let p = 0; p < 8; p++) expect(Buffer.compare(ext.page(p), one.page(p))).toBe(0);
  });
});

describe('ContentGenerator writes', () => {
  it('a word write changes at most its 8 bytes; a line at most 64', () => {
    const gen = new ContentGenerator(4096, new Prng(12));
    const buf = new Uint8Array(4096);
    const outside = (a: Uint8Array, b: Uint8Array, lo: number, hi: number): number => {
      let d = 0;
      for (let j = 0; j < a.length; j++) if ((j < lo || j >= hi) && a[j] !== b[j]) d++;
      return d;
    };
    let changedInside = 0;
    for (let i = 0; i < 200; i++) {
      const before = buf.slice();
      gen.writeSpan(buf, 128, 8);
      expect(outside(before, buf, 128, 136)).toBe(0);
      if (outside(before, buf, 0, 0) > 0) changedInside++;
    }
    expect(changedInside).toBeGreaterThan(150); // most word writes change something
    const before = buf.slice();
    gen.writeSpan(buf, 1024, 64);
    expect(outside(before, buf, 1024, 1088)).toBe(0);
  });
});

describe('browser safety', () => {
  it('src/sim (but corpus-node.ts) and the dirty logs use no node:*, Buffer or process', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const root = join(__dirname, '../src');
    const files = readdirSync(join(root, 'sim')).filter((f) => f.endsWith('.ts') && f !== 'corpus-node.ts').map((f) => join(root, 'sim', f));
    files.push(join(root, 'memory/dirty-log.ts'), join(root, 'memory/hash-scan-log.ts'));
    for (const f of files) {
      const src = readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      expect(src, f).not.toMatch(/from '(node:|fs|path)|\bBuffer\b|\bprocess\./);
    }
  });
});
