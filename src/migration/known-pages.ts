/**
 * Skip pages the target already has (Gustafsson's case: a target holding an earlier snapshot of
 * the guest, or a disk-backed page cache). The source asks for it in HELLO
 * (`options.knownPages: true`); right after WELCOME the target answers with KNOWN_PAGES frames
 * listing the non-zero pages it holds with two independent 64-bit hashes of each; the source
 * hashes its own pages the same two ways and does not send, in round 0, the pages whose two
 * hashes both match.
 *
 *   KNOWN_PAGES = u32 flags (bit 0: last frame) u32 count
 *                 count x u32 page   count x u64 h0   count x u64 h1          (little-endian)
 *   h0 = xxh64(page, seed 0)         (the digest's page hash)
 *   h1 = xxh64(page, KNOWN_PAGES_SEED)
 *
 * A target that does not advertise still answers one empty frame with the last flag, so the
 * source never waits for nothing. Zero pages are not advertised: a zero page record costs less
 * than the 20 bytes of an advertisement.
 *
 * Confirmation and residual risk: the source cannot byte-compare remote content. A page is
 * skipped only when both hashes match (128 bits: an accidental collision is ~2^-128 per page;
 * xxh64 is not a cryptographic hash, so a target that crafts collisions could make the source
 * skip pages, but such a target is already trusted with the whole guest). Whatever happens, the
 * final digest is computed over the target's memory including the skipped pages and compared
 * with the source's: a wrong skipped page fails the migration (VERIFY_FAILED, the source guest
 * resumes) or, with `verify: 'full'`, is re-sent.
 *
 * Ordering: the source hashes its pages after the dirty log started, so a page written after its
 * hash was taken is dirty and is sent in round 1 anyway.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { Arena, type Core } from '../core/core.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { PageHasher } from '../memory/page-hasher.js';
import type { PageSet } from '../memory/page-set.js';

/** Seed of the second, independent page hash. */
export const KNOWN_PAGES_SEED = 0x9e3779b97f4a7c15n;
/** Pages per KNOWN_PAGES frame (20 bytes each: 5 MiB per frame). */
export const KNOWN_PAGES_PER_FRAME = 256 * 1024;
const LAST = 1;


/**
 * Per-page xxh64 of all of `memory` with `seed`, one core call per batch (in place for memory in
 * `core`, copied per batch otherwise).
 */
export function hashAllPages(memory: GuestMemory, core: Core, seed: bigint): BigUint64Array {
  const hasher = new PageHasher(core);
  try {
    return hasher.hashAll(memory, seed);
  } finally {
    hasher.dispose();
  }
}

/** Encode one KNOWN_PAGES frame. */
export function encodeKnownPages(pages: Uint32Array, h0: BigUint64Array, h1: BigUint64Array, last: boolean): Uint8Array {
  const n = pages.length;
  const out = new Uint8Array(8 + n * 20);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, last ? LAST : 0, true);
  dv.setUint32(4, n, true);
  for (let i = 0; i < n; i++) {
    dv.setUint32(8 + i * 4, pages[i]!, true);
    dv.setBigUint64(8 + n * 4 + i * 8, h0[i]!, true);
    dv.setBigUint64(8 + n * 12 + i * 8, h1[i]!, true);
  }
  return out;
}

/** A parsed KNOWN_PAGES frame. */
export interface KnownPagesFrame {
  last: boolean;
  pages: Uint32Array;
  h0: BigUint64Array;
  h1: BigUint64Array;
}

/**
 * Parse a KNOWN_PAGES payload.
 * @throws PagewireError FRAME_CORRUPT (length, flags), PAGE_OUT_OF_RANGE
 */
export function parseKnownPages(payload: Uint8Array, pageCount: number): KnownPagesFrame {
  if (payload.byteLength < 8) throw new PagewireError(ErrorCode.FRAME_CORRUPT, 'KNOWN_PAGES frame is truncated');
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const flags = dv.getUint32(0, true);
  const n = dv.getUint32(4, true);
  if ((flags & ~LAST) !== 0) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `KNOWN_PAGES flags ${flags} has unknown bits`);
  if (n > KNOWN_PAGES_PER_FRAME || payload.byteLength !== 8 + n * 20) {
    throw new PagewireError(ErrorCode.FRAME_CORRUPT, `KNOWN_PAGES frame says ${n} pages but is ${payload.byteLength} bytes`);
  }
  const pages = new Uint32Array(n);
  const h0 = new BigUint64Array(n);
  const h1 = new BigUint64Array(n);
  for (let i = 0; i < n; i++) {
    const p = dv.getUint32(8 + i * 4, true);
    if (p >= pageCount) throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `KNOWN_PAGES names page ${p}, the guest has ${pageCount}`);
    pages[i] = p;
    h0[i] = dv.getBigUint64(8 + n * 4 + i * 8, true);
    h1[i] = dv.getBigUint64(8 + n * 12 + i * 8, true);
  }
  return { last: (flags & LAST) !== 0, pages, h0, h1 };
}

/**
 * Target side: send KNOWN_PAGES frames for the non-zero pages of `memory` (or one empty last
 * frame when `advertise` is false).
 * @returns pages advertised
 */
export async function sendKnownPages(send: (payload: Uint8Array) => Promise<unknown>, memory: GuestMemory, core: Core, advertise: boolean): Promise<number> {
  if (!advertise) {
    await send(encodeKnownPages(new Uint32Array(0), new BigUint64Array(0), new BigUint64Array(0), true));
    return 0;
  }
  const a = hashAllPages(memory, core, 0n);
  const b = hashAllPages(memory, core, KNOWN_PAGES_SEED);
  const zero = zeroPageHashes(memory.pageSize, core);
  const list: number[] = [];
  for (let p = 0; p < a.length; p++) if (a[p] !== zero[0] || b[p] !== zero[1]) list.push(p);
  const pages = Uint32Array.from(list);
  const h0 = new BigUint64Array(KNOWN_PAGES_PER_FRAME);
  const h1 = new BigUint64Array(KNOWN_PAGES_PER_FRAME);
  let i = 0;
  do {
    const n = Math.min(KNOWN_PAGES_PER_FRAME, pages.length - i);
    for (let k = 0; k < n; k++) { h0[k] = a[pages[i + k]!]!; h1[k] = b[pages[i + k]!]!; }
    await send(encodeKnownPages(pages.subarray(i, i + n), h0.subarray(0, n), h1.subarray(0, n), i + n === pages.length));
    i += n;
  } while (i < pages.length);
  return pages.length;
}

function zeroPageHashes(pageSize: number, core: Core): [bigint, bigint] {
  const ex = core.exports;
  const arena = new Arena(core);
  try {
    const p = arena.ensure(pageSize + 16);
    core.u8().fill(0, p, p + pageSize);
    ex.hashPages(p, pageSize, 1, 0n, p + pageSize);
    ex.hashPages(p, pageSize, 1, KNOWN_PAGES_SEED, p + pageSize + 8);
    const dv = core.view();
    return [dv.getBigUint64(p + pageSize, true), dv.getBigUint64(p + pageSize + 8, true)];
  } finally {
    arena.dispose();
  }
}

/** Source side: collects the target's KNOWN_PAGES frames and removes confirmed pages from round 0. */
export class KnownPagesCollector {
  private readonly frames: KnownPagesFrame[] = [];
  private complete = false;
  private failure: Error | null = null;
  private waiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Pages the target advertised. */
  advertised = 0;

  constructor(private readonly pageCount: number) {}

  /** A KNOWN_PAGES frame from the target. @throws PagewireError FRAME_CORRUPT, PROTOCOL_VIOLATION */
  onFrame(payload: Uint8Array): void {
    if (this.complete) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'KNOWN_PAGES after its last frame');
    const f = parseKnownPages(payload, this.pageCount);
    this.frames.push(f);
    this.advertised += f.pages.length;
    if (f.last) {
      this.complete = true;
      this.waiter?.resolve();
    }
  }

  /** The link failed: stop waiting. */
  fail(err: Error): void {
    this.failure = err;
    this.waiter?.reject(err);
  }

  /** Resolves when the last frame arrived. @throws PagewireError TIMEOUT, or the link's error */
  wait(timeoutMs: number): Promise<void> {
    if (this.complete) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new PagewireError(ErrorCode.TIMEOUT, `the target did not answer the known-pages request within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  /**
   * Compare with the source's own pages; confirmed pages (both hashes equal) leave `pending`.
   * Call after the dirty log started.
   * @returns pages skipped
   */
  skipMatching(memory: GuestMemory, core: Core, pending: PageSet): number {
    if (this.advertised === 0) return 0;
    const a = hashAllPages(memory, core, 0n);
    const b = hashAllPages(memory, core, KNOWN_PAGES_SEED);
    let skipped = 0;
    for (const f of this.frames) {
      for (let i = 0; i < f.pages.length; i++) {
        const p = f.pages[i]!;
        if (a[p] === f.h0[i] && b[p] === f.h1[i] && pending.has(p)) {
          pending.delete(p);
          skipped++;
        }
      }
    }
    this.frames.length = 0;
    return skipped;
  }
}
