/**
 * The simulated guests and dirty logs driving the real migration engine over an in-memory pair.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { HashScanDirtyLog } from '../src/memory/hash-scan-log.js';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { SimulatedGuest } from '../src/sim/guest.js';
import { fillInitial } from '../src/sim/content.js';
import { loadCorpus } from '../src/sim/corpus-node.js';

const corpusRoot = resolve(__dirname, '../.cache/corpus');

async function targetFor(pages: number): Promise<GuestMemory> {
  return GuestMemory.inCore(await createCore(), pages, 4096);
}

describe('simulated guests under a real migration', () => {
  beforeAll(() => {
    if (!existsSync(join(corpusRoot, 'vm-redis', '.verified'))) {
      execFileSync(process.execPath, [resolve(__dirname, '../../shared/corpus/unpack.mjs'), corpusRoot, 'vm-redis'], { stdio: 'ignore' });
    }
  });

  it('a hot-set guest writing in real time migrates verified; the guest is paused at switch-over', async () => {
    const pages = 4096;
    const src = GuestMemory.inCore(await createCore(), pages, 4096);
    fillInitial(src, 'mixed', 3);
    const guest = new SimulatedGuest(src, { workload: 'hotset', ratePagesPerSec: 3000, writeSize: 'line', seed: 3 });
    const dst = await targetFor(pages);
    const [a, b] = memoryPair();
    const source = new MigrationSource(src, guest.dirtyLog, a, { downtimeLimitMs: 100 }, guest.hooks());
    const target = new MigrationTarget(dst, {}, {});
    guest.start();
    const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
    guest.stop();
    expect(guest.stats.writes).toBeGreaterThan(0);
    expect(guest.running).toBe(false);
    expect(rs.verified).toBe(true);
    expect(rt.verified).toBe(true);
    expect(Buffer.compare(src.pages(0, pages)!, dst.pages(0, pages)!)).toBe(0);
  });

  it('corpus replay: one snapshot per round, switch-over after the last; the target holds the last snapshot', async () => {
    const corpus = loadCorpus(join(corpusRoot, 'vm-redis'));
    const src = GuestMemory.inCore(await createCore(), corpus.pageCount, corpus.pageSize);
    const guest = new SimulatedGuest(src, { workload: 'corpus', corpus });
    const dst = await targetFor(corpus.pageCount);
    const [a, b] = memoryPair();
    // a generous downtime limit: the policy would switch over at once; the hooks force one round per snapshot
    const source = new MigrationSource(src, guest.dirtyLog, a, { downtimeLimitMs: 10_000 }, guest.hooks());
    const target = new MigrationTarget(dst, {}, {});
    const [rs] = await Promise.all([source.migrate(), target.run(b)]);
    expect(rs.verified).toBe(true);
    expect(guest.done).toBe(true);
    // round 0 sends all pages, rounds 1..3 send dirty-1..3, the stop-and-copy round dirty-4
    expect(rs.rounds.length).toBe(5);
    expect(rs.rounds[0]!.pages).toBe(corpus.pageCount);
    for (let k = 1; k < 5; k++) expect(rs.rounds[k]!.pages).toBe(corpus.dirty(k).length);
    expect(Buffer.compare(dst.pages(0, corpus.pageCount)!, corpus.snapshot(4))).toBe(0);
  });

  it('a hash-scan dirty log finds the guest\'s writes without being told', async () => {
    const pages = 2048;
    const src = GuestMemory.inCore(await createCore(), pages, 4096);
    fillInitial(src, 'mixed', 8);
    const guest = new SimulatedGuest(src, { workload: 'zipf', ratePagesPerSec: 2000, writeSize: 'word', seed: 8 });
    const log = new HashScanDirtyLog(src);
    const dst = await targetFor(pages);
    const [a, b] = memoryPair();
    const source = new MigrationSource(src, log, a, { downtimeLimitMs: 100 }, guest.hooks());
    const target = new MigrationTarget(dst, {}, {});
    guest.start();
    const [rs] = await Promise.all([source.migrate(), target.run(b)]);
    guest.stop();
    expect(rs.verified).toBe(true);
    expect(Buffer.compare(src.pages(0, pages)!, dst.pages(0, pages)!)).toBe(0);
    log.dispose();
  });
});
