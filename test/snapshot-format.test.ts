import { describe, it, expect, beforeAll } from 'vitest';
import fc from 'fast-check';
import { createCore, type Core } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { PagewireError } from '../src/errors.js';
import { fillInitial } from '../src/sim/content.js';
import { memoryDigest, pageHashes } from '../src/memory/digest.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { memoryPair } from '../src/transport/memory.js';
import type { Transport } from '../src/transport/types.js';
import { FrameWriter } from '../src/protocol/codec.js';
import { FrameType } from '../src/protocol/frame.js';
import { encodeJson } from '../src/protocol/messages.js';
import {
  writeSnapshot, restoreSnapshot, restoreChain, readSnapshotHeader, inspectSnapshot, MemorySink,
  type SnapshotWriteOptions, type SnapshotWriteReport,
} from '../src/snapshot/index.js';
import { SetDirtyLog } from './helpers/engine.js';

let core: Core;
beforeAll(async () => { core = await createCore(); });

function guest(pages: number, pageSize = 4096, seed = 1): GuestMemory {
  const m = GuestMemory.inCore(core, pages, pageSize);
  fillInitial(m, 'mixed', seed);
  return m;
}

function bytesOf(m: GuestMemory): Uint8Array {
  const out = new Uint8Array(m.byteLength);
  for (let p = 0; p < m.pageCount; p++) out.set(m.page(p), p * m.pageSize);
  return out;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

async function write(m: GuestMemory, opts: SnapshotWriteOptions = {}): Promise<{ file: Uint8Array; sink: MemorySink; rep: SnapshotWriteReport }> {
  const sink = new MemorySink();
  const rep = await writeSnapshot(m, sink, { core, ...opts });
  return { file: sink.bytes(), sink, rep };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PagewireError) return e.code;
    throw e;
  }
  return 'none';
}

/** Byte offsets where the frames of a MemorySink end (preamble, then one chunk per frame). */
function boundaries(sink: MemorySink): number[] {
  const out: number[] = [];
  let o = 0;
  for (const c of sink.chunks) { o += c.byteLength; out.push(o); }
  return out;
}

describe('full snapshots', () => {
  it('round-trips memory byte for byte and verifies the digest', async () => {
    const m = guest(300);
    const { file, rep } = await write(m);
    expect(rep.kind).toBe('full');
    expect(rep.pages).toBe(300);
    expect(rep.digest).toBe(memoryDigest(m, core));
    expect(rep.bytes).toBe(file.byteLength);
    const r = await restoreSnapshot(file, { core });
    expect(r.verified).toBe(true);
    expect(r.digest).toBe(rep.digest);
    expect(r.expectedDigest).toBe(rep.digest);
    expect(r.pages).toBe(300);
    expect(r.header.snapshot?.kind).toBe('full');
    expect(same(bytesOf(r.memory), bytesOf(m))).toBe(true);
  });

  it('keeps a multi-region layout, odd page sizes and device state', async () => {
    const a = new Uint8Array(3 * 1024);
    const b = new Uint8Array(5 * 1024);
    for (let i = 0; i < a.length; i++) a[i] = (i * 7) & 0xff;
    for (let i = 0; i < b.length; i += 3) b[i] = (i * 13 + 1) & 0xff;
    const m = GuestMemory.external([a, b], 1024, ['low', 'high']);
    const dev = new Uint8Array([1, 2, 3, 4, 5]);
    const { file } = await write(m, { deviceState: dev, batchPages: 3, meta: { note: 'two regions' } });
    const r = await restoreSnapshot(file, { core });
    expect(r.verified).toBe(true);
    expect(r.memory.layout).toEqual({ pageSize: 1024, regions: [{ name: 'low', pageCount: 3 }, { name: 'high', pageCount: 5 }] });
    expect(Array.from(r.deviceState!)).toEqual([1, 2, 3, 4, 5]);
    expect(r.header.snapshot?.meta).toEqual({ note: 'two regions' });
    expect(same(bytesOf(r.memory), bytesOf(m))).toBe(true);
  });

  it('reads the same from any split of the bytes into chunks (sync and async)', async () => {
    const m = guest(40, 512, 7);
    const { file, rep } = await write(m, { batchPages: 5 });
    const want = bytesOf(m);
    await fc.assert(fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: file.byteLength - 1 }), { maxLength: 12 }), fc.boolean(), async (cuts, asyncIter) => {
      const pts = [0, ...cuts.sort((x, y) => x - y), file.byteLength];
      const chunks = pts.slice(1).map((e, i) => file.subarray(pts[i]!, e));
      const input = asyncIter ? (async function* () { for (const c of chunks) yield c; })() : chunks;
      const r = await restoreSnapshot(input, { core });
      expect(r.verified).toBe(true);
      expect(r.digest).toBe(rep.digest);
      expect(same(bytesOf(r.memory), want)).toBe(true);
    }), { seed: 42, numRuns: 40 });
  });

  it('reports a digest mismatch as not verified (checksums intact, COMPLETE lies)', async () => {
    const m = guest(16);
    const { sink } = await write(m);
    const fw = new FrameWriter(core);
    fw.seq = sink.chunks.length - 2; // frames are numbered from 0 after the preamble
    const forged = fw.frame(FrameType.COMPLETE, encodeJson({ digest: '0123456789abcdef', rounds: 1, pausedAt: 0 }));
    const r = await restoreSnapshot([...sink.chunks.slice(0, -1), forged], { core });
    expect(r.verified).toBe(false);
    expect(r.expectedDigest).toBe('0123456789abcdef');
    expect(r.digest).toBe(memoryDigest(m, core));
  });
});

describe('truncated and corrupted files', () => {
  it('every truncation (frame boundaries and every other length) is SNAPSHOT_CORRUPT', async () => {
    const m = guest(8, 512, 3);
    const { file, sink } = await write(m, { batchPages: 2, deviceState: new Uint8Array(10) });
    const target = GuestMemory.inCore(core, 8, 512);
    const ends = boundaries(sink);
    expect(ends[ends.length - 1]).toBe(file.byteLength);
    for (const n of ends.slice(0, -1)) {
      expect(await codeOf(restoreSnapshot(file.subarray(0, n), { core, memory: target }))).toBe('SNAPSHOT_CORRUPT');
    }
    for (let n = 0; n < file.byteLength; n++) {
      expect(await codeOf(restoreSnapshot(file.subarray(0, n), { core, memory: target }))).toBe('SNAPSHOT_CORRUPT');
    }
  });

  it('truncation at random offsets of a larger file is SNAPSHOT_CORRUPT, in chunks too', async () => {
    const m = guest(512);
    const { file } = await write(m, { batchPages: 64 });
    const target = GuestMemory.inCore(core, 512, 4096);
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: file.byteLength - 1 }), fc.integer({ min: 4096, max: 1 << 20 }), async (n, chunk) => {
      const cut = file.subarray(0, n);
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < cut.byteLength; i += chunk) chunks.push(cut.subarray(i, i + chunk));
      expect(await codeOf(restoreSnapshot(chunks, { core, memory: target }))).toBe('SNAPSHOT_CORRUPT');
    }), { seed: 7, numRuns: 60 });
  });

  it('a changed byte anywhere is SNAPSHOT_CORRUPT, never a restore', async () => {
    const m = guest(8, 512, 5);
    const { file } = await write(m, { batchPages: 2, deviceState: new Uint8Array([9, 9, 9]) });
    const target = GuestMemory.inCore(core, 8, 512);
    const bad = new Uint8Array(file.byteLength);
    const seen = new Set<string>();
    for (let i = 0; i < file.byteLength; i++) {
      bad.set(file);
      bad[i] ^= 1 + ((i * 37) % 255);
      let code = 'none';
      try {
        await restoreSnapshot(bad, { core, memory: target });
      } catch (e) {
        code = (e as PagewireError).code;
        seen.add(((e as PagewireError).cause as PagewireError | undefined)?.code ?? code);
      }
      if (code !== 'SNAPSHOT_CORRUPT') throw new Error(`byte ${i} changed: restore gave ${code}`);
    }
    // the underlying checks that fired: checksums, and the preamble's magic/version
    expect(seen.has('CHECKSUM_MISMATCH')).toBe(true);
    expect(seen.has('FRAME_CORRUPT')).toBe(true);
    expect(seen.has('SNAPSHOT_CORRUPT')).toBe(true); // the preamble's minor version
  });

  it('refuses bytes after COMPLETE, an empty file, a missing frame and other data', async () => {
    const m = guest(8, 512, 2);
    const { file, sink } = await write(m, { batchPages: 2 });
    const target = GuestMemory.inCore(core, 8, 512);
    const r = (input: Uint8Array | Uint8Array[]): Promise<string> => codeOf(restoreSnapshot(input, { core, memory: target }));
    expect(await r([file, new Uint8Array([0])])).toBe('SNAPSHOT_CORRUPT');
    expect(await r(new Uint8Array(0))).toBe('SNAPSHOT_CORRUPT');
    expect(await r(new TextEncoder().encode('hello, this is not a snapshot at all'))).toBe('SNAPSHOT_CORRUPT');
    // drop one PAGES frame: sequence numbers no longer follow
    const missing = [...sink.chunks.slice(0, 2), ...sink.chunks.slice(3)];
    const e = await restoreSnapshot(missing, { core, memory: target }).catch((x: PagewireError) => x);
    expect((e as PagewireError).code).toBe('SNAPSHOT_CORRUPT');
    expect((e as PagewireError).message).toMatch(/out of sequence/);
    // a frame repeated
    const twice = [...sink.chunks.slice(0, 3), sink.chunks[2]!, ...sink.chunks.slice(3)];
    expect(await r(twice)).toBe('SNAPSHOT_CORRUPT');
  });

  it('inspect reports the problem and where instead of throwing', async () => {
    const m = guest(8, 512, 2);
    const { file } = await write(m, { batchPages: 2 });
    const s = await inspectSnapshot(file.subarray(0, file.byteLength - 10), { core });
    expect(s.complete).toBe(false);
    expect(s.error?.code).toBe('SNAPSHOT_CORRUPT');
    expect(s.error?.message).toMatch(/truncated/);
    expect(s.header?.snapshot?.kind).toBe('full');
    expect(s.rounds).toHaveLength(1);
  });
});

describe('incremental snapshots and chains', () => {
  it('stores only the pages that differ (by page hash) and restores the chain byte for byte', async () => {
    const m = guest(64);
    const full = await write(m);
    const h0 = pageHashes(m, core);
    // change three pages; rewrite a fourth with the same bytes (not stored)
    m.page(3)[100] ^= 0xff;
    m.page(10).fill(0xab);
    m.page(40)[0] ^= 0xff;
    const same5 = m.page(5).slice();
    m.page(5).set(same5);
    const child = await write(m, { parent: { digest: full.rep.digest, pageHashes: h0, layout: m.layout, path: 'full.pws' } });
    expect(child.rep.kind).toBe('incremental');
    expect(child.rep.parentDigest).toBe(full.rep.digest);
    expect(child.rep.pages).toBe(3); // pages 3, 10, 40
    const afterChild = bytesOf(m);
    // grandchild from a dirty log (explicit page list, duplicates and any order)
    m.page(63)[0] ^= 1;
    m.page(0)[4095] ^= 1;
    const grand = await write(m, { parent: { digest: child.rep.digest }, pages: Uint32Array.from([63, 0, 63]) });
    expect(grand.rep.pages).toBe(2);
    const header = await readSnapshotHeader(child.file, { core });
    expect(header.snapshot).toMatchObject({ kind: 'incremental', parentDigest: full.rep.digest, parentPath: 'full.pws' });

    const r2 = await restoreChain([full.file, child.file], { core });
    expect(r2.verified).toBe(true);
    expect(r2.links.map((l) => l.pages)).toEqual([64, 3]);
    expect(same(bytesOf(r2.memory), afterChild)).toBe(true);

    const r3 = await restoreChain([full.file, () => child.file, async () => grand.file], { core });
    expect(r3.verified).toBe(true);
    expect(r3.digest).toBe(memoryDigest(m, core));
    expect(r3.pages).toBe(64 + 3 + 2);
    expect(same(bytesOf(r3.memory), bytesOf(m))).toBe(true);
  });

  it('refuses an incremental applied to the wrong parent, or without one', async () => {
    const m = guest(32, 4096, 9);
    const full = await write(m);
    const h0 = pageHashes(m, core);
    m.page(1)[0] ^= 1;
    const child = await write(m, { parent: { digest: full.rep.digest, pageHashes: h0 } });
    m.page(2)[0] ^= 1;
    const grand = await write(m, { parent: { digest: child.rep.digest, pageHashes: pageHashes(m, core) } });
    expect(await codeOf(restoreChain([full.file, grand.file], { core }))).toBe('SNAPSHOT_PARENT_MISMATCH');
    expect(await codeOf(restoreChain([full.file, full.file], { core }))).toBe('SNAPSHOT_PARENT_MISMATCH');
    expect(await codeOf(restoreSnapshot(child.file, { core }))).toBe('INVALID_ARGUMENT');
    const other = guest(32, 4096, 10);
    expect(await codeOf(restoreSnapshot(child.file, { core, memory: other }))).toBe('SNAPSHOT_PARENT_MISMATCH');
    expect(await codeOf(restoreSnapshot(child.file, { core, memory: guest(16) }))).toBe('LAYOUT_MISMATCH');
    expect(await codeOf(writeSnapshot(m, new MemorySink(), { core, parent: { digest: full.rep.digest, pageHashes: h0.subarray(0, 8) } }))).toBe('LAYOUT_MISMATCH');
    expect(await codeOf(writeSnapshot(m, new MemorySink(), { core, parent: { digest: 'nope' } }))).toBe('INVALID_ARGUMENT');
  });

  it('a truncated link of a chain is SNAPSHOT_CORRUPT and names the link', async () => {
    const m = guest(16);
    const full = await write(m);
    const h0 = pageHashes(m, core);
    m.page(7)[7] ^= 7;
    const child = await write(m, { parent: { digest: full.rep.digest, pageHashes: h0 } });
    const e = await restoreChain([full.file, child.file.subarray(0, child.file.byteLength - 1)], { core, labels: ['a.pws', 'b.pws'] }).catch((x: PagewireError) => x);
    expect((e as PagewireError).code).toBe('SNAPSHOT_CORRUPT');
    expect((e as PagewireError).message).toMatch(/^b\.pws: /);
  });
});

describe('inspect', () => {
  it('summarises header, rounds, frames, codec mix and sizes', async () => {
    const m = guest(100);
    const { file, rep } = await write(m, { batchPages: 32, deviceState: new Uint8Array(64) });
    const s = await inspectSnapshot(file, { core });
    expect(s.error).toBeNull();
    expect(s.complete).toBe(true);
    expect(s.digest).toBe(rep.digest);
    expect(s.bytes).toBe(file.byteLength);
    expect(s.pages).toBe(100);
    expect(s.rawBytes).toBe(100 * 4096);
    expect(s.pageFrameBytes).toBe(rep.pageFrameBytes);
    expect(s.frames['PAGES']?.count).toBe(4);
    expect(s.frames['DEVICE_STATE']?.count).toBe(1);
    expect(s.deviceStateBytes).toBe(64);
    expect(s.codecs).toEqual(rep.codecs);
    expect(Object.values(s.codecs!).reduce((n, c) => n + c.pages, 0)).toBe(100);
  });
});

describe('a captured migration stream is a snapshot', () => {
  it('restores and inspects the bytes a source sent in a real multi-round migration', async () => {
    const pages = 128;
    const src = guest(pages, 4096, 11);
    const log = new SetDirtyLog(pages);
    const [a, b] = memoryPair();
    const chunks: Uint8Array[] = [];
    const tap: Transport = {
      get closed() { return a.closed; },
      label: 'tap',
      write(c: Uint8Array) { chunks.push(c.slice()); return a.write(c); },
      read: () => a.read(),
      end: () => a.end(),
      destroy: (e?: unknown) => a.destroy(e as Error),
    } as unknown as Transport;
    let writes = 0;
    const source = new MigrationSource(src, log, tap, { codecs: 'all', downtimeLimitMs: 1, maxRounds: 3, batchPages: 16 }, {
      onRound: (_r, before) => {
        if (!before) return;
        for (let i = 0; i < 10; i++) {
          const p = (writes * 17 + 3) % pages;
          src.page(p)[(writes * 8) % 4096] ^= 0x5a;
          log.set.add(p);
          writes++;
        }
      },
    });
    const dst = GuestMemory.inCore(await createCore(), pages);
    const target = new MigrationTarget(dst);
    const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
    expect(rs.verified && rt.verified).toBe(true);
    const stream = chunks;
    const r = await restoreSnapshot(stream, { core });
    expect(r.header.snapshot).toBeNull();
    expect(r.verified).toBe(true);
    expect(r.digest).toBe(rs.digest);
    expect(same(bytesOf(r.memory), bytesOf(src))).toBe(true);
    const s = await inspectSnapshot(stream, { core });
    expect(s.error).toBeNull();
    expect(s.rounds.length).toBe(rs.rounds.length);
    expect(s.pages).toBe(rs.rounds.reduce((n, x) => n + x.pages, 0));
    expect(s.codecs).not.toBeNull();
  });
});

describe('browser safety', () => {
  it('src/snapshot uses no node:*, Buffer or process (but in its Node adapter, file-node.ts)', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const root = join(__dirname, '../src/snapshot');
    const files = readdirSync(root).filter((f) => f.endsWith('.ts') && !f.endsWith('-node.ts'));
    // the Node adapter is reached only from the Node entry and the CLI, never from the browser-safe files
    for (const f of files) expect(readFileSync(join(root, f), 'utf8'), f).not.toMatch(/-node\.js'/);
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of files) {
      const src = readFileSync(join(root, f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      expect(src, f).not.toMatch(/from '(node:|fs|path)|\bBuffer\b|\bprocess\./);
    }
  });
});
