// The core module's shape: no imports, a size budget, every export the TypeScript facade expects,
// and the status codes mirrored between assembly/status.ts and src/core/status.ts.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CORE_WASM_BASE64 } from '../src/core/core-wasm.generated.js';
import { base64ToBytes, instantiateCore } from '../src/core/loader.js';
import * as status from '../src/core/status.js';
import { ready, xxh64, hashPages, xbzrleEncode, rleEncode, PagewireError, ErrorCode } from '../src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Size budget for the core module (bytes). */
const WASM_BUDGET = 32 * 1024;

const EXPECTED_FUNCTIONS = [
  'heapBase', 'xxh64', 'xxh64Init', 'xxh64Update', 'xxh64Digest', 'hashPages', 'hashPageList', 'isZero', 'zeroPages',
  'xbzrleEncode', 'xbzrleDecode', 'xbzrleCheck', 'rleEncode', 'rleDecode', 'rleCheck', 'rleMaxEncodedSize',
  'lz4Compress', 'lz4Decompress', 'lz4MaxCompressedSize',
];

// Runs first in this file's fresh module registry: nothing has loaded the shared core yet.
describe('ready()', () => {
  it('is required first: calls before it throw NOT_READY', () => {
    for (const call of [() => xxh64(new Uint8Array(1)), () => hashPages(new Uint8Array(4096), 4096),
      () => xbzrleEncode(new Uint8Array(8), new Uint8Array(8)), () => rleEncode(new Uint8Array(8))]) {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PagewireError);
      expect((err as PagewireError).code).toBe(ErrorCode.NOT_READY);
    }
  });

  it('loads once for concurrent callers, then every call is synchronous', async () => {
    const a = ready();
    const b = ready();
    expect(a).toBe(b);
    await Promise.all([a, b]);
    expect(xxh64(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
  });
});

describe('core module', () => {
  const bytes = base64ToBytes(CORE_WASM_BASE64);
  const mod = new WebAssembly.Module(bytes as BufferSource);

  it('has no imports', () => {
    expect(WebAssembly.Module.imports(mod)).toEqual([]);
  });

  it('fits the size budget', () => {
    expect(bytes.length).toBeGreaterThan(1000);
    expect(bytes.length).toBeLessThanOrEqual(WASM_BUDGET);
  });

  it('exports memory and every function of CoreExports', () => {
    const exports = WebAssembly.Module.exports(mod);
    const byName = new Map(exports.map((e) => [e.name, e.kind]));
    expect(byName.get('memory')).toBe('memory');
    for (const name of EXPECTED_FUNCTIONS) expect(byName.get(name), name).toBe('function');
  });

  it('instantiates with an empty import object and answers', async () => {
    const ex = await instantiateCore();
    expect(ex.heapBase()).toBeGreaterThan(0);
    const base = (ex.heapBase() + 15) & ~15;
    expect(BigInt.asUintN(64, ex.xxh64(base, 0, 0n))).toBe(0xef46db3751d8e999n);
    expect(ex.isZero(base, 64)).toBe(1);
  });
});

describe('status codes', () => {
  it('are mirrored exactly between assembly/status.ts and src/core/status.ts', () => {
    const text = readFileSync(`${ROOT}assembly/status.ts`, 'utf8');
    const asCodes = new Map<string, number>();
    for (const m of text.matchAll(/export const (STATUS_\w+): i32 = (-?\d+);/g)) asCodes.set(m[1]!, Number(m[2]));
    expect(asCodes.size).toBeGreaterThan(5);
    const tsCodes = new Map(Object.entries(status).filter(([k]) => k.startsWith('STATUS_')) as [string, number][]);
    expect(Object.fromEntries(tsCodes)).toEqual(Object.fromEntries(asCodes));
    // The table by name holds the same set, all negative and distinct.
    const values = Object.values(status.CoreStatus);
    expect(new Set(values).size).toBe(asCodes.size);
    expect([...values].sort()).toEqual([...asCodes.values()].sort());
    for (const v of values) {
      expect(v).toBeLessThan(0);
      expect(status.statusMessage(v)).not.toMatch(/^status /);
    }
  });

  it('keep XBZRLE overflow at QEMU\'s -1', () => {
    expect(status.STATUS_OVERFLOW).toBe(-1);
  });
});

describe('ready() and LZ4', () => {
  it('loads the LZ4 module too: lz4Compress works right after it, and round-trips', async () => {
    const { lz4Compress, lz4Decompress } = await import('../src/index.js');
    await ready();
    const page = new Uint8Array(4096);
    for (let i = 0; i < page.length; i++) page[i] = (i * 7) & 0x3f;
    const block = lz4Compress(page);
    expect(block.length).toBeLessThan(page.length);
    expect(lz4Decompress(block, page.length)).toEqual(page);
  });
});
