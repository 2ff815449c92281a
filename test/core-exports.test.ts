// The core module's shape: no imports, a size budget, exactly the exports CoreExports declares,
// the status codes mirrored between assembly/status.ts and src/core/status.ts, and the state-block
// layout mirrored between assembly/layout.ts and src/core/layout.ts.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CORE_WASM_BASE64 } from '../src/core/core-wasm.generated.js';
import { base64ToBytes, instantiateCore } from '../src/core/loader.js';
import * as status from '../src/core/status.js';
import * as layout from '../src/core/layout.js';
import { CORE_EXPORT_KINDS, CORE_EXTRA_EXPORTS, isCoreExports } from '../src/core/exports.js';
import { ready, xxh64, hashPages, xbzrleEncode, rleEncode, PagewireError, ErrorCode } from '../src/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Size budget for the core module (bytes). */
const WASM_BUDGET = 32 * 1024;

/**
 * The `export const NAME: i32|u32 = value;` constants of an AssemblyScript file, evaluated (integer
 * literals, hex, `a << b`). A line of another shape fails the test: the mirror must stay checkable.
 */
function asConstants(file: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(`${ROOT}${file}`, 'utf8').split('\n')) {
    if (!line.startsWith('export const ')) continue;
    const m = /^export const (\w+): (?:i32|u32) = (-?\d+|0x[0-9a-f]+|\d+ << \d+);$/.exec(line);
    if (!m) throw new Error(`${file}: cannot read ${line}`);
    const v = m[2]!;
    const shift = /^(\d+) << (\d+)$/.exec(v);
    out.set(m[1]!, shift ? Number(shift[1]) * 2 ** Number(shift[2]) : Number(v));
  }
  return out;
}

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

  it('exports exactly what CoreExports declares, each of the declared kind', () => {
    const byName = new Map(WebAssembly.Module.exports(mod).map((e) => [e.name, e.kind]));
    for (const name of CORE_EXTRA_EXPORTS) byName.delete(name);
    expect(Object.fromEntries(byName)).toEqual({ ...CORE_EXPORT_KINDS });
  });

  it('every export answers on an instance, and the load check refuses an instance that lacks one', async () => {
    const { exports } = await WebAssembly.instantiate(mod, {});
    expect(isCoreExports(exports)).toBe(true);
    for (const [name, kind] of Object.entries(CORE_EXPORT_KINDS)) {
      expect(kind === 'memory' ? exports[name] instanceof WebAssembly.Memory : typeof exports[name] === 'function', name).toBe(true);
      const partial: Record<string, unknown> = { ...exports };
      delete partial[name];
      expect(isCoreExports(partial), `without ${name}`).toBe(false);
    }
  });

  it('instantiates with an empty import object and answers', async () => {
    const ex = await instantiateCore();
    expect(ex.heapBase()).toBeGreaterThan(0);
    const base = (ex.heapBase() + 15) & ~15;
    expect(BigInt.asUintN(64, ex.xxh64(base, 0, 0n))).toBe(0xef46db3751d8e999n);
    expect(ex.isZero(base, 64)).toBe(1);
  });
});

describe('layout', () => {
  it('is mirrored exactly between assembly/layout.ts and src/core/layout.ts', () => {
    const asLayout = asConstants('assembly/layout.ts');
    expect(asLayout.size).toBeGreaterThan(40);
    expect({ ...layout }).toEqual(Object.fromEntries(asLayout));
  });

  it('places every EncState and DecState field inside its block, 4-aligned and without overlap', () => {
    const check = (prefix: string, bytes: number, skip: string[]): void => {
      const offsets = Object.entries(layout).filter(([k]) => k.startsWith(prefix) && !skip.includes(k)).map(([, v]) => v).sort((a, b) => a - b);
      expect(offsets.length).toBeGreaterThan(8);
      for (let i = 0; i < offsets.length; i++) {
        expect(offsets[i]! % 4).toBe(0);
        expect(offsets[i]!).toBeLessThanOrEqual(bytes - 4);
        if (i > 0) expect(offsets[i]!).toBeGreaterThan(offsets[i - 1]!);
      }
    };
    check('ENC_', layout.ENC_STATE_BYTES, ['ENC_STATE_BYTES', 'ENC_ZERO_MARK', 'ENC_EMPTY']);
    check('DEC_', layout.DEC_STATE_BYTES, ['DEC_STATE_BYTES', 'DEC_SCAN_ENTRY_BYTES']);
    // the per-codec statistics (pages, bytes per record codec) end where the named counters start
    expect(layout.ENC_STATS + 8 * (layout.CODEC_RLE + 1)).toBe(layout.ENC_STAT_UNCHANGED);
  });

  it('is the only place assembly/batch.ts takes offsets and statuses from (no numeric constants of its own)', () => {
    const text = readFileSync(`${ROOT}assembly/batch.ts`, 'utf8');
    expect(text).not.toMatch(/^const \w+(: \w+)? = -?\d+;/m);
    expect(text).not.toMatch(/return -\d+;/);
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
