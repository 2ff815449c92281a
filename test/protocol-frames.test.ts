import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import xxhash from 'xxhash-wasm';
import { createCore, type Core } from '../src/core/core.js';
import { FrameReader, FrameWriter } from '../src/protocol/codec.js';
import { encodePreamble, FrameType, FRAME_HEADER_BYTES, frameSeed } from '../src/protocol/frame.js';
import { ACK_BYTES, ACK_BYTES_1_3, encodeAck, parseAck, parseHello, encodeJson, encodePageList, parsePageList, encodePing, parsePing, PAGE_LIST_RANGES } from '../src/protocol/messages.js';
import { ErrorCode, PagewireError } from '../src/errors.js';

let core: Core;
let h64: (data: Uint8Array, seed?: bigint) => bigint;
beforeAll(async () => {
  core = await createCore();
  const x = await xxhash();
  h64 = (d, s = 0n) => x.h64Raw(d, s);
});

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}

function readAll(reader: FrameReader): { type: number; seq: number; payload: string }[] {
  const out = [];
  for (let f = reader.next(); f; f = reader.next()) out.push({ type: f.type, seq: f.seq, payload: hex(f.payload) });
  return out;
}

describe('frame layout', () => {
  it('writes the preamble and a PING frame byte for byte as documented', () => {
    expect(hex(encodePreamble())).toBe('5047575201040000');
    const w = new FrameWriter(core);
    w.seq = 7;
    const payload = new Uint8Array([1, 2, 3]);
    const f = w.frame(FrameType.PING, payload);
    const sum = Number(BigInt.asUintN(32, h64(payload, frameSeed(FrameType.PING, 0, 0, 7))));
    const expected = '03000000' + '10' + '00' + '0000' + '07000000' + sum.toString(16).padStart(8, '0').match(/../g)!.reverse().join('') + '010203';
    expect(hex(f)).toBe(expected);
  });

  it('the checksum is xxh64 of the payload seeded by the header (oracle: xxhash-wasm)', () => {
    const w = new FrameWriter(core);
    const payload = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
    const f = w.frame(FrameType.PAGES, payload, 3);
    const dv = new DataView(f.buffer);
    expect(dv.getUint32(12, true)).toBe(Number(BigInt.asUintN(32, h64(payload, frameSeed(FrameType.PAGES, 3, 0, 0)))));
  });
});

describe('incremental reader', () => {
  const frameArb = fc.record({
    type: fc.constantFrom(FrameType.PAGES, FrameType.ACK, FrameType.PING, FrameType.ROUND_END, FrameType.DEVICE_STATE),
    payload: fc.uint8Array({ maxLength: 3000 }),
  });

  it('any split of a stream yields the same frames as one write', () => {
    fc.assert(fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.nat(5000), { maxLength: 20 }), (frames, cuts) => {
      const w = new FrameWriter(core);
      const stream = concat([encodePreamble(), ...frames.map((f) => w.frame(f.type, f.payload))]);
      const whole = new FrameReader(core);
      whole.push(stream);
      const expected = readAll(whole);
      expect(expected.map((e) => e.payload)).toEqual(frames.map((f) => hex(f.payload)));
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const split = new FrameReader(core);
      const got: ReturnType<typeof readAll> = [];
      let prev = 0;
      for (const p of [...points, stream.length]) {
        split.push(stream.subarray(prev, p));
        got.push(...readAll(split));
        prev = p;
      }
      expect(got).toEqual(expected);
      whole.dispose();
      split.dispose();
      w.dispose();
    }), { seed: 42, numRuns: 150 });
  });

  it('waits on truncation and never yields a partial frame', () => {
    const w = new FrameWriter(core);
    const stream = concat([encodePreamble(), w.frame(FrameType.PAGES, new Uint8Array(100).fill(9))]);
    for (let cut = 0; cut < stream.length; cut++) {
      const r = new FrameReader(core);
      r.push(stream.subarray(0, cut));
      expect(r.next()).toBeNull();
      r.dispose();
    }
  });

  it('detects every single-byte corruption of a frame', () => {
    const w = new FrameWriter(core);
    const frame = w.frame(FrameType.PAGES, new Uint8Array(64).map((_, i) => i));
    for (let i = 0; i < frame.length; i++) {
      const bad = frame.slice();
      bad[i]! ^= 0x01;
      const r = new FrameReader(core, { preamble: false });
      r.push(bad);
      let err: unknown = null;
      try {
        // a corrupted length may make the reader wait for bytes that never come: that is not acceptance
        const f = r.next();
        if (f) err = new Error(`corrupted byte ${i} accepted`);
      } catch (e) {
        err = e;
      }
      if (err) {
        expect(err).toBeInstanceOf(PagewireError);
        expect([ErrorCode.CHECKSUM_MISMATCH, ErrorCode.FRAME_CORRUPT, ErrorCode.FRAME_TOO_LARGE]).toContain((err as PagewireError).code);
      } else {
        // only a corrupted length field can leave the reader waiting
        expect(i).toBeLessThan(4);
      }
      r.dispose();
    }
  });

  it('refuses a lying length before buffering its payload', () => {
    const r = new FrameReader(core, { preamble: false, maxFrameBytes: 1024 });
    const h = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(h.buffer).setUint32(0, 0xfffffff0, true);
    h[4] = FrameType.PAGES;
    r.push(h);
    expect(() => r.next()).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
    // the reader stays failed: a byte stream cannot be resynchronised
    expect(() => r.next()).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }));
  });

  it('rejects a foreign stream and another major version', () => {
    const r = new FrameReader(core);
    r.push(new TextEncoder().encode('GET / HTTP/1.1\r\n'));
    expect(() => r.next()).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_CORRUPT }));
    const v = new FrameReader(core);
    v.push(encodePreamble(2, 0));
    expect(() => v.next()).toThrowError(expect.objectContaining({ code: ErrorCode.VERSION_MISMATCH }));
  });

  it('random bytes give frames or a typed error, never anything else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), fc.boolean(), (bytes, pre) => {
      const r = new FrameReader(core, { preamble: pre, maxFrameBytes: 1 << 16 });
      r.push(bytes);
      try {
        for (let i = 0; i < 100 && r.next(); i++);
      } catch (e) {
        expect(e).toBeInstanceOf(PagewireError);
      }
      r.dispose();
    }), { seed: 7, numRuns: 300 });
  });
});

describe('messages', () => {
  it('ACK: 20 bytes for protocol 1.4 peers, the 40-byte 1.0-1.3 layout (zeros where its unread fields were) for older ones', () => {
    const a = { appliedSeq: 9, bytesApplied: 123456, echoTimeMs: 1234.5 };
    // u32 seq, f64 bytesApplied, f64 echoTimeMs
    expect(hex(encodeAck(a, 4))).toBe('09000000' + '000000000024fe40' + '00000000004a9340');
    // u32 seq, u32 round (0), f64 bytesApplied, f64 pagesApplied (0), f64 targetTimeMs (0), f64 echoTimeMs
    expect(hex(encodeAck(a, 3))).toBe('09000000' + '00000000' + '000000000024fe40' + '0'.repeat(32) + '00000000004a9340');
    expect(ACK_BYTES).toBe(20);
    expect(ACK_BYTES_1_3).toBe(40);
    for (const minor of [0, 1, 2, 3, 4, 5]) expect(parseAck(encodeAck(a, minor), minor)).toEqual(a);
    // an older target's values in the fields nobody reads are ignored
    const old = encodeAck(a, 3);
    const dv = new DataView(old.buffer);
    dv.setUint32(4, 7, true);
    dv.setFloat64(16, 77, true);
    dv.setFloat64(24, 12.5, true);
    expect(parseAck(old, 3)).toEqual(a);
    const corrupt = (p: Uint8Array, minor: number): void => {
      expect(() => parseAck(p, minor)).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_CORRUPT }));
    };
    corrupt(encodeAck(a, 3), 4); // the layout the peer does not speak, either way
    corrupt(encodeAck(a, 4), 3);
    corrupt(new Uint8Array(19), 4);
    corrupt(new Uint8Array(39), 3);
    for (const [minor, off] of [[4, 4], [4, 12], [3, 8], [3, 32]] as const) {
      for (const v of [Number.NaN, -1, Infinity]) {
        const bad = encodeAck(a, minor);
        new DataView(bad.buffer).setFloat64(off, v, true);
        corrupt(bad, minor);
      }
    }
  });

  it('PING carries an f64 time stamp (protocol 1.2); other sizes and values are refused', () => {
    const p = encodePing(1234.5);
    expect(hex(p)).toBe('00000000004a9340'); // 1234.5 as f64 little-endian
    expect(parsePing(p)).toBe(1234.5);
    expect(() => parsePing(new Uint8Array(7))).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_CORRUPT }));
    expect(() => parsePing(encodePing(Number.NaN))).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_CORRUPT }));
    expect(() => parsePing(encodePing(-1))).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_CORRUPT }));
  });

  it('HELLO validation names the bad field', () => {
    const good = { sessionId: 'a'.repeat(32), resume: false, pageSize: 4096, regions: [{ name: 'ram0', pageCount: 10 }], codecs: ['raw'], mode: 'precopy', nonce: '', options: {} };
    expect(parseHello(encodeJson(good)).regions[0]!.pageCount).toBe(10);
    for (const [k, v] of [['sessionId', 'zz'], ['pageSize', -1], ['regions', []], ['mode', 'teleport'], ['nonce', 'not hex'], ['codecs', 'raw']] as const) {
      expect(() => parseHello(encodeJson({ ...good, [k]: v }))).toThrowError(new RegExp(k));
    }
    expect(() => parseHello(new TextEncoder().encode('{not json'))).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_CORRUPT }));
  });

  it('page lists check counts and ranges', () => {
    const p = encodePageList([1, 5, 9]);
    expect([...parsePageList(p, 10)]).toEqual([1, 5, 9]);
    expect(() => parsePageList(p, 9)).toThrowError(expect.objectContaining({ code: ErrorCode.PAGE_OUT_OF_RANGE }));
    expect(() => parsePageList(p.subarray(0, 10), 10)).toThrowError(expect.objectContaining({ code: ErrorCode.FRAME_CORRUPT }));
  });

  it('page lists: ascending runs go as ranges (a whole guest in 12 bytes), anything else as pages; both round-trip', () => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    const whole = encodePageList(all);
    expect(whole.byteLength).toBe(12);
    expect(new DataView(whole.buffer).getUint32(0, true)).toBe((PAGE_LIST_RANGES | 1) >>> 0);
    expect(parsePageList(whole, 65536)).toEqual(Uint32Array.from(all));
    expect(encodePageList([9, 5, 1]).byteLength).toBe(16); // not ascending: pages
    expect(encodePageList([1, 3, 5]).byteLength).toBe(16); // ranges would be larger
    expect(encodePageList([4, 5, 6, 7, 20, 21, 22]).byteLength).toBe(20); // 2 ranges < 7 pages
    // a protocol 1.0 peer knows no ranges: the same list as pages
    const plain = encodePageList(all, 0, all.length, false);
    expect(plain.byteLength).toBe(4 + 4 * 65536);
    expect(parsePageList(plain, 65536).every((v, i) => v === i)).toBe(true);
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 4095 }), { maxLength: 600 }), fc.boolean(), (list, sort) => {
      const pages = sort ? [...new Set(list)].sort((a, b) => a - b) : list;
      const enc = encodePageList(pages);
      expect(enc.byteLength).toBeLessThanOrEqual(4 + pages.length * 4);
      expect([...parsePageList(enc, 4096)]).toEqual(pages);
      // a slice encodes just that slice
      const from = Math.floor(pages.length / 3);
      expect([...parsePageList(encodePageList(pages, from, pages.length - from), 4096)]).toEqual(pages.slice(from));
    }), { numRuns: 200 });
  });

  it('page list ranges: hostile forms are refused before any allocation they ask for', () => {
    const ranges = (...r: [number, number][]) => {
      const b = new Uint8Array(4 + r.length * 8);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, (PAGE_LIST_RANGES | r.length) >>> 0, true);
      r.forEach(([f, l], i) => { dv.setUint32(4 + i * 8, f, true); dv.setUint32(8 + i * 8, l, true); });
      return b;
    };
    const code = (b: Uint8Array, max = 100) => { try { parsePageList(b, max); return 'ok'; } catch (e) { return (e as PagewireError).code; } };
    expect(code(ranges([0, 10], [20, 5]))).toBe('ok');
    expect(code(ranges([0, 0]))).toBe(ErrorCode.FRAME_CORRUPT); // empty range
    expect(code(ranges([10, 5], [12, 1]))).toBe(ErrorCode.FRAME_CORRUPT); // overlap
    expect(code(ranges([10, 5], [0, 1]))).toBe(ErrorCode.FRAME_CORRUPT); // descending
    expect(code(ranges([0, 0xffffffff]))).toBe(ErrorCode.PAGE_OUT_OF_RANGE); // 4 G pages named
    expect(code(ranges([99, 2]))).toBe(ErrorCode.PAGE_OUT_OF_RANGE);
    const lying = ranges([0, 1]);
    new DataView(lying.buffer).setUint32(0, (PAGE_LIST_RANGES | 0x7fffffff) >>> 0, true); // 2^31 ranges claimed
    expect(code(lying)).toBe(ErrorCode.FRAME_CORRUPT);
    expect(code(ranges([0, 1]).subarray(0, 11))).toBe(ErrorCode.FRAME_CORRUPT);
  });
});
