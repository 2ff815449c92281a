/**
 * Realistic page content for simulated guests, so that zero-page, delta and compression figures
 * mean something (random noise compresses to nothing, zeros to everything; real RAM is a mix).
 *
 * Page classes:
 * - `zero`: all zero bytes (free memory; 19-21% of the vm-redis corpus).
 * - `text`: ASCII text (log lines, HTTP requests, key names, prose), a window of a generated text
 *   corpus with a few numbers written over it, so pages are similar but not identical.
 * - `struct`: arrays of 64-byte records: ids, small integers, flags, 64-bit user-space pointers
 *   (0x00007fxx_xxxxxxxx, 8-byte aligned), zero padding.
 * - `runs`: runs of repeated bytes (8..512 bytes each): bitmaps, pre-filled buffers, page tables.
 * - `random`: uniformly random bytes (compressed or encrypted data, hash tables of digests).
 *
 * Guest writes (`writeSpan`) keep that character: word and cache-line writes bump counters, store
 * pointers and small integers; longer runs copy text, records or a repeated byte; whole-page
 * writes draw a fresh page of a random class.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { Prng } from './prng.js';

/** What a page holds. */
export type PageClass = 'zero' | 'text' | 'struct' | 'runs' | 'random';

/** Share of each page class (need not sum to 1; normalised). `duplicate` copies an earlier page. */
export type ContentMix = Partial<Record<PageClass | 'duplicate', number>>;

/** Initial fills of {@link fillInitial}: a realistic `mixed` image, or one class throughout. */
export type FillKind = 'mixed' | 'zero' | 'text' | 'struct' | 'runs' | 'random';

/** The mix of a `mixed` initial image. */
export const INITIAL_MIX: Readonly<ContentMix> = { zero: 0.2, text: 0.25, struct: 0.3, runs: 0.1, random: 0.1, duplicate: 0.05 };
/** The mix of whole-page guest writes. */
export const PAGE_WRITE_MIX: Readonly<ContentMix> = { zero: 0.1, text: 0.3, struct: 0.35, runs: 0.1, random: 0.15 };

const CLASSES = ['zero', 'text', 'struct', 'runs', 'random', 'duplicate'] as const;
const TEXT_BYTES = 64 * 1024;

const WORDS = [
  'the', 'of', 'and', 'to', 'in', 'is', 'that', 'for', 'it', 'as', 'was', 'with', 'be', 'by', 'on', 'not',
  'memory', 'page', 'server', 'client', 'request', 'response', 'error', 'value', 'key', 'user', 'session',
  'cache', 'index', 'table', 'record', 'buffer', 'thread', 'worker', 'queue', 'timeout', 'connection',
  'kernel', 'process', 'module', 'config', 'status', 'update', 'delete', 'insert', 'select', 'from', 'where',
];
const LINES = [
  'GET /api/v1/items/{n} HTTP/1.1\r\nHost: shop.example.com\r\nAccept: application/json\r\n\r\n',
  '{t} INFO worker[{n}]: processed request id={n} in {n} ms\n',
  'user:{n} {"name":"{w}","visits":{n},"active":true}\n',
  '<div class="item" data-id="{n}"><span>{w} {w}</span></div>\n',
  '{t} WARN cache: evicted {n} keys from {w} ({n} bytes)\n',
];

/** Generates page content and guest writes from one random stream. */
export class ContentGenerator {
  readonly pageSize: number;
  private readonly rng: Prng;
  private readonly text: Uint8Array;
  private readonly ptrHi: number;
  private readonly ptrBase: number;
  private recordId = 1;
  /** One page of scratch, as words and bytes (content is built in words, then copied). */
  private readonly scratch32: Uint32Array;
  private readonly scratch8: Uint8Array;

  /**
   * @param pageSize bytes per page
   * @param rng the random stream
   */
  constructor(pageSize: number, rng: Prng) {
    this.pageSize = pageSize;
    this.rng = rng;
    this.text = makeText(rng, TEXT_BYTES + pageSize);
    this.ptrHi = 0x7f00 + (rng.u32() & 0xff); // 0x00007fXX_........: a user-space heap
    this.ptrBase = rng.u32() & 0xf0000000;
    this.scratch32 = new Uint32Array(Math.ceil(pageSize / 4));
    this.scratch8 = new Uint8Array(this.scratch32.buffer);
  }

  /** A class drawn from `mix`. */
  pickClass(mix: Readonly<ContentMix>): PageClass | 'duplicate' {
    let total = 0;
    for (const c of CLASSES) total += mix[c] ?? 0;
    let x = this.rng.float() * total;
    for (const c of CLASSES) {
      const w = mix[c] ?? 0;
      if (x < w) return c;
      x -= w;
    }
    return 'zero';
  }

  /** Overwrite the page at `buf[off .. off + pageSize)` with fresh content of class `cls`. */
  fillPage(buf: Uint8Array, off: number, cls: PageClass): void {
    const n = this.pageSize;
    switch (cls) {
      case 'zero':
        buf.fill(0, off, off + n);
        return;
      case 'text': {
        const at = this.rng.below(TEXT_BYTES);
        buf.set(this.text.subarray(at, at + n), off);
        // a few numbers written over the window make the page unique
        for (let i = 0; i < 4; i++) this.writeDecimal(buf, off + this.rng.below(n - 12), this.rng.below(1_000_000));
        return;
      }
      case 'struct':
        this.writeRecords(buf, off, n);
        return;
      case 'runs':
        this.writeRuns(buf, off, n);
        return;
      case 'random':
        this.writeRandom(buf, off, n);
        return;
    }
  }

  /**
   * A guest write of `len` bytes at `buf[off]` (`off` and `len` multiples of 8, inside one page).
   * Word and cache-line writes (<= 64 bytes) change words the way running code does (counters,
   * pointers, small integers, zeros); longer writes copy text, records or a repeated byte; a
   * whole-page write draws a page from {@link PAGE_WRITE_MIX}.
   */
  writeSpan(buf: Uint8Array, off: number, len: number): void {
    if (len >= this.pageSize) {
      const cls = this.pickClass(PAGE_WRITE_MIX);
      this.fillPage(buf, off, cls === 'duplicate' ? 'struct' : cls);
      return;
    }
    if (len <= 64) {
      for (let o = off; o < off + len; o += 8) this.writeWord(buf, o);
      return;
    }
    const r = this.rng.below(20);
    if (r < 9) {
      const at = this.rng.below(TEXT_BYTES);
      buf.set(this.text.subarray(at, at + len), off);
    } else if (r < 16) {
      this.writeRecords(buf, off, len);
    } else {
      buf.fill(this.rng.chance(0.5) ? 0 : this.rng.u32() & 0xff, off, off + len);
    }
  }

  /** One 8-byte word as running code changes it. */
  private writeWord(buf: Uint8Array, o: number): void {
    const r = this.rng.u32() & 15;
    if (r < 7) {
      put32(buf, o, get32(buf, o) + 1); // a counter
    } else if (r < 11) {
      this.writePointer(buf, o);
    } else if (r < 14) {
      put32(buf, o, this.rng.u32() & 0xfff);
      put32(buf, o + 4, 0);
    } else {
      put32(buf, o, 0);
      put32(buf, o + 4, 0);
    }
  }

  private writePointer(buf: Uint8Array, o: number): void {
    put32(buf, o, (this.ptrBase + (this.rng.u32() & 0x0ffffff8)) >>> 0);
    put32(buf, o + 4, this.ptrHi);
  }

  /** 64-byte records: id, flags, two pointers, four small integers, 16 bytes of zero padding. */
  private writeRecords(buf: Uint8Array, off: number, len: number): void {
    const whole = len & ~63;
    if (whole > 0) {
      // built as u32 words in a scratch page, then copied (byte stores cost 4x more)
      const w = this.scratch32;
      const rng = this.rng;
      for (let i = 0; i < whole >>> 2; i += 16) {
        w[i] = this.recordId++;
        w[i + 1] = rng.u32() & 0x3;
        w[i + 2] = (this.ptrBase + (rng.u32() & 0x0ffffff8)) >>> 0;
        w[i + 3] = this.ptrHi;
        const r = rng.u32();
        const nullPtr = (r & 7) < 2; // about 25% null second pointers
        w[i + 4] = nullPtr ? 0 : (this.ptrBase + (r & 0x0ffffff8)) >>> 0;
        w[i + 5] = nullPtr ? 0 : this.ptrHi;
        const a = rng.u32();
        const b = rng.u32();
        w[i + 6] = a & 0x3ff;
        w[i + 7] = (a >>> 10) & 0x3ff;
        w[i + 8] = b & 0x3ff;
        w[i + 9] = (b >>> 10) & 0x3ff;
        w[i + 10] = b >>> 16;
        w[i + 11] = 0;
        w[i + 12] = 0;
        w[i + 13] = 0;
        w[i + 14] = 0;
        w[i + 15] = 0;
      }
      buf.set(this.scratch8.subarray(0, whole), off);
    }
    for (let o = off + whole; o < off + len; o += 8) this.writeWord(buf, o);
  }

  /** Uniform random bytes (a multiple of 4). */
  private writeRandom(buf: Uint8Array, off: number, len: number): void {
    const w = this.scratch32;
    // xorshift32 (Marsaglia 2003) seeded from the main stream: fast, and plenty for filler bytes
    let x = this.rng.u32() | 1;
    for (let i = 0; i < len >>> 2; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      w[i] = x;
    }
    buf.set(this.scratch8.subarray(0, len), off);
  }

  /** Runs of a repeated byte, 8..512 bytes each (lengths multiples of 8). */
  private writeRuns(buf: Uint8Array, off: number, len: number): void {
    const end = off + len;
    let o = off;
    while (o < end) {
      const run = Math.min(end - o, 8 * (1 + this.rng.below(64)));
      const r = this.rng.u32();
      const v = (r & 3) === 0 ? 0 : (r & 3) === 1 ? 0xff : (r >>> 8) & 0xff;
      buf.fill(v, o, o + run);
      o += run;
    }
  }

  /** ASCII decimal of `v` (at most 10 digits) at `buf[o]`. */
  private writeDecimal(buf: Uint8Array, o: number, v: number): void {
    let x = Math.floor(v);
    let digits = 1;
    for (let t = x; t >= 10; t = Math.floor(t / 10)) digits++;
    for (let i = digits - 1; i >= 0; i--) {
      buf[o + i] = 48 + (x % 10);
      x = Math.floor(x / 10);
    }
  }
}

/** Generated text: log lines, requests, JSON and prose. */
function makeText(rng: Prng, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let o = 0;
  let t = 1_700_000_000;
  const put = (s: string): void => {
    for (let i = 0; i < s.length && o < len; i++) out[o++] = s.charCodeAt(i) & 0x7f;
  };
  while (o < len) {
    if (rng.chance(0.6)) {
      const line = LINES[rng.below(LINES.length)]!;
      t += rng.below(3);
      put(line.replace(/\{(\w)\}/g, (_m, k: string) => (k === 'n' ? String(rng.below(100_000)) : k === 't' ? String(t) : WORDS[rng.below(WORDS.length)]!)));
    } else {
      const words = 5 + rng.below(15);
      for (let i = 0; i < words; i++) put((i ? ' ' : '') + WORDS[rng.below(WORDS.length)]!);
      put('.\n');
    }
  }
  return out;
}

function put32(buf: Uint8Array, o: number, v: number): void {
  buf[o] = v;
  buf[o + 1] = v >>> 8;
  buf[o + 2] = v >>> 16;
  buf[o + 3] = v >>> 24;
}

function get32(buf: Uint8Array, o: number): number {
  return (buf[o]! | (buf[o + 1]! << 8) | (buf[o + 2]! << 16) | (buf[o + 3]! << 24)) >>> 0;
}

/**
 * Locates pages of guest memory without allocating: after `locate(p)`, page p is
 * `buf[off .. off + pageSize)`. For core-resident memory `buf` is re-read on every `locate`
 * (a core allocation may have grown and detached the old view).
 */
export class PageCursor {
  /** The buffer holding the located page. */
  buf: Uint8Array;
  /** Byte offset of the located page in `buf`. */
  off = 0;
  private readonly memory: GuestMemory;
  private readonly views: Uint8Array[];
  private region = 0;

  constructor(memory: GuestMemory) {
    this.memory = memory;
    this.views = memory.core ? [] : memory.regionViews();
    this.buf = memory.core ? memory.core.u8() : this.views[0]!;
  }

  /** Point `buf`/`off` at page `page` (0 <= page < pageCount; not checked). */
  locate(page: number): void {
    const m = this.memory;
    if (m.core) {
      this.buf = m.core.u8();
      this.off = m.basePtr + page * m.pageSize;
      return;
    }
    const regions = m.regions;
    let r = this.region;
    let reg = regions[r]!;
    if (page < reg.firstPage || page >= reg.firstPage + reg.pageCount) {
      r = 0;
      while (page >= regions[r]!.firstPage + regions[r]!.pageCount) r++;
      this.region = r;
      reg = regions[r]!;
    }
    this.buf = this.views[r]!;
    this.off = (page - reg.firstPage) * m.pageSize;
  }
}

/** Counts of each page class written by {@link fillInitial}. */
export type FillStats = Record<PageClass | 'duplicate', number>;

/**
 * Fill guest memory with a realistic initial image (deterministic for a seed).
 * @param memory the memory to overwrite
 * @param kind `mixed` (default: {@link INITIAL_MIX}: 20% zero pages, text, records, runs, 10%
 *   random, 5% duplicates of earlier pages) or one class for every page
 * @param seed PRNG seed
 * @returns how many pages of each class were written
 * @throws PagewireError INVALID_ARGUMENT for an unknown kind
 */
export function fillInitial(memory: GuestMemory, kind: FillKind = 'mixed', seed = 1): FillStats {
  if (!['mixed', 'zero', 'text', 'struct', 'runs', 'random'].includes(kind)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `fill kind must be mixed, zero, text, struct, runs or random, got "${String(kind)}"`);
  }
  const rng = new Prng(seed);
  const gen = new ContentGenerator(memory.pageSize, rng);
  const cur = new PageCursor(memory);
  const stats: FillStats = { zero: 0, text: 0, struct: 0, runs: 0, random: 0, duplicate: 0 };
  const n = memory.pageCount;
  const ps = memory.pageSize;
  let lastNonZero = -1;
  for (let p = 0; p < n; p++) {
    let cls = kind === 'mixed' ? gen.pickClass(INITIAL_MIX) : kind;
    cur.locate(p);
    if (cls === 'duplicate') {
      if (lastNonZero < 0) cls = 'struct';
      else {
        const src = lastNonZero - rng.below(Math.min(lastNonZero + 1, 64));
        const dst = cur.buf;
        const off = cur.off;
        cur.locate(src);
        dst.set(cur.buf.subarray(cur.off, cur.off + ps), off);
        stats.duplicate++;
        lastNonZero = p;
        continue;
      }
    }
    gen.fillPage(cur.buf, cur.off, cls);
    stats[cls]++;
    if (cls !== 'zero') lastNonZero = p;
  }
  return stats;
}
