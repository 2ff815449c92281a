/**
 * Real memory as guest memory (Node only): raw images and ELF core files.
 *
 * - Raw image: the bytes of guest RAM in order, e.g. QEMU `pmemsave 0 SIZE FILE` output or a
 *   corpus snapshot. A tail shorter than a page is padded with zeros to a whole page.
 * - ELF core (ELF32/ELF64, either byte order, e_type ET_CORE): QEMU `dump-guest-memory FILE` (its
 *   default ELF format; the kdump-compressed `-z/-l/-s` and Windows formats are refused with a
 *   clear error) and gcore / kernel core dumps. Each PT_LOAD segment with bytes in the file becomes
 *   one region named after its address (`phys@0x...` when the segments carry physical addresses as
 *   QEMU's do, else `virt@0x...`); a segment's size is rounded up to whole pages (zeros), as is
 *   p_memsz beyond p_filesz. Segments of gcore files whose contents were not dumped (p_filesz 0)
 *   are skipped. e_phnum = PN_XNUM (0xffff) is followed to section header 0's sh_info.
 *   Regions above 1 GiB are split in 1 GiB pieces; more than 1024 regions (the handshake's limit)
 *   are grouped into 1024 regions of consecutive segments (each segment keeps its own pages).
 *
 * ELF layout facts used here (System V gABI): e_ident = 7f 'E' 'L' 'F', class (1 = 32, 2 = 64),
 * data (1 = LE, 2 = BE), version 1; ELF64 header 64 bytes (e_phoff @32, e_shoff @40,
 * e_phentsize @54, e_phnum @56), program header 56 bytes (p_type @0, p_offset @8, p_vaddr @16,
 * p_paddr @24, p_filesz @32, p_memsz @40); ELF32 header 52 bytes (e_phoff @28, e_shoff @32,
 * e_phentsize @42, e_phnum @44), program header 32 bytes (p_offset @4, p_vaddr @8, p_paddr @12,
 * p_filesz @16, p_memsz @20); PT_LOAD = 1; ET_CORE = 4.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { PagewireError, ErrorCode } from '../errors.js';
import type { Core } from '../core/core.js';
import { GuestMemory, DEFAULT_PAGE_SIZE, checkPageSize } from './guest-memory.js';
import { DEFAULT_MAX_GUEST_BYTES, checkGuestBytes } from '../limits.js';

/** Most regions a layout may have (the HELLO limit). */
export const MAX_IMAGE_REGIONS = 1024;
/** Largest single region buffer. */
export const MAX_REGION_BYTES = 1024 * 1024 * 1024;
/** Largest guest placed inside a core when a core is given. */
const IN_CORE_LIMIT_BYTES = 3 * 1024 * 1024 * 1024;

const PT_LOAD = 1;
const ET_CORE = 4;
const PN_XNUM = 0xffff;

/** One PT_LOAD segment of a core file (or the whole of a raw image). */
export interface ImageSegment {
  /** `phys@0x...`, `virt@0x...` or `ram` for a raw image. */
  name: string;
  /** Guest address (physical for QEMU dumps, virtual for gcore), hex with 0x. */
  address: string;
  /** Where its bytes start in the file. */
  fileOffset: number;
  /** Bytes in the file. */
  fileBytes: number;
  /** Bytes in memory (>= fileBytes; the rest is zeros). */
  memBytes: number;
  /** First page in the guest memory built from the image. */
  firstPage: number;
  pageCount: number;
}

/** A memory image loaded as guest memory. */
export interface MemoryImage {
  memory: GuestMemory;
  format: 'raw' | 'elf';
  path: string;
  /** Size of the file. */
  fileBytes: number;
  segments: ImageSegment[];
  /** Zero bytes added to round segments up to whole pages. */
  paddedBytes: number;
  /** ELF: machine (e_machine), class (32/64) and byte order. */
  elf: { machine: number; bits: 32 | 64; littleEndian: boolean } | null;
}

/** Options of {@link loadMemoryImage}. */
export interface LoadImageOptions {
  /** `auto` (default): ELF if the file starts with the ELF magic, else raw. */
  format?: 'auto' | 'raw' | 'elf';
  /** Page size of the guest memory (default 4096). */
  pageSize?: number;
  /** Place the memory in this core (up to 3 GiB) instead of external buffers. */
  core?: Core;
  /**
   * Refuse images whose memory (segments rounded up to pages, zeros beyond p_filesz included)
   * is larger, bytes, before allocating anything for them (default 16 GiB).
   */
  maxGuestBytes?: number;
}

function bad(why: string): never {
  throw new PagewireError(ErrorCode.IMAGE_CORRUPT, why);
}

/** A parsed PT_LOAD program header. */
export interface ElfLoadSegment {
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: number;
}

/** ELF core file facts needed to read its memory. */
export interface ElfCoreInfo {
  bits: 32 | 64;
  littleEndian: boolean;
  machine: number;
  loads: ElfLoadSegment[];
}

type ReadAt = (position: number, length: number) => Promise<Uint8Array>;

function u64(dv: DataView, off: number, le: boolean): bigint {
  return dv.getBigUint64(off, le);
}

function toSafe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${what} ${v} is too large`);
  return Number(v);
}

/**
 * Parse the ELF header and program headers of a core file.
 * @param readAt reads `length` bytes at `position` (fewer at the end of the file)
 * @param fileBytes size of the file
 * @throws PagewireError IMAGE_CORRUPT (not ELF, not a core file, truncated, inconsistent headers)
 */
export async function parseElfCore(readAt: ReadAt, fileBytes: number): Promise<ElfCoreInfo> {
  const id = await readAt(0, 64);
  if (id.byteLength < 16 || id[0] !== 0x7f || id[1] !== 0x45 || id[2] !== 0x4c || id[3] !== 0x46) bad('not an ELF file (no 7f 45 4c 46 magic)');
  const cls = id[4];
  const data = id[5];
  if (cls !== 1 && cls !== 2) bad(`ELF class ${cls} is neither 32- nor 64-bit`);
  if (data !== 1 && data !== 2) bad(`ELF data encoding ${data} is neither little- nor big-endian`);
  if (id[6] !== 1) bad(`ELF version ${id[6]} is not 1`);
  const bits: 32 | 64 = cls === 2 ? 64 : 32;
  const le = data === 1;
  const ehsize = bits === 64 ? 64 : 52;
  if (id.byteLength < ehsize) bad('truncated ELF header');
  const dv = new DataView(id.buffer, id.byteOffset, id.byteLength);
  const type = dv.getUint16(16, le);
  const machine = dv.getUint16(18, le);
  if (type !== ET_CORE) bad(`ELF type ${type} is not a core file (ET_CORE = 4)`);
  const phoff = bits === 64 ? toSafe(u64(dv, 32, le), 'e_phoff') : dv.getUint32(28, le);
  const shoff = bits === 64 ? toSafe(u64(dv, 40, le), 'e_shoff') : dv.getUint32(32, le);
  const phentsize = dv.getUint16(bits === 64 ? 54 : 42, le);
  let phnum = dv.getUint16(bits === 64 ? 56 : 44, le);
  const phsize = bits === 64 ? 56 : 32;
  if (phnum === 0) bad('the core file has no program headers');
  if (phentsize !== phsize) bad(`e_phentsize ${phentsize} is not ${phsize}`);
  if (phnum === PN_XNUM) {
    // the real count is in section header 0's sh_info (QEMU writes it this way past 65534 segments)
    const shsize = bits === 64 ? 64 : 40;
    if (shoff === 0 || shoff + shsize > fileBytes) bad('e_phnum is PN_XNUM but there is no section header 0');
    const sh = await readAt(shoff, shsize);
    if (sh.byteLength < shsize) bad('truncated section header 0');
    phnum = new DataView(sh.buffer, sh.byteOffset, sh.byteLength).getUint32(bits === 64 ? 44 : 28, le);
  }
  if (phoff + phnum * phsize > fileBytes) bad(`truncated core file: ${phnum} program headers at ${phoff} pass its end (${fileBytes} bytes)`);
  const ph = await readAt(phoff, phnum * phsize);
  if (ph.byteLength < phnum * phsize) bad('truncated program headers');
  const pv = new DataView(ph.buffer, ph.byteOffset, ph.byteLength);
  const loads: ElfLoadSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = i * phsize;
    if (pv.getUint32(o, le) !== PT_LOAD) continue;
    const seg: ElfLoadSegment = bits === 64
      ? {
        offset: toSafe(u64(pv, o + 8, le), 'p_offset'), vaddr: u64(pv, o + 16, le), paddr: u64(pv, o + 24, le),
        filesz: toSafe(u64(pv, o + 32, le), 'p_filesz'), memsz: toSafe(u64(pv, o + 40, le), 'p_memsz'),
      }
      : {
        offset: pv.getUint32(o + 4, le), vaddr: BigInt(pv.getUint32(o + 8, le)), paddr: BigInt(pv.getUint32(o + 12, le)),
        filesz: pv.getUint32(o + 16, le), memsz: pv.getUint32(o + 20, le),
      };
    if (seg.memsz < seg.filesz) bad(`PT_LOAD ${i}: p_memsz ${seg.memsz} < p_filesz ${seg.filesz}`);
    if (seg.offset + seg.filesz > fileBytes) bad(`truncated core file: PT_LOAD ${i} needs bytes up to ${seg.offset + seg.filesz}, the file has ${fileBytes}`);
    loads.push(seg);
  }
  return { bits, littleEndian: le, machine, loads };
}

interface Piece { segment: number; fileOffset: number; fileBytes: number; pageCount: number; name: string }

async function readFully(fh: FileHandle, dst: Uint8Array, position: number): Promise<void> {
  let got = 0;
  while (got < dst.byteLength) {
    const { bytesRead } = await fh.read(dst, got, dst.byteLength - got, position + got);
    if (bytesRead === 0) bad(`the file ends at ${position + got} while ${dst.byteLength - got} more bytes were due (truncated)`);
    got += bytesRead;
  }
}

/**
 * Load a raw memory image or an ELF core file as guest memory.
 * @param path the file
 * @param options format (auto, raw, elf), page size, core placement
 * @returns the memory and what was found (segments, padding, ELF facts)
 * @throws PagewireError INVALID_ARGUMENT (no such file, empty file, bad page size),
 *   IMAGE_CORRUPT (malformed or truncated ELF, unsupported dump format), LIMIT_EXCEEDED (larger
 *   than `maxGuestBytes`), WASM_FAILED (core too small)
 */
export async function loadMemoryImage(path: string, options: LoadImageOptions = {}): Promise<MemoryImage> {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  checkPageSize(pageSize);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (cause) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `cannot open memory image ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    const fileBytes = (await fh.stat()).size;
    if (fileBytes === 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `memory image ${path} is empty`);
    const readAt: ReadAt = async (position, length) => {
      const n = Math.max(0, Math.min(length, fileBytes - position));
      const b = new Uint8Array(n);
      if (n > 0) await readFully(fh, b, position);
      return b;
    };
    const head = await readAt(0, 8);
    const magic = String.fromCharCode(...head);
    const isElf = head[0] === 0x7f && magic.slice(1, 4) === 'ELF';
    let format = options.format ?? 'auto';
    if (format === 'auto') {
      if (magic === 'KDUMP   ') bad(`${path} is a kdump-compressed dump (dump-guest-memory -z/-l/-s): take an ELF dump (dump-guest-memory without a format flag) or a raw image (pmemsave)`);
      if (magic === 'PAGEDUMP' || magic === 'PAGEDU64') bad(`${path} is a Windows crash dump: take an ELF dump or a raw image`);
      format = isElf ? 'elf' : 'raw';
    }
    const pieces: Piece[] = [];
    const segments: ImageSegment[] = [];
    let elf: MemoryImage['elf'] = null;
    let paddedBytes = 0;
    const addSegment = (name: string, address: string, fileOffset: number, fileB: number, memB: number): void => {
      const pages = Math.ceil(memB / pageSize);
      paddedBytes += pages * pageSize - fileB;
      segments.push({ name, address, fileOffset, fileBytes: fileB, memBytes: memB, firstPage: 0, pageCount: pages });
      // split in pieces of at most MAX_REGION_BYTES
      const per = MAX_REGION_BYTES / pageSize;
      for (let p = 0; p < pages; p += per) {
        const n = Math.min(per, pages - p);
        const off = p * pageSize;
        pieces.push({
          segment: segments.length - 1, fileOffset: fileOffset + off, fileBytes: Math.max(0, Math.min(n * pageSize, fileB - off)), pageCount: n,
          name: p === 0 ? name : `${name}+0x${off.toString(16)}`,
        });
      }
    };
    const maxGuestBytes = options.maxGuestBytes ?? DEFAULT_MAX_GUEST_BYTES;
    const pagesOf = (bytes: number): number => Math.ceil(bytes / pageSize);
    if (format === 'raw') {
      checkGuestBytes(pagesOf(fileBytes) * pageSize, maxGuestBytes, `memory image ${path}`);
      addSegment('ram', '0x0', 0, fileBytes, fileBytes);
    } else {
      const info = await parseElfCore(readAt, fileBytes);
      elf = { machine: info.machine, bits: info.bits, littleEndian: info.littleEndian };
      const loads = info.loads.filter((l) => l.filesz > 0);
      if (loads.length === 0) bad(`${path} has no PT_LOAD segment with contents`);
      // before any region is planned: p_memsz is the header's word, not the file's size
      checkGuestBytes(loads.reduce((n, l) => n + pagesOf(l.memsz), 0) * pageSize, maxGuestBytes, `ELF core ${path}`);
      const physical = loads.some((l) => l.paddr !== 0n);
      for (const l of loads) {
        const addr = physical ? l.paddr : l.vaddr;
        const address = `0x${addr.toString(16)}`;
        addSegment(`${physical ? 'phys' : 'virt'}@${address}`, address, l.offset, l.filesz, l.memsz);
      }
    }
    // regions: one per piece, or pieces grouped when there are too many
    const groups: Piece[][] = [];
    if (pieces.length <= MAX_IMAGE_REGIONS) for (const p of pieces) groups.push([p]);
    else {
      const per = Math.ceil(pieces.length / MAX_IMAGE_REGIONS);
      for (let i = 0; i < pieces.length; i += per) groups.push(pieces.slice(i, i + per));
    }
    const regions = groups.map((g) => ({
      name: g.length === 1 ? g[0]!.name : `${g[0]!.name}..(${g.length} segments)`,
      pageCount: g.reduce((n, p) => n + p.pageCount, 0),
    }));
    const totalBytes = regions.reduce((n, r) => n + r.pageCount, 0) * pageSize;
    let memory: GuestMemory;
    if (options.core && totalBytes <= IN_CORE_LIMIT_BYTES) {
      memory = GuestMemory.inCore(options.core, regions, pageSize);
    } else {
      const bufs = regions.map((r) => new ArrayBuffer(r.pageCount * pageSize));
      memory = GuestMemory.external(bufs, pageSize, regions.map((r) => r.name));
    }
    // read each piece into its pages (the rest of the pages stay zero)
    let page = 0;
    const chunkBytes = 16 * 1024 * 1024;
    for (const g of groups) {
      for (const p of g) {
        const seg = segments[p.segment]!;
        if (p.fileOffset === seg.fileOffset) seg.firstPage = page;
        for (let done = 0; done < p.fileBytes; done += chunkBytes) {
          const n = Math.min(chunkBytes, p.fileBytes - done);
          const first = page + Math.floor(done / pageSize);
          const count = Math.ceil(n / pageSize);
          const view = memory.pages(first, count)!; // a piece never crosses a region
          await readFully(fh, view.subarray(0, n), p.fileOffset + done);
        }
        page += p.pageCount;
      }
    }
    return { memory, format, path, fileBytes, segments, paddedBytes, elf };
  } finally {
    await fh.close();
  }
}

/**
 * Write guest memory to a raw image file: pages in order, what {@link loadMemoryImage} reads back.
 * Writes up to 4 MiB at a time, each a contiguous run of pages ({@link GuestMemory.run}).
 */
export async function writeRawImage(memory: GuestMemory, path: string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const per = Math.max(1, Math.floor((4 * 1024 * 1024) / memory.pageSize));
    for (let p = 0; p < memory.pageCount; ) {
      const run = memory.run(p, per);
      await fh.write(run.slice()); // a copy: core memory may move while the write is pending
      p += run.byteLength / memory.pageSize;
    }
  } finally {
    await fh.close();
  }
}
