/**
 * The target's pre-fault worker (src/memory/prefault-node.ts): it touches shared guest memory a
 * bounded distance ahead of the pages the stream wrote, never past that bound, never changes a
 * byte (even while the decoding thread writes the same pages), and does nothing for memory it
 * cannot reach. The CLI's --prefault on|off both verify; a bad value is a usage error.
 */
import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { hugePagesLikely, prefaultThreadsStarted, preparePrefault, startPrefault, type Prefaulter } from '../src/memory/prefault-node.js';
import { runCli } from './helpers/cli.js';

const PS = 4096;

/** Poll until `cond` or fail after `ms` (bounded). */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

function pattern(page: number, i: number): number {
  return (Math.imul(page + 1, 2654435761) + i * 7) & 0xff;
}

describe('pre-fault worker', () => {
  it('does nothing for memory in a core or on plain ArrayBuffers', async () => {
    const inCore = GuestMemory.inCore(await createCore(), 8);
    expect(startPrefault(inCore)).toBeNull();
    expect(startPrefault(GuestMemory.allocateExternal({ pageSize: PS, regions: [{ name: 'r', pageCount: 8 }] }, false))).toBeNull();
  });

  it('skips the worker where huge pages are likely, and says so only for glibc\'s tunable on Linux', () => {
    const saved = process.env['GLIBC_TUNABLES'];
    try {
      delete process.env['GLIBC_TUNABLES'];
      expect(hugePagesLikely()).toBe(false);
      process.env['GLIBC_TUNABLES'] = 'glibc.malloc.hugetlb=1';
      let thp = '';
      try { thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'); } catch { /* no THP here */ }
      const expected = process.platform === 'linux' && thp !== '' && !thp.includes('[never]');
      expect(hugePagesLikely()).toBe(expected);
      const m = GuestMemory.allocateExternal({ pageSize: PS, regions: [{ name: 'a', pageCount: 8 }] }, true);
      if (expected) expect(startPrefault(m)).toBeNull();
    } finally {
      if (saved === undefined) delete process.env['GLIBC_TUNABLES'];
      else process.env['GLIBC_TUNABLES'] = saved;
    }
  });

  it('a prepared worker (started before the guest is known) is the one that pre-faults', async () => {
    const saved = process.env['GLIBC_TUNABLES'];
    delete process.env['GLIBC_TUNABLES'];
    try {
      await preparePrefault(); // resolves once the thread is up and waiting for its memory
      const before = prefaultThreadsStarted();
      await preparePrefault(); // the same spare: no second thread
      expect(prefaultThreadsStarted()).toBe(before);
      const m = GuestMemory.allocateExternal({ pageSize: PS, regions: [{ name: 'a', pageCount: 64 }] }, true);
      const pf = startPrefault(m, { aheadBytes: 8 * PS })!;
      expect(prefaultThreadsStarted()).toBe(before); // it took the prepared thread
      try {
        await until(() => pf.touchedPages === 8);
        pf.advance([63]);
        await until(() => pf.touchedPages === 64);
      } finally {
        await pf.stop();
      }
    } finally {
      if (saved !== undefined) process.env['GLIBC_TUNABLES'] = saved;
    }
  });

  it('stays within aheadBytes of the stream, follows it across regions, and ends at the last page', async () => {
    const m = GuestMemory.allocateExternal({ pageSize: PS, regions: [{ name: 'a', pageCount: 100 }, { name: 'b', pageCount: 156 }] }, true);
    const pf = startPrefault(m, { aheadBytes: 16 * PS, always: true })!;
    try {
      await until(() => pf.touchedPages === 16);
      await new Promise((r) => setTimeout(r, 50));
      expect(pf.touchedPages).toBe(16); // no further without the stream
      pf.advance([90, 91, 92]); // highest page written 92: up to 93 + 16
      await until(() => pf.touchedPages === 109);
      await new Promise((r) => setTimeout(r, 50));
      expect(pf.touchedPages).toBe(109);
      pf.advance(Uint32Array.of(250));
      await until(() => pf.touchedPages === 256);
    } finally {
      await pf.stop();
    }
    await pf.stop(); // idempotent
  });

  it('never changes a byte while the stream writes the same pages', async () => {
    const pages = 2048;
    const m = GuestMemory.allocateExternal({ pageSize: PS, regions: [{ name: 'a', pageCount: 1000 }, { name: 'b', pageCount: pages - 1000 }] }, true);
    let pf: Prefaulter | null = null;
    try {
      pf = startPrefault(m, { aheadBytes: 64 * PS, always: true })!;
      const idx = new Uint32Array(32);
      for (let p = 0; p < pages; p += 32) {
        for (let k = 0; k < 32; k++) {
          const v = m.page(p + k);
          for (let i = 0; i < PS; i++) v[i] = pattern(p + k, i);
          idx[k] = p + k;
        }
        pf.advance(idx);
      }
      await until(() => pf!.touchedPages === pages);
    } finally {
      await pf?.stop();
    }
    let bad = 0;
    for (let p = 0; p < pages; p++) {
      const v = m.page(p);
      for (let i = 0; i < PS; i++) if (v[i] !== pattern(p, i)) bad++;
    }
    expect(bad).toBe(0);
  });

  it('pagewire simulate verifies with --prefault on and off; other values are usage errors', async () => {
    for (const pf of ['on', 'off']) {
      const r = await runCli(['simulate', '--size', '8MiB', '--workload', 'hotset', '--link', '0', '--transport', 'tcp', '--prefault', pf, '--json']);
      expect(r.code).toBe(0);
      const rep = JSON.parse(r.stdout) as { verified: boolean; identical: boolean };
      expect(rep.verified && rep.identical).toBe(true);
    }
    const bad = await runCli(['simulate', '--size', '1MiB', '--prefault', 'maybe']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--prefault must be on or off/);
  });
});
