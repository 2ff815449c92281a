/**
 * Loads the AssemblyScript core once. The wasm bytes are embedded as base64 in a generated
 * module (scripts/build-wasm.mjs), so the same code runs in Node, bundlers, Web Workers and plain
 * pages with no fetch, no fs and no bundler plugin. Concurrent first calls share one instantiation.
 */
import { CORE_WASM_BASE64 } from './core-wasm.generated.js';
import { PagewireError, ErrorCode } from '../errors.js';
import { isCoreExports, type CoreExports } from './exports.js';

/** Decode base64 with the platform's `atob` (Node 16+, browsers, workers). */
export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let modulePromise: Promise<WebAssembly.Module> | undefined;

/** The compiled core module, compiled once per realm. */
export function coreModule(): Promise<WebAssembly.Module> {
  modulePromise ??= WebAssembly.compile(base64ToBytes(CORE_WASM_BASE64) as BufferSource).catch((cause: unknown) => {
    modulePromise = undefined;
    throw new PagewireError(ErrorCode.WASM_FAILED, 'pagewire: could not compile the WebAssembly core', { cause });
  });
  return modulePromise;
}

/** A fresh instance of the core (each instance has its own linear memory). */
export async function instantiateCore(): Promise<CoreExports> {
  const mod = await coreModule();
  let instance: WebAssembly.Instance;
  try {
    instance = await WebAssembly.instantiate(mod, {});
  } catch (cause) {
    throw new PagewireError(ErrorCode.WASM_FAILED, 'pagewire: could not instantiate the WebAssembly core', { cause });
  }
  if (!isCoreExports(instance.exports)) throw new PagewireError(ErrorCode.WASM_FAILED, 'pagewire: the WebAssembly core lacks exports pagewire calls');
  return instance.exports;
}
