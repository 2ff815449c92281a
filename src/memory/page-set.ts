/**
 * A set of guest page indices as a bitmap (one bit per page), with ordered extraction: dirty and
 * pending pages in the source, missing pages in post-copy, pages of a round in the models.
 */

/** A set of page indices as a bitmap, with ordered extraction. */
export class PageSet {
  readonly words: Uint32Array;
  private n = 0;
  constructor(readonly pageCount: number) {
    this.words = new Uint32Array((pageCount + 31) >>> 5);
  }
  get size(): number {
    return this.n;
  }
  has(p: number): boolean {
    return (this.words[p >>> 5]! & (1 << (p & 31))) !== 0;
  }
  add(p: number): void {
    const w = p >>> 5;
    const bit = 1 << (p & 31);
    const old = this.words[w]!;
    if ((old & bit) === 0) { this.words[w] = old | bit; this.n++; }
  }
  delete(p: number): void {
    const w = p >>> 5;
    const bit = 1 << (p & 31);
    const old = this.words[w]!;
    if ((old & bit) !== 0) { this.words[w] = old & ~bit; this.n--; }
  }
  addAll(list: ArrayLike<number>, start = 0, end = list.length): void {
    for (let i = start; i < end; i++) this.add(list[i]!);
  }
  fill(): void {
    this.words.fill(0xffffffff);
    const tail = this.pageCount & 31;
    if (tail) this.words[this.words.length - 1] = (1 << tail) - 1 >>> 0;
    this.n = this.pageCount;
  }
  clear(): void {
    this.words.fill(0);
    this.n = 0;
  }
  /** All members in ascending order; the set is cleared. */
  drain(): Uint32Array {
    const out = new Uint32Array(this.n);
    let k = 0;
    const words = this.words;
    for (let w = 0; w < words.length; w++) {
      let x = words[w]!;
      while (x !== 0) {
        const t = x & -x;
        out[k++] = (w << 5) + (31 - Math.clz32(t));
        x ^= t;
      }
      words[w] = 0;
    }
    this.n = 0;
    return out;
  }
}
