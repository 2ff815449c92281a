/**
 * Payloads of pagewire frames. Control frames carry UTF-8 JSON validated field by field on
 * receipt (unknown fields are ignored, so minor versions can add fields); hot frames (ACK,
 * PAGE_REQUEST, PAGE_LIST) are fixed binary layouts. PAGES payloads are codec records
 * (docs/RECORDS.md) and DEVICE_STATE payloads are opaque.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { MINOR_SHORT_ACK } from './frame.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Region of the layout announced in HELLO. */
export interface RegionInfo { name: string; pageCount: number }

/** source -> target, first frame of every connection. */
export interface HelloMessage {
  /** 32 hex chars, the same for every connection of one migration (resume reuses it). */
  sessionId: string;
  /** True when this connection continues an interrupted session. */
  resume: boolean;
  pageSize: number;
  regions: RegionInfo[];
  /** Record codecs the source may use. */
  codecs: string[];
  /** Migration mode: precopy, postcopy, hybrid. */
  mode: string;
  /** Hex nonce for the shared-secret handshake ('' when the source has no secret). */
  nonce: string;
  /** Free-form options for the target's report (downtime limit etc.). */
  options: Record<string, unknown>;
}

/** target -> source when a secret is configured. */
export interface ChallengeMessage {
  /** Target's hex nonce. */
  nonce: string;
  /** HMAC proving the target knows the secret (hex). */
  proof: string;
}

/** source -> target: answer to CHALLENGE. */
export interface AuthMessage { proof: string }

/** target -> source: the migration may start (or continue). */
export interface WelcomeMessage {
  sessionId: string;
  /**
   * For a resumed session: what the target holds. `digest`: the target's memory digest when it
   * completed (the source compares it with its own: a bare `complete: true` proves nothing).
   */
  resume: { appliedSeq: number; round: number; complete: boolean; digest?: string } | null;
  maxFrameBytes: number;
}

/** source -> target: end of round `round`. */
export interface RoundEndMessage {
  round: number;
  pages: number;
  wireBytes: number;
  final: boolean;
  /** Per-codec pages and record bytes of the round (optional; informational). */
  codecs?: Record<string, { pages: number; bytes: number }>;
}

/** source -> target: all pages sent; the target verifies `digest`. */
export interface CompleteMessage {
  /**
   * 16 hex chars: the memory digest of the source at pause time. '' when the COMPLETE carries a
   * commitment instead (protocol 1.3: the digest itself never goes to the target).
   */
  digest: string;
  /** (1.3) HMAC-SHA256(salt, "pagewire/digest|" digest), hex; salt: fresh, 32 hex. See auth.ts. */
  commitment?: { salt: string; mac: string };
  rounds: number;
  /** Source's time of pause (its own clock, ms), echoed in DONE for the downtime figure. */
  pausedAt: number;
  /** Full verification: on a digest mismatch the target sends its per-page hashes and waits for repairs. */
  repair?: boolean;
}

/** target -> source: outcome of COMPLETE. */
export interface DoneMessage {
  verified: boolean;
  /** Target's digest of its memory. */
  digest: string;
  /** The digest differed and PAGE_HASHES frames were sent: the source repairs and completes again. */
  repair?: boolean;
}

/** either way: a fatal error, the sender closes afterwards. */
export interface ErrorMessage { code: string; message: string }

/** source -> target: switch to post-copy now. */
export interface PostcopyMessage { round: number; missingPages: number }

/** Encode a control message as JSON bytes. */
export function encodeJson(msg: object): Uint8Array {
  return encoder.encode(JSON.stringify(msg));
}

/** Parse JSON bytes into an object. @throws PagewireError FRAME_CORRUPT */
export function decodeJson(payload: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(payload));
  } catch (cause) {
    throw new PagewireError(ErrorCode.FRAME_CORRUPT, `${what} frame is not valid JSON`, { cause });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new PagewireError(ErrorCode.FRAME_CORRUPT, `${what} frame is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

function bad(what: string, field: string, why: string): never {
  throw new PagewireError(ErrorCode.FRAME_CORRUPT, `${what}: field "${field}" ${why}`);
}

/** Field readers that throw FRAME_CORRUPT with the field name. */
export const field = {
  int(o: Record<string, unknown>, k: string, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(what, k, `must be an integer in ${min}..${max}`);
    return v as number;
  },
  num(o: Record<string, unknown>, k: string, what: string): number {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) bad(what, k, 'must be a finite number');
    return v as number;
  },
  str(o: Record<string, unknown>, k: string, what: string, maxLen = 4096, pattern?: RegExp): string {
    const v = o[k];
    if (typeof v !== 'string' || v.length > maxLen || (pattern && !pattern.test(v))) bad(what, k, `must be a string${pattern ? ` matching ${pattern}` : ''} of at most ${maxLen} chars`);
    return v as string;
  },
  bool(o: Record<string, unknown>, k: string, what: string): boolean {
    const v = o[k];
    if (typeof v !== 'boolean') bad(what, k, 'must be a boolean');
    return v as boolean;
  },
};

const HEX = /^[0-9a-f]*$/;

/** Validate a HELLO payload. Limits: 1024 regions, 64 codecs. */
export function parseHello(payload: Uint8Array): HelloMessage {
  const w = 'HELLO';
  const o = decodeJson(payload, w);
  const regionsRaw = o['regions'];
  if (!Array.isArray(regionsRaw) || regionsRaw.length === 0 || regionsRaw.length > 1024) bad(w, 'regions', 'must be an array of 1..1024 regions');
  const regions = (regionsRaw as unknown[]).map((r, i) => {
    if (typeof r !== 'object' || r === null) bad(w, `regions[${i}]`, 'must be an object');
    const ro = r as Record<string, unknown>;
    return { name: field.str(ro, 'name', w, 256), pageCount: field.int(ro, 'pageCount', w, 1, 2 ** 32 - 1) };
  });
  const codecsRaw = o['codecs'];
  if (!Array.isArray(codecsRaw) || codecsRaw.length > 64 || !codecsRaw.every((c) => typeof c === 'string' && c.length <= 32)) bad(w, 'codecs', 'must be an array of at most 64 short strings');
  const opts = o['options'];
  return {
    sessionId: field.str(o, 'sessionId', w, 32, /^[0-9a-f]{32}$/),
    resume: field.bool(o, 'resume', w),
    pageSize: field.int(o, 'pageSize', w, 1, 1 << 30),
    regions,
    codecs: codecsRaw as string[],
    mode: field.str(o, 'mode', w, 16, /^(precopy|postcopy|hybrid)$/),
    nonce: field.str(o, 'nonce', w, 128, HEX),
    options: typeof opts === 'object' && opts !== null && !Array.isArray(opts) ? (opts as Record<string, unknown>) : {},
  };
}

export function parseChallenge(payload: Uint8Array): ChallengeMessage {
  const o = decodeJson(payload, 'CHALLENGE');
  return { nonce: field.str(o, 'nonce', 'CHALLENGE', 128, HEX), proof: field.str(o, 'proof', 'CHALLENGE', 128, HEX) };
}

export function parseAuth(payload: Uint8Array): AuthMessage {
  const o = decodeJson(payload, 'AUTH');
  return { proof: field.str(o, 'proof', 'AUTH', 128, HEX) };
}

export function parseWelcome(payload: Uint8Array): WelcomeMessage {
  const w = 'WELCOME';
  const o = decodeJson(payload, w);
  const r = o['resume'];
  let resume: WelcomeMessage['resume'] = null;
  if (r !== null && r !== undefined) {
    if (typeof r !== 'object') bad(w, 'resume', 'must be an object or null');
    const ro = r as Record<string, unknown>;
    resume = { appliedSeq: field.int(ro, 'appliedSeq', w, -1, 2 ** 32), round: field.int(ro, 'round', w, -1), complete: field.bool(ro, 'complete', w) };
    if (ro['digest'] !== undefined) resume.digest = field.str(ro, 'digest', w, 16, /^[0-9a-f]{16}$/);
  }
  return { sessionId: field.str(o, 'sessionId', w, 32, /^[0-9a-f]{32}$/), resume, maxFrameBytes: field.int(o, 'maxFrameBytes', w, 4096) };
}

export function parseRoundEnd(payload: Uint8Array): RoundEndMessage {
  const w = 'ROUND_END';
  const o = decodeJson(payload, w);
  const m: RoundEndMessage = { round: field.int(o, 'round', w), pages: field.int(o, 'pages', w), wireBytes: field.int(o, 'wireBytes', w), final: field.bool(o, 'final', w) };
  const c = o['codecs'];
  if (c !== undefined) {
    if (typeof c !== 'object' || c === null || Array.isArray(c)) bad(w, 'codecs', 'must be an object');
    const entries = Object.entries(c as Record<string, unknown>);
    if (entries.length > 64) bad(w, 'codecs', 'names at most 64 codecs');
    const codecs: Record<string, { pages: number; bytes: number }> = {};
    for (const [k, v] of entries) {
      if (typeof v !== 'object' || v === null) bad(w, `codecs.${k}`, 'must be { pages, bytes }');
      const vo = v as Record<string, unknown>;
      codecs[k] = { pages: field.int(vo, 'pages', w), bytes: field.int(vo, 'bytes', w) };
    }
    m.codecs = codecs;
  }
  return m;
}

export function parseComplete(payload: Uint8Array): CompleteMessage {
  const w = 'COMPLETE';
  const o = decodeJson(payload, w);
  const c = o['commitment'];
  let commitment: CompleteMessage['commitment'];
  if (c !== undefined) {
    if (typeof c !== 'object' || c === null || Array.isArray(c)) bad(w, 'commitment', 'must be an object { salt, mac }');
    const co = c as Record<string, unknown>;
    commitment = { salt: field.str(co, 'salt', w, 64, /^[0-9a-f]{32,64}$/), mac: field.str(co, 'mac', w, 64, /^[0-9a-f]{64}$/) };
  }
  return {
    digest: commitment ? '' : field.str(o, 'digest', w, 16, /^[0-9a-f]{16}$/), ...(commitment ? { commitment } : {}),
    rounds: field.int(o, 'rounds', w), pausedAt: field.num(o, 'pausedAt', w),
    ...(o['repair'] === true ? { repair: true } : {}),
  };
}

export function parseDone(payload: Uint8Array): DoneMessage {
  const w = 'DONE';
  const o = decodeJson(payload, w);
  return {
    verified: field.bool(o, 'verified', w),
    digest: field.str(o, 'digest', w, 16, /^[0-9a-f]{0,16}$/),
    ...(o['repair'] === true ? { repair: true } : {}),
  };
}

export function parseError(payload: Uint8Array): ErrorMessage {
  const o = decodeJson(payload, 'ERROR');
  return { code: peerText(field.str(o, 'code', 'ERROR', 64), 64), message: peerText(field.str(o, 'message', 'ERROR', 4096), 4096) };
}

// C0 and C1 controls, DEL, and the bidirectional overrides and isolates
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from a peer made safe to print: control characters (terminal escape sequences among them)
 * and bidirectional overrides become '?', and the text is cut to `maxChars`.
 */
export function peerText(s: string, maxChars = 256): string {
  const t = s.replace(UNPRINTABLE, '?');
  return t.length > maxChars ? `${t.slice(0, maxChars)}...` : t;
}

/**
 * HELLO options as a report may echo them: at most 32 entries with a number, boolean or short
 * string value (strings through {@link peerText}); anything else from the peer is left out.
 */
export function echoOptions(options: Record<string, unknown>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  let n = 0;
  for (const [k, v] of Object.entries(options)) {
    if (n >= 32) break;
    if (k.length > 64) continue;
    if (typeof v === 'number' || typeof v === 'boolean') out[peerText(k, 64)] = v;
    else if (typeof v === 'string') out[peerText(k, 64)] = peerText(v, 256);
    else continue;
    n++;
  }
  return out;
}

export function parsePostcopy(payload: Uint8Array): PostcopyMessage {
  const o = decodeJson(payload, 'POSTCOPY');
  return { round: field.int(o, 'round', 'POSTCOPY'), missingPages: field.int(o, 'missingPages', 'POSTCOPY') };
}

/**
 * ACK (target -> source). Protocol 1.4 on (MINOR_SHORT_ACK), 20 bytes:
 *   u32 appliedSeq    last PAGES/ROUND_END/... frame sequence number applied (0xffffffff: none)
 *   f64 bytesApplied  frame bytes (header + payload) received and applied so far this session
 *   f64 echoTimeMs    when the acked frame is a PING: its time stamp (the source's RTT sample); 0 otherwise
 * Protocol 1.0-1.3, 40 bytes: u32 appliedSeq, u32 round, f64 bytesApplied, f64 pagesApplied,
 * f64 targetTimeMs, f64 echoTimeMs. No source ever read round, pagesApplied or targetTimeMs: a
 * target writes zeros there for an older source, and a source ignores them from an older target.
 * Which layout is chosen by the minor version the other side announced in its preamble.
 */
export interface AckMessage {
  appliedSeq: number;
  bytesApplied: number;
  echoTimeMs: number;
}
/** Bytes of an ACK for a peer of protocol 1.4 or later. */
export const ACK_BYTES = 20;
/** Bytes of an ACK for a peer of protocol 1.0-1.3. */
export const ACK_BYTES_1_3 = 40;

/** The ACK layout the peer of minor version `peerMinor` reads: [bytes, offset of bytesApplied, offset of echoTimeMs]. */
function ackLayout(peerMinor: number): readonly [number, number, number] {
  return peerMinor >= MINOR_SHORT_ACK ? [ACK_BYTES, 4, 12] : [ACK_BYTES_1_3, 8, 32];
}

/**
 * Encode an ACK for a source that announced protocol 1.`peerMinor`.
 * @param a the acknowledgement
 * @param peerMinor the source's minor version (from its preamble)
 */
export function encodeAck(a: AckMessage, peerMinor: number): Uint8Array {
  const [bytes, applied, echo] = ackLayout(peerMinor);
  const out = new Uint8Array(bytes);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, a.appliedSeq >>> 0, true);
  dv.setFloat64(applied, a.bytesApplied, true);
  dv.setFloat64(echo, a.echoTimeMs, true);
  return out;
}

/**
 * Parse an ACK from a target that announced protocol 1.`peerMinor`.
 * @throws PagewireError FRAME_CORRUPT for another length or a negative or non-finite number
 */
export function parseAck(payload: Uint8Array, peerMinor: number): AckMessage {
  const [bytes, applied, echo] = ackLayout(peerMinor);
  if (payload.byteLength !== bytes) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `ACK frame from a protocol 1.${peerMinor} target must be ${bytes} bytes, got ${payload.byteLength}`);
  const dv = new DataView(payload.buffer, payload.byteOffset, bytes);
  const a: AckMessage = { appliedSeq: dv.getUint32(0, true), bytesApplied: dv.getFloat64(applied, true), echoTimeMs: dv.getFloat64(echo, true) };
  for (const k of ['bytesApplied', 'echoTimeMs'] as const) {
    if (!Number.isFinite(a[k]) || a[k] < 0) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `ACK field ${k} is not a finite non-negative number`);
  }
  return a;
}

/** PING payload: the sender's clock, f64 ms (little-endian). */
export const PING_BYTES = 8;

/** A PING carrying the sender's clock (protocol 1.2: the target's ACK echoes it). */
export function encodePing(timeMs: number): Uint8Array {
  const out = new Uint8Array(PING_BYTES);
  new DataView(out.buffer).setFloat64(0, timeMs, true);
  return out;
}

/** @throws PagewireError FRAME_CORRUPT unless 8 bytes holding a finite, non-negative time */
export function parsePing(payload: Uint8Array): number {
  if (payload.byteLength !== PING_BYTES) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `PING frame must be ${PING_BYTES} bytes, got ${payload.byteLength}`);
  const t = new DataView(payload.buffer, payload.byteOffset, PING_BYTES).getFloat64(0, true);
  if (!Number.isFinite(t) || t < 0) throw new PagewireError(ErrorCode.FRAME_CORRUPT, 'PING time stamp is not a finite non-negative number');
  return t;
}

/** Set in a page list's count word: the list is `count` ranges (u32 first, u32 length), not pages. */
export const PAGE_LIST_RANGES = 0x80000000;

/**
 * Encode pages `pages[start .. start+count)` as a page list: `u32 count, count x u32 page`, or,
 * when the pages ascend and that is smaller, as ranges: `u32 (PAGE_LIST_RANGES | n), n x (u32
 * first, u32 length)` (a post-copy switch-over over a whole guest is one range instead of 4 bytes
 * a page). `allowRanges: false` for a peer of protocol 1.0, which knows only the first form.
 */
export function encodePageList(pages: ArrayLike<number>, start = 0, count = pages.length - start, allowRanges = true): Uint8Array {
  let ranges = count > 0 ? 1 : 0;
  let ascending = true;
  for (let i = 1; i < count && ascending; i++) {
    const a = pages[start + i - 1]!;
    const b = pages[start + i]!;
    if (b <= a) ascending = false;
    else if (b !== a + 1) ranges++;
  }
  if (allowRanges && ascending && count > 0 && ranges * 8 < count * 4) {
    const out = new Uint8Array(4 + ranges * 8);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, (PAGE_LIST_RANGES | ranges) >>> 0, true);
    let r = 0;
    let first = pages[start]!;
    let len = 1;
    for (let i = 1; i <= count; i++) {
      const p = i < count ? pages[start + i]! : -1;
      if (p === first + len) { len++; continue; }
      dv.setUint32(4 + r * 8, first, true);
      dv.setUint32(8 + r * 8, len, true);
      r++;
      first = p;
      len = 1;
    }
    return out;
  }
  const out = new Uint8Array(4 + count * 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, count, true);
  for (let i = 0; i < count; i++) dv.setUint32(4 + i * 4, pages[start + i]!, true);
  return out;
}

/**
 * Parse a page list in either form (see {@link encodePageList}). Ranges must ascend without
 * overlapping and have a length of at least 1, so a list never names more than `maxPage` pages.
 * @param maxPage page indices must be < maxPage
 * @throws PagewireError FRAME_CORRUPT (lengths, range order), PAGE_OUT_OF_RANGE
 */
export function parsePageList(payload: Uint8Array, maxPage: number, what = 'PAGE_LIST'): Uint32Array {
  if (payload.byteLength < 4) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `${what} frame is truncated`);
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const head = dv.getUint32(0, true);
  if (head & PAGE_LIST_RANGES) {
    const n = head & ~PAGE_LIST_RANGES;
    if (payload.byteLength !== 4 + n * 8) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `${what} frame says ${n} ranges but carries ${(payload.byteLength - 4) / 8}`);
    let total = 0;
    let next = 0;
    for (let r = 0; r < n; r++) {
      const first = dv.getUint32(4 + r * 8, true);
      const len = dv.getUint32(8 + r * 8, true);
      if (len === 0) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `${what} range ${r} is empty`);
      if (first < next) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `${what} ranges must ascend without overlapping (range ${r} starts at page ${first})`);
      if (first + len > maxPage) throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `${what} names pages ${first}..${first + len - 1}, guest has ${maxPage}`);
      next = first + len;
      total += len;
    }
    const out = new Uint32Array(total);
    let k = 0;
    for (let r = 0; r < n; r++) {
      const first = dv.getUint32(4 + r * 8, true);
      const len = dv.getUint32(8 + r * 8, true);
      for (let i = 0; i < len; i++) out[k++] = first + i;
    }
    return out;
  }
  const count = head;
  if (payload.byteLength !== 4 + count * 4) throw new PagewireError(ErrorCode.FRAME_CORRUPT, `${what} frame says ${count} pages but carries ${(payload.byteLength - 4) / 4}`);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const p = dv.getUint32(4 + i * 4, true);
    if (p >= maxPage) throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `${what} names page ${p}, guest has ${maxPage}`);
    out[i] = p;
  }
  return out;
}

/** Encode an ERROR payload from any thrown value. */
export function errorPayload(err: unknown): Uint8Array {
  const code = err instanceof PagewireError ? err.code : 'INTERNAL';
  const message = err instanceof Error ? err.message : String(err);
  return encodeJson({ code, message: message.slice(0, 4000) } satisfies ErrorMessage);
}

/** Pages per PAGE_HASHES frame (8 MiB of hashes). */
export const PAGE_HASHES_PER_FRAME = 1 << 20;

/** PAGE_HASHES payload: u32 firstPage, u32 count, count x u64 hash (LE). */
export function encodePageHashes(first: number, hashes: BigUint64Array): Uint8Array {
  const out = new Uint8Array(8 + hashes.length * 8);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, first, true);
  dv.setUint32(4, hashes.length, true);
  out.set(new Uint8Array(hashes.buffer, hashes.byteOffset, hashes.byteLength), 8);
  return out;
}

export function parsePageHashes(payload: Uint8Array, pageCount: number): { first: number; hashes: BigUint64Array } {
  if (payload.byteLength < 8) throw new PagewireError(ErrorCode.FRAME_CORRUPT, 'PAGE_HASHES frame is truncated');
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const first = dv.getUint32(0, true);
  const count = dv.getUint32(4, true);
  if (payload.byteLength !== 8 + count * 8 || first + count > pageCount) {
    throw new PagewireError(ErrorCode.FRAME_CORRUPT, `PAGE_HASHES frame for pages ${first}+${count} does not fit ${pageCount} pages or its length`);
  }
  const hashes = new BigUint64Array(count);
  new Uint8Array(hashes.buffer).set(payload.subarray(8));
  return { first, hashes };
}
