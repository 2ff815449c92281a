/**
 * The CLI's progress line: drawn only on a terminal, with the bar, pages and estimated bytes left,
 * rate and the expected downtime learnt from the last round; cleared before round lines.
 */
import { describe, it, expect } from 'vitest';
import { ProgressLine } from '../src/cli/output.js';
import type { ProgressEvent, RoundReport } from '../src/migration/report.js';

const event: ProgressEvent = {
  round: 1, pagesSent: 250, pagesRemaining: 750, bytesSent: 3 * 1024 * 1024, bandwidthBytesPerSec: 12.5e6, expectedDowntimeMs: 0, phase: 'precopy',
};

function round(pages: number, wireBytes: number, expectedDowntimeMs: number): RoundReport {
  return {
    round: 0, final: false, pages, wireBytes, rawBytes: pages * 4096, codecs: {}, dirtyPages: 0, dirtyRateBytesPerSec: 0,
    bandwidthBytesPerSec: 0, durationMs: 1, expectedDowntimeMs, throttlePct: 0,
  };
}

describe('ProgressLine', () => {
  it('writes nothing when the stream is not a terminal', () => {
    const out: string[] = [];
    const p = new ProgressLine({ isTTY: false, write: (s: string) => out.push(s) }, 0);
    p.update(event, 1000);
    p.clear();
    expect(out).toEqual([]);
  });

  it('on a terminal: bar, pages left, bytes left after a round taught the ratio, rate, expected downtime', () => {
    const out: string[] = [];
    const p = new ProgressLine({ isTTY: true, write: (s: string) => out.push(s) }, 0);
    p.round(round(1024, 1024 * 1024, 42)); // 1 KiB per page on the wire
    const l = p.line({ ...event, round: 0, pagesSent: 0 }, 1000);
    expect(l).toMatch(/^\[\.{24}\] precopy round 0: 750 of 1000 pages left \(~750(\.0)? KiB\)/);
    expect(l).toMatch(/3(\.00)? MiB sent/);
    expect(l).toMatch(/100(\.0)? Mbit\/s/);
    expect(l).toMatch(/expected downtime 42(\.0)? ms/);
    p.update(event, 1000);
    expect(out).toHaveLength(1);
    expect(out[0]!.startsWith('\r[')).toBe(true);
    p.clear();
    expect(out[1]).toBe('\r\x1b[K');
  });

  it('before any round finished: bytes left from this round so far, a send rate instead of 0, downtime pending', () => {
    const p = new ProgressLine({ isTTY: true, write: () => undefined }, 0);
    const start = { ...event, round: 0, pagesSent: 100, pagesRemaining: 900, bytesSent: 200 * 1024, bandwidthBytesPerSec: 0 };
    const first = p.line(start, 1000, 1_000);
    expect(first).toMatch(/900 of 1000 pages left \(~1\.76 MiB\)/); // 2 KiB per page so far
    expect(first).toMatch(/measuring the rate/);
    expect(first).not.toMatch(/kbit\/s/);
    expect(first).toMatch(/expected downtime known after round 0/);
    const later = p.line({ ...start, pagesSent: 500, pagesRemaining: 500, bytesSent: 1000 * 1024 }, 1000, 2_000);
    expect(later).toMatch(/500 of 1000 pages left \(~1000(\.0)? KiB\)/);
    expect(later).toMatch(/sending 8\.2 Mbit\/s/); // 1 MiB in 1 s
    const measured = p.line({ ...start, pagesSent: 600, pagesRemaining: 400, bytesSent: 1200 * 1024, bandwidthBytesPerSec: 12.5e6 }, 1000, 2_100);
    expect(measured).toMatch(/, 100(\.0)? Mbit\/s, /);
    expect(measured).not.toMatch(/sending/);
  });

  it('a new round measures its own bytes per page', () => {
    const p = new ProgressLine({ isTTY: true, write: () => undefined }, 0);
    p.line({ ...event, round: 0, pagesSent: 1000, pagesRemaining: 0, bytesSent: 4000 * 1024 }, 1000, 0);
    p.round(round(1000, 4000 * 1024, 7));
    const l = p.line({ ...event, round: 1, pagesSent: 10, pagesRemaining: 90, bytesSent: 4000 * 1024 + 10 * 512 }, 1000, 10);
    expect(l).toMatch(/90 of 1000 pages left \(~45(\.0)? KiB\)/); // 512 B per page in round 1, not 4 KiB
    expect(l).toMatch(/expected downtime 7(\.00)? ms/);
  });
});
