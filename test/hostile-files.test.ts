// Crafted snapshot files, ELF cores and handshakes whose headers announce more than they hold:
// each is refused with a typed error and exit 3, never a stack trace or exit 1, and the CLI child
// never grows past 256 MB before the refusal (peak RSS measured in the child). Built CLI (dist/).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, closeSync, openSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCliRss } from './helpers/cli.js';
import { createCore, type Core } from '../src/core/core.js';
import { FrameWriter } from '../src/protocol/codec.js';
import { FrameType, encodePreamble } from '../src/protocol/frame.js';
import { encodeJson, type HelloMessage } from '../src/protocol/messages.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { loadMemoryImage } from '../src/memory/dump-node.js';
import { checkSnapshot, restoreSnapshot } from '../src/snapshot/index.js';
import { MigrationTarget } from '../src/migration/target.js';
import { memoryPair } from '../src/transport/memory.js';
import { ErrorCode, PagewireError } from '../src/errors.js';

const MB = 1024 * 1024;
const RSS_LIMIT = 256 * MB;
let dir: string;
let core: Core;
beforeAll(async () => { dir = mkdtempSync(join(tmpdir(), 'pagewire-hostile-')); core = await createCore(); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });
const p = (name: string): string => join(dir, name);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, x) => n + x.byteLength, 0));
  let o = 0;
  for (const x of parts) { out.set(x, o); o += x.byteLength; }
  return out;
}

function hello(pageSize: number, regions: { name: string; pageCount: number }[]): HelloMessage {
  return { sessionId: 'ab'.repeat(16), resume: false, pageSize, regions, codecs: ['zero', 'raw'], mode: 'precopy', nonce: '', options: {} };
}

/** A snapshot stream with valid checksums: HELLO, then the given frames. */
function stream(h: HelloMessage, rest: { type: FrameType; payload: Uint8Array }[] = []): Uint8Array {
  const w = new FrameWriter(core);
  return concat([encodePreamble(), w.frame(FrameType.HELLO, encodeJson(h)), ...rest.map((f) => w.frame(f.type, f.payload))]);
}

const roundEnd = (pages: number): { type: FrameType; payload: Uint8Array } => ({ type: FrameType.ROUND_END, payload: encodeJson({ round: 0, pages, wireBytes: 0, final: true }) });
const complete = { type: FrameType.COMPLETE, payload: encodeJson({ digest: '0123456789abcdef', rounds: 1, pausedAt: 0 }) };

/** ELF64 LE core with one PT_LOAD whose p_memsz (and optionally p_filesz) is `memsz`. */
function elfHeaderOnly(memsz: bigint, filesz = 64n, phnum = 1, xnum = 0): Uint8Array {
  const b = new Uint8Array(64 + 56 + 64 + 64);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 4, true); dv.setUint16(18, 62, true);
  dv.setBigUint64(32, 64n, true); dv.setUint16(54, 56, true); dv.setUint16(56, phnum, true);
  if (xnum) { dv.setBigUint64(40, 120n, true); dv.setUint32(120 + 44, xnum, true); }
  dv.setUint32(64, 1, true); dv.setBigUint64(64 + 8, 120n, true); dv.setBigUint64(64 + 32, filesz, true); dv.setBigUint64(64 + 40, memsz, true);
  return b;
}

function expectRefused(r: { code: number; stderr: string; maxRssBytes: number }, code: string): void {
  expect(r.stderr).toContain(code);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  expect(r.code).toBe(3);
  expect(r.maxRssBytes).toBeLessThan(RSS_LIMIT);
}

describe('crafted snapshot files', () => {
  it('1024 regions of 2^32-1 pages of 64 KiB: LIMIT_EXCEEDED from restore and inspect', async () => {
    writeFileSync(p('regions.pws'), stream(hello(65536, Array.from({ length: 1024 }, (_, i) => ({ name: `r${i}`, pageCount: 2 ** 32 - 1 }))), [roundEnd(0), complete]));
    expectRefused(await runCliRss(['restore', p('regions.pws')]), 'LIMIT_EXCEEDED');
    expectRefused(await runCliRss(['inspect', p('regions.pws')]), 'LIMIT_EXCEEDED');
  });

  it('a 64 GiB layout is refused before any memory is made; --max-guest moves the limit', async () => {
    writeFileSync(p('64g.pws'), stream(hello(4096, [{ name: 'ram', pageCount: 16 * 1024 * 1024 }]), [roundEnd(0), complete]));
    expectRefused(await runCliRss(['restore', p('64g.pws')]), 'LIMIT_EXCEEDED');
    // the library refuses it the same way
    await expect(restoreSnapshot(stream(hello(4096, [{ name: 'ram', pageCount: 16 * 1024 * 1024 }])), { core })).rejects.toMatchObject({ code: ErrorCode.LIMIT_EXCEEDED });
    await expect(checkSnapshot(stream(hello(4096, [{ name: 'ram', pageCount: 4096 }]), [roundEnd(4096), complete]), { core, maxGuestBytes: 8 * MB })).rejects.toMatchObject({ code: ErrorCode.LIMIT_EXCEEDED });
  });

  it('a few hundred bytes announcing 1.5 GiB: truncated, or complete with no pages, cost no guest memory', async () => {
    const big = hello(4096, [{ name: 'ram', pageCount: 393216 }]);
    writeFileSync(p('trunc.pws'), stream(big));
    writeFileSync(p('empty.pws'), stream(big, [roundEnd(0), complete]));
    for (const f of ['trunc.pws', 'empty.pws']) {
      expectRefused(await runCliRss(['restore', p(f)]), 'SNAPSHOT_CORRUPT');
      expectRefused(await runCliRss(['inspect', p(f)]), 'SNAPSHOT_CORRUPT');
    }
    // the empty one: the rounds store fewer pages than the layout has
    const r = await runCliRss(['restore', p('empty.pws')]);
    expect(r.stderr).toMatch(/393216 pages but the rounds store 0/);
  });

  it('inspect fails (exit 4) on a well-formed file whose recorded digest is wrong, as restore does', async () => {
    // records version 1, one plain block of 16 bytes: 16 ZERO records with NEXT (pages 0..15)
    const zeros = concat([Uint8Array.of(1, 0, 16), new Uint8Array(16).fill(0x08)]);
    writeFileSync(p('lie.pws'), stream(hello(4096, [{ name: 'ram', pageCount: 16 }]), [{ type: FrameType.PAGES, payload: zeros }, roundEnd(16), complete]));
    const r = await runCliRss(['restore', p('lie.pws')]);
    expect(r.code).toBe(4);
    const i = await runCliRss(['inspect', p('lie.pws')]);
    expect(i.code).toBe(4);
    expect(i.stderr).toContain('VERIFY_FAILED');
  });
});

describe('crafted ELF cores and images', () => {
  it('p_memsz of 2^52 bytes or 64 GiB: LIMIT_EXCEEDED from simulate --image and snapshot --from-core', async () => {
    writeFileSync(p('2p52.core'), elfHeaderOnly(2n ** 52n));
    writeFileSync(p('64g.core'), elfHeaderOnly(64n * 2n ** 30n));
    for (const f of ['2p52.core', '64g.core']) {
      expectRefused(await runCliRss(['simulate', '--image', p(f), '--quiet']), 'LIMIT_EXCEEDED');
      expectRefused(await runCliRss(['snapshot', '--from-core', p(f), '--out', p(`${f}.pws`), '--quiet']), 'LIMIT_EXCEEDED');
    }
    await expect(loadMemoryImage(p('64g.core'), { maxGuestBytes: 1 << 30 })).rejects.toMatchObject({ code: ErrorCode.LIMIT_EXCEEDED });
  });

  it('PN_XNUM with 2^32-1 program headers in a small file: IMAGE_CORRUPT (truncated), no allocation', async () => {
    writeFileSync(p('xnum.core'), elfHeaderOnly(4096n, 64n, 0xffff, 0xffffffff));
    expectRefused(await runCliRss(['simulate', '--image', p('xnum.core'), '--quiet']), 'IMAGE_CORRUPT');
  });

  it('a 2.5 GiB sparse raw image above --max-guest is refused before it is read', async () => {
    const fd = openSync(p('sparse.img'), 'w');
    ftruncateSync(fd, 2560 * MB);
    closeSync(fd);
    expectRefused(await runCliRss(['simulate', '--image', p('sparse.img'), '--max-guest', '2GiB', '--quiet']), 'LIMIT_EXCEEDED');
  });
});

describe('crafted handshakes', () => {
  it('a HELLO frame announcing 30 MB (10^6 regions) is refused from its header, before its payload is read', async () => {
    const [src, tgt] = memoryPair();
    const target = new MigrationTarget((l) => GuestMemory.inCore(core, l.regions, l.pageSize), {});
    const run = target.run(tgt);
    // preamble and a frame header only: the 30 MB never come
    const header = new Uint8Array(16);
    const dv = new DataView(header.buffer);
    dv.setUint32(0, 30 * MB, true);
    header[4] = FrameType.HELLO;
    await src.write(encodePreamble());
    await src.write(header);
    const e = await run.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PagewireError);
    expect((e as PagewireError).code).toBe(ErrorCode.FRAME_TOO_LARGE);
    src.destroy();
  });

  it('a HELLO asking for more than maxGuestBytes is LIMIT_EXCEEDED', async () => {
    const [src, tgt] = memoryPair();
    const target = new MigrationTarget((l) => GuestMemory.inCore(core, l.regions, l.pageSize), { maxGuestBytes: 64 * MB });
    const run = target.run(tgt);
    const w = new FrameWriter(core);
    await src.write(encodePreamble());
    await src.write(w.frame(FrameType.HELLO, encodeJson(hello(4096, [{ name: 'ram', pageCount: 1 << 20 }]))));
    await expect(run).rejects.toMatchObject({ code: ErrorCode.LIMIT_EXCEEDED });
    src.destroy();
  });
});
