// Status codes returned by core functions. Every core function returns a number: `>= 0` is a byte
// count (or a count of pages), `< 0` is one of these codes. Mirrored in src/core/status.ts;
// test/core-exports.test.ts checks that both files agree. Add codes at the end; never renumber.

/** The output would not fit in the limit given (QEMU's XBZRLE "overflow", -1). */
export const STATUS_OVERFLOW: i32 = -1;
/** The input ends inside a record (a length or its payload is cut off). */
export const STATUS_TRUNCATED: i32 = -2;
/** A length field is malformed (bad or over-long ULEB128). */
export const STATUS_BAD_LENGTH: i32 = -3;
/** A run has a length of zero where the format forbids it. */
export const STATUS_ZERO_RUN: i32 = -4;
/** A run passes the end of the page (or of the output). */
export const STATUS_PAST_END: i32 = -5;
/** An RLE op has an unknown kind. */
export const STATUS_BAD_OP: i32 = -6;
/** The stream ended before the output was completely described (RLE). */
export const STATUS_INCOMPLETE: i32 = -7;
/** Bytes follow the end of the output (RLE). */
export const STATUS_TRAILING: i32 = -8;
/** A length or size argument is out of the range the function supports. */
export const STATUS_BAD_ARGUMENT: i32 = -9;
/** An LZ4 match offset is zero or reaches before the start of the output. */
export const STATUS_BAD_OFFSET: i32 = -10;
/** A page record is malformed: head, lengths, a reference to itself, too many records (decoder). */
export const STATUS_RECORD_CORRUPT: i32 = -100;
/** A record names a page (or a reference) outside guest memory (decoder). */
export const STATUS_PAGE_OUT_OF_RANGE: i32 = -101;
/** A record uses a codec outside the accepted mask (decoder). */
export const STATUS_CODEC_NOT_NEGOTIATED: i32 = -102;
/** An XBZRLE record's payload is malformed or does not fit the page (decoder). */
export const STATUS_XBZRLE_CORRUPT: i32 = -103;
/** An RLE record's payload is malformed or does not decode to one page (decoder). */
export const STATUS_RLE_CORRUPT: i32 = -104;
