/**
 * `ready()` as the package exports it: loads everything the synchronous one-shot functions need,
 * the core (xxh64, hashPages, zero pages, XBZRLE, RLE) and the LZ4 module (lz4Compress,
 * lz4Decompress), each compiled once per realm; concurrent calls share the loads.
 */
import { ready as coreReady } from './core/api.js';
import { loadLz4 } from './codec/lz4.js';

/**
 * Load the WebAssembly core and the LZ4 module; every one-shot call after it is synchronous.
 * @returns resolves once both are loaded
 * @throws PagewireError WASM_FAILED when WebAssembly cannot compile or instantiate a module
 */
export function ready(): Promise<void> {
  loading ??= Promise.all([coreReady(), loadLz4()]).then(() => undefined, (err: unknown) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

let loading: Promise<void> | undefined;
