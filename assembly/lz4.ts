// LZ4 block compressor and decoder over linear memory, in the framing lz4-wasm uses (lz4_flex's
// compress_prepend_size): a u32 little-endian uncompressed length, then one raw LZ4 block, so any
// LZ4 block decoder reads our output and we read theirs.
//
// Block grammar (see: lz4/lz4 doc/lz4_Block_format.md):
//   block    = sequence* last
//   sequence = token litext* literal{L} offset:u16le matchext*   (match length M = 4 + low nibble + ext)
//   last     = token litext* literal{L}                          (the block ends after the literals)
//   token    = L(4 bits, high) M-4 (4 bits, low); a nibble of 15 is followed by ext bytes 255* r (< 255)
// Rules the encoder keeps: the last 5 bytes are literals; no match starts in the last 12 bytes;
// offsets 1..65535.
//
// Compressor: greedy, one hash table of u32 entries (at most 4096, 16 KiB: L1-resident; fewer for
// small inputs so filling it stays cheap; 8192 or 16384 entries measured slower here), a 6-byte
// multiplicative hash and matches of at least 6 bytes (SEARCH_MATCH), the reference compressor's
// skip acceleration (the step grows by 1 every 64 misses, times the caller's `accel`), backward
// extension, forward extension 16 bytes (one v128 compare) at a time. Each entry holds a 16-bit tag
// (16 more bits of the same hash product) and the position modulo 64 KiB (offsets are < 64 KiB
// anyway): a miss is decided by the table load alone, and only a tag hit loads the candidate's
// bytes to verify them. Input records are the batch already in memory: one call per block of
// pages, no copies in or out. The table is refilled at each call, so the output depends on the
// input only.

import { STATUS_OVERFLOW, STATUS_TRUNCATED, STATUS_PAST_END, STATUS_BAD_ARGUMENT, STATUS_INCOMPLETE, STATUS_BAD_OFFSET, STATUS_BAD_LENGTH } from './status';

const MIN_MATCH: usize = 4;
/**
 * Shortest match the compressor looks for (the format allows 4). Matches of 4-5 bytes save at most
 * 2 bytes each but cost a sequence each (token, offset, a mispredicted branch or two): on the
 * corpus pages hashing and comparing 6 bytes made compression 12-16% faster for 2-3% of ratio.
 */
const SEARCH_MATCH: usize = 6;
const LAST_LITERALS: usize = 5;
const MF_LIMIT: usize = 12;
const HASH_LOG_MAX: u32 = 12;
const SKIP_TRIGGER: u32 = 6;
/** Largest input we accept (the header's u32, with room for the worst-case expansion in a u32). */
const MAX_INPUT: usize = 0x7e000000;

/** u32 positions (offsets from the start of the input), 1 << HASH_LOG_MAX entries. */
const TABLE: usize = memory.data(4 << HASH_LOG_MAX, 16);

/**
 * Largest output of {@link lz4Compress} for `len` input bytes (4-byte header included): literals
 * only, one length byte per 255 literals, a token, slack.
 */
export function lz4MaxCompressedSize(len: i32): i32 {
  return 4 + len + len / 255 + 16;
}

/**
 * The 6 low bytes of `v` times the reference's 64-bit hash prime (see: lz4.c LZ4_hash5, over six
 * bytes instead of five): the top `hashLog` bits pick the entry, bits 32-47 are its tag.
 */
// @ts-ignore: decorator
@inline function hash6(v: u64): u64 {
  return (v << 16) * 889523592379;
}

/** Table byte offset of hash product `hv` for a table of 1 << (32 - `shift`) entries. */
// @ts-ignore: decorator
@inline function slot(hv: u64, shift: u32): usize {
  return TABLE + (<usize>(hv >> <u64>(32 + shift)) << 2);
}

/** Table entry for position `p` with hash product `hv`: tag in the high half, `p` mod 64 KiB low. */
// @ts-ignore: decorator
@inline function entry(hv: u64, p: usize): u32 {
  return (<u32>(hv >> 16) & 0xffff0000) | (<u32>p & 0xffff);
}

/** Write an ext run for `n` (the part of a length above 15): 255* then the rest. */
// @ts-ignore: decorator
@inline function writeExt(op: usize, n: usize): usize {
  if (n >= 255) {
    const k = n / 255;
    memory.fill(op, 255, k);
    op += k;
    n -= k * 255;
  }
  store<u8>(op, <u8>n);
  return op + 1;
}

/** Copy `n` literal bytes; 16 at a time when source and destination have room for the overrun. */
// @ts-ignore: decorator
@inline function copyLiterals(op: usize, ip: usize, n: usize, srcEnd: usize, oend: usize): void {
  if (ip + n + 16 <= srcEnd && op + n + 16 <= oend) {
    let d: usize = 0;
    do {
      v128.store(op + d, v128.load(ip + d));
      d += 16;
    } while (d < n);
  } else {
    memory.copy(op, ip, n);
  }
}

/**
 * Compress `len` bytes at `src` into `dst` (at most `cap` bytes): u32 LE `len`, then the block.
 * @param accel 1 = the reference's default; larger skips faster through incompressible input
 * @returns bytes written, STATUS_OVERFLOW when the output would exceed `cap`, or STATUS_BAD_ARGUMENT
 */
export function lz4Compress(src: usize, len: usize, dst: usize, cap: usize, accel: u32): i32 {
  if (len > MAX_INPUT || accel < 1 || accel > 65536) return STATUS_BAD_ARGUMENT;
  if (cap < 5) return STATUS_OVERFLOW;
  store<u32>(dst, <u32>len);
  const n = compressBlock(src, len, dst + 4, dst + cap, accel);
  return n < 0 ? n : n + 4;
}

function compressBlock(src: usize, len: usize, out: usize, oend: usize, accel: u32): i32 {
  // hash bits: about a quarter of the input's positions, 8..12; the full-size table (inputs of
  // 16 KiB and more) gets its own copy of the loop with the shift as a constant (1-4% faster)
  const bits: u32 = 32 - clz<u32>(<u32>len - 1);
  const hashLog: u32 = bits < 10 ? 8 : bits - 2 > HASH_LOG_MAX ? HASH_LOG_MAX : bits - 2;
  if (hashLog == HASH_LOG_MAX) return compressWith(src, len, out, oend, accel, HASH_LOG_MAX);
  return compressWith(src, len, out, oend, accel, hashLog);
}

/** {@link compressBlock} with a table of 1 << `hashLog` entries. */
// @ts-ignore: decorator
@inline function compressWith(src: usize, len: usize, out: usize, oend: usize, accel: u32, hashLog: u32): i32 {
  const end = src + len;
  let op = out;
  let anchor = src;
  if (len >= MF_LIMIT + 1) {
    const shift: u32 = 32 - hashLog;
    // unset entries hold src's low bits (tag 0): every candidate an entry gives, set or not, is a
    // position of this input, ip - d with d = (ip - stored) mod 64 KiB in 1..65535
    const unset = i32x4.splat(<i32>(src & 0xffff));
    for (let t: usize = 0; t < (<usize>4 << hashLog); t += 16) v128.store(TABLE + t, unset);
    const mflimit = end - MF_LIMIT;
    const matchlimit = end - LAST_LITERALS;
    let ip = src + 1;
    // outer: one sequence per iteration
    while (true) {
      // find a match: a tag hit names a candidate within 64 KiB, whose 6 bytes are then compared
      let searchNb: u32 = accel << SKIP_TRIGGER;
      let ref: usize = 0;
      let found = false;
      while (ip <= mflimit) {
        const v = load<u64>(ip);
        const hv = hash6(v);
        const h = slot(hv, shift);
        const e = load<u32>(h);
        const tagged = entry(hv, ip);
        store<u32>(h, tagged);
        if (((e ^ tagged) >> 16) == 0) {
          const d = <usize>((<u32>ip - e) & 0xffff);
          ref = ip - d;
          if (d != 0 && ((load<u64>(ref) ^ v) << 16) == 0) { found = true; break; }
        }
        ip += <usize>(searchNb++ >> SKIP_TRIGGER);
      }
      if (!found) break;
      // extend backwards over literals
      while (ip > anchor && ref > src && load<u8>(ip - 1) == load<u8>(ref - 1)) { ip--; ref--; }
      // extend forwards: v128 then u64 then bytes, never into the last literals
      let p = ip + SEARCH_MATCH;
      let r = ref + SEARCH_MATCH;
      let extended = false;
      while (p + 16 <= matchlimit) {
        const m = i8x16.bitmask(i8x16.eq(v128.load(p), v128.load(r)));
        if (m != 0xffff) { p += <usize>ctz<u32>(~m); extended = true; break; }
        p += 16; r += 16;
      }
      if (!extended) {
        if (p + 8 <= matchlimit) {
          const diff = load<u64>(p) ^ load<u64>(r);
          if (diff != 0) { p += <usize>(ctz<u64>(diff) >> 3); extended = true; }
          else { p += 8; r += 8; }
        }
        if (!extended) while (p < matchlimit && load<u8>(p) == load<u8>(r)) { p++; r++; }
      }
      const litLen = ip - anchor;
      const matchLen = p - ip;
      // token + literal ext + literals + offset + match ext, and room for the final token
      // (a cheap bound first: ext bytes are at most one per 128 of literals and match)
      if (op + litLen + ((litLen + matchLen) >> 7) + 8 > oend && op + 1 + litLen / 255 + 1 + litLen + 2 + (matchLen - MIN_MATCH) / 255 + 1 + 1 > oend) return STATUS_OVERFLOW;
      const tokenAt = op++;
      let token: u32;
      if (litLen >= 15) { token = 15 << 4; op = writeExt(op, litLen - 15); }
      else token = <u32>litLen << 4;
      copyLiterals(op, anchor, litLen, end, oend);
      op += litLen;
      store<u16>(op, <u16>(ip - ref));
      op += 2;
      const mcode = matchLen - MIN_MATCH;
      if (mcode >= 15) { token |= 15; op = writeExt(op, mcode - 15); }
      else token |= <u32>mcode;
      store<u8>(tokenAt, <u8>token);
      ip = p;
      anchor = ip;
      if (ip > mflimit) break;
      // index a position inside the match so that a following repeat finds it
      const q = ip - 2;
      const hq = hash6(load<u64>(q));
      store<u32>(slot(hq, shift), entry(hq, q));
    }
  }
  // last literals
  const litLen = end - anchor;
  if (op + 1 + litLen / 255 + 1 + litLen > oend) return STATUS_OVERFLOW;
  if (litLen >= 15) { store<u8>(op++, 15 << 4); op = writeExt(op, litLen - 15); }
  else store<u8>(op++, <u8>(litLen << 4));
  memory.copy(op, anchor, litLen);
  op += litLen;
  return <i32>(op - out);
}

/** Input position after the last {@link readExt}. */
let extPos: usize = 0;

/**
 * Add the ext bytes at `ip` (255* r) to `n`; the position after them goes to `extPos`.
 * @returns the length, or STATUS_TRUNCATED / STATUS_PAST_END (over `limit`)
 */
// @ts-ignore: decorator
@inline function readExt(ip: usize, iend: usize, n: usize, limit: usize): isize {
  let b: u32;
  do {
    if (ip >= iend) return STATUS_TRUNCATED;
    b = load<u8>(ip++);
    n += b;
    if (n > limit) return STATUS_PAST_END;
  } while (b == 255);
  extPos = ip;
  return <isize>n;
}

/**
 * Decode an LZ4 block with its u32 LE length header (`srcLen` bytes at `src`) into exactly
 * `dstLen` bytes at `dst`. Every length and offset is checked before it is used: nothing is read
 * outside [src, src + srcLen) or written outside [dst, dst + dstLen).
 * @returns dstLen, or STATUS_BAD_LENGTH (header differs from dstLen), STATUS_TRUNCATED (input ends
 *   inside a sequence), STATUS_PAST_END (output would pass dstLen), STATUS_BAD_OFFSET (offset 0 or
 *   before the start of the output), STATUS_INCOMPLETE (block ends before dstLen bytes)
 */
export function lz4Decompress(src: usize, srcLen: usize, dst: usize, dstLen: usize): i32 {
  if (dstLen > MAX_INPUT) return STATUS_BAD_ARGUMENT;
  if (srcLen < 4) return STATUS_TRUNCATED;
  if (<usize>load<u32>(src) != dstLen) return STATUS_BAD_LENGTH;
  let ip = src + 4;
  const iend = src + srcLen;
  let op = dst;
  const oend = dst + dstLen;
  while (true) {
    if (ip >= iend) return STATUS_TRUNCATED;
    const token = <u32>load<u8>(ip++);
    let litLen = <usize>(token >> 4);
    if (litLen == 15) {
      const n = readExt(ip, iend, litLen, dstLen);
      if (n < 0) return <i32>n;
      litLen = <usize>n;
      ip = extPos;
    }
    if (litLen > iend - ip) return STATUS_TRUNCATED;
    if (litLen > oend - op) return STATUS_PAST_END;
    if (litLen <= 16 && ip + 16 <= iend && op + 16 <= oend) v128.store(op, v128.load(ip));
    else memory.copy(op, ip, litLen);
    op += litLen;
    ip += litLen;
    if (ip == iend) return op == oend ? <i32>dstLen : STATUS_INCOMPLETE;
    if (iend - ip < 2) return STATUS_TRUNCATED;
    const off = <usize>load<u16>(ip);
    ip += 2;
    if (off == 0 || off > op - dst) return STATUS_BAD_OFFSET;
    let matchLen = <usize>(token & 15);
    if (matchLen == 15) {
      const n = readExt(ip, iend, matchLen, dstLen);
      if (n < 0) return <i32>n;
      matchLen = <usize>n;
      ip = extPos;
    }
    matchLen += MIN_MATCH;
    if (matchLen > oend - op) return STATUS_PAST_END;
    if (off >= 16 && op + matchLen + 16 <= oend) {
      // 16 bytes at a time: each chunk's source ends at least 16 bytes behind its destination
      let d: usize = 0;
      do {
        v128.store(op + d, v128.load(op + d - off));
        d += 16;
      } while (d < matchLen);
    } else if (off >= matchLen) {
      memory.copy(op, op - off, matchLen);
    } else if (off == 1) {
      memory.fill(op, load<u8>(op - 1), matchLen);
    } else {
      // overlapping: the pattern of `off` bytes repeats; copy from ever further back (period d,
      // so any multiple of d back holds the same bytes), doubling the non-overlapping span
      let d = off;
      let done: usize = 0;
      while (done < matchLen) {
        const n = min(d, matchLen - done);
        memory.copy(op + done, op + done - d, n);
        done += n;
        d += n;
      }
    }
    op += matchLen;
  }
}
