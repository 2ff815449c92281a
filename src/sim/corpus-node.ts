/**
 * Node loader for unpacked corpora (../shared/corpus format: snapshot-K.bin, dirty-K.u32,
 * manifest.json). Images are read on demand, one at a time (the last one read stays cached), so a
 * replay holds one or two images in memory, not all of them; `changedPages(k)` reads only the
 * pages of dirty-K from image K (positional reads, one per run of consecutive pages).
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PagewireError, ErrorCode } from '../errors.js';
import { checkIndex, parseDirtyList, type CorpusSource } from './corpus.js';

/**
 * Open the corpus in `dir` (a folder holding snapshot-0.bin ...). If `dir` holds no snapshots but
 * exactly one sub-folder that does, that one is used.
 * @throws PagewireError INVALID_ARGUMENT when no corpus is there; SNAPSHOT_CORRUPT for images of
 *   different sizes or unreadable files
 */
export function loadCorpus(dir: string): CorpusSource {
  let root = dir;
  if (!existsSync(join(root, 'snapshot-0.bin'))) {
    const subs = existsSync(dir) && statSync(dir).isDirectory()
      ? readdirSync(dir).filter((d) => existsSync(join(dir, d, 'snapshot-0.bin')))
      : [];
    if (subs.length !== 1) {
      const hint = subs.length > 1 ? ` (it holds several: ${subs.join(', ')}; name one)` : ' (unpack one with `node ../shared/corpus/unpack.mjs DIR`)';
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `no corpus in ${dir}: snapshot-0.bin not found${hint}`);
    }
    root = join(dir, subs[0]!);
  }
  let pageSize = 4096;
  const manifestPath = join(root, 'manifest.json');
  if (existsSync(manifestPath)) {
    try {
      const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { page_size?: number; pageSize?: number };
      pageSize = m.page_size ?? m.pageSize ?? 4096;
    } catch (cause) {
      throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `${manifestPath} is not valid JSON`, { cause });
    }
  }
  let count = 0;
  while (existsSync(join(root, `snapshot-${count}.bin`))) count++;
  const bytes = statSync(join(root, 'snapshot-0.bin')).size;
  if (bytes === 0 || bytes % pageSize !== 0) {
    throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `${root}/snapshot-0.bin is ${bytes} bytes, not a whole number of ${pageSize}-byte pages`);
  }
  for (let k = 1; k < count; k++) {
    const s = statSync(join(root, `snapshot-${k}.bin`)).size;
    if (s !== bytes) throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `${root}/snapshot-${k}.bin is ${s} bytes, snapshot-0.bin ${bytes}`);
  }
  const pageCount = bytes / pageSize;
  let cachedIndex = -1;
  let cached: Uint8Array | null = null;
  const dirtyCache = new Map<number, Uint32Array>();
  const read = (file: string): Uint8Array => {
    try {
      const b = readFileSync(join(root, file));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (cause) {
      throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `cannot read ${join(root, file)}`, { cause });
    }
  };
  const dirty = (k: number): Uint32Array => {
    checkIndex(k, 1, count);
    let d = dirtyCache.get(k);
    if (!d) {
      d = parseDirtyList(read(`dirty-${k}.u32`), pageCount, `${root}/dirty-${k}.u32`);
      dirtyCache.set(k, d);
    }
    return d;
  };
  return {
    name: basename(root),
    pageSize,
    pageCount,
    snapshotCount: count,
    snapshot(k: number): Uint8Array {
      checkIndex(k, 0, count);
      if (k !== cachedIndex) {
        cached = null; // let the previous image go before reading the next
        cached = read(`snapshot-${k}.bin`);
        if (cached.byteLength !== bytes) throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `snapshot-${k}.bin changed size while replaying`);
        cachedIndex = k;
      }
      return cached!;
    },
    dirty,
    changedPages(k: number): Uint8Array {
      const pages = dirty(k);
      const out = new Uint8Array(pages.length * pageSize);
      const file = join(root, `snapshot-${k}.bin`);
      let fd = -1;
      try {
        fd = openSync(file, 'r');
        for (let i = 0; i < pages.length; ) {
          let j = i + 1; // pages[i..j) are consecutive: one read
          while (j < pages.length && pages[j] === pages[j - 1]! + 1) j++;
          const want = (j - i) * pageSize;
          let got = 0;
          while (got < want) {
            const n = readSync(fd, out, i * pageSize + got, want - got, pages[i]! * pageSize + got);
            if (n === 0) throw new Error(`${file} ends before page ${pages[i]! + Math.floor(got / pageSize)}`);
            got += n;
          }
          i = j;
        }
      } catch (cause) {
        throw new PagewireError(ErrorCode.SNAPSHOT_CORRUPT, `cannot read the changed pages of ${file}`, { cause });
      } finally {
        if (fd >= 0) closeSync(fd);
      }
      return out;
    },
  };
}
