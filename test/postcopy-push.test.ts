/**
 * The post-copy push order with a fake source host: requested pages go first, the background push
 * continues after the last fault (locality) and wraps around, every missing page is sent exactly
 * once, and a failure after the switch-over is POSTCOPY_FAILED.
 */
import { describe, it, expect } from 'vitest';
import { runPostcopySource, POSTCOPY_PUSH_BATCH, type PostcopySourceHost } from '../src/migration/postcopy-source.js';
import { PageSet } from '../src/memory/page-set.js';
import { FrameType } from '../src/protocol/frame.js';
import { ErrorCode } from '../src/errors.js';
import type { GuestMemory } from '../src/memory/guest-memory.js';

function fakeHost(pages: number, missing: number[], requestsAfterFrame: Map<number, number[]>, failAtFrame = -1) {
  const pending = new PageSet(pages);
  pending.addAll(missing);
  const sent: number[][] = [];
  const types: number[] = [];
  let queued: Uint32Array[] = [];
  let frames = 0;
  let committed = false;
  const frame = (type: number, pages: Uint32Array | null): number => {
    if (frames === failAtFrame) throw Object.assign(new Error('link down'), { code: ErrorCode.TRANSPORT_CLOSED });
    types.push(type);
    if (pages) sent.push(Array.from(pages));
    const r = requestsAfterFrame.get(frames++);
    if (r) queued.push(Uint32Array.from(r));
    return 16;
  };
  let seq = 0;
  const host: PostcopySourceHost = {
    memory: { pageCount: pages, pageSize: 4096 } as GuestMemory,
    pending, batchPages: 256, clock: () => 0, pageRanges: true,
    sendFrame: async (type) => { seq++; return frame(type, null); },
    sendPages: async (p) => { seq++; return frame(FrameType.PAGES, p); },
    takeRequests: () => { const q = queued; queued = []; return q; },
    waitRequest: async () => {},
    setPostcopy: () => {},
    forget: () => {},
    encoderCounts: () => ({}),
    commit: () => { committed = true; },
    nextSeq: () => seq,
    waitApplied: async () => {},
  };
  return { host, sent, types, committed: () => committed };
}

describe('post-copy push order', () => {
  it('faults first, then the push continues after the fault and wraps around; each page once', async () => {
    const missing = Array.from({ length: 100 }, (_, i) => i);
    // frame 0 POSTCOPY, 1 PAGE_LIST, 2 first push batch (0..31): then a fault on page 70
    const { host, sent, types, committed } = fakeHost(128, missing, new Map([[2, [70, 5]]]));
    const res = await runPostcopySource(host, 3, 0);
    expect(types.slice(0, 2)).toEqual([FrameType.POSTCOPY, FrameType.PAGE_LIST]);
    expect(types[types.length - 1]).toBe(FrameType.ROUND_END);
    expect(committed()).toBe(true);
    expect(sent[0]).toEqual(missing.slice(0, POSTCOPY_PUSH_BATCH));
    expect(sent[1]).toEqual([70]); // page 5 was already sent: not again
    expect(sent[2]![0]).toBe(71); // locality: the push continues after the fault
    const all = sent.flat();
    expect(all.slice().sort((a, b) => a - b)).toEqual(missing);
    expect(new Set(all).size).toBe(all.length);
    expect(res.faults).toBe(1);
    expect(res.rounds[0]!.pages).toBe(100);
    expect(res.rounds[0]!.final).toBe(true);
  });

  it('nothing missing: POSTCOPY alone switches over', async () => {
    const { host, sent, types, committed } = fakeHost(8, [], new Map());
    await runPostcopySource(host, 0, 0);
    expect(types).toEqual([FrameType.POSTCOPY, FrameType.ROUND_END]);
    expect(sent).toEqual([]);
    expect(committed()).toBe(true);
  });

  it('a failure after the switch-over is POSTCOPY_FAILED; before it, the original error', async () => {
    const missing = Array.from({ length: 64 }, (_, i) => i);
    const after = fakeHost(64, missing, new Map(), 3);
    await expect(runPostcopySource(after.host, 0, 0)).rejects.toMatchObject({ code: ErrorCode.POSTCOPY_FAILED });
    const before = fakeHost(64, missing, new Map(), 0);
    await expect(runPostcopySource(before.host, 0, 0)).rejects.toMatchObject({ code: ErrorCode.TRANSPORT_CLOSED });
    expect(before.committed()).toBe(false);
  });
});
