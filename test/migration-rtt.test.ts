/**
 * The round trip as the source measures it (protocol 1.2: PING with the source's clock, echoed in
 * the target's ACK), and what the source does not send to older targets: no PING to 1.1, no page
 * ranges to 1.0.
 */
import { describe, it, expect } from 'vitest';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { shapedPair } from '../src/transport/shaped.js';
import { memoryPair } from '../src/transport/memory.js';
import { FrameReader } from '../src/protocol/codec.js';
import { FrameType, PROTOCOL_MINOR } from '../src/protocol/frame.js';
import { PAGE_LIST_RANGES } from '../src/protocol/messages.js';
import { createCore } from '../src/core/core.js';
import type { Transport } from '../src/transport/types.js';
import { SetDirtyLog, announcing, makeMemories, sameMemory, shapedEchoMs } from './helpers/engine.js';

/** The frames a transport's writer sent, as [type, payload] (the preamble skipped). */
async function recording(t: Transport): Promise<{ t: Transport; frames: [number, Uint8Array][] }> {
  const reader = new FrameReader(await createCore());
  const frames: [number, Uint8Array][] = [];
  const write = t.write.bind(t);
  t.write = (chunk) => {
    reader.push(chunk.slice());
    for (let f = reader.next(); f; f = reader.next()) frames.push([f.type, f.payload.slice()]);
    return write(chunk);
  };
  return { t, frames };
}

describe('round-trip time', () => {
  it('is measured on a delayed link: 20 ms each way gives 40 ms, reported as rttMs', async () => {
    const pages = 2048;
    const { src, dst } = await makeMemories(pages);
    const [a, b] = shapedPair({ bandwidthBytesPerSec: 64 * 1024 * 1024, delayMs: 20 });
    const rec = await recording(a);
    const source = new MigrationSource(src, new SetDirtyLog(pages), rec.t);
    const progress: { round: number; expected: number }[] = [];
    source.on('progress', (p) => progress.push({ round: p.round, expected: p.expectedDowntimeMs }));
    const [rs] = await Promise.all([source.migrate(), new MigrationTarget(dst).run(b)]);
    expect(rs.verified).toBe(true);
    // progress carries the estimate after the previous round (none during round 0)
    expect(progress.filter((p) => p.round === 0).every((p) => p.expected === Infinity)).toBe(true);
    for (const p of progress.filter((q) => q.round > 0)) expect(p.expected).toBe(rs.rounds[p.round - 1]!.expectedDowntimeMs);
    // the delay is physical: no sample can be shorter; the minimum of idle-link samples is close
    // (allowing for late timers on a loaded machine: a byte's echo over such a link, measured now)
    const echo = await shapedEchoMs(20);
    expect(rs.rttMs).toBeGreaterThanOrEqual(40);
    expect(rs.rttMs).toBeLessThan(Math.max(70, 1.5 * echo + 20));
    // one PING after the handshake and one per round, each an 8-byte time stamp
    const pings = rec.frames.filter(([type]) => type === FrameType.PING);
    expect(pings.length).toBeGreaterThanOrEqual(1 + rs.rounds.length - 1);
    for (const [, p] of pings) expect(p.byteLength).toBe(8);
    expect(sameMemory(src, dst)).toBe(true);
  });

  it(`a target of protocol 1.1 is sent no PING (it would answer PONG); RTT comes from the handshake`, async () => {
    expect(PROTOCOL_MINOR).toBe(4);
    const pages = 512;
    const { src, dst } = await makeMemories(pages);
    const [a, b] = memoryPair();
    const rec = await recording(a);
    // both sides announce 1.1, so this target also answers as a 1.1 target does (40-byte ACKs)
    const [rs] = await Promise.all([new MigrationSource(src, new SetDirtyLog(pages), announcing(rec.t, 1)).migrate(), new MigrationTarget(dst).run(announcing(b, 1))]);
    expect(rs.verified).toBe(true);
    expect(rec.frames.some(([type]) => type === FrameType.PING)).toBe(false);
    expect(rs.rttMs).toBeGreaterThan(0);
  });

  it('a target of protocol 1.0 gets post-copy page lists as pages, 1.2 as ranges', async () => {
    const pages = 4096;
    for (const minor of [0, 2]) {
      const { src, dst } = await makeMemories(pages);
      const [a, b] = memoryPair();
      const rec = await recording(a);
      const [rs] = await Promise.all([
        new MigrationSource(src, new SetDirtyLog(pages), announcing(rec.t, minor), { mode: 'postcopy' }).migrate(),
        new MigrationTarget(dst).run(announcing(b, minor)),
      ]);
      expect(rs.verified).toBe(true);
      const lists = rec.frames.filter(([type]) => type === FrameType.PAGE_LIST);
      expect(lists.length).toBeGreaterThan(0);
      for (const [, p] of lists) {
        const head = new DataView(p.buffer, p.byteOffset).getUint32(0, true);
        expect((head & PAGE_LIST_RANGES) !== 0).toBe(minor >= 1);
      }
      expect(sameMemory(src, dst)).toBe(true);
    }
  });

  it('ACKs are 20 bytes to a protocol 1.4 source, 40 to a 1.3 source; both sources measure the round trip from them', async () => {
    const pages = 1024;
    for (const minor of [3, 4]) {
      const { src, dst } = await makeMemories(pages);
      const [a, b] = shapedPair({ bandwidthBytesPerSec: 64 * 1024 * 1024, delayMs: 10 });
      const acks = await recording(b);
      const [rs] = await Promise.all([
        new MigrationSource(src, new SetDirtyLog(pages), announcing(a, minor)).migrate(),
        new MigrationTarget(dst).run(announcing(acks.t, minor)),
      ]);
      expect(rs.verified).toBe(true);
      const sizes = new Set(acks.frames.filter(([type]) => type === FrameType.ACK).map(([, p]) => p.byteLength));
      expect([...sizes]).toEqual([minor >= 4 ? 20 : 40]);
      expect(rs.rttMs).toBeGreaterThanOrEqual(20); // the echoed time stamp was read from the right offset
      expect(sameMemory(src, dst)).toBe(true);
    }
  });
});

describe('target setup time', () => {
  it('runs from the source\'s HELLO to the end of the handshake: the memory it makes counts, the wait for the source does not', async () => {
    const pages = 512;
    const { src, dst } = await makeMemories(pages);
    const [a, b] = memoryPair();
    const waitMs = 300;
    const makeMs = 150;
    // the target's memory comes from a factory that takes makeMs (as allocating a large guest does)
    const target = new MigrationTarget(async () => { await new Promise((r) => setTimeout(r, makeMs)); return dst; }).run(b);
    await new Promise((r) => setTimeout(r, waitMs)); // no source yet
    const [rs, rt] = await Promise.all([new MigrationSource(src, new SetDirtyLog(pages), a).migrate(), target]);
    expect(rs.verified && rt.verified).toBe(true);
    expect(rt.setupTimeMs).toBeGreaterThanOrEqual(makeMs - 1); // timers may fire up to 1 ms early
    expect(rt.setupTimeMs).toBeLessThanOrEqual(rt.totalTimeMs - waitMs + 1);
    expect(rs.setupTimeMs).toBeGreaterThanOrEqual(rt.setupTimeMs - 1); // the source's setup holds the target's handshake
    expect(sameMemory(src, dst)).toBe(true);
  });
});
