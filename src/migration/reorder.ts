/**
 * Dirty-frequency page reordering (Svärd et al., "Dynamic page transfer reordering", 2014):
 * keep per-page dirty counts across dirty syncs, send each round's pages in ascending order of
 * how often they were dirtied (rarely written pages first: they are least likely to be dirtied
 * again before the round ends), and hold back the hottest pages, those dirtied at each of the
 * last `holdRounds` syncs, until the final (stop-and-copy) round: sending them earlier is wasted,
 * they will be dirty again.
 *
 * Invariant (property-tested): every page given to `order` is either returned to send or
 * returned as held (the caller keeps it pending), never both, never dropped; the final round
 * holds nothing back.
 *
 * Cost: 2 bytes (count) + 4 bytes (round bitmap of the last 32 syncs) per page; ordering is a
 * counting sort over the saturated counts, O(pages in the round + distinct counts).
 */
import { PagewireError, ErrorCode } from '../errors.js';

/** Options of {@link DirtyFrequencyOrder}. */
export interface ReorderOptions {
  /**
   * A page dirtied at each of the last `holdRounds` syncs is hot and held back until the final
   * round (default 2; 0 disables holding back).
   */
  holdRounds?: number;
  /** Never hold back more than this fraction of a round's pages (default 0.5). */
  maxHeldFraction?: number;
}

/** A round's pages in sending order and the pages held back. */
export interface OrderedRound {
  send: Uint32Array;
  held: Uint32Array;
}

const MAX_COUNT = 0xffff;

/** Per-page dirty statistics and the round order they give. */
export class DirtyFrequencyOrder {
  /** Times each page was found dirty (saturating at 65535). */
  readonly counts: Uint16Array;
  /** Bit k set: the page was dirty at the k-th most recent sync (bit 0 = the last one). */
  readonly recent: Uint32Array;
  readonly holdRounds: number;
  readonly maxHeldFraction: number;
  private syncs = 0;
  private hist = new Uint32Array(256);

  /**
   * @param pageCount pages of the guest
   * @throws PagewireError INVALID_ARGUMENT
   */
  constructor(readonly pageCount: number, options: ReorderOptions = {}) {
    const hold = options.holdRounds ?? 2;
    const frac = options.maxHeldFraction ?? 0.5;
    if (!Number.isInteger(hold) || hold < 0 || hold > 32) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `holdRounds must be an integer in 0..32, got ${String(hold)}`);
    if (!(frac >= 0 && frac <= 1)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `maxHeldFraction must be in 0..1, got ${String(frac)}`);
    this.counts = new Uint16Array(pageCount);
    this.recent = new Uint32Array(pageCount);
    this.holdRounds = hold;
    this.maxHeldFraction = frac;
  }

  /** Dirty syncs seen. */
  get syncCount(): number {
    return this.syncs;
  }

  /**
   * Record one dirty sync: the pages found dirty.
   * Ages the recent-round bitmaps of all pages (one shift each), then marks these.
   */
  noteDirty(pages: ArrayLike<number>): void {
    const recent = this.recent;
    for (let p = 0; p < recent.length; p++) recent[p] = recent[p]! << 1;
    const counts = this.counts;
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      if (counts[p]! < MAX_COUNT) counts[p]!++;
      recent[p] = recent[p]! | 1;
    }
    this.syncs++;
  }

  /** Whether page `p` was dirty at each of the last `holdRounds` syncs. */
  isHot(p: number): boolean {
    if (this.holdRounds === 0 || this.syncs < this.holdRounds) return false;
    const mask = this.holdRounds === 32 ? 0xffffffff : (1 << this.holdRounds) - 1;
    return ((this.recent[p]! & mask) >>> 0) === mask >>> 0;
  }

  /**
   * Order one round's pages: ascending dirty count (ties by page index, as given); hot pages are
   * held back unless `final`.
   * @param indices the round's pages (ascending, as drained from the pending set)
   * @param final the stop-and-copy round: nothing is held back
   */
  order(indices: Uint32Array, final: boolean): OrderedRound {
    const n = indices.length;
    const counts = this.counts;
    let heldCount = 0;
    const holding = !final && this.holdRounds > 0 && this.syncs >= this.holdRounds;
    const maxHeld = Math.floor(n * this.maxHeldFraction);
    // histogram of counts over the pages to send (hot pages counted apart)
    let maxC = 0;
    for (let i = 0; i < n; i++) { const c = counts[indices[i]!]!; if (c > maxC) maxC = c; }
    if (this.hist.length < maxC + 2) this.hist = new Uint32Array(Math.max(maxC + 2, this.hist.length * 2));
    const hist = this.hist;
    hist.fill(0, 0, maxC + 2);
    const hot = holding ? new Uint8Array(n) : null;
    if (hot) {
      for (let i = 0; i < n && heldCount < maxHeld; i++) {
        if (this.isHot(indices[i]!)) { hot[i] = 1; heldCount++; }
      }
    }
    for (let i = 0; i < n; i++) if (!hot || hot[i] === 0) hist[counts[indices[i]!]! + 1]!++;
    for (let c = 1; c <= maxC + 1; c++) hist[c]! += hist[c - 1]!;
    const send = new Uint32Array(n - heldCount);
    const held = new Uint32Array(heldCount);
    let h = 0;
    for (let i = 0; i < n; i++) {
      const p = indices[i]!;
      if (hot && hot[i] === 1) { held[h++] = p; continue; }
      send[hist[counts[p]!]!++] = p;
    }
    return { send, held };
  }
}
