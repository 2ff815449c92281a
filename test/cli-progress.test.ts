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
    expect(p.line(event, 1000)).not.toMatch(/expected downtime|~/);
    p.round(round(1024, 1024 * 1024, 42)); // 1 KiB per page on the wire
    const l = p.line(event, 1000);
    expect(l).toMatch(/^\[######\.{18}\] precopy round 1: 750 of 1000 pages left \(~750(\.0)? KiB\)/);
    expect(l).toMatch(/3(\.00)? MiB sent/);
    expect(l).toMatch(/100(\.0)? Mbit\/s/);
    expect(l).toMatch(/expected downtime 42(\.0)? ms/);
    p.update(event, 1000);
    expect(out).toHaveLength(1);
    expect(out[0]!.startsWith('\r[')).toBe(true);
    p.clear();
    expect(out[1]).toBe('\r\x1b[K');
  });
});
