/**
 * `pagewire simulate` with the advanced modes, as outside tools call it (the built CLI in a child
 * process): post-copy and hybrid report faults and their latency, auto-converge the throttle
 * applied, --channels the channels used (worker threads over shared memory), --reorder verifies,
 * --image migrates a real memory image; bad combinations are usage errors (exit 2).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';

interface Report {
  mode: string; verified: boolean; identical: boolean; converged: boolean; channels: number; throttlePct: number;
  faults?: number; faultLatencyMs?: { median: number; p99: number }; guestPages: number;
  rounds: { throttlePct: number; final: boolean }[];
}

async function simulate(args: string[]): Promise<Report> {
  const r = await runCli(['simulate', '--json', '--seed', '3', ...args]);
  expect(r.stderr.includes('Error') ? r.stderr : '').toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

describe('pagewire simulate --mode', () => {
  it('postcopy: switches over at once, the target guest faults, faults and latency are reported', async () => {
    const r = await simulate(['--size', '16MiB', '--mode', 'postcopy', '--link', '100mbit']);
    expect(r.mode).toBe('postcopy');
    expect(r.verified && r.identical).toBe(true);
    expect(r.rounds).toHaveLength(1);
    expect(r.faults).toBeGreaterThan(0);
    expect(r.faultLatencyMs!.median).toBeGreaterThan(0);
    expect(r.faultLatencyMs!.p99).toBeGreaterThanOrEqual(r.faultLatencyMs!.median);
  });

  it('hybrid: pre-copy rounds, then post-copy when the downtime limit cannot be met', async () => {
    const r = await simulate(['--size', '16MiB', '--mode', 'hybrid', '--codecs', 'raw', '--downtime-limit', '1', '--link', '100mbit']);
    expect(r.mode).toBe('hybrid');
    expect(r.verified && r.identical).toBe(true);
    expect(r.rounds.length).toBe(3); // two pre-copy rounds (default), then the post-copy push
    expect(r.faults).toBeGreaterThanOrEqual(0);
    expect(r.faultLatencyMs).toBeDefined();
  });

  it('--auto-converge throttles a guest that outruns the link and reports the last throttle', async () => {
    // The throttle starts after 4 rounds whose dirty set did not shrink by 10%, so the guest must
    // dirty all of its memory in every round, even on a loaded machine: 256 pages, whole-page
    // writes at 40 MiB/s (10k pages/s) against a 10 Mbit/s link (0.84 s per round: ~8k writes).
    // A 4 MiB guest with 64-byte writes on 100 Mbit/s dirtied 650-970 of its 1024 pages per round
    // under load, a dip reset the stall count and no throttle came within 6 rounds.
    const r = await simulate(['--size', '1MiB', '--auto-converge', '--codecs', 'raw', '--workload', 'uniform', '--dirty-rate', '40MiB/s',
      '--write-size', '4096', '--link', '10mbit', '--downtime-limit', '2', '--max-rounds', '8']);
    expect(r.verified && r.identical).toBe(true);
    expect(r.throttlePct).toBeGreaterThanOrEqual(20);
    expect(r.rounds[r.rounds.length - 1]!.throttlePct).toBe(r.throttlePct);
  });

  it('--reorder migrates verified', async () => {
    const r = await simulate(['--size', '16MiB', '--reorder', '--workload', 'zipf']);
    expect(r.mode).toBe('precopy');
    expect(r.verified && r.identical).toBe(true);
  });

  it('a pre-copy target runs on a worker thread: over memory through a MessageChannel, a dropped link resumes on a new one', async () => {
    const r = await simulate(['--size', '16MiB', '--workload', 'hotset', '--link', '1gbit', '--inject', 'drop@round0']) as Report & { targetThread?: boolean; transport: string; drops: number };
    expect(r.transport).toBe('memory');
    expect(r.targetThread).toBe(true);
    expect(r.drops).toBe(1);
    expect(r.verified && r.identical).toBe(true);
  });

  it('over tcp a pre-copy target runs on a worker thread with its own socket (--target-thread off: in this thread); both verify, also with a delayed link', async () => {
    const own = await simulate(['--size', '16MiB', '--transport', 'tcp', '--workload', 'hotset', '--link', '1gbit', '--delay', '20ms']) as Report & { targetThread?: boolean; rttMs: number };
    expect(own.targetThread).toBe(true);
    expect(own.verified && own.identical).toBe(true);
    // the return path's delay is applied on the worker's side: the round trip is both delays
    expect(own.rttMs).toBeGreaterThanOrEqual(38);
    const here = await simulate(['--size', '16MiB', '--transport', 'tcp', '--workload', 'hotset', '--link', '1gbit', '--delay', '20ms', '--target-thread', 'off']) as Report & { targetThread?: boolean; rttMs: number };
    expect(here.targetThread).toBe(false);
    expect(here.verified && here.identical).toBe(true);
    expect(here.rttMs).toBeGreaterThanOrEqual(38);
    // post-copy keeps its target here (the guest it runs faults pages in from this thread)
    const pc = await simulate(['--size', '8MiB', '--transport', 'tcp', '--mode', 'postcopy', '--link', '1gbit']) as Report & { targetThread?: boolean };
    expect(pc.targetThread).toBe(false);
    expect(pc.verified && pc.identical).toBe(true);
    const bad = await runCli(['simulate', '--size', '1MiB', '--transport', 'tcp', '--target-thread', 'maybe']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--target-thread must be on or off/);
  });

  it('--channels 2 with --delay: both directions of every channel are delayed (the round trip is both delays)', async () => {
    for (const transport of ['memory', 'tcp']) {
      const r = await simulate(['--size', '16MiB', '--channels', '2', '--transport', transport, '--link', '1gbit', '--delay', '20ms']) as Report & { rttMs: number };
      expect(r.verified && r.identical, transport).toBe(true);
      expect(r.rttMs, transport).toBeGreaterThanOrEqual(38);
    }
  });

  for (const transport of ['memory', 'tcp']) {
    it(`--channels 2 over ${transport}: worker threads, report says 2 channels, memories identical`, async () => {
      const r = await simulate(['--size', '16MiB', '--channels', '2', '--transport', transport, '--link', '400mbit']);
      expect(r.channels).toBe(2);
      expect(r.verified && r.identical).toBe(true);
    });
  }

  it('usage errors: unknown mode, channels with post-copy, channels out of range', async () => {
    for (const args of [['--mode', 'warp'], ['--channels', '2', '--mode', 'postcopy'], ['--channels', '0'], ['--channels', '65']]) {
      const r = await runCli(['simulate', '--size', '1MiB', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/INVALID_ARGUMENT|--mode|--channels/);
    }
  });
});

describe('pagewire simulate --image', () => {
  let dir = '';
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'pagewire-image-')); });
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it('migrates a raw memory image (not a whole number of pages: padded) and keeps it byte-identical', async () => {
    const bytes = new Uint8Array(2 * 1024 * 1024 + 100);
    for (let i = 0; i < bytes.length; i += 7) bytes[i] = (i * 31) & 0xff;
    const path = join(dir, 'guest.raw');
    writeFileSync(path, bytes);
    const r = await simulate(['--image', path, '--workload', 'idle']);
    expect(r.verified && r.identical).toBe(true);
    expect(r.guestPages).toBe(513);
  });

  it('a missing image is a usage error', async () => {
    const r = await runCli(['simulate', '--image', join(dir, 'nope.raw')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/INVALID_ARGUMENT/);
  });
});
