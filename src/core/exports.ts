/**
 * The raw exports of the AssemblyScript core (assembly/index.ts). Pointers are byte offsets into
 * `memory`; i64 values arrive as signed BigInt (wrap with BigInt.asUintN(64, x)); results `>= 0`
 * are byte counts, `< 0` a status from assembly/status.ts (mirrored in ./status.ts).
 * Keep this interface in step with assembly/index.ts: test/core-exports.test.ts checks it.
 */
export interface CoreExports {
  readonly memory: WebAssembly.Memory;
  /** First free byte after the core's static data. */
  heapBase(): number;
  [name: string]: unknown;
}
