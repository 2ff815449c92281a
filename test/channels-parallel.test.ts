/**
 * Parallel channels: N worker threads, each migrating its page range of a SharedArrayBuffer guest
 * over its own connection, in step with the coordinator (one dirty sync per round, one pause).
 * Uses the built worker entry (dist/), built here when missing or older than its sources.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { messagePortTransport } from '../src/transport/message-port.js';
import { listenTcp } from '../src/transport/tcp.js';
import { ParallelMigrationSource, ParallelMigrationTarget, channelRanges, splitMemory } from '../src/migration/channels.js';
import { nodeChannelSpawner } from '../src/migration/channels-node.js';
import { ErrorCode, PagewireError } from '../src/errors.js';
import { SetDirtyLog, TimerGuest, sameMemory } from './helpers/engine.js';

const root = resolve(__dirname, '..');
const workerJs = resolve(root, 'dist/migration/channel-worker-node.js');
const spawn = nodeChannelSpawner(workerJs);

beforeAll(() => {
  const srcs = ['channel-worker-node.ts', 'channel-worker.ts', 'channels.ts', 'source.ts', 'target.ts'].map((f) => resolve(root, 'src/migration', f));
  const stale = !existsSync(workerJs) || srcs.some((f) => statSync(f).mtimeMs > statSync(workerJs).mtimeMs);
  if (!stale) return;
  try {
    execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', resolve(root, 'tsconfig.build.json')], { stdio: 'ignore' });
  } catch {
    // tsc exits non-zero on type errors anywhere in the tree but still emits: what counts is the worker
  }
  if (!existsSync(workerJs)) throw new Error(`could not build ${workerJs}`);
}, 120_000);

function sharedGuest(pages: number, regions = 1): GuestMemory {
  const per = Math.ceil(pages / regions);
  const layout = { pageSize: 4096, regions: Array.from({ length: regions }, (_, i) => ({ name: `ram${i}`, pageCount: Math.min(per, pages - i * per) })) };
  const m = GuestMemory.allocateExternal(layout, true);
  for (let p = 0; p < pages; p++) {
    if (p % 5 === 0) continue;
    const v = m.page(p);
    for (let i = 0; i < v.length; i += 64) v[i] = (p * 13 + i) & 0xff;
  }
  return m;
}

function portLinks(n: number) {
  const chans = Array.from({ length: n }, () => new MessageChannel());
  let next = 0;
  return {
    link: (k: number) => ({ kind: 'port' as const, port: chans[k]!.port1 }),
    accept: async () => messagePortTransport(chans[next++]!.port2),
  };
}

describe('channel ranges', () => {
  it('cover every page once, contiguous, balanced within one page', () => {
    for (const [pages, n] of [[10, 3], [7, 7], [4096, 2], [1000, 64]] as const) {
      const r = channelRanges(pages, n);
      expect(r.reduce((a, x) => a + x.count, 0)).toBe(pages);
      for (let k = 1; k < n; k++) expect(r[k]!.first).toBe(r[k - 1]!.first + r[k - 1]!.count);
      expect(Math.max(...r.map((x) => x.count)) - Math.min(...r.map((x) => x.count))).toBeLessThanOrEqual(1);
    }
  });

  it('split views alias the guest memory across region boundaries', () => {
    const m = sharedGuest(10, 3);
    const parts = splitMemory(m, 3);
    expect(parts.map((p) => p.memory.pageCount)).toEqual([4, 3, 3]);
    parts[1]!.memory.page(0)[7] = 99; // global page 4 (region 1)
    expect(m.page(4)[7]).toBe(99);
    expect(parts[1]!.memory.regions.map((r) => r.name)).toEqual(['c1:ram1']);
    expect(() => splitMemory(m, 0)).toThrow(PagewireError);
  });
});

describe('parallel migration on worker threads', () => {
  for (const n of [1, 2, 3]) {
    it(`${n} channel(s): a guest that keeps writing migrates verified; the digest covers all pages`, async () => {
      const pages = 3000;
      const src = sharedGuest(pages, 2);
      const dst = GuestMemory.allocateExternal(src.layout, true);
      const log = new SetDirtyLog(pages);
      const guest = new TimerGuest(src, log, 20);
      const links = portLinks(n);
      let deviceState: number[] = [];
      let ran = 0;
      const source = new ParallelMigrationSource(src, log, { channels: n, spawn, link: links.link, downtimeLimitMs: 50 }, {
        pause: () => { guest.paused = true; }, resume: () => { guest.paused = false; }, deviceState: () => Uint8Array.of(7, 8, 9),
      });
      const target = new ParallelMigrationTarget(dst, n, {}, { deviceState: (s) => { deviceState = Array.from(s); }, guestMayRun: () => { ran++; } });
      const [rs, rt] = await Promise.all([source.migrate(), target.run(links.accept)]);
      guest.stop();
      expect(rs.verified && rt.verified).toBe(true);
      expect(rs.channels).toBe(n);
      expect(rt.channels).toBe(n);
      expect(rs.digest).toBe(rt.digest);
      expect(sameMemory(src, dst)).toBe(true);
      expect(ran).toBe(1);
      expect(deviceState).toEqual([7, 8, 9]);
      expect(rs.rounds[0]!.pages).toBe(pages);
      expect(rs.rounds[rs.rounds.length - 1]!.final).toBe(true);
    }, 30_000);
  }

  it('over real TCP loopback, 2 channels', async () => {
    const pages = 2048;
    const src = sharedGuest(pages);
    const dst = GuestMemory.allocateExternal(src.layout);
    const log = new SetDirtyLog(pages);
    const guest = new TimerGuest(src, log, 10);
    const listener = await listenTcp({ port: 0 });
    try {
      const source = new ParallelMigrationSource(src, log, { channels: 2, spawn, link: () => ({ kind: 'tcp', host: '127.0.0.1', port: listener.port }), downtimeLimitMs: 50 }, {
        pause: () => { guest.paused = true; }, resume: () => { guest.paused = false; },
      });
      const target = new ParallelMigrationTarget(dst, 2);
      const [rs, rt] = await Promise.all([source.migrate(), target.run(() => listener.accept())]);
      guest.stop();
      expect(rs.verified && rt.verified).toBe(true);
      expect(sameMemory(src, dst)).toBe(true);
    } finally {
      await listener.close();
    }
  }, 30_000);

  it('reorder passes through to every channel; verified', async () => {
    const pages = 2048;
    const src = sharedGuest(pages);
    const dst = GuestMemory.allocateExternal(src.layout, true);
    const log = new SetDirtyLog(pages);
    const guest = new TimerGuest(src, log, 30);
    const links = portLinks(2);
    const source = new ParallelMigrationSource(src, log, { channels: 2, spawn, link: links.link, reorder: true, downtimeLimitMs: 20, maxRounds: 6 }, {
      pause: () => { guest.paused = true; }, resume: () => { guest.paused = false; },
    });
    const [rs, rt] = await Promise.all([source.migrate(), new ParallelMigrationTarget(dst, 2).run(links.accept)]);
    guest.stop();
    expect(rs.verified && rt.verified).toBe(true);
    expect(sameMemory(src, dst)).toBe(true);
    expect((rs.options as { reorder?: boolean }).reorder).toBe(true);
  }, 30_000);

  it('needs SharedArrayBuffer guest memory', () => {
    const m = GuestMemory.allocateExternal({ pageSize: 4096, regions: [{ name: 'ram', pageCount: 8 }] }, false);
    expect(() => new ParallelMigrationSource(m, new SetDirtyLog(8), { channels: 2, spawn, link: () => ({ kind: 'tcp', host: '127.0.0.1', port: 1 }) })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
  });

  it('a source-side failure at switch-over stops every channel: the target guest never runs, the source guest resumes', async () => {
    const pages = 2048;
    const src = sharedGuest(pages);
    const dst = GuestMemory.allocateExternal(src.layout, true);
    const log = new SetDirtyLog(pages);
    const links = portLinks(2);
    let resumed = 0;
    let ran = 0;
    const source = new ParallelMigrationSource(src, log, { channels: 2, spawn, link: links.link }, {
      pause: () => {}, resume: () => { resumed++; }, deviceState: () => { throw new Error('device state unavailable'); },
    });
    const target = new ParallelMigrationTarget(dst, 2, { idleTimeoutMs: 20_000 }, { guestMayRun: () => { ran++; } });
    const [rs, rt] = await Promise.allSettled([source.migrate(), target.run(links.accept)]);
    expect(rs.status).toBe('rejected');
    expect(rt.status).toBe('rejected');
    expect(ran).toBe(0);
    expect(resumed).toBe(1);
  }, 30_000);

  it('a channel that fails stops all channels; the target guest never runs, the source guest resumes', async () => {
    const pages = 1024;
    const src = sharedGuest(pages);
    // the target's memory has another layout for channel 1: its HELLO is refused
    const dst = GuestMemory.allocateExternal(src.layout);
    const log = new SetDirtyLog(pages);
    const chans = [new MessageChannel(), new MessageChannel()];
    let resumed = 0;
    let ran = 0;
    const source = new ParallelMigrationSource(src, log, { channels: 2, spawn, link: (k) => ({ kind: 'port', port: chans[k]!.port1 }) }, {
      pause: () => {}, resume: () => { resumed++; },
    });
    const target = new ParallelMigrationTarget(dst, 3, {}, { guestMayRun: () => { ran++; } });
    let next = 0;
    const [rs, rt] = await Promise.allSettled([source.migrate(), target.run(() => (next < 2 ? Promise.resolve(messagePortTransport(chans[next++]!.port2)) : new Promise<never>(() => {})))]);
    expect(rs.status).toBe('rejected');
    expect(rt.status).toBe('rejected');
    // the first channel to report wins: the refused layout, or the link the target tore down after it
    expect([ErrorCode.LAYOUT_MISMATCH, ErrorCode.TRANSPORT_CLOSED]).toContain(((rs as PromiseRejectedResult).reason as PagewireError).code);
    expect(((rt as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.LAYOUT_MISMATCH);
    expect(ran).toBe(0);
    expect(resumed).toBe(0); // never paused
  }, 30_000);
});
