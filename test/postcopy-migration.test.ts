/**
 * Post-copy and hybrid migrations over an in-memory pair: the target's guest runs while pages
 * still arrive, faults on missing pages (served by PAGE_REQUEST ahead of the background push),
 * and the migration is verified over the content as received. A failure after the switch-over
 * is POSTCOPY_FAILED on both sides and the source guest does not resume.
 */
import { describe, it, expect } from 'vitest';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { memoryPair } from '../src/transport/memory.js';
import { connectTcp, listenTcp } from '../src/transport/tcp.js';
import type { Transport } from '../src/transport/types.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { FaultingGuestRunner, PostcopyTargetState } from '../src/migration/postcopy-target.js';
import { SimulatedGuest } from '../src/sim/guest.js';
import { PagewireError, ErrorCode } from '../src/errors.js';
import { makeMemories, MemoryLink, SetDirtyLog, TimerGuest } from './helpers/engine.js';

function samePage(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/**
 * A target guest that checks, at its first write to each page, that the page holds exactly the
 * source's content (the source is paused from the switch-over on, so its memory is the reference).
 */
function checkingGuest(src: GuestMemory, dst: GuestMemory, seed: number) {
  const sim = new SimulatedGuest(dst, { workload: 'uniform', writeSize: 'line', seed });
  const touched = new Set<number>();
  let wrongAtFirstTouch = 0;
  return {
    touched,
    get wrongAtFirstTouch() { return wrongAtFirstTouch; },
    nextAccess: () => sim.nextAccess(),
    writePage: (p: number) => {
      if (!touched.has(p)) {
        touched.add(p);
        if (!samePage(src.page(p), dst.page(p))) wrongAtFirstTouch++;
      }
      sim.writePage(p);
    },
  };
}

function untouchedEqual(src: GuestMemory, dst: GuestMemory, touched: Set<number>): number {
  let differ = 0;
  for (let p = 0; p < src.pageCount; p++) if (!touched.has(p) && !samePage(src.page(p), dst.page(p))) differ++;
  return differ;
}

interface Setup {
  src: GuestMemory; dst: GuestMemory; log: SetDirtyLog; writer: TimerGuest;
  guest: ReturnType<typeof checkingGuest>; target: MigrationTarget; runner: FaultingGuestRunner;
  resumed: number; deviceState: Uint8Array | null; ranWithDeviceState: boolean;
}

async function setup(pages: number, perTick: number): Promise<Setup> {
  const { src, dst } = await makeMemories(pages);
  const log = new SetDirtyLog(pages);
  const writer = new TimerGuest(src, log, perTick);
  const guest = checkingGuest(src, dst, 7);
  const s = { src, dst, log, writer, guest, resumed: 0, deviceState: null, ranWithDeviceState: false } as unknown as Setup;
  s.target = new MigrationTarget(dst, {}, {
    deviceState: (d) => { s.deviceState = d.slice(); },
    guestMayRun: () => { s.ranWithDeviceState = s.deviceState !== null; s.runner.start(); },
  });
  s.runner = new FaultingGuestRunner(s.target, guest, { ratePagesPerSec: 4000, sliceMs: 2 });
  return s;
}

/**
 * Hooks that also dirty `n` pages at the end of every pre-copy round: the timer guest cannot write
 * while a round keeps the event loop busy, and a round with nothing dirty would let the policy
 * switch over (no pages left) instead of taking the path under test.
 */
function dirtyingHooks(s: Setup, n = 16) {
  let w = 0;
  return {
    ...sourceHooks(s),
    onRound: (_round: number, before: boolean) => {
      if (!before) return;
      for (let i = 0; i < n; i++, w++) {
        const p = (w * 37 + 11) % s.src.pageCount;
        s.src.page(p)[(w * 8) % 4096] ^= 0x5a;
        s.log.set.add(p);
      }
    },
  };
}

function sourceHooks(s: Setup) {
  return {
    pause: () => { s.writer.paused = true; },
    resume: () => { s.writer.paused = false; s.resumed++; },
    deviceState: () => new Uint8Array([1, 2, 3, 4]),
  };
}

describe('post-copy', () => {
  it('pure post-copy: switches over at once, faults are served, memory verified as received', async () => {
    const pages = 2048;
    const s = await setup(pages, 20);
    const [a, b] = memoryPair();
    // 16 MB/s with raw pages: the push of 8 MiB takes about half a second, so the running guest
    // faults (the compressing codecs would push this memory in a few milliseconds)
    const source = new MigrationSource(s.src, s.log, a, { mode: 'postcopy', codecs: 'raw', maxBandwidthBytesPerSec: 16e6, windowBytes: 256 * 1024 }, sourceHooks(s));
    const [rs, rt] = await Promise.all([source.migrate(), s.target.run(b)]);
    s.writer.stop();
    await s.runner.stop();
    expect(rs.verified).toBe(true);
    expect(rt.verified).toBe(true);
    expect(rs.mode).toBe('postcopy');
    expect(rs.digest).toBe(rt.digest);
    // no pre-copy round: the only round is the post-copy one, carrying every page
    expect(rs.rounds).toHaveLength(1);
    expect(rs.rounds[0]!.pages).toBe(pages);
    expect(rs.postcopyBytes).toBeGreaterThan(pages * 4096);
    expect(s.ranWithDeviceState).toBe(true);
    expect(Array.from(s.deviceState!)).toEqual([1, 2, 3, 4]);
    expect(s.runner.error).toBeNull();
    expect(s.runner.accesses).toBeGreaterThan(0);
    expect(rt.faults).toBeGreaterThan(0);
    // the source reports the faults as the target measured them (at the guest's accesses)
    expect(rs.faults).toBe(rt.faults);
    expect(rs.faultLatencyMs).toEqual(rt.faultLatencyMs);
    expect(rt.faultLatencyMs!.p99).toBeGreaterThanOrEqual(rt.faultLatencyMs!.median);
    expect(s.guest.wrongAtFirstTouch).toBe(0);
    expect(untouchedEqual(s.src, s.dst, s.guest.touched)).toBe(0);
    expect(s.resumed).toBe(0);
  });

  it('post-copy over real TCP loopback: faults served, verified', async () => {
    const pages = 2048;
    const s = await setup(pages, 20);
    const listener = await listenTcp({ port: 0 });
    try {
      const accepted = listener.accept();
      const a = await connectTcp({ host: '127.0.0.1', port: listener.port });
      const source = new MigrationSource(s.src, s.log, a, { mode: 'postcopy', maxBandwidthBytesPerSec: 16e6, windowBytes: 256 * 1024 }, sourceHooks(s));
      const [rs, rt] = await Promise.all([source.migrate(), accepted.then((b) => s.target.run(b))]);
      s.writer.stop();
      await s.runner.stop();
      expect(rs.verified && rt.verified).toBe(true);
      expect(rt.faults).toBeGreaterThan(0);
      expect(s.guest.wrongAtFirstTouch).toBe(0);
      expect(untouchedEqual(s.src, s.dst, s.guest.touched)).toBe(0);
    } finally {
      await listener.close();
    }
  });

  it('hybrid: pre-copy rounds, then post-copy; verified', async () => {
    const pages = 2048;
    const s = await setup(pages, 40);
    const [a, b] = memoryPair();
    const source = new MigrationSource(s.src, s.log, a, {
      mode: 'hybrid', codecs: 'raw', hybridPrecopyRounds: 2, downtimeLimitMs: 0.001, maxBandwidthBytesPerSec: 32e6, windowBytes: 256 * 1024,
    }, sourceHooks(s));
    const [rs, rt] = await Promise.all([source.migrate(), s.target.run(b)]);
    s.writer.stop();
    await s.runner.stop();
    expect(rs.verified).toBe(true);
    expect(rt.verified).toBe(true);
    expect(rs.mode).toBe('hybrid');
    expect(rs.rounds).toHaveLength(3);
    expect(rs.rounds[0]!.pages).toBe(pages);
    expect(rs.rounds[2]!.final).toBe(true);
    expect(rs.precopyBytes).toBeGreaterThan(pages * 4096);
    expect(s.guest.wrongAtFirstTouch).toBe(0);
    expect(untouchedEqual(s.src, s.dst, s.guest.touched)).toBe(0);
  });

  it('pre-copy that does not converge switches to post-copy when onNonConvergence is postcopy', async () => {
    const pages = 1024;
    const s = await setup(pages, 40);
    const [a, b] = memoryPair();
    const source = new MigrationSource(s.src, s.log, a, { downtimeLimitMs: 0.001, maxRounds: 3, onNonConvergence: 'postcopy' }, dirtyingHooks(s));
    const [rs, rt] = await Promise.all([source.migrate(), s.target.run(b)]);
    s.writer.stop();
    await s.runner.stop();
    expect(rs.verified && rt.verified).toBe(true);
    expect(rs.mode).toBe('postcopy');
    expect(rt.mode).toBe('postcopy');
    expect(rs.rounds).toHaveLength(4);
    expect(s.guest.wrongAtFirstTouch).toBe(0);
    expect(untouchedEqual(s.src, s.dst, s.guest.touched)).toBe(0);
  });

  it('a link failure during post-copy is POSTCOPY_FAILED on both sides; the source guest stays paused', async () => {
    const pages = 2048;
    const s = await setup(pages, 10);
    const [a, b] = memoryPair();
    let armed = false;
    let writes = 0;
    const dropping: Transport = {
      write: async (c) => {
        if (armed && ++writes > 30) {
          const e = new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'injected drop during post-copy');
          a.destroy(e);
          throw e;
        }
        return a.write(c);
      },
      read: () => a.read(),
      end: () => a.end(),
      destroy: (e) => a.destroy(e),
      get closed() { return a.closed; },
      label: 'dropping',
    };
    const source = new MigrationSource(s.src, s.log, dropping, { mode: 'postcopy', batchPages: 16, maxBandwidthBytesPerSec: 16e6, windowBytes: 256 * 1024 }, sourceHooks(s));
    source.on('switchover', () => { armed = true; });
    const targetErrors: Error[] = [];
    s.target.on('error', (e) => targetErrors.push(e));
    const [rs, rt] = await Promise.allSettled([source.migrate(), s.target.run(b)]);
    s.writer.stop();
    await s.runner.stop();
    expect(rs.status).toBe('rejected');
    expect(rt.status).toBe('rejected');
    expect(((rs as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.POSTCOPY_FAILED);
    expect(((rt as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.POSTCOPY_FAILED);
    expect(targetErrors).toHaveLength(1);
    // the target's guest ran: the source guest must not simply resume
    expect(s.resumed).toBe(0);
    expect(s.writer.paused).toBe(true);
    // the target's memory is incomplete: an access to a missing page fails instead of waiting forever
    const st = s.target.postcopy!;
    expect(st.started).toBe(true);
    expect(st.missingPages).toBeGreaterThan(0);
    let missing = -1;
    for (let p = 0; p < pages && missing < 0; p++) if (!st.present(p)) missing = p;
    await expect(st.fault(missing)).rejects.toMatchObject({ code: ErrorCode.POSTCOPY_FAILED });
    expect(() => st.receivedDigest()).toThrow(PagewireError);
  });

  it('with a reconnecting transport factory, a drop during post-copy is still POSTCOPY_FAILED (no resume attempts)', async () => {
    const pages = 1024;
    const s = await setup(pages, 10);
    const link = new MemoryLink();
    let armed = false;
    let writes = 0;
    link.wrap = (t) => ({
      write: async (c) => {
        if (armed && ++writes > 20) { t.destroy(new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'injected drop')); throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'injected drop'); }
        return t.write(c);
      },
      read: () => t.read(), end: () => t.end(), destroy: (e) => t.destroy(e), get closed() { return t.closed; }, label: 'dropping',
    });
    const source = new MigrationSource(s.src, s.log, link.connect, { mode: 'postcopy', batchPages: 16, maxBandwidthBytesPerSec: 16e6, windowBytes: 128 * 1024 }, sourceHooks(s));
    source.on('switchover', () => { armed = true; });
    const [rs, rt] = await Promise.allSettled([source.migrate(), s.target.run(link.accept)]);
    s.writer.stop();
    await s.runner.stop();
    expect(((rs as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.POSTCOPY_FAILED);
    expect(((rt as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.POSTCOPY_FAILED);
    expect(link.connections).toBe(1);
    expect(s.resumed).toBe(0);
  });

  it('a digest mismatch after post-copy is POSTCOPY_FAILED, never repaired (verify: full would overwrite the guest\'s writes)', async () => {
    const pages = 512;
    const s = await setup(pages, 0);
    const [a, b] = memoryPair();
    const source = new MigrationSource(s.src, s.log, a, { mode: 'hybrid', hybridPrecopyRounds: 2, downtimeLimitMs: 0.001, windowBytes: 64 * 1024, verify: 'full' }, dirtyingHooks(s));
    // a page the target received in round 0 goes bad before the switch-over (storage fault)
    source.on('switchover', () => { s.dst.page(5)[9]! ^= 0x55; });
    const [rs, rt] = await Promise.allSettled([source.migrate(), s.target.run(b)]);
    s.writer.stop();
    await s.runner.stop();
    expect(((rs as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.POSTCOPY_FAILED);
    expect(((rt as PromiseRejectedResult).reason as PagewireError).code).toBe(ErrorCode.POSTCOPY_FAILED);
    expect(s.resumed).toBe(0);
  });

  it('a failure before the switch-over is an ordinary failure: the source guest resumes', async () => {
    const pages = 512;
    const s = await setup(pages, 5);
    const [a, b] = memoryPair();
    const source = new MigrationSource(s.src, s.log, a, { mode: 'postcopy' }, {
      ...sourceHooks(s),
      deviceState: () => { b.destroy(new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'target went away')); return new Uint8Array(1); },
    });
    const [rs] = await Promise.allSettled([source.migrate(), s.target.run(b)]);
    s.writer.stop();
    expect(rs.status).toBe('rejected');
    expect(((rs as PromiseRejectedResult).reason as PagewireError).code).not.toBe(ErrorCode.POSTCOPY_FAILED);
    expect(s.resumed).toBe(1);
  });
});

describe('post-copy with a read-only target guest', () => {
  it('faults are measured and the target memory ends equal to the source (byte comparison holds)', async () => {
    const pages = 1024;
    const s = await setup(pages, 10);
    const sim = new SimulatedGuest(s.dst, { workload: 'uniform', seed: 4 });
    const runner = new FaultingGuestRunner(s.target, sim, { ratePagesPerSec: 4000, sliceMs: 2, writes: false });
    s.runner = runner;
    const [a, b] = memoryPair();
    // raw pages at 16 MB/s: a push long enough for the guest to fault
    const source = new MigrationSource(s.src, s.log, a, { mode: 'postcopy', codecs: 'raw', maxBandwidthBytesPerSec: 16e6, windowBytes: 256 * 1024 }, sourceHooks(s));
    const [rs, rt] = await Promise.all([source.migrate(), s.target.run(b)]);
    s.writer.stop();
    await runner.stop();
    expect(rs.verified && rt.verified).toBe(true);
    expect(rt.faults).toBeGreaterThan(0);
    expect(sim.stats.writes).toBe(0);
    expect(Buffer.compare(s.src.pages(0, pages)!, s.dst.pages(0, pages)!)).toBe(0);
  });
});

describe('post-copy target state', () => {
  it('refuses a page that was not missing (it would overwrite what the guest wrote)', async () => {
    const core = await createCore();
    const mem = GuestMemory.inCore(core, 8, 4096);
    const conn = { send: async () => 0 } as never;
    const st = new PostcopyTargetState(mem, core, () => 0, 2, conn);
    st.addMissing(Uint32Array.of(1, 5));
    await st.switchOver({ memory: mem, clock: () => 0, startGuest: async () => {}, parsePages: () => new Uint32Array(0) });
    expect(st.present(0)).toBe(true);
    expect(st.present(5)).toBe(false);
    mem.page(5).fill(9);
    st.onPagesApplied([5]);
    expect(st.present(5)).toBe(true);
    expect(() => st.onPagesApplied([5])).toThrow(expect.objectContaining({ code: ErrorCode.PROTOCOL_VIOLATION }));
    expect(() => st.addMissing(Uint32Array.of(2))).toThrow(expect.objectContaining({ code: ErrorCode.PROTOCOL_VIOLATION }));
  });

  it('the digest is over the content as received, not over what the guest wrote afterwards', async () => {
    const core = await createCore();
    const mem = GuestMemory.inCore(core, 4, 4096);
    const ref = GuestMemory.inCore(core, 4, 4096);
    const sent: number[] = [];
    const conn = { send: async (_t: number, p: Uint8Array) => { sent.push(new DataView(p.buffer, p.byteOffset).getUint32(4, true)); return 0; } } as never;
    const st = new PostcopyTargetState(mem, core, () => 0, 1, conn);
    st.addMissing(Uint32Array.of(2));
    mem.page(0).fill(1); ref.page(0).fill(1);
    await st.switchOver({ memory: mem, clock: () => 0, startGuest: async () => {}, parsePages: () => new Uint32Array(0) });
    const waiting = st.fault(2);
    expect(sent).toEqual([2]);
    mem.page(0).fill(7); // the guest writes a present page
    mem.page(2).fill(3); ref.page(2).fill(3); // page 2 arrives
    st.onPagesApplied([2]);
    await waiting;
    expect(st.faults).toBe(1);
    mem.page(2).fill(8); // and is written by the guest afterwards
    const { memoryDigest } = await import('../src/memory/digest.js');
    expect(st.receivedDigest()).toBe(memoryDigest(ref, core));
  });

  it('pages the dirty log lists but the guest did not change still reach the target in post-copy', async () => {
    // a dirty log with false positives (every page, every sync): after pre-copy the target holds
    // them all, yet each listed page must arrive as a record or the target waits for it forever
    const pages = 512;
    const { src, dst } = await makeMemories(pages);
    const all = Uint32Array.from({ length: pages }, (_, i) => i);
    const log = { start() {}, stop() {}, sync: () => all.slice() };
    const [a, b] = memoryPair();
    const [rs, rt] = await Promise.all([
      new MigrationSource(src, log, a, { mode: 'hybrid', hybridPrecopyRounds: 2, downtimeLimitMs: 0.001 }).migrate(),
      new MigrationTarget(dst).run(b),
    ]);
    expect(rs.verified && rt.verified).toBe(true);
    expect(rs.mode).toBe('hybrid');
    expect(rs.rounds).toHaveLength(3);
    expect(rs.rounds[1]!.codecs['unchanged']?.pages).toBe(pages); // pre-copy: nothing to send
    expect(rs.rounds[2]!.pages).toBe(pages); // post-copy: every listed page as a record
    expect(rs.postcopyBytes).toBeGreaterThan(0);
  });
});
