/**
 * The layout shared with the core (mirrored one for one from assembly/layout.ts; a test parses that
 * file and checks every constant here): record codec ids, enable and encoder flags, and the byte
 * offsets of the state blocks src/codec/ fills in for assembly/batch.ts. Use these names, never the
 * numbers.
 */

// Record codec ids (low 3 bits of a record head) and the NEXT bit (docs/RECORDS.md).
export const CODEC_ZERO = 0;
export const CODEC_RAW = 1;
export const CODEC_DUP = 2;
export const CODEC_XBZRLE = 3;
export const CODEC_RLE = 4;
export const HEAD_NEXT = 8;

// Enable-mask bits (bit = record codec id): which codecs may be used (encoder) or accepted (decoder).
export const F_ZERO = 1 << 0;
export const F_RAW = 1 << 1;
export const F_DUP = 1 << 2;
export const F_XBZRLE = 1 << 3;
export const F_RLE = 1 << 4;
// Encoder-only flags.
/** Use and update the delta cache. */
export const F_CACHE = 1 << 8;
/** Final stage: no new cache entries (existing ones still kept exact). */
export const F_FINAL = 1 << 9;
/** XBZRLE allowed in this call (QEMU: only after the first pass). */
export const F_XB_ACTIVE = 1 << 10;

// EncState: u32 fields at byte offsets from `st` (filled by src/codec/delta-cache.ts).
export const ENC_PAGE_SIZE = 0;
export const ENC_PAGE_COUNT = 4;
/** Pointer: u32 per guest page (0 unknown, ENC_ZERO_MARK, else slot + 1). */
export const ENC_MAP = 8;
export const ENC_SLOTS = 12;
/** Pointer: u32 per slot, the page it holds (ENC_EMPTY = free). */
export const ENC_SLOT_PAGE = 16;
/** Pointer: pageSize bytes per slot. */
export const ENC_SLOT_DATA = 20;
/** Pointer: u8 CLOCK reference bit per slot. */
export const ENC_SLOT_REF = 24;
/** Pointer: u64 xxh64 per slot. */
export const ENC_SLOT_HASH = 28;
/** Pointer: u32 per hash bucket (slot + 1, 0 = none). */
export const ENC_HINDEX = 32;
export const ENC_HMASK = 36;
/** CLOCK hand. */
export const ENC_HAND = 40;
/** Pointer: 2 * pageSize bytes of scratch. */
export const ENC_SCRATCH = 44;
/** Pointer: u64 per guest page, the xxh64 (seed 0) of each page as encoded (a PageHashTable); 0 = none. */
export const ENC_DIGEST = 48;
/** u64: xxh64 (seed 0) of an all-zero page, for ENC_DIGEST. */
export const ENC_ZERO_HASH = 56;
/** Per-call statistics (u32, cleared by every encodeBatch): pages of codec c at +8c, out bytes at +8c+4. */
export const ENC_STATS = 64;
export const ENC_STAT_UNCHANGED = 104;
export const ENC_STAT_HITS = 108;
export const ENC_STAT_MISSES = 112;
export const ENC_STAT_OVERFLOWS = 116;
export const ENC_STAT_EVICTIONS = 120;
export const ENC_STAT_INSERTS = 124;
/** Bytes of an EncState. */
export const ENC_STATE_BYTES = 128;
/** Map word: the target holds a zero page. Slot page: free. */
export const ENC_ZERO_MARK = 0xffffffff;
export const ENC_EMPTY = 0xffffffff;

// DecState: u32 fields at byte offsets from `st` (filled by src/codec/decoder.ts).
export const DEC_PAGE_SIZE = 0;
export const DEC_PAGE_COUNT = 4;
/** Page p is at base + p * pageSize (guest memory in the core). */
export const DEC_BASE = 8;
/** Accepted codecs (F_ZERO | F_RAW | ...). */
export const DEC_MASK = 12;
/** Pointer: scan output (page, ref, codec) u32 triples per record; apply output: u8 codec per record. */
export const DEC_TABLE = 16;
/** Pointer: u32 per record, the page written (apply output). */
export const DEC_PAGES = 20;
/** Out: byte offset in the block of the failing record. */
export const DEC_ERR_AT = 24;
/** Most records a block may hold (capacity of the table and the page list). */
export const DEC_MAX_REC = 28;
/** Out: records fully processed (on error: those before the failing one). */
export const DEC_DONE = 32;
/** Bytes of a DecState. */
export const DEC_STATE_BYTES = 36;
/** Bytes of one scan-table entry (page, ref, codec). */
export const DEC_SCAN_ENTRY_BYTES = 12;

/** Bytes of a streaming xxHash64 state (xxh64Init/Update/Digest; 8-aligned). */
export const XXH64_STATE_BYTES = 48;
