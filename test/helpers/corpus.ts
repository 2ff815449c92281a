/** Test helper: the real memory corpus (../shared/corpus), unpacked once into .cache/corpus. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where the corpus is unpacked. */
export const CORPUS_DIR = join(ROOT, '.cache', 'corpus');

/** One corpus: its snapshots and dirty lists. */
export interface Corpus {
  name: string;
  pageSize: number;
  snapshots: Uint8Array[];
  /** dirty[k] (k >= 1): pages that differ between snapshots k-1 and k. */
  dirty: Uint32Array[];
}

/** Unpack the corpus if needed (idempotent; call from beforeAll). */
export function ensureCorpus(): string {
  if (!existsSync(join(CORPUS_DIR, 'vm-redis', 'snapshot-4.bin')) || !existsSync(join(CORPUS_DIR, 'proc-redis', 'snapshot-4.bin'))) {
    execFileSync(process.execPath, [join(ROOT, '..', 'shared', 'corpus', 'unpack.mjs'), CORPUS_DIR], { stdio: 'ignore' });
  }
  return CORPUS_DIR;
}

/** Load one corpus (`vm-redis` or `proc-redis`). */
export function loadCorpus(name: string): Corpus {
  const dir = join(ensureCorpus(), name);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { page_size?: number };
  const snapshots: Uint8Array[] = [];
  const dirty: Uint32Array[] = [new Uint32Array(0)];
  for (let k = 0; existsSync(join(dir, `snapshot-${k}.bin`)); k++) {
    const b = readFileSync(join(dir, `snapshot-${k}.bin`));
    snapshots.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    if (k > 0) {
      const d = readFileSync(join(dir, `dirty-${k}.u32`));
      dirty.push(new Uint32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
    }
  }
  return { name, pageSize: manifest.page_size ?? 4096, snapshots, dirty };
}
