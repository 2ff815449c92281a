/**
 * Snapshot files on disk (Node only): an atomic file sink, chunked file reading, the parent chain
 * of incremental snapshots, and restoring a file with its parents. The format is ./format.ts;
 * `pagewire snapshot|restore|inspect` (src/cli/snapshot.ts) drive these.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { createCore, type Core } from '../core/core.js';
import { PagewireError, ErrorCode } from '../errors.js';
import {
  restoreChain, readSnapshotHeader, checkSnapshot, type SnapshotSink, type SnapshotHeader, type ChainRestoreResult,
} from './index.js';

const READ_CHUNK_BYTES = 4 * 1024 * 1024;
/** Longest parent chain followed (loops are refused before that). */
const MAX_CHAIN = 4096;

/** A sink writing to a temporary file that becomes `path` only when the snapshot is whole. */
export class SnapshotFileSink implements SnapshotSink {
  private fh: Awaited<ReturnType<typeof open>> | null = null;
  private readonly tmp: string;
  constructor(readonly path: string) {
    this.tmp = resolve(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  }
  async write(chunk: Uint8Array): Promise<void> {
    this.fh ??= await open(this.tmp, 'w');
    let off = 0;
    while (off < chunk.byteLength) off += (await this.fh.write(chunk, off, chunk.byteLength - off)).bytesWritten;
  }
  /** Flush and move the file into place. */
  async commit(): Promise<void> {
    this.fh ??= await open(this.tmp, 'w');
    await this.fh.sync();
    await this.fh.close();
    this.fh = null;
    await rename(this.tmp, this.path);
  }
  /** Remove the temporary file (after a failure). */
  async abort(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
    await unlink(this.tmp).catch(() => undefined);
  }
}

/** @throws PagewireError INVALID_ARGUMENT unless `path` is an existing file (`what` names it in the message) */
export function needFile(path: string, what: string): void {
  if (!existsSync(path)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${what} ${path} does not exist`);
  if (!statSync(path).isFile()) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${what} ${path} is not a file`);
}

/** The bytes of a file as an async iterable of chunks. */
export function readFileChunks(path: string): AsyncIterable<Uint8Array> {
  return createReadStream(path, { highWaterMark: READ_CHUNK_BYTES });
}

/** Read the header (HELLO) of a snapshot file. @throws PagewireError SNAPSHOT_CORRUPT, INVALID_ARGUMENT */
export async function readSnapshotFileHeader(path: string, core?: Core): Promise<SnapshotHeader> {
  needFile(path, 'snapshot');
  return readSnapshotHeader(readFileChunks(path), { core, label: path });
}

/**
 * The files to restore for `path`, root (full) first: follows each incremental snapshot's parent
 * path (relative to its own folder); `base` replaces the parent path of `path` itself.
 * @throws PagewireError INVALID_ARGUMENT (a parent is missing: give it with --base),
 *   SNAPSHOT_CORRUPT (a header is corrupt, or the chain loops)
 */
export async function resolveSnapshotChain(path: string, base?: string, core?: Core): Promise<string[]> {
  const chain = [resolve(path)];
  let header = await readSnapshotFileHeader(path, core);
  while (header.snapshot?.kind === 'incremental') {
    const cur = chain[0]!;
    const recorded = header.snapshot.parentPath;
    const parent = chain.length === 1 && base ? resolve(base) : recorded ? resolve(dirname(cur), recorded) : null;
    if (!parent) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${cur} is an incremental snapshot with no parent path: give its parent with --base FILE`);
    if (!existsSync(parent)) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `the parent ${parent} of incremental snapshot ${cur} does not exist${chain.length === 1 ? ': give it with --base FILE' : ''}`);
    }
    if (chain.includes(parent) || chain.length >= MAX_CHAIN) throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `the parent chain of ${path} loops at ${parent}`);
    chain.unshift(parent);
    header = await readSnapshotFileHeader(parent, core);
  }
  return chain;
}

/**
 * Restore a snapshot file (and its parents) and verify every digest.
 * @param path the snapshot
 * @param options `base`: the parent of an incremental snapshot (else the recorded path); `core`
 * @throws PagewireError SNAPSHOT_CORRUPT, SNAPSHOT_PARENT_MISMATCH, INVALID_ARGUMENT, LAYOUT_MISMATCH
 */
export async function restoreSnapshotFile(path: string, options: { base?: string; core?: Core; maxGuestBytes?: number } = {}): Promise<ChainRestoreResult & { files: string[] }> {
  const core = options.core ?? (await createCore());
  const files = await resolveSnapshotChain(path, options.base, core);
  // Every file is checked whole (structure, checksums, layout limit) before memory is made for
  // the chain: a truncated or corrupt file costs a read, not a guest's worth of memory.
  for (const f of files) await checkSnapshot(readFileChunks(f), { core, label: f, maxGuestBytes: options.maxGuestBytes });
  const res = await restoreChain(files.map((f) => () => readFileChunks(f)), { core, labels: files, maxGuestBytes: options.maxGuestBytes });
  return { ...res, files };
}
