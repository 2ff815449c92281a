/**
 * Workloads of simulated guests: which page the guest touches next.
 *
 * - `idle`: a handful of housekeeping pages (timer ticks, a scheduler run queue); the guest uses a
 *   low fixed rate for it (see `SimulatedGuest`).
 * - `uniform`: every page equally likely.
 * - `hotset`: `hotWriteFraction` of the touches (default 0.9) go to a hot set of `hotFraction` of
 *   the pages (default 0.05), the rest to the other (cold) pages, uniformly within each set.
 * - `zipf`: page popularity follows Zipf's law, P(rank r) proportional to r^-s (default s = 1),
 *   sampled in O(1) time and memory by rejection-inversion (Hörmann and Derflinger, "Rejection-
 *   inversion to generate variates from monotone discrete distributions", ACM TOMACS 6(3), 1996).
 * - `sequential`: a scan through memory, `stride` pages per step, wrapping around.
 *
 * Hot pages and popularity ranks are scattered over memory by a fixed bijection
 * rank -> (rank * M + offset) mod pageCount ({@link Scatter}), not clustered at low addresses, as
 * a guest's hot data is spread over its RAM.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Prng } from './prng.js';

/** Workload kinds that choose pages (corpus replay is driven by snapshots instead). */
export type WorkloadKind = 'idle' | 'uniform' | 'hotset' | 'zipf' | 'sequential';

/** All {@link WorkloadKind}s. */
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ['idle', 'uniform', 'hotset', 'zipf', 'sequential'];

/** Parameters of the workloads (each kind reads its own). */
export interface WorkloadOptions {
  /** hotset: share of pages in the hot set, in (0, 1] (default 0.05). */
  hotFraction?: number;
  /** hotset: share of touches that go to the hot set, in [0, 1] (default 0.9). */
  hotWriteFraction?: number;
  /** zipf: exponent s >= 0 (default 1; 0 is uniform). */
  zipfS?: number;
  /** sequential: pages advanced per touch (default 1). */
  stride?: number;
  /** sequential: first page (default 0). */
  startPage?: number;
  /** idle: housekeeping pages touched (default 16, at most the page count). */
  idlePages?: number;
}

/** A page chooser. */
export interface Workload {
  readonly kind: WorkloadKind;
  readonly pageCount: number;
  /** The next page the guest touches. */
  next(): number;
}

/**
 * rank -> page bijection on [0, n): (rank * m + offset) mod n, with m the integer nearest
 * n * 0.618... (the golden ratio's fractional part: consecutive ranks land far apart) that is
 * coprime with n. The product is formed in 16-bit halves so it stays exact for n <= 2^32.
 */
export class Scatter {
  readonly pageCount: number;
  private readonly mHi: number;
  private readonly mLo: number;
  private readonly offset: number;
  constructor(pageCount: number, offset: number) {
    this.pageCount = pageCount;
    let m = Math.max(1, Math.round(pageCount * 0.6180339887498949));
    while (gcd(m, pageCount) !== 1) m++;
    m %= pageCount;
    this.mHi = Math.floor(m / 65536);
    this.mLo = m % 65536;
    this.offset = offset % pageCount;
  }
  /** Page of rank `rank` (0-based, below pageCount). */
  page(rank: number): number {
    const n = this.pageCount;
    const hi = ((rank * this.mHi) % n) * 65536; // < 2^48
    return (hi + rank * this.mLo + this.offset) % n;
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) { const t = a % b; a = b; b = t; }
  return a;
}

function checkFraction(v: number, name: string, zeroOk: boolean): number {
  if (!(typeof v === 'number' && (zeroOk ? v >= 0 : v > 0) && v <= 1)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${name} must be in ${zeroOk ? '[0, 1]' : '(0, 1]'}, got ${String(v)}`);
  }
  return v;
}

/** Uniformly random pages. */
export class UniformWorkload implements Workload {
  readonly kind = 'uniform';
  constructor(readonly pageCount: number, private readonly rng: Prng) {}
  next(): number {
    return this.rng.below(this.pageCount);
  }
}

/** A hot set taking most touches; the cold pages take the rest. */
export class HotSetWorkload implements Workload {
  readonly kind = 'hotset';
  /** Pages in the hot set (at least 1). */
  readonly hotPages: number;
  readonly hotWriteFraction: number;
  private readonly scatter: Scatter;
  private hotFlags: Uint8Array | null = null;

  constructor(readonly pageCount: number, private readonly rng: Prng, options: WorkloadOptions = {}) {
    const f = checkFraction(options.hotFraction ?? 0.05, 'hotFraction', false);
    this.hotWriteFraction = checkFraction(options.hotWriteFraction ?? 0.9, 'hotWriteFraction', true);
    this.hotPages = Math.min(pageCount, Math.max(1, Math.round(pageCount * f)));
    this.scatter = new Scatter(pageCount, rng.u32());
  }

  next(): number {
    const hot = this.hotPages;
    const cold = this.pageCount - hot;
    const rank = cold === 0 || this.rng.float() < this.hotWriteFraction ? this.rng.below(hot) : hot + this.rng.below(cold);
    return this.scatter.page(rank);
  }

  /** Whether `page` is in the hot set. */
  isHot(page: number): boolean {
    if (!this.hotFlags) {
      this.hotFlags = new Uint8Array(this.pageCount);
      for (let r = 0; r < this.hotPages; r++) this.hotFlags[this.scatter.page(r)] = 1;
    }
    return this.hotFlags[page] === 1;
  }
}

/** Zipf-distributed page popularity. */
export class ZipfWorkload implements Workload {
  readonly kind = 'zipf';
  readonly s: number;
  private readonly scatter: Scatter;
  private readonly hX1: number;
  private readonly hN: number;
  private readonly squeeze: number;

  constructor(readonly pageCount: number, private readonly rng: Prng, options: WorkloadOptions = {}) {
    const s = options.zipfS ?? 1;
    if (!(typeof s === 'number' && s >= 0 && s <= 20)) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `zipfS must be in [0, 20], got ${String(s)}`);
    }
    this.s = s;
    this.scatter = new Scatter(pageCount, rng.u32());
    // Rejection-inversion set-up: H is an antiderivative of h(x) = x^-s.
    this.hX1 = this.bigH(1.5) - 1;
    this.hN = this.bigH(pageCount + 0.5);
    this.squeeze = 2 - this.bigHInv(this.bigH(2.5) - this.h(2));
  }

  /** Page of popularity rank `rank` (1 = most popular). */
  pageOfRank(rank: number): number {
    return this.scatter.page(rank - 1);
  }

  /** A rank in [1, pageCount], P(r) proportional to r^-s. */
  nextRank(): number {
    const n = this.pageCount;
    for (;;) {
      const u = this.hN + this.rng.float() * (this.hX1 - this.hN);
      const x = this.bigHInv(u);
      let k = Math.round(x);
      if (k < 1) k = 1;
      else if (k > n) k = n;
      if (k - x <= this.squeeze || u >= this.bigH(k + 0.5) - this.h(k)) return k;
    }
  }

  next(): number {
    return this.scatter.page(this.nextRank() - 1);
  }

  private h(x: number): number {
    return Math.exp(-this.s * Math.log(x));
  }

  /** H(x) = (x^(1-s) - 1) / (1-s), continuous at s = 1 (ln x). */
  private bigH(x: number): number {
    const lx = Math.log(x);
    return expm1OverX((1 - this.s) * lx) * lx;
  }

  /** Inverse of H. */
  private bigHInv(u: number): number {
    let t = u * (1 - this.s);
    if (t < -1) t = -1; // numerical guard: H's range ends at -1/(1-s) for s > 1
    return Math.exp(log1pOverX(t) * u);
  }
}

/** expm1(x) / x, 1 at 0. */
function expm1OverX(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x / 2 + (x * x) / 6;
}

/** log1p(x) / x, 1 at 0. */
function log1pOverX(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x / 2 + (x * x) / 3;
}

/** A sequential scan. */
export class SequentialWorkload implements Workload {
  readonly kind = 'sequential';
  private cursor: number;
  private readonly stride: number;
  constructor(readonly pageCount: number, options: WorkloadOptions = {}) {
    const stride = options.stride ?? 1;
    const start = options.startPage ?? 0;
    if (!Number.isInteger(stride) || stride < 1) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `stride must be a whole number >= 1, got ${String(stride)}`);
    if (!Number.isInteger(start) || start < 0 || start >= pageCount) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `startPage must be a page index, got ${String(start)}`);
    this.stride = stride % pageCount;
    this.cursor = start;
  }
  next(): number {
    const p = this.cursor;
    this.cursor = (this.cursor + this.stride) % this.pageCount;
    return p;
  }
}

/** A few housekeeping pages. */
export class IdleWorkload implements Workload {
  readonly kind = 'idle';
  /** The housekeeping pages. */
  readonly pages: Uint32Array;
  constructor(readonly pageCount: number, private readonly rng: Prng, options: WorkloadOptions = {}) {
    const k = options.idlePages ?? 16;
    if (!Number.isInteger(k) || k < 1) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `idlePages must be a whole number >= 1, got ${String(k)}`);
    const n = Math.min(k, pageCount);
    const scatter = new Scatter(pageCount, rng.u32());
    this.pages = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.pages[i] = scatter.page(i);
  }
  next(): number {
    return this.pages[this.rng.below(this.pages.length)]!;
  }
}

/**
 * Create a workload.
 * @param kind which pages to touch
 * @param pageCount pages of guest memory
 * @param rng the random stream (the workload draws from it)
 * @param options kind-specific parameters
 * @throws PagewireError INVALID_ARGUMENT
 */
export function createWorkload(kind: WorkloadKind, pageCount: number, rng: Prng, options: WorkloadOptions = {}): Workload {
  if (!Number.isInteger(pageCount) || pageCount < 1) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `page count must be a whole number >= 1, got ${String(pageCount)}`);
  switch (kind) {
    case 'idle': return new IdleWorkload(pageCount, rng, options);
    case 'uniform': return new UniformWorkload(pageCount, rng);
    case 'hotset': return new HotSetWorkload(pageCount, rng, options);
    case 'zipf': return new ZipfWorkload(pageCount, rng, options);
    case 'sequential': return new SequentialWorkload(pageCount, options);
    default: throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `workload must be one of ${WORKLOAD_KINDS.join(', ')}, got "${String(kind)}"`);
  }
}
