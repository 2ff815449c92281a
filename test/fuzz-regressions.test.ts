/**
 * Hostile input to the target: replay of fuzz findings, named regressions, and a bounded
 * mutation run with a fixed seed. Every input ends verified or with a PagewireError: never a
 * crash, a hang, or memory beyond the bound.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
// @ts-expect-error plain ESM helper shared with scripts/fuzz.mjs
import { capture, mutate, feedTarget, prng, splitFrames, joinFrames, captureSnapshot, feedSnapshot, elfCore, mutateElf, feedElf } from '../scripts/fuzz-lib.mjs';
import { encodePreamble, FrameType } from '../src/protocol/frame.js';
import { encodeJson } from '../src/protocol/messages.js';

const CORPUS = fileURLToPath(new URL('./fuzz-corpus/', import.meta.url));

type Outcome = { outcome: string; code?: string; message?: string };
const acceptable = (r: Outcome) => expect(['ok', 'error'], `${r.outcome}: ${r.message ?? ''}`).toContain(r.outcome);

let stream: Uint8Array;
beforeAll(async () => { stream = await capture({ codecs: 'all', seed: 11 }); });

const hello = (o: Record<string, unknown>) => encodeJson({ sessionId: 'ab'.repeat(16), resume: false, pageSize: 4096, regions: [{ name: 'ram0', pageCount: 16 }], codecs: ['raw'], mode: 'precopy', nonce: '', options: {}, ...o });

describe('fuzz regressions', () => {
  it('the unmutated capture migrates and verifies', async () => {
    expect(await feedTarget(stream)).toEqual({ outcome: 'ok' });
  });

  it('replays the corpus: each input ends exactly as recorded (test/fuzz-corpus/expected.json)', async () => {
    const expected = JSON.parse(readFileSync(CORPUS + 'expected.json', 'utf8')) as Record<string, Outcome>;
    const files = readdirSync(CORPUS).filter((f) => f.endsWith('.bin')).sort();
    // every input has its outcome recorded (a new finding gets one once its bug is fixed), and
    // every recorded outcome has its input
    expect(files).toEqual(Object.keys(expected).sort());
    // one real input per way the target, the snapshot reader and the image loader refuse bad
    // input, decoders included (records, XBZRLE, RLE, LZ4, page range, codec negotiation)
    const codes = new Set(Object.values(expected).map((e) => e.code));
    for (const code of ['FRAME_CORRUPT', 'CHECKSUM_MISMATCH', 'PROTOCOL_VIOLATION', 'RECORD_CORRUPT', 'XBZRLE_CORRUPT', 'RLE_CORRUPT', 'LZ4_CORRUPT',
      'PAGE_OUT_OF_RANGE', 'CODEC_NOT_NEGOTIATED', 'VERIFY_FAILED', 'SNAPSHOT_CORRUPT', 'LIMIT_EXCEEDED']) expect(codes, code).toContain(code);
    for (const f of files) {
      const bytes = new Uint8Array(readFileSync(CORPUS + f));
      const r: Outcome = await (f.startsWith('snap-') ? feedSnapshot(bytes) : f.startsWith('elf-') ? feedElf(bytes) : feedTarget(bytes));
      expect({ outcome: r.outcome, code: r.code }, `${f}: ${r.message ?? ''}`).toEqual(expected[f]);
    }
  }, 120_000);

  it('named: a HELLO asking for a huge guest is refused before allocating', async () => {
    const { frames } = splitFrames(stream);
    const big = await joinFrames(encodePreamble(), [{ type: FrameType.HELLO, flags: 0, payload: hello({ regions: [{ name: 'ram0', pageCount: 2 ** 32 - 1 }] }) }, ...frames.slice(1)]);
    const r = await feedTarget(big);
    expect(r).toMatchObject({ outcome: 'error', code: 'LIMIT_EXCEEDED' });
  });

  it('named: pages before the handshake are a protocol violation', async () => {
    const { frames } = splitFrames(stream);
    const pages = frames.find((f: { type: number }) => f.type === FrameType.PAGES);
    const r = await feedTarget(await joinFrames(encodePreamble(), [pages]));
    expect(r).toMatchObject({ outcome: 'error', code: 'PROTOCOL_VIOLATION' });
  });

  it('named: the stream cut at every frame boundary ends in a typed error', async () => {
    const { frames } = splitFrames(stream);
    for (const cut of [1, 2, 3, Math.floor(frames.length / 2), frames.length - 1]) {
      const r = await feedTarget(await joinFrames(encodePreamble(), frames.slice(0, cut)));
      expect(r).toMatchObject({ outcome: 'error', code: 'TRANSPORT_CLOSED' });
    }
  });

  it('bounded mutation run (fixed seed): only verified migrations or typed errors', async () => {
    const rnd = prng(20261122);
    const codes = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const r: Outcome = await feedTarget(await mutate(stream, rnd));
      acceptable(r);
      if (r.code) codes.add(r.code);
    }
    // the mutations reach past the checksum into the records and the protocol state machine
    expect(codes.size).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it('bounded mutation run of snapshot files (fixed seed): restored, or typed errors; no memory beyond the bound', async () => {
    const snap: Uint8Array = await captureSnapshot({ seed: 5 });
    expect(await feedSnapshot(snap)).toMatchObject({ outcome: 'ok', verified: true });
    const rnd = prng(20261204);
    const codes = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const r: Outcome = await feedSnapshot(await mutate(snap, rnd));
      acceptable(r);
      if (r.code) codes.add(r.code);
    }
    expect(codes.has('SNAPSHOT_CORRUPT')).toBe(true); // the reader's one code for a bad file (the cause says more)
  }, 120_000);

  it('bounded mutation run of ELF core headers (fixed seed): loaded, or typed errors; no memory beyond the bound', async () => {
    const elf: Uint8Array = elfCore();
    expect(await feedElf(elf)).toEqual({ outcome: 'ok' });
    const rnd = prng(20261205);
    const codes = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const r: Outcome = await feedElf(mutateElf(elf, rnd));
      acceptable(r);
      if (r.code) codes.add(r.code);
    }
    expect(codes.has('IMAGE_CORRUPT')).toBe(true);
  }, 120_000);
});
