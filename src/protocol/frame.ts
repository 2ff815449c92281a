/**
 * pagewire wire format: a connection preamble, then length-prefixed, checksummed frames.
 * See docs/PROTOCOL.md for the full grammar.
 *
 *   stream   = preamble frame*
 *   preamble = "PGWR" u8:major u8:minor u16:0                      (8 bytes)
 *   frame    = u32:payloadLength u8:type u8:flags u16:channel u32:seq u32:checksum payload
 *              (16-byte header, little-endian)
 *   checksum = low 32 bits of xxh64(payload, seed = frameSeed(type, flags, channel, seq))
 *              (xxh64 mixes in the payload length, so every header field is covered)
 *   (1.3) a frame whose flags carry FLAG_MAC is followed by a 32-byte tag:
 *              HMAC-SHA256(key of its direction, header || payload)
 */
import { PagewireError, ErrorCode } from '../errors.js';

/** Magic of the connection preamble: "PGWR". */
export const PREAMBLE_MAGIC = 0x52574750; // "PGWR" read as u32 LE
export const PREAMBLE_BYTES = 8;
/** Protocol version. Major must match; minor may differ (features negotiated in HELLO). */
export const PROTOCOL_MAJOR = 1;
export const PROTOCOL_MINOR = 4;
/** First minor that understands page lists as ranges (PAGE_LIST_RANGES). */
export const MINOR_PAGE_RANGES = 1;
/**
 * First minor that authenticates frames with a session key (FLAG_MAC) and commits to the digest
 * instead of sending it in COMPLETE. With a shared secret both sides require it.
 */
export const MINOR_FRAME_MAC = 3;
/** First minor whose ACK is the 20-byte layout (appliedSeq, bytesApplied, echoTimeMs; messages.ts). */
export const MINOR_SHORT_ACK = 4;
export const FRAME_HEADER_BYTES = 16;
/**
 * Frame flag (protocol 1.3): a MAC_BYTES tag follows the payload (not counted in payloadLength):
 * HMAC-SHA256(direction key, header || payload), see auth.ts.
 */
export const FLAG_MAC = 0x80;
/** Length of a frame's authentication tag (a full HMAC-SHA256). */
export const MAC_BYTES = 32;
/** Default ceiling for one frame's payload; larger frames are refused before any allocation. */
export const DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024;

/** Frame types. */
export const FrameType = {
  /** source -> target: JSON hello (session, layout, codecs, options, auth nonce). */
  HELLO: 1,
  /** target -> source: JSON challenge for the shared-secret handshake. */
  CHALLENGE: 2,
  /** source -> target: JSON proof for the challenge. */
  AUTH: 3,
  /** target -> source: JSON welcome (accepted; resume position). */
  WELCOME: 4,
  /** source -> target: binary page records of one round (payload = codec records). */
  PAGES: 5,
  /** source -> target: JSON end of a round with counts. */
  ROUND_END: 6,
  /** source -> target: device state blob (opaque bytes). */
  DEVICE_STATE: 7,
  /** source -> target: JSON completion with the memory digest. */
  COMPLETE: 8,
  /** target -> source: binary acknowledgement (see ack layout in messages.ts). */
  ACK: 9,
  /** target -> source: JSON result of completion (verified, downtime on target). */
  DONE: 10,
  /** either way: JSON error { code, message }, then the sender closes. */
  ERROR: 11,
  /** target -> source: binary page requests (post-copy faults): u32 page indices. */
  PAGE_REQUEST: 12,
  /** source -> target: JSON switch to post-copy: target may run, missing pages listed as a bitmap in a following frame. */
  POSTCOPY: 13,
  /** source -> target: binary list of page indices (discard / missing sets). */
  PAGE_LIST: 14,
  /** target -> source: JSON per-page hashes the target already holds (skip known pages). */
  KNOWN_PAGES: 15,
  /** source -> target: RTT probe, f64 source clock; protocol 1.2 targets ACK it echoing the time. */
  PING: 16,
  /** target -> source: answer to PING of protocol 1.0/1.1 targets (no 1.2 target sends it). */
  PONG: 17,
  /** target -> source: per-page hashes for a full verification pass (u32 first, u32 count, count x u64). */
  PAGE_HASHES: 18,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const FRAME_TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k]));

/** Human name of a frame type (for errors and `inspect`). */
export function frameTypeName(type: number): string {
  return FRAME_TYPE_NAMES[type] ?? `UNKNOWN(${type})`;
}

/** Whether `type` is a known frame type. */
export function isFrameType(type: number): type is FrameType {
  return FRAME_TYPE_NAMES[type] !== undefined;
}

/** A parsed frame. `payload` may be a view into reusable memory: valid until the next frame is read. */
export interface Frame {
  readonly type: FrameType;
  readonly flags: number;
  readonly channel: number;
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** Seed for a frame's checksum from its header fields (type, flags, channel, seq). */
export function frameSeed(type: number, flags: number, channel: number, seq: number): bigint {
  return (BigInt(type & 0xff) << 56n) | (BigInt(flags & 0xff) << 48n) | (BigInt(channel & 0xffff) << 32n) | BigInt(seq >>> 0);
}

/** The 8-byte preamble each side sends first. */
export function encodePreamble(major = PROTOCOL_MAJOR, minor = PROTOCOL_MINOR): Uint8Array {
  const out = new Uint8Array(PREAMBLE_BYTES);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, PREAMBLE_MAGIC, true);
  out[4] = major;
  out[5] = minor;
  return out;
}

/**
 * Check a received preamble.
 * @returns the peer's minor version
 * @throws PagewireError FRAME_CORRUPT (not pagewire), VERSION_MISMATCH (other major)
 */
export function checkPreamble(bytes: Uint8Array): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, PREAMBLE_BYTES);
  if (dv.getUint32(0, true) !== PREAMBLE_MAGIC) {
    throw new PagewireError(ErrorCode.FRAME_CORRUPT, 'peer is not speaking pagewire (bad preamble magic)');
  }
  if (bytes[4] !== PROTOCOL_MAJOR) {
    throw new PagewireError(ErrorCode.VERSION_MISMATCH, `peer speaks pagewire protocol ${bytes[4]}.${bytes[5]}, this side speaks ${PROTOCOL_MAJOR}.${PROTOCOL_MINOR}`);
  }
  if (bytes[6] !== 0 || bytes[7] !== 0) {
    throw new PagewireError(ErrorCode.FRAME_CORRUPT, 'bad preamble (reserved bytes not zero)');
  }
  return bytes[5]!;
}
