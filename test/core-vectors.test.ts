// QEMU XBZRLE golden vectors (../shared/vectors, format in its README): every encode result and
// byte, every decode accept/reject and resulting page; rejected inputs leave the page untouched.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ready, xbzrleEncode, xbzrleEncodeInto, xbzrleDecode, PagewireError, ErrorCode } from '../src/index.js';

const VECTORS = fileURLToPath(new URL('../../shared/vectors/', import.meta.url));

interface EncodeVector { slen: number; dlen: number; oldPage: Uint8Array; newPage: Uint8Array; result: number; encoded: Uint8Array }
interface DecodeVector { slen: number; encoded: Uint8Array; before: Uint8Array; result: number; after: Uint8Array | null }

function reader(file: string, magic: string): { dv: DataView; bytes: Uint8Array; count: number; off: number } {
  const bytes = new Uint8Array(readFileSync(VECTORS + file));
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe(magic);
  expect(dv.getUint32(4, true)).toBe(1);
  return { dv, bytes, count: dv.getUint32(8, true), off: 12 };
}

function loadEncodeVectors(): EncodeVector[] {
  const { dv, bytes, count } = reader('xbzrle-encode.bin', 'XBZE');
  let off = 12;
  const out: EncodeVector[] = [];
  for (let k = 0; k < count; k++) {
    const slen = dv.getUint32(off, true);
    const dlen = dv.getInt32(off + 4, true);
    off += 8;
    const oldPage = bytes.slice(off, off + slen);
    off += slen;
    const newPage = bytes.slice(off, off + slen);
    off += slen;
    const result = dv.getInt32(off, true);
    off += 4;
    const encoded = result > 0 ? bytes.slice(off, off + result) : new Uint8Array(0);
    if (result > 0) off += result;
    out.push({ slen, dlen, oldPage, newPage, result, encoded });
  }
  expect(off).toBe(bytes.length);
  return out;
}

function loadDecodeVectors(): DecodeVector[] {
  const { dv, bytes, count } = reader('xbzrle-decode.bin', 'XBZD');
  let off = 12;
  const out: DecodeVector[] = [];
  for (let k = 0; k < count; k++) {
    const slen = dv.getUint32(off, true);
    const elen = dv.getUint32(off + 4, true);
    off += 8;
    const encoded = bytes.slice(off, off + elen);
    off += elen;
    const before = bytes.slice(off, off + slen);
    off += slen;
    const result = dv.getInt32(off, true);
    off += 4;
    let after: Uint8Array | null = null;
    if (result >= 0) {
      after = bytes.slice(off, off + slen);
      off += slen;
    }
    out.push({ slen, encoded, before, result, after });
  }
  expect(off).toBe(bytes.length);
  return out;
}

beforeAll(async () => {
  await ready();
});

describe('XBZRLE encode vectors (QEMU portable encoder)', () => {
  const vectors = loadEncodeVectors();

  it('covers identical, overflow and encoded results', () => {
    expect(vectors.length).toBe(600);
    expect(vectors.some((v) => v.result === 0)).toBe(true);
    expect(vectors.some((v) => v.result === -1)).toBe(true);
    expect(vectors.some((v) => v.result > 0)).toBe(true);
  });

  it('reproduces every result and every byte', () => {
    let checked = 0;
    for (const [k, v] of vectors.entries()) {
      const got = xbzrleEncode(v.oldPage, v.newPage, v.dlen);
      if (v.result === -1) {
        expect(got, `vector ${k}`).toBeNull();
      } else {
        expect(got, `vector ${k}`).not.toBeNull();
        expect(got!.length, `vector ${k}`).toBe(v.result);
        expect(Buffer.from(got!).equals(Buffer.from(v.encoded)), `vector ${k} bytes`).toBe(true);
      }
      checked++;
    }
    expect(checked).toBe(600);
  });

  it('reproduces every result through the caller-buffer form, never writing past the limit', () => {
    for (const [k, v] of vectors.entries()) {
      const out = new Uint8Array(v.dlen + 16).fill(0xee);
      const r = xbzrleEncodeInto(v.oldPage, v.newPage, out.subarray(0, v.dlen));
      expect(r, `vector ${k}`).toBe(v.result);
      if (r > 0) expect(Buffer.from(out.subarray(0, r)).equals(Buffer.from(v.encoded))).toBe(true);
      expect(out.subarray(v.dlen).every((b) => b === 0xee), `vector ${k} guard`).toBe(true);
    }
  });

  it('uses the page size as the default limit', () => {
    for (const v of vectors.filter((x) => x.dlen === x.slen)) {
      const got = xbzrleEncode(v.oldPage, v.newPage);
      expect(got === null ? -1 : got.length).toBe(v.result);
    }
  });

  it('round-trips every encoded vector through the decoder', () => {
    for (const v of vectors.filter((x) => x.result > 0)) {
      const page = v.oldPage.slice();
      xbzrleDecode(v.encoded, page);
      expect(Buffer.from(page).equals(Buffer.from(v.newPage))).toBe(true);
    }
  });
});

describe('XBZRLE decode vectors (QEMU decoder)', () => {
  const vectors = loadDecodeVectors();

  it('covers accepted and rejected inputs', () => {
    expect(vectors.length).toBe(840);
    expect(vectors.filter((v) => v.result >= 0).length).toBeGreaterThan(0);
    expect(vectors.filter((v) => v.result < 0).length).toBeGreaterThan(0);
  });

  it('accepts what QEMU accepts with the same resulting page', () => {
    for (const [k, v] of vectors.entries()) {
      if (v.result < 0) continue;
      const page = v.before.slice();
      xbzrleDecode(v.encoded, page);
      expect(Buffer.from(page).equals(Buffer.from(v.after!)), `vector ${k}`).toBe(true);
    }
  });

  it('rejects what QEMU rejects with XBZRLE_CORRUPT and leaves the page untouched', () => {
    let rejected = 0;
    for (const [k, v] of vectors.entries()) {
      if (v.result >= 0) continue;
      const page = v.before.slice();
      let err: unknown;
      try {
        xbzrleDecode(v.encoded, page);
      } catch (e) {
        err = e;
      }
      expect(err, `vector ${k}`).toBeInstanceOf(PagewireError);
      expect((err as PagewireError).code).toBe(ErrorCode.XBZRLE_CORRUPT);
      expect(Buffer.from(page).equals(Buffer.from(v.before)), `vector ${k} untouched`).toBe(true);
      rejected++;
    }
    expect(rejected).toBe(336);
  });
});

describe('QEMU documentation example', () => {
  it('encodes bytes 1001..1021 of a zero page changed to 24 bytes', () => {
    const oldPage = new Uint8Array(4096);
    const newPage = new Uint8Array(4096);
    // Bytes 1001..1015, 1019 and 1021 changed: zrun 1001, 15 literals, zrun 3, 1, zrun 1, 1.
    for (let i = 1001; i <= 1015; i++) newPage[i] = 1;
    newPage[1019] = 2;
    newPage[1021] = 3;
    const enc = xbzrleEncode(oldPage, newPage)!;
    expect(enc.length).toBe(24);
    expect([...enc.subarray(0, 3)]).toEqual([0xe9, 0x07, 0x0f]);
    expect([...enc.subarray(18)]).toEqual([0x03, 0x01, 0x02, 0x01, 0x01, 0x03]);
  });
});
