/**
 * A small seeded pseudo-random generator for simulations: xoshiro128** (Blackman and Vigna,
 * "Scrambled linear pseudorandom number generators", 2018) seeded through splitmix32, so that any
 * 32-bit seed (including 0) gives a well-mixed non-zero state. Deterministic across platforms:
 * 32-bit integer arithmetic only (`Math.imul`, shifts).
 *
 * Not for cryptography.
 */

/** Seeded xoshiro128** generator. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /**
   * @param seed any number; its low 32 bits select the stream
   */
  constructor(seed: number) {
    let s = seed >>> 0;
    // splitmix32 (a 32-bit variant of Steele, Lea and Flood's SplitMix) fills the state.
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** Next unsigned 32-bit integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  float(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6)) / 9007199254740992;
  }

  /**
   * Uniform integer in [0, n) for n up to 2^53 (float-based; bias below 2^-20 for n < 2^32).
   * @param n exclusive upper bound, > 0
   */
  below(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
