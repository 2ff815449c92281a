/**
 * Post-copy on the target: the source switches over early (POSTCOPY, then PAGE_LIST frames
 * naming every page the target lacks or holds stale); once the list is complete the target lets
 * its guest run. An access to a missing page is a fault: it becomes a PAGE_REQUEST to the source
 * and the access waits until the page arrives (the source serves requests ahead of its background
 * push of the remaining pages).
 *
 * Verification. The target's guest writes while pages still arrive, so the final digest cannot be
 * taken over live memory. Instead the target keeps per-page hashes of the content as received:
 * all pages are hashed at the switch-over (present pages are final then), and each missing page
 * is hashed again when it arrives, in the same synchronous step that applied it, so the guest
 * (whose accesses to it were waiting) cannot have touched it yet. The digest of those hashes is
 * compared with the source's digest at pause time.
 *
 * A failure after the switch-over is POSTCOPY_FAILED: waiting faults are rejected (the guest
 * cannot go on with incomplete memory), the target never reports verified.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Core } from '../core/core.js';
import type { Connection } from '../protocol/connection.js';
import { FrameType, type Frame } from '../protocol/frame.js';
import { encodePageList, parsePostcopy } from '../protocol/messages.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { digestOfHashes } from '../memory/digest.js';
import { PageHasher } from '../memory/page-hasher.js';
import { percentile, sleep, type Clock } from './common.js';
import { PageSet } from '../memory/page-set.js';


/** What post-copy needs from the target endpoint. */
export interface PostcopyTargetHost {
  memory: GuestMemory;
  clock: Clock;
  /** Load the device state and let the guest run. */
  startGuest(): Promise<void>;
  parsePages(p: Uint8Array): Uint32Array;
  /** The core for hashing (the target's). */
  core?: Core;
  /** Keep the post-copy state made for a POSTCOPY frame (the target's {@link PostcopyTargetView.postcopy} from now on). */
  adopt(state: PostcopyTargetState): void;
}

interface Waiter { resolve: () => void; reject: (e: Error) => void; at: number }

/** Post-copy state of a target: missing pages, faults, hashes of the content as received. */
export class PostcopyTargetState {
  /** Accesses that found their page missing and waited for it. */
  faults = 0;
  /** Fault latencies, ms (access to arrival). */
  readonly latencies: number[] = [];
  /** Pages the source announced as missing. */
  readonly expected: number;
  private readonly memory: GuestMemory;
  private readonly core: Core;
  private readonly clock: Clock;
  private readonly missing: PageSet;
  private readonly requested: PageSet;
  private readonly waiters = new Map<number, Waiter[]>();
  private listed = 0;
  private hashes: BigUint64Array | null = null;
  /** Hashes pages as they arrive (from the switch-over until none is missing). */
  private hasher: PageHasher | null = null;
  private conn: Connection;
  private failure: Error | null = null;
  private guestStarted = false;

  constructor(memory: GuestMemory, core: Core, clock: Clock, expected: number, conn: Connection) {
    this.memory = memory;
    this.core = core;
    this.clock = clock;
    this.expected = expected;
    this.conn = conn;
    this.missing = new PageSet(memory.pageCount);
    this.requested = new PageSet(memory.pageCount);
  }

  /** Whether the guest was started (the switch-over happened). */
  get started(): boolean {
    return this.guestStarted;
  }

  /** Pages still missing. */
  get missingPages(): number {
    return this.missing.size;
  }

  /** Whether page `p` is present (the guest may access it without a fault). */
  present(p: number): boolean {
    return !this.missing.has(p);
  }

  /** The post-copy failure, if any. */
  get error(): Error | null {
    return this.failure;
  }

  /**
   * A guest access to page `p`: resolves at once when it is present, else asks the source for it
   * (once) and resolves when it arrived.
   * @throws PagewireError POSTCOPY_FAILED when post-copy failed (the page will never come)
   */
  fault(p: number): Promise<void> {
    if (!this.missing.has(p)) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    this.faults++;
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, at: this.clock() };
      const list = this.waiters.get(p);
      if (list) list.push(w);
      else this.waiters.set(p, [w]);
      if (!this.requested.has(p)) {
        this.requested.add(p);
        this.conn.send(FrameType.PAGE_REQUEST, encodePageList([p])).catch((err: unknown) => this.fail(err));
      }
    });
  }

  /** Latency summary of the faults, ms. */
  latencySummary(): { median: number; p99: number } {
    return { median: percentile(this.latencies, 50), p99: percentile(this.latencies, 99) };
  }

  /** Digest of the content as received (what the source's digest must equal). */
  receivedDigest(): string {
    if (!this.hashes) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'COMPLETE before the post-copy switch-over finished');
    if (this.missing.size > 0) throw new PagewireError(ErrorCode.POSTCOPY_FAILED, `COMPLETE while ${this.missing.size} pages are still missing`);
    return digestOfHashes(this.hashes, this.core);
  }

  /** Requests go out on this connection from now on. */
  setConnection(conn: Connection): void {
    this.conn = conn;
  }

  /** @internal PAGE_LIST: more missing pages. */
  addMissing(pages: Uint32Array): void {
    if (this.guestStarted) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'PAGE_LIST after the post-copy switch-over');
    if (this.listed + pages.length > this.expected) {
      throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `PAGE_LIST names more than the ${this.expected} missing pages POSTCOPY announced`);
    }
    const before = this.missing.size;
    this.missing.addAll(pages);
    if (this.missing.size - before !== pages.length) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'PAGE_LIST names a page twice');
    this.listed += pages.length;
  }

  /** @internal Whether the missing list is complete. */
  get listComplete(): boolean {
    return this.listed === this.expected;
  }

  /** @internal Hash the pages present (final now), then start the guest. */
  async switchOver(host: PostcopyTargetHost): Promise<void> {
    this.hashes = this.presentHashes();
    this.guestStarted = true;
    await host.startGuest();
  }

  /**
   * Pages just written by a PAGES frame: during post-copy each must have been missing (a page the
   * guest owns is never overwritten); its hash is taken now, before the guest can touch it, and
   * the accesses waiting for it resume.
   * @throws PagewireError PROTOCOL_VIOLATION for a page that was not missing
   */
  onPagesApplied(pages: ArrayLike<number>): void {
    if (!this.guestStarted) {
      if (pages.length > 0) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'PAGES during the post-copy switch-over');
      return;
    }
    const n = pages.length;
    if (n === 0) return;
    for (let i = 0; i < n; i++) {
      const p = pages[i]!;
      if (!this.missing.has(p)) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `post-copy sent page ${p}, which the target already had (the guest may have written it)`);
      this.missing.delete(p);
    }
    this.hasher!.hashList(this.memory, pages, 0n, this.hashes!);
    const now = this.clock();
    for (let i = 0; i < n; i++) {
      const p = pages[i]!;
      const list = this.waiters.get(p);
      if (!list) continue;
      this.waiters.delete(p);
      for (const w of list) {
        this.latencies.push(now - w.at);
        w.resolve();
      }
    }
    if (this.missing.size === 0) this.releaseHasher();
  }

  /** Post-copy failed: waiting accesses fail, later ones too. */
  fail(err: unknown): void {
    if (this.failure) return;
    const e = err instanceof PagewireError && err.code === ErrorCode.POSTCOPY_FAILED
      ? err
      : new PagewireError(ErrorCode.POSTCOPY_FAILED, `post-copy failed with ${this.missing.size} pages missing: ${String((err as Error)?.message ?? err)}`, { cause: err });
    this.failure = e;
    for (const list of this.waiters.values()) for (const w of list) w.reject(e);
    this.waiters.clear();
    this.releaseHasher();
  }

  /**
   * Hashes of the pages present at the switch-over (final from then on); missing pages are hashed
   * when they arrive, so they are not read here (on a fresh target that would only fault in
   * untouched memory: about 15 us per page, 250 ms for 64 MiB, all of it downtime). Each run of
   * present pages is one PageHasher call (in place when the memory is in this core).
   */
  private presentHashes(): BigUint64Array {
    const n = this.memory.pageCount;
    this.hasher = new PageHasher(this.core);
    const hashes = new BigUint64Array(n);
    for (let p = 0; p < n; ) {
      if (this.missing.has(p)) { p++; continue; }
      let end = p + 1;
      while (end < n && !this.missing.has(end)) end++;
      this.hasher.hash(this.memory, p, end - p, 0n, hashes);
      p = end;
    }
    if (this.missing.size === 0) this.releaseHasher();
    return hashes;
  }

  private releaseHasher(): void {
    this.hasher?.dispose();
    this.hasher = null;
  }
}

/** A target whose post-copy state can be read (null until the source switched over to post-copy). */
export interface PostcopyTargetView {
  readonly postcopy: PostcopyTargetState | null;
}

/**
 * Handle a POSTCOPY or PAGE_LIST frame on the target. POSTCOPY makes the post-copy state and hands
 * it to `host.adopt` before anything else happens (the guest may start within this call, and
 * whatever runs it reads the state from the target).
 * @param current the target's post-copy state so far (null before POSTCOPY)
 * @throws PagewireError PROTOCOL_VIOLATION, FRAME_CORRUPT
 */
export async function onPostcopyFrame(current: PostcopyTargetState | null, conn: Connection, f: Frame, host: PostcopyTargetHost): Promise<void> {
  if (f.type === FrameType.POSTCOPY) {
    if (current) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'a second POSTCOPY frame');
    const m = parsePostcopy(f.payload);
    if (m.missingPages > host.memory.pageCount) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `POSTCOPY announces ${m.missingPages} missing pages, the guest has ${host.memory.pageCount}`);
    if (!host.core) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'post-copy target needs a core');
    const st = new PostcopyTargetState(host.memory, host.core, host.clock, m.missingPages, conn);
    host.adopt(st);
    if (st.listComplete) await st.switchOver(host);
    return;
  }
  const st = current;
  if (!st) throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'PAGE_LIST before POSTCOPY');
  st.addMissing(host.parsePages(f.payload));
  if (st.listComplete) await st.switchOver(host);
}

/** A guest that can say which page it touches next and write it (e.g. a SimulatedGuest). */
export interface AccessingGuest {
  nextAccess(): number;
  writePage(page: number): void;
}

/** Options of {@link FaultingGuestRunner}. */
export interface FaultingGuestOptions {
  /** Page accesses (each a write) per second (default 1000). */
  ratePagesPerSec?: number;
  /** Timer slice, ms (default 5). */
  sliceMs?: number;
  /**
   * Whether an access writes the page (default true). With false the accesses only fault pages
   * in (reads): the target's memory stays equal to the source's, for byte comparisons.
   */
  writes?: boolean;
  clock?: Clock;
}

/**
 * Runs a guest on a post-copy target in real time: each access to a missing page faults and the
 * guest (one vCPU) stalls until the page arrived; accesses to present pages write at once. Start
 * it from the target's `guestMayRun` hook.
 */
export class FaultingGuestRunner {
  /** Accesses made. */
  accesses = 0;
  /** Set when an access failed (post-copy failed: the guest cannot go on). */
  error: Error | null = null;
  private stopped = true;
  private loop: Promise<void> = Promise.resolve();
  private readonly rate: number;
  private readonly sliceMs: number;
  private readonly writes: boolean;
  private readonly clock: Clock;

  /**
   * @param target the target (its `postcopy` state is read at each access)
   * @param guest the guest whose accesses to run
   */
  constructor(private readonly target: PostcopyTargetView, private readonly guest: AccessingGuest, options: FaultingGuestOptions = {}) {
    this.rate = options.ratePagesPerSec ?? 1000;
    this.sliceMs = options.sliceMs ?? 5;
    this.writes = options.writes ?? true;
    this.clock = options.clock ?? (() => performance.now());
    if (!(this.rate >= 0 && Number.isFinite(this.rate)) || !(this.sliceMs > 0)) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'ratePagesPerSec must be >= 0 and sliceMs > 0');
    }
  }

  /** Whether the loop runs. */
  get running(): boolean {
    return !this.stopped;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Stop after the access in progress (a waiting fault is not abandoned). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    let last = this.clock();
    let owed = 0;
    while (!this.stopped) {
      await sleep(this.sliceMs);
      const now = this.clock();
      owed = Math.min(owed + ((now - last) * this.rate) / 1000, this.rate / 10 + 1);
      last = now;
      while (owed >= 1 && !this.stopped) {
        owed--;
        const p = this.guest.nextAccess();
        const st = this.target.postcopy;
        if (st && !st.present(p)) {
          try {
            await st.fault(p);
          } catch (err) {
            this.error = err as Error;
            this.stopped = true;
            return;
          }
          last = this.clock(); // a stalled vCPU makes no accesses
        }
        if (this.writes) this.guest.writePage(p);
        this.accesses++;
      }
    }
  }
}
