/**
 * The benchmark's simulated clock (src/sim/virtual/model.ts): same inputs, same figures; the codec
 * engines order as they must on a hot set; a guest that outruns a slow link does not converge.
 */
import { describe, it, expect, beforeAll, vi } from 'vitest';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { SimulatedGuest, type SimulatedGuestOptions } from '../src/sim/guest.js';
import { fillInitial } from '../src/sim/content.js';
import { loadLz4 } from '../src/codec/lz4.js';
import { simulateMigration, LINKS, DEFAULT_CODEC_COSTS, type CodecCosts, type EngineName, type VirtualRunResult } from '../src/sim/virtual/model.js';
import { ConvergencePolicy, DEFAULT_POLICY } from '../src/migration/policy.js';

async function run(engine: EngineName, link: keyof typeof LINKS, pages: number, guestOpts: SimulatedGuestOptions, costs?: CodecCosts): Promise<VirtualRunResult> {
  const memory = GuestMemory.inCore(await createCore(), pages, 4096);
  fillInitial(memory, 'mixed', 11);
  const guest = new SimulatedGuest(memory, { writeSize: 'line', seed: 5, ...guestOpts });
  return simulateMigration({ memory, guest, engine, link: LINKS[link]!, ...(costs ? { costs } : {}) });
}

describe('simulated-clock migration model', () => {
  beforeAll(async () => {
    await loadLz4();
  });

  it('gives identical figures run to run (pre-copy and post-copy)', async () => {
    for (const engine of ['pagewire', 'postcopy'] as const) {
      const a = await run(engine, '100mbit-50ms', 2048, { workload: 'hotset', ratePagesPerSec: 1500 });
      const b = await run(engine, '100mbit-50ms', 2048, { workload: 'hotset', ratePagesPerSec: 1500 });
      expect(a.wireBytes).toBeGreaterThan(0);
      expect(a.totalTimeMs).toBeGreaterThan(a.downtimeMs);
      expect(JSON.stringify(b)).toBe(JSON.stringify(a));
      if (engine === 'postcopy') {
        expect(a.faults).toBeGreaterThan(0);
        // a demand fault costs at least a round trip on a 50 ms RTT link
        expect(a.faultLatencyMs!.median).toBeGreaterThanOrEqual(50);
        expect(a.faultLatencyMs!.p99).toBeGreaterThanOrEqual(a.faultLatencyMs!.median);
      }
    }
  }, 60_000);

  it('decides with the real engine\'s ConvergencePolicy, confirming before the pause as the source does', async () => {
    const after = vi.spyOn(ConvergencePolicy.prototype, 'afterRound');
    const recheck = vi.spyOn(ConvergencePolicy.prototype, 'recheck');
    try {
      const r = await run('pagewire', '100mbit-50ms', 4096, { workload: 'hotset', ratePagesPerSec: 1500 });
      const precopy = r.rounds.filter((x) => !x.final);
      // one policy call per pre-copy round, and a recheck (after the drain) before the switch-over
      expect(after).toHaveBeenCalledTimes(precopy.length);
      expect(recheck).toHaveBeenCalledTimes(1);
      const confirmed = recheck.mock.results[0]!.value as ReturnType<ConvergencePolicy['recheck']>;
      expect(confirmed).toMatchObject({ action: 'switchover', converged: true });
      // the round reports what the policy answered, and the switch-over happened on that answer
      expect(precopy.at(-1)!.expectedDowntimeMs).toBe(confirmed.expectedDowntimeMs);
      expect(r.converged).toBe(true);
      expect(confirmed.expectedDowntimeMs).toBeLessThanOrEqual(DEFAULT_POLICY.downtimeLimitMs);
      // on the modelled link the estimate holds: the downtime is within it and within the limit
      expect(r.downtimeMs).toBeLessThanOrEqual(confirmed.expectedDowntimeMs);
      expect(r.downtimeMs).toBeGreaterThanOrEqual(LINKS['100mbit-50ms']!.rttMs);
    } finally {
      after.mockRestore();
      recheck.mockRestore();
    }
  }, 60_000);

  it('sends at least as many bytes raw as pagewire does on a hot-set guest', async () => {
    const guest: SimulatedGuestOptions = { workload: 'hotset', ratePagesPerSec: 1500 };
    const raw = await run('raw', '100mbit-50ms', 4096, guest);
    const full = await run('pagewire', '100mbit-50ms', 4096, guest);
    expect(raw.wireBytes).toBeGreaterThanOrEqual(full.wireBytes);
    // raw pages cost at least a page each on the wire
    expect(raw.rounds[0]!.wireBytes).toBeGreaterThanOrEqual(4096 * 4096);
  }, 60_000);

  it("decides LZ4 with the encoder's own policy and the cost table's compressor cost, per link", async () => {
    const guest: SimulatedGuestOptions = { workload: 'hotset', ratePagesPerSec: 1500 };
    // the table's compressor is slower per byte than a 10 Gbit/s link (0.8 ns): nothing but probes
    expect(DEFAULT_CODEC_COSTS.lz4CompressNsPerByte).toBeGreaterThan(0.8);
    const fast = await run('pagewire', '10gbit', 4096, guest);
    expect(fast.lz4!.blocks).toBeGreaterThan(16);
    expect(fast.lz4!.compressed).toBe(fast.lz4!.probes);
    expect(fast.lz4!.probes).toBeLessThanOrEqual(Math.ceil(fast.lz4!.blocks / 64));
    expect(fast.lz4!.linkBytesPerSec).toBe(LINKS['10gbit']!.bandwidthBytesPerSec);
    // on 1 Gbit/s every block that saves is compressed; the modelled CPU is the table's cost
    const slow = await run('pagewire', '1gbit', 4096, guest);
    expect(slow.lz4!.tried).toBe(slow.lz4!.blocks);
    expect(slow.lz4!.compressed).toBeGreaterThan(0.8 * slow.lz4!.blocks);
    expect(slow.lz4!.nsPerByte).toBeCloseTo(DEFAULT_CODEC_COSTS.lz4CompressNsPerByte, 9);
    expect(slow.wireBytes).toBeLessThan(fast.wireBytes);
    // a compressor (and encoder) faster than the 10 Gbit/s link per byte: part of the blocks, the
    // share that balances encoder and link (80 ns per page, 0.45 ns LZ4 per record byte: about 0.55)
    const quick: CodecCosts = { ...DEFAULT_CODEC_COSTS, lz4CompressNsPerByte: 0.45, encodeNsPerPage: { ...DEFAULT_CODEC_COSTS.encodeNsPerPage, all: 80 } };
    const some = await run('pagewire', '10gbit', 4096, guest, quick);
    expect(some.lz4!.share).toBeGreaterThan(0.4);
    expect(some.lz4!.share).toBeLessThan(0.8);
    expect(some.lz4!.tried).toBeGreaterThan(0.4 * some.lz4!.blocks);
    expect(some.lz4!.tried).toBeLessThan(0.85 * some.lz4!.blocks);
    expect(some.wireBytes).toBeLessThan(fast.wireBytes);
  }, 60_000);

  it('reports converged: false for raw pre-copy when the guest dirties faster than 10 Mbit/s drains', async () => {
    const r = await run('raw', '10mbit-100ms', 4096, { workload: 'hotset', hotFraction: 0.25, ratePagesPerSec: 4000 });
    expect(r.converged).toBe(false);
    expect(r.mode).toBe('precopy');
    expect(r.rounds.length).toBeGreaterThan(2);
    // the forced switch-over sends the hot set with the guest stopped: far above the 300 ms limit
    expect(r.downtimeMs).toBeGreaterThan(300);
  }, 60_000);
});
