// The layout shared by the core and its TypeScript callers: record codec ids, enable and encoder
// flags, and the byte offsets of the state blocks that src/codec/ fills in and assembly/batch.ts
// reads. Mirrored one for one (same names, same values) in src/core/layout.ts;
// test/core-exports.test.ts parses this file and checks every constant against the mirror.
// Only plain `export const NAME: i32|u32 = <integer | 1 << n | 0x..>;` lines belong here.

// Record codec ids (low 3 bits of a record head) and the NEXT bit (docs/RECORDS.md).
export const CODEC_ZERO: u32 = 0;
export const CODEC_RAW: u32 = 1;
export const CODEC_DUP: u32 = 2;
export const CODEC_XBZRLE: u32 = 3;
export const CODEC_RLE: u32 = 4;
export const HEAD_NEXT: u32 = 8;

// Enable-mask bits (bit = record codec id): which codecs may be used (encoder) or accepted (decoder).
export const F_ZERO: u32 = 1 << 0;
export const F_RAW: u32 = 1 << 1;
export const F_DUP: u32 = 1 << 2;
export const F_XBZRLE: u32 = 1 << 3;
export const F_RLE: u32 = 1 << 4;
// Encoder-only flags.
/** Use and update the delta cache. */
export const F_CACHE: u32 = 1 << 8;
/** Final stage: no new cache entries (existing ones still kept exact). */
export const F_FINAL: u32 = 1 << 9;
/** XBZRLE allowed in this call (QEMU: only after the first pass). */
export const F_XB_ACTIVE: u32 = 1 << 10;

// EncState: u32 fields at byte offsets from `st` (filled by src/codec/delta-cache.ts).
export const ENC_PAGE_SIZE: i32 = 0;
export const ENC_PAGE_COUNT: i32 = 4;
/** Pointer: u32 per guest page (0 unknown, ENC_ZERO_MARK, else slot + 1). */
export const ENC_MAP: i32 = 8;
export const ENC_SLOTS: i32 = 12;
/** Pointer: u32 per slot, the page it holds (ENC_EMPTY = free). */
export const ENC_SLOT_PAGE: i32 = 16;
/** Pointer: pageSize bytes per slot. */
export const ENC_SLOT_DATA: i32 = 20;
/** Pointer: u8 CLOCK reference bit per slot. */
export const ENC_SLOT_REF: i32 = 24;
/** Pointer: u64 xxh64 per slot. */
export const ENC_SLOT_HASH: i32 = 28;
/** Pointer: u32 per hash bucket (slot + 1, 0 = none). */
export const ENC_HINDEX: i32 = 32;
export const ENC_HMASK: i32 = 36;
/** CLOCK hand. */
export const ENC_HAND: i32 = 40;
/** Pointer: 2 * pageSize bytes of scratch. */
export const ENC_SCRATCH: i32 = 44;
/** Pointer: u64 per guest page, the xxh64 (seed 0) of each page as encoded (a PageHashTable); 0 = none. */
export const ENC_DIGEST: i32 = 48;
/** u64: xxh64 (seed 0) of an all-zero page, for ENC_DIGEST. */
export const ENC_ZERO_HASH: i32 = 56;
/** Per-call statistics (u32, cleared by every encodeBatch): pages of codec c at +8c, out bytes at +8c+4. */
export const ENC_STATS: i32 = 64;
export const ENC_STAT_UNCHANGED: i32 = 104;
export const ENC_STAT_HITS: i32 = 108;
export const ENC_STAT_MISSES: i32 = 112;
export const ENC_STAT_OVERFLOWS: i32 = 116;
export const ENC_STAT_EVICTIONS: i32 = 120;
export const ENC_STAT_INSERTS: i32 = 124;
/** Bytes of an EncState. */
export const ENC_STATE_BYTES: i32 = 128;
/** Map word: the target holds a zero page. Slot page: free. */
export const ENC_ZERO_MARK: u32 = 0xffffffff;
export const ENC_EMPTY: u32 = 0xffffffff;

// DecState: u32 fields at byte offsets from `st` (filled by src/codec/decoder.ts).
export const DEC_PAGE_SIZE: i32 = 0;
export const DEC_PAGE_COUNT: i32 = 4;
/** Page p is at base + p * pageSize (guest memory in the core). */
export const DEC_BASE: i32 = 8;
/** Accepted codecs (F_ZERO | F_RAW | ...). */
export const DEC_MASK: i32 = 12;
/** Pointer: scan output (page, ref, codec) u32 triples per record; apply output: u8 codec per record. */
export const DEC_TABLE: i32 = 16;
/** Pointer: u32 per record, the page written (apply output). */
export const DEC_PAGES: i32 = 20;
/** Out: byte offset in the block of the failing record. */
export const DEC_ERR_AT: i32 = 24;
/** Most records a block may hold (capacity of the table and the page list). */
export const DEC_MAX_REC: i32 = 28;
/** Out: records fully processed (on error: those before the failing one). */
export const DEC_DONE: i32 = 32;
/** Bytes of a DecState. */
export const DEC_STATE_BYTES: i32 = 36;
/** Bytes of one scan-table entry (page, ref, codec). */
export const DEC_SCAN_ENTRY_BYTES: i32 = 12;

/** Bytes of a streaming xxHash64 state (xxh64Init/Update/Digest; 8-aligned). */
export const XXH64_STATE_BYTES: i32 = 48;
