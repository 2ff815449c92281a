/**
 * Snapshot reader: restore, chain restore, header and summary of snapshot files (format.ts) or of
 * captured migration streams (the bytes a source sent), from any byte source: one buffer, an
 * iterable of chunks, or an async iterable of chunks (a Node read stream, a Blob's stream()).
 * Browser-safe.
 *
 * Frames are parsed incrementally (FrameReader: every checksum verified) and applied as they come.
 * Anything that is not a whole, well-formed, in-sequence stream ending with COMPLETE is
 * SNAPSHOT_CORRUPT, with the byte offset and frame number in the message and the underlying error
 * (CHECKSUM_MISMATCH, FRAME_CORRUPT, RECORD_CORRUPT...) as `cause` and in the message.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore, type Core } from '../core/core.js';
import { GuestMemory, checkPageSize, type MemoryLayout } from '../memory/guest-memory.js';
import { createDecoder } from '../codec/adapter.js';
import { memoryDigest } from '../memory/digest.js';
import type { CodecCounts } from '../codec/adapter.js';
import { FRAME_HEADER_BYTES, PREAMBLE_BYTES, PROTOCOL_MINOR, FrameType, frameTypeName } from '../protocol/frame.js';
import { FrameReader } from '../protocol/codec.js';
import { parseComplete, parseHello, parseRoundEnd, type CompleteMessage } from '../protocol/messages.js';
import { completeNames } from '../protocol/auth.js';
import { parseSnapshotInfo, type SnapshotHeader, type SnapshotRoundEnd } from './format.js';
import { DEFAULT_MAX_GUEST_BYTES, checkGuestBytes } from '../limits.js';

/** Bytes of a snapshot: one buffer, or chunks (sync or async; Node streams and Blob streams qualify). */
export type SnapshotInput = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Guest memory to restore into, or a factory called with the header's layout. */
export type RestoreMemory = GuestMemory | ((layout: MemoryLayout) => GuestMemory | Promise<GuestMemory>);

/** Largest guest the default memory factory places inside a core (beyond: external buffers). */
const IN_CORE_LIMIT_BYTES = 2 * 1024 * 1024 * 1024;

/** Errors of the snapshot's contents that are passed through as they are (not corruption of the file). */
const PASS_THROUGH = new Set<string>([
  ErrorCode.LAYOUT_MISMATCH, ErrorCode.LIMIT_EXCEEDED, ErrorCode.SNAPSHOT_PARENT_MISMATCH, ErrorCode.WASM_FAILED, ErrorCode.INVALID_ARGUMENT, ErrorCode.NOT_READY,
]);

interface Visitor {
  /** Return 'stop' to end the walk after the header. */
  hello?(h: SnapshotHeader): void | 'stop' | Promise<void | 'stop'>;
  pages?(payload: Uint8Array, frameBytes: number): void;
  roundEnd?(m: SnapshotRoundEnd, frameBytes: number): void;
  deviceState?(payload: Uint8Array, frameBytes: number): void;
  complete?(m: CompleteMessage): void;
  frame?(type: number, frameBytes: number): void;
}

interface WalkResult {
  bytes: number;
  frames: number;
  complete: CompleteMessage | null;
}

/** Options shared by the readers. */
export interface SnapshotReadOptions {
  /** Core for checksums, decoding and digests (default: the memory's core, else a new one). */
  core?: Core;
  /** Refuse frames with larger payloads (default 32 MiB). */
  maxFrameBytes?: number;
  /** Name of the input in error messages (e.g. its path; default "snapshot"). */
  label?: string;
  /**
   * Refuse a header whose layout is larger, bytes, before any memory is made for it (default
   * 16 GiB): LIMIT_EXCEEDED.
   */
  maxGuestBytes?: number;
}

function layoutBytes(layout: MemoryLayout): number {
  return layout.regions.reduce((n, r) => n + r.pageCount, 0) * layout.pageSize;
}

function checkLayoutLimit(h: SnapshotHeader, opts: SnapshotReadOptions): void {
  checkGuestBytes(layoutBytes(h.layout), opts.maxGuestBytes ?? DEFAULT_MAX_GUEST_BYTES, opts.label ?? 'the snapshot');
}

async function* chunksOf(input: SnapshotInput): AsyncGenerator<Uint8Array> {
  if (input instanceof Uint8Array) { yield input; return; }
  if (typeof (input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') {
    for await (const c of input as AsyncIterable<Uint8Array>) yield c;
    return;
  }
  if (typeof (input as Iterable<Uint8Array>)[Symbol.iterator] === 'function') {
    for (const c of input as Iterable<Uint8Array>) yield c;
    return;
  }
  throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'a snapshot input is a Uint8Array or an (async) iterable of Uint8Array chunks');
}

function wrap(err: unknown, where: string): unknown {
  if (!(err instanceof PagewireError)) return err;
  if (PASS_THROUGH.has(err.code)) return err;
  const detail = err.code === ErrorCode.SNAPSHOT_CORRUPT ? err.message : `${err.code}: ${err.message}`;
  return new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `${where}: ${detail}`, { cause: err });
}

function corrupt(why: string): never {
  throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, why);
}

function headerOf(payload: Uint8Array): SnapshotHeader {
  const h = parseHello(payload);
  try {
    checkPageSize(h.pageSize);
  } catch {
    corrupt(`HELLO: page size ${h.pageSize} is not a power of two in 512..65536`);
  }
  if (h.resume) corrupt('HELLO resumes a session: a snapshot or captured stream starts a new one');
  const { snapshot: _s, ...rest } = h.options;
  return {
    layout: { pageSize: h.pageSize, regions: h.regions }, codecs: h.codecs, mode: h.mode, sessionId: h.sessionId,
    snapshot: parseSnapshotInfo(h.options), options: rest,
  };
}

/** The frame walk with the stream's grammar; visitors see each frame once. */
async function walk(input: SnapshotInput, core: Core, v: Visitor, opts: SnapshotReadOptions): Promise<WalkResult> {
  const reader = new FrameReader(core, { maxFrameBytes: opts.maxFrameBytes });
  let seq = 0;
  let state: 'start' | 'body' | 'done' = 'start';
  let openRound = false;
  let rounds = 0;
  let complete: CompleteMessage | null = null;
  let frameStart = 0;
  let lastType = '';
  const where = (): string => `byte ${frameStart} (frame #${seq}${lastType ? ` after ${lastType}` : ''})`;
  try {
    for await (const chunk of chunksOf(input)) {
      if (state === 'done') {
        if (chunk.byteLength > 0) corrupt(`${chunk.byteLength} bytes follow the COMPLETE frame (a snapshot ends there)`);
        continue;
      }
      reader.push(chunk);
      while (state !== 'done') {
        frameStart = reader.bytesRead;
        const f = reader.next();
        if (!f) break;
        if (seq === 0 && reader.peerMinor > PROTOCOL_MINOR) {
          corrupt(`written with protocol 1.${reader.peerMinor}, newer than this pagewire's 1.${PROTOCOL_MINOR}`);
        }
        if (f.seq !== seq) corrupt(`frame out of sequence: #${f.seq} where #${seq} was due (a frame is missing or repeated)`);
        const len = f.payload.byteLength;
        const frameBytes = FRAME_HEADER_BYTES + len;
        const name = frameTypeName(f.type);
        v.frame?.(f.type, frameBytes);
        if (state === 'start') {
          if (f.type !== FrameType.HELLO) corrupt(`the first frame is ${name}, not HELLO`);
          state = 'body';
          const r = await v.hello?.(headerOf(f.payload));
          seq++;
          lastType = name;
          if (r === 'stop') return { bytes: reader.bytesRead, frames: seq, complete: null };
          continue;
        }
        switch (f.type) {
          case FrameType.PAGES:
            openRound = true;
            v.pages?.(f.payload, frameBytes);
            break;
          case FrameType.ROUND_END: {
            const m = parseRoundEnd(f.payload);
            openRound = false;
            rounds++;
            v.roundEnd?.({ ...m, codecs: m.codecs ?? null }, frameBytes);
            break;
          }
          case FrameType.DEVICE_STATE:
            v.deviceState?.(f.payload, frameBytes);
            break;
          case FrameType.COMPLETE: {
            if (openRound) corrupt('COMPLETE while a round has pages but no ROUND_END');
            if (rounds === 0) corrupt('COMPLETE before any ROUND_END');
            complete = parseComplete(f.payload);
            v.complete?.(complete);
            state = 'done';
            break;
          }
          case FrameType.AUTH:
          case FrameType.PING:
            break; // a captured stream's handshake and keep-alives
          default:
            corrupt(`unexpected ${name} frame in a snapshot`);
        }
        seq++;
        lastType = name;
      }
    }
    frameStart = reader.bytesRead;
    if (state === 'done' && reader.pending > 0) corrupt(`${reader.pending} bytes follow the COMPLETE frame (a snapshot ends there)`);
    if (reader.bytesRead === 0 && reader.pending === 0) corrupt('the file is empty: not a pagewire snapshot');
    if (reader.pending > 0) {
      corrupt(`truncated: the file ends ${reader.pending} bytes into ${reader.bytesRead === 0 ? 'the preamble' : 'a frame'}`);
    }
    if (state !== 'done') corrupt('truncated: the file ends before the COMPLETE frame');
    return { bytes: reader.bytesRead, frames: seq, complete };
  } catch (err) {
    throw wrap(err, `${opts.label ?? 'snapshot'}: ${where()}`);
  } finally {
    reader.dispose();
  }
}

/**
 * Check a whole snapshot without making memory for it: preamble, every frame's checksum and
 * sequence, the grammar up to COMPLETE, nothing after it, and the layout against
 * `maxGuestBytes`. What a restore would refuse for the file's structure is refused here at the
 * cost of a read (the records themselves and the digest are checked by a restore).
 * @returns the header and the bytes and frames read
 * @throws PagewireError SNAPSHOT_CORRUPT, LIMIT_EXCEEDED
 */
export async function checkSnapshot(input: SnapshotInput, options: SnapshotReadOptions = {}): Promise<{ header: SnapshotHeader; bytes: number; frames: number }> {
  const core = options.core ?? (await createCore());
  let header: SnapshotHeader | null = null;
  let pages = 0;
  const res = await walk(input, core, {
    hello: (h) => { checkLayoutLimit(h, options); header = h; },
    roundEnd: (m) => { pages += m.pages; },
  }, options);
  const h = header as SnapshotHeader | null;
  if (!h) corrupt(`${options.label ?? 'snapshot'}: no HELLO frame`);
  // A full snapshot (and a captured stream) stores every page in its first pass; a header
  // announcing more pages than the file's rounds hold is refused before a restore makes memory
  // for them (a restore then checks each round's count against the records it decodes).
  const guestPages = h.layout.regions.reduce((n, r) => n + r.pageCount, 0);
  if (h.snapshot?.kind !== 'incremental' && pages < guestPages) {
    corrupt(`${options.label ?? 'snapshot'}: the layout has ${guestPages} pages but the rounds store ${pages}: a full snapshot stores every page`);
  }
  return { header: h, bytes: res.bytes, frames: res.frames };
}

/**
 * Read only the header of a snapshot (stops after HELLO).
 * @throws PagewireError SNAPSHOT_CORRUPT
 */
export async function readSnapshotHeader(input: SnapshotInput, options: SnapshotReadOptions = {}): Promise<SnapshotHeader> {
  const core = options.core ?? (await createCore());
  let header: SnapshotHeader | null = null;
  try {
    await walk(input, core, { hello: (h) => { header = h; return 'stop'; } }, options);
  } catch (err) {
    if (!header) throw err;
  }
  if (!header) throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, 'snapshot: no HELLO frame');
  return header;
}

/** Options of {@link restoreSnapshot}. */
export interface RestoreOptions extends SnapshotReadOptions {
  /**
   * Memory to restore into. A full snapshot: any memory of its layout, or a factory (default:
   * new zeroed memory, in a core up to 2 GiB). An incremental snapshot: the memory holding its
   * parent, restored already.
   */
  memory?: RestoreMemory;
  /** Incremental: the digest of `memory` if known (else computed), compared with the parent digest. */
  baseDigest?: string;
}

/** Outcome of a restore. */
export interface RestoreResult {
  /** The restored memory. */
  memory: GuestMemory;
  header: SnapshotHeader;
  /** Whether the restored memory's digest equals the digest the file records. */
  verified: boolean;
  /** Digest of the restored memory. */
  digest: string;
  /** Digest recorded in COMPLETE. */
  expectedDigest: string;
  /** Pages applied from this file. */
  pages: number;
  /** Bytes read. */
  bytes: number;
  frames: number;
  /** Device state stored in the file, or null. */
  deviceState: Uint8Array | null;
}

function sameLayout(a: MemoryLayout, b: MemoryLayout): boolean {
  return a.pageSize === b.pageSize && a.regions.length === b.regions.length && a.regions.every((r, i) => r.pageCount === b.regions[i]!.pageCount);
}

async function defaultMemory(layout: MemoryLayout, core: Core): Promise<GuestMemory> {
  const bytes = layoutBytes(layout);
  if (bytes <= IN_CORE_LIMIT_BYTES) return GuestMemory.inCore(core, layout.regions, layout.pageSize);
  return GuestMemory.allocateExternal(layout);
}

/**
 * Restore a snapshot (or a captured pre-copy migration stream) into memory and verify its digest.
 * @param input the file's bytes
 * @param options memory to restore into (required for an incremental snapshot: its parent's memory)
 * @returns the memory, verified flag and digests
 * @throws PagewireError SNAPSHOT_CORRUPT (truncated, corrupt, not a snapshot), SNAPSHOT_PARENT_MISMATCH
 *   (incremental applied to other memory than its parent), LAYOUT_MISMATCH, INVALID_ARGUMENT
 */
export async function restoreSnapshot(input: SnapshotInput, options: RestoreOptions = {}): Promise<RestoreResult> {
  const given = options.memory instanceof GuestMemory ? options.memory : null;
  const core = options.core ?? given?.core ?? (await createCore());
  let memory: GuestMemory | null = given;
  let header: SnapshotHeader | null = null;
  let decoder: Awaited<ReturnType<typeof createDecoder>> | null = null;
  let pages = 0;
  let roundPages = 0;
  let deviceState: Uint8Array | null = null;
  try {
    const res = await walk(input, core, {
      hello: async (h) => {
        header = h;
        const incremental = h.snapshot?.kind === 'incremental';
        if (incremental) {
          if (!given) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'an incremental snapshot is restored onto the memory of its parent: pass options.memory');
          if (!sameLayout(given.layout, h.layout)) throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, 'the memory given has another layout than the snapshot');
          const base = options.baseDigest ?? memoryDigest(given, core);
          if (base !== h.snapshot!.parentDigest) {
            throw new PagewireError(ErrorCode.SNAPSHOT_PARENT_MISMATCH, `${options.label ?? 'this incremental snapshot'} applies to memory with digest ${h.snapshot!.parentDigest}; the memory given has digest ${base}`);
          }
        } else if (given) {
          if (!sameLayout(given.layout, h.layout)) throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, 'the memory given has another layout than the snapshot');
        } else {
          checkLayoutLimit(h, options);
          const m = typeof options.memory === 'function' ? await options.memory(h.layout) : await defaultMemory(h.layout, core);
          if (!sameLayout(m.layout, h.layout)) throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, 'the memory factory returned another layout than the snapshot');
          memory = m;
        }
        decoder = await createDecoder(memory!, h.codecs);
      },
      pages: (payload) => {
        const n = decoder!.apply(payload);
        pages += n;
        roundPages += n;
      },
      roundEnd: (m) => {
        if (m.pages !== roundPages) corrupt(`ROUND_END of round ${m.round} counts ${m.pages} pages, its PAGES frames held ${roundPages}`);
        roundPages = 0;
      },
      deviceState: (payload) => { deviceState = payload.slice(); },
    }, options);
    const h = header as SnapshotHeader | null;
    if (!h || !memory || !res.complete) throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, 'snapshot: incomplete');
    const digest = memoryDigest(memory, core);
    // a captured 1.3 migration stream records a commitment to the digest, not the digest
    const verified = completeNames(digest, res.complete);
    return {
      memory, header: h, verified, digest, expectedDigest: res.complete.commitment ? (verified ? digest : '(commitment)') : res.complete.digest,
      pages, bytes: res.bytes, frames: res.frames, deviceState,
    };
  } finally {
    (decoder as { dispose(): void } | null)?.dispose();
  }
}

/** One file of a chain: its bytes, or a function that opens it (called when its turn comes). */
export type ChainLink = SnapshotInput | (() => SnapshotInput | Promise<SnapshotInput>);

/** Outcome of {@link restoreChain}. */
export interface ChainRestoreResult {
  memory: GuestMemory;
  /** Every link verified (and each incremental applied onto its verified parent). */
  verified: boolean;
  /** Digest of the final memory. */
  digest: string;
  /** Per file, root first (stops at the first file that does not verify). */
  links: Omit<RestoreResult, 'memory'>[];
  /** Pages applied from all files. */
  pages: number;
}

/**
 * Restore a chain: a full snapshot, then incremental snapshots each taken against the previous.
 * Each link is verified before the next is applied on top of it.
 * @param links root (full) first
 * @throws PagewireError SNAPSHOT_CORRUPT, SNAPSHOT_PARENT_MISMATCH (a link does not follow the
 *   previous one, or the root is incremental), LAYOUT_MISMATCH, INVALID_ARGUMENT
 */
export async function restoreChain(links: readonly ChainLink[], options: RestoreOptions & { labels?: readonly string[] } = {}): Promise<ChainRestoreResult> {
  if (links.length === 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'restoreChain needs at least one snapshot');
  const results: Omit<RestoreResult, 'memory'>[] = [];
  let memory: GuestMemory | null = null;
  let digest = '';
  let pages = 0;
  for (let i = 0; i < links.length; i++) {
    const l = links[i]!;
    const input = typeof l === 'function' ? await l() : l;
    const label = options.labels?.[i] ?? (links.length > 1 ? `snapshot ${i} of the chain` : undefined);
    const r: RestoreResult = await restoreSnapshot(input, i === 0
      ? { ...options, baseDigest: undefined, label }
      : { core: options.core, maxFrameBytes: options.maxFrameBytes, memory: memory!, baseDigest: digest, label });
    if (i === 0 && r.header.snapshot?.kind === 'incremental') {
      throw new PagewireError(ErrorCode.SNAPSHOT_PARENT_MISMATCH, 'the first snapshot of a chain must be a full snapshot');
    }
    if (i > 0 && r.header.snapshot?.kind !== 'incremental') {
      throw new PagewireError(ErrorCode.SNAPSHOT_PARENT_MISMATCH, `snapshot ${i} of the chain is not incremental`);
    }
    const { memory: m, ...rest } = r;
    results.push(rest);
    memory = m;
    digest = r.digest;
    pages += r.pages;
    if (!r.verified) return { memory, verified: false, digest, links: results, pages };
  }
  return { memory: memory!, verified: true, digest, links: results, pages };
}

/** Summary of a snapshot or captured stream (what `pagewire inspect` prints). */
export interface SnapshotSummary {
  header: SnapshotHeader | null;
  /** Bytes parsed (the whole file when `error` is null). */
  bytes: number;
  /** Per frame type: count and bytes (headers included). */
  frames: Record<string, { count: number; bytes: number }>;
  rounds: SnapshotRoundEnd[];
  /** Pages stored (sum over rounds). */
  pages: number;
  /** Bytes of PAGES frames. */
  pageFrameBytes: number;
  /** Pages x page size. */
  rawBytes: number;
  /** Per-codec pages and encoded bytes, or null when the file does not say and decoding did not tell. */
  codecs: CodecCounts | null;
  deviceStateBytes: number;
  /** Digest recorded in COMPLETE. */
  digest: string | null;
  complete: boolean;
  /** The first problem found (the summary covers what came before it). */
  error: { code: string; message: string } | null;
}

/** Options of {@link inspectSnapshot}. */
export interface InspectOptions extends SnapshotReadOptions {
  /**
   * When the file does not record its codec mix (a captured migration stream with several
   * codecs), decode its records into scratch memory and ask the decoder (default true). A
   * one-shot input (a stream) needs `reopen` for that second pass; a Uint8Array is read again.
   */
  decode?: boolean;
  /** Opens the same bytes again (for the decoding pass). */
  reopen?: () => SnapshotInput | Promise<SnapshotInput>;
}

function decoderCounts(stats: unknown): CodecCounts | null {
  const c = (stats as { codecs?: Record<string, { pages?: number; inBytes?: number; bytes?: number; outBytes?: number }> } | null)?.codecs;
  if (!c || typeof c !== 'object') return null;
  const out: CodecCounts = {};
  for (const [k, v] of Object.entries(c)) {
    const bytes = v.inBytes ?? v.bytes ?? v.outBytes;
    if (typeof v.pages !== 'number' || typeof bytes !== 'number') return null;
    out[k] = { pages: v.pages, bytes };
  }
  return out;
}

/**
 * Summarise a snapshot or a captured stream: header, rounds, codec mix, sizes. Never throws for
 * a corrupt file: the summary's `error` says what was wrong and where.
 * @throws PagewireError only for bad arguments or a core that cannot load
 */
export async function inspectSnapshot(input: SnapshotInput, options: InspectOptions = {}): Promise<SnapshotSummary> {
  const core = options.core ?? (await createCore());
  const s: SnapshotSummary = {
    header: null, bytes: 0, frames: {}, rounds: [], pages: 0, pageFrameBytes: 0, rawBytes: 0, codecs: null,
    deviceStateBytes: 0, digest: null, complete: false, error: null,
  };
  let payloadBytes = 0;
  try {
    await walk(input, core, {
      hello: (h) => { s.header = h; },
      frame: (type, bytes) => {
        const name = frameTypeName(type);
        const e = (s.frames[name] ??= { count: 0, bytes: 0 });
        e.count++;
        e.bytes += bytes;
        s.bytes += bytes;
      },
      pages: (payload, bytes) => { s.pageFrameBytes += bytes; payloadBytes += payload.byteLength; },
      roundEnd: (m) => { s.rounds.push(m); s.pages += m.pages; },
      deviceState: (payload) => { s.deviceStateBytes += payload.byteLength; },
      complete: (m) => { s.digest = m.digest || '(commitment: protocol 1.3 stream)'; s.complete = true; },
    }, options);
  } catch (err) {
    if (!(err instanceof PagewireError)) throw err;
    s.error = { code: err.code, message: err.message };
  }
  if (s.header) s.bytes += PREAMBLE_BYTES;
  const h = s.header as SnapshotHeader | null;
  if (h) s.rawBytes = s.pages * h.layout.pageSize;
  if (s.rounds.length > 0 && s.rounds.every((r) => r.codecs)) {
    const mix: CodecCounts = {};
    for (const r of s.rounds) for (const [k, v] of Object.entries(r.codecs!)) {
      const e = (mix[k] ??= { pages: 0, bytes: 0 });
      e.pages += v.pages;
      e.bytes += v.bytes;
    }
    s.codecs = mix;
  } else if (h && h.codecs.length === 1) {
    s.codecs = { [h.codecs[0]!]: { pages: s.pages, bytes: payloadBytes } };
  } else if (h && s.complete && options.decode !== false) {
    const again = input instanceof Uint8Array ? input : options.reopen ? await options.reopen() : null;
    if (again) s.codecs = await decodedMix(again, h, core, options);
  }
  return s;
}

/** Apply every PAGES frame to scratch memory and read the decoder's per-codec counts. */
async function decodedMix(input: SnapshotInput, h: SnapshotHeader, core: Core, options: SnapshotReadOptions): Promise<CodecCounts | null> {
  if (layoutBytes(h.layout) > (options.maxGuestBytes ?? DEFAULT_MAX_GUEST_BYTES)) return null; // no scratch memory that large
  const scratch = await defaultMemory(h.layout, core);
  const decoder = await createDecoder(scratch, h.codecs);
  try {
    await walk(input, core, { pages: (p) => { decoder.apply(p); } }, options);
    return decoderCounts(decoder.stats);
  } catch {
    return null;
  } finally {
    decoder.dispose();
  }
}
