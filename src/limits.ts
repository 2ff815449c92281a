/**
 * Ceilings on what a peer or a file may make pagewire allocate. Every length, count and layout
 * that comes from outside (a HELLO, a snapshot header, an ELF core's program headers, a frame
 * header) is checked against one of these before anything is allocated for it, and refused with
 * LIMIT_EXCEEDED. Each is an option where it applies; these are the defaults.
 */
import { PagewireError, ErrorCode } from './errors.js';

/** Largest guest a peer or a file may make us allocate, bytes (16 GiB). */
export const DEFAULT_MAX_GUEST_BYTES = 16 * 1024 * 1024 * 1024;

/**
 * Largest frame accepted before a connection is authenticated (the handshake's HELLO, AUTH),
 * bytes. A HELLO with the largest layout (1024 regions with 256-char names) is about 300 KiB.
 */
export const DEFAULT_MAX_HANDSHAKE_FRAME_BYTES = 1024 * 1024;

/**
 * Refuse a guest of `bytes` when it is above `limit`.
 * @param what who asks, for the message (e.g. "the source", "snapshot x.pgw")
 * @throws PagewireError LIMIT_EXCEEDED
 */
export function checkGuestBytes(bytes: number, limit: number, what: string): void {
  if (!(bytes <= limit)) {
    throw new PagewireError(ErrorCode.LIMIT_EXCEEDED, `${what} announces a ${formatLimit(bytes)} guest, above the ${formatLimit(limit)} limit (raise it with maxGuestBytes / --max-guest)`);
  }
}

function formatLimit(bytes: number): string {
  const GiB = 1024 * 1024 * 1024;
  return bytes >= GiB ? `${(bytes / GiB).toFixed(bytes % GiB === 0 ? 0 : 2)} GiB (${bytes} bytes)` : `${bytes}-byte`;
}
