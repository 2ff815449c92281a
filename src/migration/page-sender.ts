/**
 * The one place pages are encoded and sent: pre-copy rounds, the stop-and-copy round, the
 * re-send after a resume, full-verification repairs and the post-copy push all call
 * {@link PageSender.sendPages}.
 *
 *   for each batch of `batchPages`: encode (one core call) -> PAGES frame -> link session
 *   on a link failure the session can survive: the batch and the rest of the list go back to
 *   `pending`, the session reconnects (the pages of frames the target lost join them), and
 *   sending continues with everything pending
 */
import type { PageSet } from '../memory/page-set.js';
import type { EncoderLike } from '../codec/adapter.js';
import type { LinkSession } from './link-session.js';
import { FrameType } from '../protocol/frame.js';
import { defaultClock, type Clock } from './common.js';

/** How pages are encoded. */
export interface SendPagesOptions {
  /** The guest is paused (stop-and-copy): no later round can fix a page up. */
  final: boolean;
  /** Post-copy push (the target's guest runs). */
  postcopy?: boolean;
  /** Called after each frame left: pages sent so far, pages of the list still to go. */
  onBatch?(sent: number, remaining: number): void;
}

/** What {@link PageSender.sendPages} sent. */
export interface SentPages {
  /** Pages sent (re-sent pages after a resume included). */
  pages: number;
  /** Wire bytes of the PAGES frames. */
  wireBytes: number;
}

/** Encodes batches of pages and sends them, re-queueing on a dropped link. */
export class PageSender {
  constructor(
    private readonly session: LinkSession,
    private readonly encoder: EncoderLike,
    /** Pages the target lacks or holds stale. */
    private readonly pending: PageSet,
    private readonly batchPages: number,
    /**
     * Brings pages into guest memory before they are encoded (a lazily filled memory); returns
     * how many of them to encode (the rest, moved to the end of the range, need not be sent).
     */
    private readonly prepare?: (indices: Uint32Array, start: number, count: number) => number,
    private readonly clock: Clock = defaultClock,
  ) {}

  /** Time spent preparing and encoding pages, ms, and the pages it was spent on (all calls). */
  readonly cpu = { ms: 0, pages: 0 };

  /**
   * Encode and send `list` in batches. After a drop it resumes and also sends what became
   * pending meanwhile (the rest of `list` and the pages of frames the target lost).
   * @throws PagewireError what the link session cannot survive (RESUME_FAILED, AUTH_FAILED...)
   */
  async sendPages(list: Uint32Array, o: SendPagesOptions): Promise<SentPages> {
    const encodeOpts = o.postcopy ? { final: true, postcopy: true } : { final: o.final };
    let pages = 0;
    let wireBytes = 0;
    let todo = list;
    for (let i = 0; i < todo.length; ) {
      const count = Math.min(this.batchPages, todo.length - i);
      const t0 = this.clock();
      const n = this.prepare ? this.prepare(todo, i, count) : count;
      const batch = todo.subarray(i, i + n);
      try {
        if (n > 0) {
          // LZ4 'auto' decides with the acknowledged send rate when no link figure was given
          this.encoder.setSendRate?.(this.session.flow.bandwidthBytesPerSec);
          const records = this.encoder.encode(todo, i, n, encodeOpts);
          // (a batch prepare() skipped whole says nothing of the cost of pages that are sent)
          this.cpu.ms += this.clock() - t0;
          this.cpu.pages += n;
          // (records in core memory: the session re-reads them after it waited, in case that memory grew)
          const enc = this.encoder;
          wireBytes += await this.session.sendFrame(FrameType.PAGES, enc.records ? () => enc.records!() : records, batch);
        }
      } catch (err) {
        if (!this.session.canResume(err)) throw err;
        // This batch was not sent: it and the rest of the list are pending again.
        this.pending.addAll(todo, i);
        await this.session.resume(err);
        todo = this.pending.drain();
        i = 0;
        continue;
      }
      i += count;
      pages += n;
      o.onBatch?.(pages, todo.length - i);
    }
    return { pages, wireBytes };
  }

  /** Send everything pending now (after a resume, before any control frame). */
  async sendPending(final: boolean): Promise<SentPages> {
    return this.sendPages(this.pending.drain(), { final });
  }
}
