/**
 * `pagewire snapshot`, `restore` and `inspect`: snapshot files on disk (src/snapshot does the
 * format; this file does files, the parent chain, guests and output).
 *
 *   pagewire snapshot --out FILE [guest options] [--incremental-from FILE [--base FILE]]
 *                     [--dirty-seconds S] [--from-image FILE | --from-core FILE] [--json]
 *   pagewire restore FILE [--base FILE] [--out-image FILE] [--json]
 *   pagewire inspect FILE [--json]
 */
import { statSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { createCore, type Core } from '../core/core.js';
import { PagewireError, ErrorCode } from '../errors.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { loadMemoryImage, writeRawImage, type MemoryImage } from '../memory/dump-node.js';
import {
  SnapshotFileSink, needFile, readFileChunks, readSnapshotFileHeader, restoreSnapshotFile,
} from '../snapshot/file-node.js';
import { pageHashes } from '../memory/digest.js';
import { SimulatedGuest } from '../sim/guest.js';
import { fillInitial } from '../sim/content.js';
import { loadCorpus } from '../sim/corpus-node.js';
import type { WorkloadKind } from '../sim/workloads.js';
import {
  writeSnapshot, restoreChain, readSnapshotHeader, inspectSnapshot, checkSnapshot,
  type SnapshotSink, type SnapshotHeader, type ChainRestoreResult, type SnapshotParent, type SnapshotSummary,
} from '../snapshot/index.js';
import { GUEST_OPTIONS, guestArgs, parse, positionals, type GuestArgs } from './options.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { formatBytes, formatMs, parseDuration, parseSize } from './units.js';
import { table } from './output.js';

const out = (s: string): void => { process.stdout.write(s + '\n'); };
const err = (s: string): void => { process.stderr.write(s + '\n'); };

// ------------------------------------------------------------------------------------ snapshot

const SNAPSHOT_OPTIONS = {
  ...GUEST_OPTIONS,
  size: { type: 'string' },
  'page-size': { type: 'string' },
  out: { type: 'string', short: 'o' },
  'incremental-from': { type: 'string' },
  base: { type: 'string' },
  'dirty-seconds': { type: 'string' },
  'from-image': { type: 'string' },
  'from-core': { type: 'string' },
} as const;

/** A seed for the next link of a chain: the same options must not write the same bytes again. */
function chainSeed(seed: number, parentDigest: string): number {
  return (seed ^ parseInt(parentDigest.slice(0, 8), 16)) & 0x7fffffff;
}

interface Source {
  memory: GuestMemory;
  meta: Record<string, unknown>;
  describe: string;
}

async function imageSource(path: string, format: 'raw' | 'elf' | 'auto', g: GuestArgs, core: Core | undefined): Promise<Source> {
  needFile(path, format === 'elf' ? 'core file' : 'memory image');
  const img: MemoryImage = await loadMemoryImage(path, { format, pageSize: g.pageSize, core, maxGuestBytes: g.maxGuestBytes });
  return {
    memory: img.memory,
    meta: { source: img.format === 'raw' ? 'image' : 'core', path: resolve(path), fileBytes: img.fileBytes, segments: img.segments.length, paddedBytes: img.paddedBytes },
    describe: `${img.format === 'raw' ? 'raw image' : 'ELF core'} ${path} (${formatBytes(img.fileBytes)}, ${img.segments.length} segment${img.segments.length === 1 ? '' : 's'})`,
  };
}

function simulatedGuest(memory: GuestMemory, g: GuestArgs, seed: number): SimulatedGuest {
  return new SimulatedGuest(memory, {
    workload: g.workload as WorkloadKind, rateBytesPerSec: g.dirtyRateBytesPerSec, writeSize: g.writeSizeBytes, seed,
  });
}

/** `pagewire snapshot`: write a (full or incremental) snapshot of a simulated guest or a memory image. */
export async function snapshot(argv: string[]): Promise<number> {
  const v = parse(argv, SNAPSHOT_OPTIONS);
  if (v['help']) { out(SNAPSHOT_HELP); return EXIT.OK; }
  const outPath = typeof v['out'] === 'string' ? v['out'] : '';
  if (!outPath) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--out FILE is required');
  if (positionals(argv, SNAPSHOT_OPTIONS).length > 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `unexpected argument "${positionals(argv, SNAPSHOT_OPTIONS)[0]}"`);
  const sizeGiven = typeof v['size'] === 'string';
  const pageSizeGiven = typeof v['page-size'] === 'string';
  const g = guestArgs({ ...v, size: v['size'] ?? '256MiB', 'page-size': v['page-size'] ?? '4096' });
  const fromImage = typeof v['from-image'] === 'string' ? v['from-image'] : null;
  const fromCore = typeof v['from-core'] === 'string' ? v['from-core'] : null;
  const fromAny = g.image; // --image FILE (as for simulate): raw or ELF, by its first bytes
  if ([fromImage, fromCore, fromAny].filter(Boolean).length > 1) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--from-image, --from-core and --image exclude each other');
  if ((fromImage || fromCore || fromAny) && g.corpusDir) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--workload corpus:DIR and a memory image exclude each other');
  const parentFile = typeof v['incremental-from'] === 'string' ? v['incremental-from'] : null;
  const base = typeof v['base'] === 'string' ? v['base'] : undefined;
  if (base && !parentFile) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--base is for --incremental-from (the parent\'s own parent)');
  const dirtyMs = v['dirty-seconds'] === undefined ? (parentFile ? 1000 : 0) : parseDuration(`${String(v['dirty-seconds'])}s`, '--dirty-seconds');
  const core = await createCore();

  // the parent: restore its chain, keep its page hashes
  let parent: SnapshotParent | undefined;
  let parentMemory: GuestMemory | null = null;
  let parentHeader: SnapshotHeader | null = null;
  if (parentFile) {
    const res = await restoreSnapshotFile(parentFile, { base, core, maxGuestBytes: g.maxGuestBytes });
    if (!res.verified) throw new PagewireError(ErrorCode.VERIFY_FAILED, `the parent ${parentFile} does not verify (digest ${res.digest}, recorded ${res.links[res.links.length - 1]!.expectedDigest})`);
    parentMemory = res.memory;
    parentHeader = await readSnapshotFileHeader(parentFile, core);
    const layout = parentMemory.layout;
    if ((sizeGiven && g.sizeBytes !== parentMemory.byteLength) || (pageSizeGiven && g.pageSize !== layout.pageSize)) {
      throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, `--size/--page-size differ from the parent's guest (${parentMemory.byteLength} bytes in ${layout.pageSize}-byte pages)`);
    }
    parent = {
      digest: res.digest, pageHashes: pageHashes(parentMemory, core), layout,
      path: relative(dirname(resolve(outPath)), resolve(parentFile)),
    };
  }

  // the guest
  let src: Source;
  let writes = 0;
  if (fromImage || fromCore || fromAny) {
    // a big parent already fills much of the core: the image then goes to external buffers
    const imageCore = parentMemory && parentMemory.byteLength > 1024 * 1024 * 1024 ? undefined : core;
    src = await imageSource((fromImage ?? fromCore ?? fromAny)!, fromImage ? 'raw' : fromCore ? 'elf' : 'auto', parentMemory ? { ...g, pageSize: parentMemory.pageSize } : g, imageCore);
  } else if (g.corpusDir) {
    const corpus = loadCorpus(g.corpusDir);
    const memory = parentMemory ?? GuestMemory.inCore(core, corpus.pageCount, corpus.pageSize);
    if (memory.pageCount !== corpus.pageCount || memory.pageSize !== corpus.pageSize) throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, 'the corpus has another size than the parent snapshot');
    const guest = new SimulatedGuest(memory, { workload: 'corpus', corpus, seed: g.seed }); // memory = snapshot 0
    const prev = parentHeader?.snapshot?.meta['corpusSnapshot'];
    const k = parentMemory ? (typeof prev === 'number' ? prev + 1 : 1) : 0;
    for (let i = 0; i < k; i++) {
      if (!guest.advance()) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `the corpus has no snapshot ${k} (it has ${corpus.snapshotCount})`);
    }
    src = { memory, meta: { source: 'simulated', workload: `corpus:${resolve(g.corpusDir)}`, corpusSnapshot: k }, describe: `corpus ${g.corpusDir} snapshot ${k}` };
  } else {
    let memory: GuestMemory;
    let seed = g.seed;
    if (parentMemory) {
      memory = parentMemory;
      seed = chainSeed(g.seed, parent!.digest);
    } else {
      memory = GuestMemory.inCore(core, g.sizeBytes / g.pageSize, g.pageSize);
      fillInitial(memory, 'mixed', g.seed);
    }
    const guest = simulatedGuest(memory, g, seed);
    if (dirtyMs > 0) writes = guest.advanceBy(dirtyMs);
    const prevMs = parentHeader?.snapshot?.meta['simulatedMs'];
    src = {
      memory,
      meta: {
        source: 'simulated', workload: g.workload, seed, dirtyRateBytesPerSec: g.dirtyRateBytesPerSec, writeSize: g.writeSizeBytes,
        dirtyMs, simulatedMs: (typeof prevMs === 'number' ? prevMs : 0) + dirtyMs,
      },
      describe: `simulated ${formatBytes(memory.byteLength)} guest, workload ${g.workload}, seed ${seed}${dirtyMs > 0 ? `, ${formatMs(dirtyMs)} of writes (${writes})` : ''}`,
    };
  }

  const sink = new SnapshotFileSink(outPath);
  let rep;
  try {
    rep = await writeSnapshot(src.memory, sink, { parent, codecs: g.codecs, cacheBytes: g.cacheBytes, meta: src.meta, core });
    await sink.commit();
  } catch (e) {
    await sink.abort();
    throw e;
  }
  const report = {
    file: resolve(outPath), ...rep, parent: parentFile ? resolve(parentFile) : null, writes,
    ratio: rep.rawBytes > 0 ? rep.bytes / rep.rawBytes : 0, source: src.meta,
  };
  if (g.json) out(JSON.stringify(report));
  else if (!g.quiet) {
    out(`snapshot: ${src.describe}`);
    out(`wrote ${rep.kind} snapshot ${outPath}: ${rep.pages} of ${rep.guestPages} pages, ${formatBytes(rep.bytes)} (${formatBytes(rep.rawBytes)} of pages, ${(100 * report.ratio).toFixed(1)}%), ${formatMs(rep.durationMs)}`);
    if (parentFile) out(`parent ${parentFile} (digest ${rep.parentDigest})`);
    out(`codecs: ${codecLine(rep.codecs)}`);
    out(`digest ${rep.digest}`);
  }
  return EXIT.OK;
}

function codecLine(c: Record<string, { pages: number; bytes: number }> | null): string {
  if (!c) return 'not recorded';
  const e = Object.entries(c).filter(([, x]) => x.pages > 0).sort((a, b) => b[1].pages - a[1].pages);
  return e.length === 0 ? 'none' : e.map(([k, x]) => `${k} ${x.pages} pages / ${formatBytes(x.bytes)}`).join(', ');
}

/** Print an error the JSON way (stdout) and the human way (stderr); return its exit code. */
function failJson(name: string, e: unknown, extra: Record<string, unknown> = {}): number {
  if (!(e instanceof PagewireError)) throw e;
  out(JSON.stringify({ ...extra, verified: false, error: { code: e.code, message: e.message } }));
  err(`pagewire ${name}: ${e.code}: ${e.message}`);
  return exitCodeFor(e);
}

// ------------------------------------------------------------------------------------- restore

const RESTORE_OPTIONS = {
  base: { type: 'string' },
  'max-guest': { type: 'string', default: '16GiB' },
  'out-image': { type: 'string' },
  json: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function onePath(argv: string[], options: typeof RESTORE_OPTIONS | typeof INSPECT_OPTIONS, cmd: string): string {
  const p = positionals(argv, options);
  if (p.length !== 1) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `usage: pagewire ${cmd} FILE (got ${p.length} files)`);
  return p[0]!;
}

/** `pagewire restore FILE`: rebuild memory from a snapshot (and its parents) and verify it. */
export async function restore(argv: string[]): Promise<number> {
  const v = parse(argv, RESTORE_OPTIONS, 1);
  if (v['help']) { out(RESTORE_HELP); return EXIT.OK; }
  const path = onePath(argv, RESTORE_OPTIONS, 'restore');
  const json = v['json'] === true;
  try {
    needFile(path, 'snapshot');
    const base = typeof v['base'] === 'string' ? v['base'] : undefined;
    const res = await restoreSnapshotFile(path, { base, maxGuestBytes: parseSize(String(v['max-guest']), '--max-guest') });
    const last = res.links[res.links.length - 1]!;
    const outImage = typeof v['out-image'] === 'string' ? v['out-image'] : null;
    if (outImage && res.verified) await writeRawImage(res.memory, outImage);
    const report = {
      verified: res.verified, digest: res.digest, expectedDigest: last.expectedDigest, pages: res.memory.pageCount,
      pageSize: res.memory.pageSize, pagesApplied: res.pages, file: resolve(path), kind: last.header.snapshot?.kind ?? 'stream',
      chain: res.links.map((l, i) => ({ file: res.files[i], kind: l.header.snapshot?.kind ?? 'stream', pages: l.pages, bytes: l.bytes, verified: l.verified, digest: l.digest, expectedDigest: l.expectedDigest })),
      deviceStateBytes: last.deviceState?.byteLength ?? 0, ...(outImage && res.verified ? { outImage: resolve(outImage) } : {}),
    };
    if (json) out(JSON.stringify(report));
    else if (v['quiet'] !== true) {
      for (const c of report.chain) out(`${c.kind} ${c.file}: ${c.pages} pages applied, ${formatBytes(c.bytes)}, digest ${c.digest} ${c.verified ? 'verified' : `DOES NOT MATCH ${c.expectedDigest}`}`);
      out(`restored ${report.pages} pages of ${report.pageSize} bytes (${formatBytes(report.pages * report.pageSize)}); verified: ${res.verified ? 'yes' : 'NO'}  digest ${res.digest}`);
      if (report.outImage) out(`memory written to ${outImage}`);
    }
    if (!res.verified) err(`pagewire restore: ${ErrorCode.VERIFY_FAILED}: the restored memory's digest ${res.digest} differs from the recorded ${last.expectedDigest}`);
    return res.verified ? EXIT.OK : EXIT.VERIFY_FAILED;
  } catch (e) {
    if (json) return failJson('restore', e, { file: resolve(path) });
    throw e;
  }
}

// ------------------------------------------------------------------------------------- inspect

const INSPECT_OPTIONS = {
  'max-guest': { type: 'string', default: '16GiB' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** `pagewire inspect FILE`: header, rounds, codec mix and sizes of a snapshot or captured stream. */
export async function inspect(argv: string[]): Promise<number> {
  const v = parse(argv, INSPECT_OPTIONS, 1);
  if (v['help']) { out(INSPECT_HELP); return EXIT.OK; }
  const path = onePath(argv, INSPECT_OPTIONS, 'inspect');
  needFile(path, 'snapshot');
  const fileBytes = statSync(path).size;
  const maxGuestBytes = parseSize(String(v['max-guest']), '--max-guest');
  const s = await inspectSnapshot(readFileChunks(path), { reopen: () => readFileChunks(path), label: path, maxGuestBytes });
  // What restore would refuse, inspect refuses too: a full snapshot (or captured stream) is
  // checked whole and restored into scratch memory to decode every record and compare the digest.
  // An incremental one can only be decoded on its parent: `restore` does that.
  let verified: boolean | null = null;
  if (!s.error && s.header && s.header.snapshot?.kind !== 'incremental') {
    try {
      await checkSnapshot(readFileChunks(path), { label: path, maxGuestBytes });
      const r = await restoreChain([() => readFileChunks(path)], { labels: [path], maxGuestBytes });
      verified = r.verified;
      if (!r.verified) s.error = { code: ErrorCode.VERIFY_FAILED, message: `the memory the file restores has digest ${r.digest}, the file records ${s.digest}` };
    } catch (e) {
      if (!(e instanceof PagewireError)) throw e;
      s.error = { code: e.code, message: e.message };
    }
  }
  if (v['json'] === true) out(JSON.stringify({ file: resolve(path), fileBytes, ...s, verified }));
  else out(humanSummary(path, fileBytes, s) + (verified ? '\nverified: the records decode and the memory they restore has the recorded digest' : ''));
  if (s.error) {
    err(`pagewire inspect: ${s.error.code}: ${s.error.message}`);
    return exitCodeFor(new PagewireError(s.error.code as ErrorCode, s.error.message));
  }
  return EXIT.OK;
}

function humanSummary(path: string, fileBytes: number, s: SnapshotSummary): string {
  const lines: string[] = [];
  const h = s.header;
  if (h) {
    const guestPages = h.layout.regions.reduce((n, r) => n + r.pageCount, 0);
    const snap = h.snapshot;
    lines.push(`${path}: ${snap ? `${snap.kind} snapshot` : 'captured migration stream'}, ${formatBytes(fileBytes)}`);
    if (snap) {
      lines.push(`created ${new Date(snap.createdAt).toISOString()}${snap.parentDigest ? `, parent digest ${snap.parentDigest}${snap.parentPath ? ` (${snap.parentPath})` : ''}` : ''}`);
      const meta = Object.entries(snap.meta).map(([k, x]) => `${k}=${typeof x === 'object' ? JSON.stringify(x) : String(x)}`).join(' ');
      if (meta) lines.push(`guest: ${meta}`);
    }
    lines.push(`layout: ${guestPages} pages of ${h.layout.pageSize} bytes (${formatBytes(guestPages * h.layout.pageSize)}) in ${h.layout.regions.length} region${h.layout.regions.length === 1 ? '' : 's'}` +
      (h.layout.regions.length <= 4 ? `: ${h.layout.regions.map((r) => `${r.name} ${r.pageCount}`).join(', ')}` : ''));
    lines.push(`codecs announced: ${h.codecs.join(', ') || 'none'}; mode ${h.mode}`);
  } else {
    lines.push(`${path}: ${formatBytes(fileBytes)}, no readable header`);
  }
  if (s.rounds.length > 0) {
    lines.push('', table(['round', 'pages', 'wire', 'codecs'], s.rounds.map((r) => [r.final ? `${r.round} (final)` : String(r.round), String(r.pages), formatBytes(r.wireBytes), codecLine(r.codecs)])));
  }
  lines.push('');
  lines.push(`frames: ${Object.entries(s.frames).map(([k, x]) => `${k} ${x.count} (${formatBytes(x.bytes)})`).join(', ') || 'none'}`);
  lines.push(`pages stored ${s.pages}, ${formatBytes(s.rawBytes)} raw in ${formatBytes(s.pageFrameBytes)} of PAGES frames (${s.rawBytes > 0 ? ((100 * s.pageFrameBytes) / s.rawBytes).toFixed(1) : '0'}%)`);
  lines.push(`codec mix: ${codecLine(s.codecs)}`);
  if (s.deviceStateBytes > 0) lines.push(`device state ${formatBytes(s.deviceStateBytes)}`);
  lines.push(s.complete ? `complete; digest ${s.digest}` : 'INCOMPLETE');
  if (s.error) lines.push(`error: ${s.error.code}: ${s.error.message}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------- help

export const SNAPSHOT_HELP = `pagewire snapshot --out FILE [options]
Writes a snapshot (the migration stream, in a file) of a simulated guest or of real memory.
  --out FILE               the snapshot file (written to a temporary name, renamed when whole)
  --incremental-from FILE  store only the pages that differ from this snapshot (restored and verified
                           first, with its own parents); the guest is the parent's guest after
                           --dirty-seconds of its workload (corpus: the next corpus snapshot)
  --base FILE              the parent of --incremental-from FILE when its recorded path moved
  --dirty-seconds S        simulated seconds the workload writes before the snapshot
                           (default 0 for a full snapshot, 1 with --incremental-from)
  --from-image FILE        the guest is a raw memory image (QEMU pmemsave, a corpus snapshot)
  --from-core FILE         the guest is an ELF core file (QEMU dump-guest-memory, gcore)
  --image FILE             the guest is a raw image or an ELF core, told apart by the ELF magic
  --size 256MiB --page-size 4096 --workload hotset --dirty-rate 20MiB/s --write-size 64 --seed 1
                           the simulated guest (as for simulate; idle | uniform | hotset | zipf |
                           sequential | corpus:DIR)
  --codecs all             raw | qemu | all;  --cache-size 64MiB
  --json                   print the report as one JSON object (digest, pages, bytes, codecs...)
  --quiet                  print nothing
exit codes: 0 written, 2 usage, 3 failed, 4 the parent does not verify`;

export const RESTORE_HELP = `pagewire restore FILE [--base FILE] [--out-image FILE] [--json] [--max-guest 16GiB]
Rebuilds guest memory from a snapshot (an incremental one on top of its parents, found by the path
recorded in each file or given with --base for the first), recomputes the memory digest of each
link and compares it with the recorded one. Prints { verified, digest, pages } (pages: the guest's
page count; pagesApplied: pages read from the files).
  --out-image FILE         write the restored memory as a raw image (only when verified)
  --max-guest 16GiB        refuse files whose layout is larger (LIMIT_EXCEEDED), before making memory
exit codes: 0 verified, 2 usage, 3 failed (truncated or corrupt file: SNAPSHOT_CORRUPT; wrong
parent: SNAPSHOT_PARENT_MISMATCH; too large: LIMIT_EXCEEDED), 4 verification failed (the digests differ)`;

export const INSPECT_HELP = `pagewire inspect FILE [--json] [--max-guest 16GiB]
Summarises a snapshot or a captured migration stream: header, rounds, frames, codec mix, sizes,
the recorded digest; a truncated or corrupt file is reported with the offset of the problem. A
full snapshot is also decoded into scratch memory and its digest compared (what restore checks).
  --max-guest 16GiB        refuse files whose layout is larger (before making memory for them)
exit codes: 0 ok, 2 usage, 3 the file is truncated, corrupt or too large, 4 its digest does not match`;
