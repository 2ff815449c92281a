/**
 * Post-copy on the source (Hirofuchi's Yabusame, QEMU postcopy-ram): the guest is paused, the
 * target is told which pages it still lacks, its guest starts at once, and the source pushes the
 * missing pages in the background while serving the target's page faults (PAGE_REQUEST frames)
 * ahead of the push.
 *
 *   S: DEVICE_STATE                       (sent by source.ts before this runs)
 *   S: POSTCOPY { round, missingPages }
 *   S: PAGE_LIST*                         (the missing pages, ascending; the target's guest runs
 *                                          once it has applied the last one)
 *   S: PAGES*  (requested pages first, then the background push, each page exactly once)
 *   T: PAGE_REQUEST* (a fault on a page still missing)
 *   S: ROUND_END { final: true }          then COMPLETE / DONE as in pre-copy
 *
 * From the moment the last PAGE_LIST frame may have reached the target, the guest's state is
 * split between the hosts: the host is told (`commit()`) and the source guest never resumes; a
 * later failure is POSTCOPY_FAILED (docs/ADVANCED.md).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { FrameType } from '../protocol/frame.js';
import { encodeJson, encodePageList, type PostcopyMessage, type RoundEndMessage } from '../protocol/messages.js';
import { codecCountsSince, type CodecCounts, type RoundReport } from './report.js';
import { type Clock } from './common.js';
import { PageSet } from '../memory/page-set.js';

/** Pages per PAGE_LIST frame (256 KiB of indices). */
export const PAGE_LIST_CHUNK = 65536;
/**
 * Pages per background-push frame at most: a fault waits for the push frame being paced out
 * before its page goes, so push frames stay small (32 pages = 128 KiB of 4 KiB pages).
 */
export const POSTCOPY_PUSH_BATCH = 32;

/** What post-copy needs from the source endpoint (see MigrationSource.postcopyHost). */
export interface PostcopySourceHost {
  memory: GuestMemory;
  /** Pages the target lacks or holds stale (drained here). */
  pending: PageSet;
  batchPages: number;
  clock: Clock;
  /** The target reads page lists as ranges (protocol 1.1 and later). */
  pageRanges: boolean;
  /** Send a frame without pages, with flow control. @returns its wire bytes */
  sendFrame(type: FrameType, payload: Uint8Array): Promise<number>;
  /** Encode and send pages as post-copy records (the source's one page sender). @returns wire bytes */
  sendPages(pages: Uint32Array): Promise<number>;
  /** Page requests received since the last call. */
  takeRequests(): Uint32Array[];
  /** Resolves at the next page request; rejects on a link failure or after `ms`. */
  waitRequest(ms: number): Promise<void>;
  /** Count wire bytes as post-copy bytes. */
  setPostcopy(on: boolean): void;
  /** The encoder forgets what the target holds of these pages (no delta, no "unchanged"). */
  forget(pages: Uint32Array): void;
  encoderCounts(): CodecCounts;
  /** The target's guest may run from now on: the source guest must never resume. */
  commit(): void;
  /** Sequence number the next frame will carry. */
  nextSeq(): number;
  /** Resolves when the target has applied frame `seq` (rejects on a link failure). */
  waitApplied(seq: number): Promise<void>;
}

/** Outcome of the post-copy phase. */
export interface PostcopyResult {
  /** The post-copy round (final: true). */
  rounds: RoundReport[];
  /** Pause until the target acknowledged the switch-over (its guest runs from then on), ms. */
  downtimeMs: number;
  /** Pages the target asked for (its faults as the source sees them). */
  faults: number;
  /** Per request: ms from taking the request to handing its page to the link. */
  latencies: number[];
}

/**
 * Run post-copy: switch the target over, then push every pending page, requested pages first.
 * @param host the source endpoint's post-copy interface
 * @param round number of the post-copy round
 * @param pausedAt source clock at the pause (for the downtime)
 * @throws PagewireError POSTCOPY_FAILED for any failure after the switch-over; the error it
 *   caught before it (the target's guest cannot have run) as is
 */
export async function runPostcopySource(host: PostcopySourceHost, round: number, pausedAt: number): Promise<PostcopyResult> {
  const start = host.clock();
  const before = host.encoderCounts();
  const missing = host.pending.drain();
  // Every listed page must arrive as a record: a page the dirty log listed but that did not change
  // would be "unchanged" (not sent) and the target would wait for it forever.
  host.forget(missing);
  const left = new PageSet(host.memory.pageCount);
  left.addAll(missing);
  const batch = host.batchPages;
  const latencies: number[] = [];
  let faults = 0;
  let wire = 0;
  let committed = false;
  let switchedAt = 0;
  host.setPostcopy(true);
  try {
    const msg: PostcopyMessage = { round, missingPages: missing.length };
    // The target's guest starts when it has the whole missing list: commit before the frame that
    // completes it leaves (POSTCOPY itself when nothing is missing).
    if (missing.length === 0) { host.commit(); committed = true; }
    wire += await host.sendFrame(FrameType.POSTCOPY, encodeJson(msg));
    for (let i = 0; i < missing.length; i += PAGE_LIST_CHUNK) {
      const n = Math.min(PAGE_LIST_CHUNK, missing.length - i);
      if (i + n === missing.length) { host.commit(); committed = true; }
      wire += await host.sendFrame(FrameType.PAGE_LIST, encodePageList(missing, i, n, host.pageRanges));
    }
    const switched = host.waitApplied(host.nextSeq() - 1).then(() => { switchedAt = host.clock(); });
    switched.catch(() => undefined); // awaited below; a link failure surfaces in sendFrame first

    let lastYield = host.clock();
    const urgent = new Uint32Array(batch);
    const pushBatch = Math.min(batch, POSTCOPY_PUSH_BATCH);
    const push = new Uint32Array(pushBatch);
    let cursor = 0;
    while (left.size > 0) {
      // Faults first: every requested page still missing goes out before the next push batch.
      const reqs = host.takeRequests();
      if (reqs.length > 0) {
        const taken = host.clock();
        let n = 0;
        let lastFault = -1;
        for (const r of reqs) {
          for (let k = 0; k < r.length; k++) {
            const p = r[k]!;
            if (!left.has(p)) continue; // already on its way
            left.delete(p);
            urgent[n++] = p;
            faults++;
            lastFault = p;
            if (n === batch) {
              wire += await sendPages(host, urgent, n);
              pushLatencies(latencies, n, host.clock() - taken);
              n = 0;
            }
          }
        }
        if (n > 0) {
          wire += await sendPages(host, urgent, n);
          pushLatencies(latencies, n, host.clock() - taken);
        }
        // Locality (as QEMU's postcopy does): the background push continues after the last fault.
        if (lastFault >= 0) cursor = lastFault + 1;
        continue;
      }
      // Let acknowledgements and page requests in (a send on a fast transport may never yield to
      // I/O while the window has room): every 2 ms of pushing at most.
      if (host.clock() - lastYield > 2) {
        await yieldToIo();
        lastYield = host.clock();
        continue; // requests that arrived go first
      }
      // Next push batch from the cursor (a page index), wrapping around: pages before it may
      // still be left. The scan goes 32 pages per bitmap word.
      let m = 0;
      while (m < pushBatch && left.size > 0) {
        let p = nextMember(left, cursor);
        if (p < 0) p = nextMember(left, 0);
        left.delete(p);
        push[m++] = p;
        cursor = p + 1;
      }
      if (m > 0) wire += await sendPages(host, push, m);
      else break; // unreachable while pages are left: a full scan finds them
    }
    const end: RoundEndMessage = { round, pages: missing.length, wireBytes: wire, final: true };
    wire += await host.sendFrame(FrameType.ROUND_END, encodeJson(end));
    await switched;
  } catch (err) {
    if (!committed) throw err;
    const e = err as Error;
    throw new PagewireError(ErrorCode.POSTCOPY_FAILED, `post-copy failed after the target's guest started (${left.size} pages never reached it): ${String(e?.message ?? err)}`, { cause: err });
  } finally {
    host.setPostcopy(false);
  }
  const codecs = codecCountsSince(host.encoderCounts(), before);
  const durationMs = Math.max(0.001, host.clock() - start);
  const rr: RoundReport = {
    round, final: true, pages: missing.length, wireBytes: wire, rawBytes: missing.length * host.memory.pageSize, codecs,
    dirtyPages: 0, dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: (wire * 1000) / durationMs, durationMs, expectedDowntimeMs: 0, throttlePct: 0,
  };
  return { rounds: [rr], downtimeMs: Math.max(0, (switchedAt || host.clock()) - pausedAt), faults, latencies };
}

function sendPages(host: PostcopySourceHost, pages: Uint32Array, n: number): Promise<number> {
  return host.sendPages(pages.subarray(0, n));
}

/** Resolve after pending I/O callbacks ran (setImmediate in Node; a zero timeout elsewhere). */
function yieldToIo(): Promise<void> {
  const si = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  return new Promise((resolve) => { if (si) si(resolve); else setTimeout(resolve, 0); });
}

/** Smallest member of `set` that is >= `from`, or -1. */
function nextMember(set: PageSet, from: number): number {
  const words = set.words;
  let w = from >>> 5;
  if (w >= words.length) return -1;
  let x = words[w]! & (~0 << (from & 31));
  for (;;) {
    if (x !== 0) return (w << 5) + (31 - Math.clz32(x & -x));
    if (++w >= words.length) return -1;
    x = words[w]!;
  }
}

function pushLatencies(into: number[], n: number, ms: number): void {
  for (let i = 0; i < n; i++) into.push(ms);
}
