/**
 * The page record format (version 1), shared by the encoder and the decoder. Full description:
 * docs/RECORDS.md. In short:
 *
 *   payload = version:u8 (=1) block*
 *   block   = kind:u8 (0 plain, 1 LZ4) rawLen:uleb [compLen:uleb] bytes
 *             plain: rawLen bytes of records; LZ4: compLen bytes of LZ4 (4-byte LE length = rawLen
 *             + raw LZ4 block) that decompress to rawLen bytes of records
 *   record  = head:u8 [page:uleb] payload      (assembly/batch.ts has the per-codec grammar)
 *
 * Records never span blocks; a block holds at most {@link MAX_BLOCK_RECORDS} records and
 * {@link MAX_BLOCK_BYTES} bytes of records. Unchanged pages are not sent at all (only counted).
 */
import { PagewireError, ErrorCode } from '../errors.js';

/** Record format version (first byte of every payload). */
export const RECORDS_VERSION = 1;
/** Largest decompressed block. */
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024;
/** Most records in one block. */
export const MAX_BLOCK_RECORDS = 65536;
/** Block kinds. */
export const BLOCK_PLAIN = 0;
export const BLOCK_LZ4 = 1;

/** Names of the codecs, as negotiated (HELLO) and in statistics. */
export type CodecName = 'zero' | 'raw' | 'dup' | 'xbzrle' | 'rle' | 'lz4';
/** Every codec name. */
export const CODEC_NAMES: readonly CodecName[] = ['zero', 'raw', 'dup', 'xbzrle', 'rle', 'lz4'];
/** Codecs that are record kinds (all but 'lz4', which compresses blocks). */
export type RecordCodecName = Exclude<CodecName, 'lz4'>;
/** Record codec ids (low 3 bits of a record head), index = id. */
export const RECORD_CODECS: readonly RecordCodecName[] = ['zero', 'raw', 'dup', 'xbzrle', 'rle'];

/** Enable-mask bits and encoder flags shared with the core (src/core/layout.ts mirrors assembly/layout.ts). */
export { F_ZERO, F_RAW, F_DUP, F_XBZRLE, F_RLE, F_CACHE, F_FINAL, F_XB_ACTIVE } from '../core/layout.js';

/** Mask of record codecs in a list of names ('lz4' is a block kind, not a record codec). */
export function codecMask(names: readonly string[]): number {
  let m = 0;
  for (const n of names) {
    const i = RECORD_CODECS.indexOf(n as RecordCodecName);
    if (i >= 0) m |= 1 << i;
    else if (n !== 'lz4') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `unknown codec ${JSON.stringify(n)}`);
  }
  return m;
}

/** Write a u32 ULEB128 at `out[pos]`; returns the new position. */
export function writeUleb(out: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    out[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[pos++] = v;
  return pos;
}

/**
 * Read a u32 ULEB128 at `buf[pos]` (at most 5 bytes, value < 2^32); sets `cursor.pos`.
 * @throws PagewireError RECORD_CORRUPT
 */
export function readUleb(buf: Uint8Array, cursor: { pos: number }): number {
  let v = 0;
  let mul = 1;
  let pos = cursor.pos;
  for (let i = 0; i < 5; i++) {
    if (pos >= buf.byteLength) throw new PagewireError(ErrorCode.RECORD_CORRUPT, 'record stream ends inside a length');
    const b = buf[pos++]!;
    v += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) {
      if (v > 0xffffffff) break;
      cursor.pos = pos;
      return v;
    }
    mul *= 128;
  }
  throw new PagewireError(ErrorCode.RECORD_CORRUPT, 'record stream has an over-long length');
}
