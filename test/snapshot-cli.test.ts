// CLI tests of `pagewire snapshot`, `restore` and `inspect` through the built bin (npm test builds
// dist/ first; alone: `npm run build && npx vitest run test/snapshot-cli.test.ts`).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCli } from './helpers/cli.js';
import { createCore } from '../src/core/core.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { FrameWriter } from '../src/protocol/codec.js';
import { FrameType } from '../src/protocol/frame.js';
import { encodeJson } from '../src/protocol/messages.js';
import { MemorySink, writeSnapshot } from '../src/snapshot/index.js';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'pagewire-snap-cli-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

const p = (name: string): string => join(dir, name);

async function json(args: string[], code = 0): Promise<Record<string, any>> {
  const r = await runCli(args);
  if (r.code !== code) throw new Error(`pagewire ${args.join(' ')} exited ${r.code}, expected ${code}\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

/** ELF64 LE core with PT_LOAD segments at the given physical addresses (bytes 8-aligned after the headers). */
function elfCore(segs: { paddr: bigint; data: Uint8Array }[]): Uint8Array {
  let off = 64 + 56 * segs.length;
  const offs = segs.map((s) => { off = (off + 7) & ~7; const o = off; off += s.data.byteLength; return o; });
  const buf = new Uint8Array(off);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 4, true); dv.setUint16(18, 62, true); dv.setUint32(20, 1, true);
  dv.setBigUint64(32, 64n, true); dv.setUint16(52, 64, true); dv.setUint16(54, 56, true); dv.setUint16(56, segs.length, true);
  segs.forEach((s, i) => {
    const o = 64 + 56 * i;
    dv.setUint32(o, 1, true); dv.setBigUint64(o + 8, BigInt(offs[i]!), true); dv.setBigUint64(o + 24, s.paddr, true);
    dv.setBigUint64(o + 32, BigInt(s.data.byteLength), true); dv.setBigUint64(o + 40, BigInt(s.data.byteLength), true);
    buf.set(s.data, offs[i]!);
  });
  return buf;
}

function padTo(b: Uint8Array, pageSize: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(b.byteLength / pageSize) * pageSize);
  out.set(b);
  return out;
}

describe('pagewire snapshot / restore / inspect', () => {
  let full: Record<string, any>;
  let inc1: Record<string, any>;
  let inc2: Record<string, any>;

  it('writes a full snapshot of a simulated guest and restores it verified', async () => {
    full = await json(['snapshot', '--out', p('a.pws'), '--size', '8MiB', '--seed', '3', '--json']);
    expect(full['kind']).toBe('full');
    expect(full['digest']).toMatch(/^[0-9a-f]{16}$/);
    expect(full['pages']).toBe(2048);
    expect(full['guestPages']).toBe(2048);
    expect(full['bytes']).toBe(readFileSync(p('a.pws')).byteLength);
    const r = await json(['restore', p('a.pws'), '--json']);
    expect(r).toMatchObject({ verified: true, digest: full['digest'], pages: 2048, kind: 'full' });
    // the same options give the same guest
    const again = await json(['snapshot', '--out', p('a2.pws'), '--size', '8MiB', '--seed', '3', '--json']);
    expect(again['digest']).toBe(full['digest']);
    const human = await runCli(['restore', p('a.pws')]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/verified: yes/);
  });

  it('writes an incremental chain that stores only dirtied pages and restores through its parents', async () => {
    inc1 = await json(['snapshot', '--out', p('b.pws'), '--size', '8MiB', '--seed', '3', '--incremental-from', p('a.pws'), '--json']);
    expect(inc1['kind']).toBe('incremental');
    expect(inc1['parentDigest']).toBe(full['digest']);
    expect(inc1['pages']).toBeGreaterThan(0);
    expect(inc1['pages']).toBeLessThan(2048);
    expect(inc1['digest']).not.toBe(full['digest']);
    inc2 = await json(['snapshot', '--out', p('c.pws'), '--incremental-from', p('b.pws'), '--workload', 'uniform', '--dirty-rate', '200pages/s', '--json']);
    expect(inc2['parentDigest']).toBe(inc1['digest']);
    expect(inc2['pages']).toBeGreaterThan(0);
    expect(inc2['pages']).toBeLessThanOrEqual(200);
    const r = await json(['restore', p('c.pws'), '--json']);
    expect(r).toMatchObject({ verified: true, digest: inc2['digest'], pages: 2048, kind: 'incremental' });
    expect(r['chain'].map((c: any) => c.kind)).toEqual(['full', 'incremental', 'incremental']);
    expect(r['pagesApplied']).toBe(2048 + inc1['pages'] + inc2['pages']);
    const i = await json(['inspect', p('c.pws'), '--json']);
    expect(i['header']['snapshot']).toMatchObject({ kind: 'incremental', parentDigest: inc1['digest'], parentPath: 'b.pws' });
    expect(i['digest']).toBe(inc2['digest']);
    expect(i['pages']).toBe(inc2['pages']);
  });

  it('finds a moved parent with --base, and says what is missing without it', async () => {
    mkdirSync(p('moved'));
    copyFileSync(p('b.pws'), p('moved/b.pws'));
    const missing = await runCli(['restore', p('moved/b.pws')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/INVALID_ARGUMENT.*--base/);
    const r = await json(['restore', p('moved/b.pws'), '--base', p('a.pws'), '--json']);
    expect(r).toMatchObject({ verified: true, digest: inc1['digest'] });
    // another full snapshot is the wrong parent
    await json(['snapshot', '--out', p('other.pws'), '--size', '8MiB', '--seed', '4', '--json']);
    const wrong = await runCli(['restore', p('moved/b.pws'), '--base', p('other.pws'), '--json']);
    expect(wrong.code).toBe(3);
    expect(JSON.parse(wrong.stdout).error.code).toBe('SNAPSHOT_PARENT_MISMATCH');
  });

  it('a truncated or corrupted file fails restore with SNAPSHOT_CORRUPT (exit 3), never a restore', async () => {
    const bytes = readFileSync(p('b.pws'));
    const cuts = [0, 5, 8, 30, 600, Math.floor(bytes.byteLength / 2), bytes.byteLength - 1];
    for (const n of cuts) {
      writeFileSync(p('t.pws'), bytes.subarray(0, n));
      const r = await runCli(['restore', p('t.pws'), '--base', p('a.pws'), '--json']);
      expect(r.code, `cut at ${n}`).toBe(3);
      expect(JSON.parse(r.stdout)).toMatchObject({ verified: false, error: { code: 'SNAPSHOT_CORRUPT' } });
      expect(r.stderr).toMatch(/SNAPSHOT_CORRUPT/);
    }
    for (const at of [3, 20, 700, bytes.byteLength - 40, bytes.byteLength - 1]) {
      const bad = Buffer.from(bytes);
      bad[at] ^= 0x20;
      writeFileSync(p('x.pws'), bad);
      const r = await runCli(['restore', p('x.pws'), '--base', p('a.pws')]);
      expect(r.code, `byte ${at}`).toBe(3);
      expect(r.stderr).toMatch(/SNAPSHOT_CORRUPT/);
      const i = await runCli(['inspect', p('x.pws')]);
      expect(i.code).toBe(3);
      expect(i.stderr).toMatch(/SNAPSHOT_CORRUPT/);
    }
    // a corrupt parent fails the child's restore too
    const parent = Buffer.from(readFileSync(p('a.pws')));
    parent[100_000] ^= 1;
    writeFileSync(p('bad-parent.pws'), parent);
    expect((await runCli(['restore', p('b.pws'), '--base', p('bad-parent.pws')])).code).toBe(3);
  });

  it('a digest that does not match is a verification failure (exit 4)', async () => {
    const core = await createCore();
    const m = GuestMemory.inCore(core, 16, 4096);
    m.page(3).fill(7);
    const sink = new MemorySink();
    await writeSnapshot(m, sink, { core });
    const fw = new FrameWriter(core);
    fw.seq = sink.chunks.length - 2;
    const forged = fw.frame(FrameType.COMPLETE, encodeJson({ digest: '00000000deadbeef', rounds: 1, pausedAt: 0 }));
    writeFileSync(p('lie.pws'), Buffer.concat([...sink.chunks.slice(0, -1), forged]));
    const r = await runCli(['restore', p('lie.pws'), '--json', '--out-image', p('lie.img')]);
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: false, expectedDigest: '00000000deadbeef', pages: 16 });
    expect(r.stderr).toMatch(/VERIFY_FAILED/);
    expect(() => readFileSync(p('lie.img'))).toThrow(); // nothing written from an unverified restore
  });

  it('inspect prints header, rounds, codec mix and sizes', async () => {
    const i = await json(['inspect', p('a.pws'), '--json']);
    expect(i['complete']).toBe(true);
    expect(i['error']).toBeNull();
    expect(i['digest']).toBe(full['digest']);
    expect(i['fileBytes']).toBe(full['bytes']);
    expect(i['bytes']).toBe(full['bytes']);
    expect(i['header']['layout']).toEqual({ pageSize: 4096, regions: [{ name: 'ram0', pageCount: 2048 }] });
    expect(i['rounds']).toHaveLength(1);
    expect(i['codecs']).toEqual(full['codecs']);
    expect(Object.values(i['codecs'] as Record<string, { pages: number }>).reduce((n, c) => n + c.pages, 0)).toBe(2048);
    const human = await runCli(['inspect', p('a.pws')]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/full snapshot/);
    expect(human.stdout).toMatch(/codec mix: /);
    expect(human.stdout).toMatch(new RegExp(`digest ${full['digest']}`));
  });

  it('snapshots raw images and ELF cores, restores them byte for byte, incrementally too', async () => {
    const raw = pattern(64 * 4096 + 1234, 5);
    writeFileSync(p('ram.img'), raw);
    const s = await json(['snapshot', '--from-image', p('ram.img'), '--out', p('img.pws'), '--json']);
    expect(s['guestPages']).toBe(65);
    expect(s['source']).toMatchObject({ source: 'image', fileBytes: raw.byteLength });
    await json(['restore', p('img.pws'), '--out-image', p('img.out'), '--json']);
    expect(Buffer.compare(readFileSync(p('img.out')), padTo(raw, 4096))).toBe(0);

    // the next image differs in three pages: the incremental stores three
    const raw2 = Buffer.from(raw);
    for (const pg of [0, 17, 64]) raw2[pg * 4096 + 9] ^= 0xff;
    writeFileSync(p('ram2.img'), raw2);
    const s2 = await json(['snapshot', '--from-image', p('ram2.img'), '--incremental-from', p('img.pws'), '--out', p('img2.pws'), '--json']);
    expect(s2['pages']).toBe(3);
    const r2 = await json(['restore', p('img2.pws'), '--out-image', p('img2.out'), '--json']);
    expect(r2['verified']).toBe(true);
    expect(Buffer.compare(readFileSync(p('img2.out')), padTo(raw2, 4096))).toBe(0);

    const segs = [{ paddr: 0n, data: pattern(40 * 4096, 6) }, { paddr: 0x100000n, data: pattern(3000, 7) }];
    writeFileSync(p('guest.core'), elfCore(segs));
    const c = await json(['snapshot', '--from-core', p('guest.core'), '--out', p('core.pws'), '--json']);
    expect(c['guestPages']).toBe(41);
    expect(c['source']).toMatchObject({ source: 'core', segments: 2 });
    const i = await json(['inspect', p('core.pws'), '--json']);
    expect(i['header']['layout']['regions']).toEqual([{ name: 'phys@0x0', pageCount: 40 }, { name: 'phys@0x100000', pageCount: 1 }]);
    await json(['restore', p('core.pws'), '--out-image', p('core.out'), '--json']);
    expect(Buffer.compare(readFileSync(p('core.out')), Buffer.concat([segs[0]!.data, padTo(segs[1]!.data, 4096)]))).toBe(0);
    const auto = await json(['snapshot', '--image', p('guest.core'), '--out', p('core2.pws'), '--json']);
    expect(auto['digest']).toBe(c['digest']);
    expect(auto['source']['source']).toBe('core');
    const notCore = await runCli(['snapshot', '--from-core', p('ram.img'), '--out', p('nope.pws')]);
    expect(notCore.code).toBe(3);
    expect(notCore.stderr).toMatch(/IMAGE_CORRUPT/);
  });

  it('usage errors exit 2; --help exits 0', async () => {
    expect((await runCli(['snapshot', '--size', '8MiB'])).code).toBe(2);
    expect((await runCli(['snapshot', '--out', p('u.pws'), '--bogus'])).code).toBe(2);
    expect((await runCli(['snapshot', '--out', p('u.pws'), '--from-image', p('ram.img'), '--from-core', p('guest.core')])).code).toBe(2);
    expect((await runCli(['restore'])).code).toBe(2);
    expect((await runCli(['restore', p('does-not-exist.pws')])).code).toBe(2);
    expect((await runCli(['inspect', p('a.pws'), p('b.pws')])).code).toBe(2);
    const layout = await runCli(['snapshot', '--out', p('u.pws'), '--size', '16MiB', '--incremental-from', p('a.pws')]);
    expect(layout.code).toBe(3);
    expect(layout.stderr).toMatch(/LAYOUT_MISMATCH/);
    for (const cmd of ['snapshot', 'restore', 'inspect']) {
      const h = await runCli([cmd, '--help']);
      expect(h.code).toBe(0);
      expect(h.stdout).toMatch(new RegExp(`pagewire ${cmd}`));
    }
  });

  it('corpus replay: each incremental stores exactly the corpus dirty list; restores equal the images', async () => {
    const root = resolve(__dirname, '../.cache/corpus');
    if (!existsSync(join(root, 'vm-redis', '.verified'))) {
      execFileSync(process.execPath, [resolve(__dirname, '../../shared/corpus/unpack.mjs'), root, 'vm-redis'], { stdio: 'ignore' });
    }
    const c = join(root, 'vm-redis');
    await json(['snapshot', '--out', p('k0.pws'), '--workload', `corpus:${c}`, '--json']);
    const k1 = await json(['snapshot', '--out', p('k1.pws'), '--workload', `corpus:${c}`, '--incremental-from', p('k0.pws'), '--json']);
    const k2 = await json(['snapshot', '--out', p('k2.pws'), '--workload', `corpus:${c}`, '--incremental-from', p('k1.pws'), '--json']);
    expect(k1['pages']).toBe(readFileSync(join(c, 'dirty-1.u32')).byteLength / 4);
    expect(k2['pages']).toBe(readFileSync(join(c, 'dirty-2.u32')).byteLength / 4);
    expect(k2['source']['corpusSnapshot']).toBe(2);
    const r = await json(['restore', p('k2.pws'), '--out-image', p('k2.img'), '--json']);
    expect(r['verified']).toBe(true);
    expect(Buffer.compare(readFileSync(p('k2.img')), readFileSync(join(c, 'snapshot-2.bin')))).toBe(0);
  });
});
