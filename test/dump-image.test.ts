import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCore, type Core } from '../src/core/core.js';
import type { GuestMemory } from '../src/memory/guest-memory.js';
import { loadMemoryImage } from '../src/memory/dump-node.js';
import { PagewireError } from '../src/errors.js';
import { MemorySink, writeSnapshot, restoreSnapshot } from '../src/snapshot/index.js';

let core: Core;
let dir: string;
beforeAll(async () => {
  core = await createCore();
  dir = mkdtempSync(join(tmpdir(), 'pagewire-dump-'));
});
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

interface Seg { type?: number; paddr: bigint; vaddr: bigint; data: Uint8Array; memsz?: number }

/**
 * A hand-made ELF core: header, program headers, then each segment's bytes (8-byte aligned).
 * `bits`/`le` choose the class and byte order; `xnum` stores the program header count in section
 * header 0 (e_phnum = PN_XNUM).
 */
function elfCore(segs: Seg[], opts: { bits?: 32 | 64; le?: boolean; xnum?: boolean; etype?: number } = {}): Uint8Array {
  const bits = opts.bits ?? 64;
  const le = opts.le ?? true;
  const eh = bits === 64 ? 64 : 52;
  const ph = bits === 64 ? 56 : 32;
  const sh = bits === 64 ? 64 : 40;
  const phoff = eh;
  const shoff = opts.xnum ? phoff + segs.length * ph : 0;
  let off = phoff + segs.length * ph + (opts.xnum ? sh : 0);
  const offsets = segs.map((s) => { off = (off + 7) & ~7; const o = off; off += s.data.byteLength; return o; });
  const buf = new Uint8Array(off);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, bits === 64 ? 2 : 1, le ? 1 : 2, 1]);
  dv.setUint16(16, opts.etype ?? 4, le); // ET_CORE
  dv.setUint16(18, bits === 64 ? 62 : 3, le); // x86-64 / i386
  dv.setUint32(20, 1, le);
  const phnum = opts.xnum ? 0xffff : segs.length;
  if (bits === 64) {
    dv.setBigUint64(32, BigInt(phoff), le);
    dv.setBigUint64(40, BigInt(shoff), le);
    dv.setUint16(52, eh, le); dv.setUint16(54, ph, le); dv.setUint16(56, phnum, le); dv.setUint16(58, sh, le); dv.setUint16(60, opts.xnum ? 1 : 0, le);
  } else {
    dv.setUint32(28, phoff, le);
    dv.setUint32(32, shoff, le);
    dv.setUint16(40, eh, le); dv.setUint16(42, ph, le); dv.setUint16(44, phnum, le); dv.setUint16(46, sh, le); dv.setUint16(48, opts.xnum ? 1 : 0, le);
  }
  segs.forEach((s, i) => {
    const o = phoff + i * ph;
    const memsz = s.memsz ?? s.data.byteLength;
    if (bits === 64) {
      dv.setUint32(o, s.type ?? 1, le); dv.setUint32(o + 4, 6, le);
      dv.setBigUint64(o + 8, BigInt(offsets[i]!), le); dv.setBigUint64(o + 16, s.vaddr, le); dv.setBigUint64(o + 24, s.paddr, le);
      dv.setBigUint64(o + 32, BigInt(s.data.byteLength), le); dv.setBigUint64(o + 40, BigInt(memsz), le); dv.setBigUint64(o + 48, 4096n, le);
    } else {
      dv.setUint32(o, s.type ?? 1, le); dv.setUint32(o + 4, offsets[i]!, le); dv.setUint32(o + 8, Number(s.vaddr), le); dv.setUint32(o + 12, Number(s.paddr), le);
      dv.setUint32(o + 16, s.data.byteLength, le); dv.setUint32(o + 20, memsz, le); dv.setUint32(o + 24, 6, le); dv.setUint32(o + 28, 4096, le);
    }
    buf.set(s.data, offsets[i]!);
  });
  if (opts.xnum) dv.setUint32(shoff + (bits === 64 ? 44 : 28), segs.length, le); // sh_info of section 0
  return buf;
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

function file(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

function bytesOf(m: GuestMemory, first = 0, count = m.pageCount): Uint8Array {
  const out = new Uint8Array(count * m.pageSize);
  for (let p = 0; p < count; p++) out.set(m.page(first + p), p * m.pageSize);
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { if (e instanceof PagewireError) return e.code; throw e; }
  return 'none';
}

/** The memory a segment should become: its bytes, then zeros to whole pages (and memsz). */
function expected(s: Seg, pageSize: number): Uint8Array {
  const memsz = s.memsz ?? s.data.byteLength;
  const out = new Uint8Array(Math.ceil(memsz / pageSize) * pageSize);
  out.set(s.data);
  return out;
}

describe('ELF core files', () => {
  const note: Seg = { type: 4, paddr: 0n, vaddr: 0n, data: new Uint8Array(40).fill(0xee) }; // PT_NOTE: ignored
  const low: Seg = { paddr: 0n, vaddr: 0xffff_8000_0000_0000n, data: pattern(3 * 4096, 1) };
  const high: Seg = { paddr: 0x1_0000_0000n, vaddr: 0n, data: pattern(5000, 2), memsz: 8192 + 100 };

  for (const [bits, le] of [[64, true], [64, false], [32, true], [32, false]] as const) {
    it(`ELF${bits} ${le ? 'LE' : 'BE'} with two PT_LOAD segments becomes two regions named by physical address`, async () => {
      const segs = bits === 32 ? [note, low, { ...high, paddr: 0x10_0000n }] : [note, low, high];
      const img = await loadMemoryImage(file(`core${bits}${le}.elf`, elfCore(segs, { bits, le })));
      expect(img.format).toBe('elf');
      expect(img.elf).toEqual({ machine: bits === 64 ? 62 : 3, bits, littleEndian: le });
      const addr = bits === 32 ? '0x100000' : '0x100000000';
      expect(img.memory.layout).toEqual({ pageSize: 4096, regions: [{ name: 'phys@0x0', pageCount: 3 }, { name: `phys@${addr}`, pageCount: 3 }] });
      expect(img.segments.map((s) => [s.address, s.firstPage, s.pageCount, s.fileBytes, s.memBytes])).toEqual([['0x0', 0, 3, 12288, 12288], [addr, 3, 3, 5000, 8292]]);
      expect(img.paddedBytes).toBe(3 * 4096 - 5000);
      expect(Buffer.compare(bytesOf(img.memory, 0, 3), expected(low, 4096))).toBe(0);
      expect(Buffer.compare(bytesOf(img.memory, 3, 3), expected(high, 4096))).toBe(0);
    });
  }

  it('gcore-style: virtual addresses, segments without file contents skipped, in-core placement', async () => {
    const segs: Seg[] = [
      { paddr: 0n, vaddr: 0x5555_0000_0000n, data: pattern(8192, 3) },
      { paddr: 0n, vaddr: 0x7fff_0000_0000n, data: new Uint8Array(0), memsz: 1 << 20 }, // not dumped
      { paddr: 0n, vaddr: 0x7fff_f000_0000n, data: pattern(4096, 4) },
    ];
    const img = await loadMemoryImage(file('gcore.elf', elfCore(segs)), { core, pageSize: 1024 });
    expect(img.memory.placement).toBe('core');
    expect(img.memory.layout.regions).toEqual([{ name: 'virt@0x555500000000', pageCount: 8 }, { name: 'virt@0x7ffff0000000', pageCount: 4 }]);
    expect(Buffer.compare(bytesOf(img.memory), Buffer.concat([segs[0]!.data, segs[2]!.data]))).toBe(0);
  });

  it('follows e_phnum = PN_XNUM to section header 0', async () => {
    const segs: Seg[] = [{ paddr: 0x1000n, vaddr: 0n, data: pattern(4096, 5) }, { paddr: 0x3000n, vaddr: 0n, data: pattern(4096, 6) }];
    const img = await loadMemoryImage(file('xnum.elf', elfCore(segs, { xnum: true })));
    expect(img.memory.layout.regions.map((r) => r.name)).toEqual(['phys@0x1000', 'phys@0x3000']);
    expect(Buffer.compare(bytesOf(img.memory), Buffer.concat([segs[0]!.data, segs[1]!.data]))).toBe(0);
  });

  it('groups more than 1024 segments into 1024 regions, keeping every byte in order', async () => {
    const segs: Seg[] = Array.from({ length: 1100 }, (_, i) => ({ paddr: BigInt(i) * 0x10000n + 0x10000n, vaddr: 0n, data: pattern(512, 100 + i) }));
    const img = await loadMemoryImage(file('many.elf', elfCore(segs)), { pageSize: 512 });
    expect(img.memory.layout.regions.length).toBeLessThanOrEqual(1024);
    expect(img.memory.pageCount).toBe(1100);
    expect(img.segments[1099]!.firstPage).toBe(1099);
    expect(Buffer.compare(bytesOf(img.memory), Buffer.concat(segs.map((s) => s.data)))).toBe(0);
  });

  it('refuses truncated, non-core, kdump and inconsistent files with IMAGE_CORRUPT', async () => {
    const good = elfCore([note, low, high]);
    expect(await codeOf(loadMemoryImage(file('trunc.elf', good.subarray(0, good.byteLength - 1))))).toBe('IMAGE_CORRUPT');
    expect(await codeOf(loadMemoryImage(file('trunc-ph.elf', good.subarray(0, 100))))).toBe('IMAGE_CORRUPT');
    expect(await codeOf(loadMemoryImage(file('exec.elf', elfCore([low], { etype: 2 }))))).toBe('IMAGE_CORRUPT');
    expect(await codeOf(loadMemoryImage(file('nothing.elf', elfCore([note]))))).toBe('IMAGE_CORRUPT');
    const inconsistent = elfCore([{ ...low, memsz: 10 }]);
    expect(await codeOf(loadMemoryImage(file('memsz.elf', inconsistent)))).toBe('IMAGE_CORRUPT');
    const kdump = new Uint8Array(8192);
    kdump.set(new TextEncoder().encode('KDUMP   '));
    expect(await codeOf(loadMemoryImage(file('kdump.bin', kdump)))).toBe('IMAGE_CORRUPT');
    expect(await codeOf(loadMemoryImage(file('notelf.bin', pattern(4096, 9)), { format: 'elf' }))).toBe('IMAGE_CORRUPT');
    expect(await codeOf(loadMemoryImage(join(dir, 'missing.elf')))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(loadMemoryImage(file('empty.bin', new Uint8Array(0))))).toBe('INVALID_ARGUMENT');
  });
});

describe('raw images', () => {
  it('loads a pmemsave-style image, padding a partial last page with zeros', async () => {
    const raw = pattern(3 * 4096 + 1000, 7);
    const img = await loadMemoryImage(file('ram.bin', raw));
    expect(img.format).toBe('raw');
    expect(img.memory.pageCount).toBe(4);
    expect(img.paddedBytes).toBe(4096 - 1000);
    const got = bytesOf(img.memory);
    expect(Buffer.compare(got.subarray(0, raw.byteLength), raw)).toBe(0);
    expect(got.subarray(raw.byteLength).every((b) => b === 0)).toBe(true);
  });

  it('an ELF file read as raw is just bytes; a raw image of a page size', async () => {
    const elf = elfCore([{ paddr: 0n, vaddr: 0n, data: pattern(4096, 8) }]);
    const img = await loadMemoryImage(file('as-raw.elf', elf), { format: 'raw', pageSize: 512 });
    expect(img.format).toBe('raw');
    expect(Buffer.compare(bytesOf(img.memory).subarray(0, elf.byteLength), elf)).toBe(0);
  });
});

describe('memory images as snapshot sources', () => {
  it('a snapshot of an ELF core restores to the same bytes and digest', async () => {
    const segs: Seg[] = [{ paddr: 0n, vaddr: 0n, data: pattern(64 * 1024, 11) }, { paddr: 0x100000n, vaddr: 0n, data: new Uint8Array(32 * 1024) }];
    const img = await loadMemoryImage(file('snap.elf', elfCore(segs)), { core });
    const sink = new MemorySink();
    const rep = await writeSnapshot(img.memory, sink, { core, meta: { source: 'core' } });
    const r = await restoreSnapshot(sink.bytes(), { core });
    expect(r.verified).toBe(true);
    expect(r.digest).toBe(rep.digest);
    expect(r.memory.layout).toEqual(img.memory.layout);
    expect(Buffer.compare(bytesOf(r.memory), bytesOf(img.memory))).toBe(0);
  });
});
