/**
 * Status codes returned by the core's functions, mirrored from assembly/status.ts (a test checks
 * that both files agree). A core result `>= 0` is a byte or page count; `< 0` is one of these.
 */

/** The output would not fit in the limit given (QEMU's XBZRLE "overflow", -1). */
export const STATUS_OVERFLOW = -1;
/** The input ends inside a record (a length or its payload is cut off). */
export const STATUS_TRUNCATED = -2;
/** A length field is malformed (bad or over-long ULEB128). */
export const STATUS_BAD_LENGTH = -3;
/** A run has a length of zero where the format forbids it. */
export const STATUS_ZERO_RUN = -4;
/** A run passes the end of the page (or of the output). */
export const STATUS_PAST_END = -5;
/** An RLE op has an unknown kind. */
export const STATUS_BAD_OP = -6;
/** The stream ended before the output was completely described (RLE). */
export const STATUS_INCOMPLETE = -7;
/** Bytes follow the end of the output (RLE). */
export const STATUS_TRAILING = -8;
/** A length or size argument is out of the range the function supports. */
export const STATUS_BAD_ARGUMENT = -9;
/** An LZ4 match offset is zero or reaches before the start of the output. */
export const STATUS_BAD_OFFSET = -10;
/** A page record is malformed: head, lengths, a reference to itself, too many records (decoder). */
export const STATUS_RECORD_CORRUPT = -100;
/** A record names a page (or a reference) outside guest memory (decoder). */
export const STATUS_PAGE_OUT_OF_RANGE = -101;
/** A record uses a codec outside the accepted mask (decoder). */
export const STATUS_CODEC_NOT_NEGOTIATED = -102;
/** An XBZRLE record's payload is malformed or does not fit the page (decoder). */
export const STATUS_XBZRLE_CORRUPT = -103;
/** An RLE record's payload is malformed or does not decode to one page (decoder). */
export const STATUS_RLE_CORRUPT = -104;

/** Every status by name, for tests and messages. */
export const CoreStatus = {
  OVERFLOW: STATUS_OVERFLOW,
  TRUNCATED: STATUS_TRUNCATED,
  BAD_LENGTH: STATUS_BAD_LENGTH,
  ZERO_RUN: STATUS_ZERO_RUN,
  PAST_END: STATUS_PAST_END,
  BAD_OP: STATUS_BAD_OP,
  INCOMPLETE: STATUS_INCOMPLETE,
  TRAILING: STATUS_TRAILING,
  BAD_ARGUMENT: STATUS_BAD_ARGUMENT,
  BAD_OFFSET: STATUS_BAD_OFFSET,
  RECORD_CORRUPT: STATUS_RECORD_CORRUPT,
  PAGE_OUT_OF_RANGE: STATUS_PAGE_OUT_OF_RANGE,
  CODEC_NOT_NEGOTIATED: STATUS_CODEC_NOT_NEGOTIATED,
  XBZRLE_CORRUPT: STATUS_XBZRLE_CORRUPT,
  RLE_CORRUPT: STATUS_RLE_CORRUPT,
} as const;

/** One of the values of {@link CoreStatus}. */
export type CoreStatus = (typeof CoreStatus)[keyof typeof CoreStatus];

const MESSAGES: Record<number, string> = {
  [STATUS_OVERFLOW]: 'output does not fit the limit',
  [STATUS_TRUNCATED]: 'input ends inside a record',
  [STATUS_BAD_LENGTH]: 'malformed length',
  [STATUS_ZERO_RUN]: 'zero-length run',
  [STATUS_PAST_END]: 'run passes the end of the page',
  [STATUS_BAD_OP]: 'unknown op kind',
  [STATUS_INCOMPLETE]: 'stream ends before the output is complete',
  [STATUS_TRAILING]: 'bytes after the end of the output',
  [STATUS_BAD_ARGUMENT]: 'argument out of range',
  [STATUS_BAD_OFFSET]: 'LZ4 offset before the start of the output',
  [STATUS_RECORD_CORRUPT]: 'malformed page record',
  [STATUS_PAGE_OUT_OF_RANGE]: 'page index outside guest memory',
  [STATUS_CODEC_NOT_NEGOTIATED]: 'codec not negotiated',
  [STATUS_XBZRLE_CORRUPT]: 'malformed XBZRLE record payload',
  [STATUS_RLE_CORRUPT]: 'malformed RLE record payload',
};

/**
 * A short description of a core status, for error messages.
 * @param status a negative core result
 * @returns the description, or `status <n>` for an unknown code
 */
export function statusMessage(status: number): string {
  return MESSAGES[status] ?? `status ${status}`;
}
