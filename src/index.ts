/**
 * pagewire: WebAssembly-accelerated memory-page transfer for live migration.
 * Browser-safe entry point: nothing here imports `node:*`. Node-only transports are in
 * `pagewire/node`.
 */
export { PagewireError, ErrorCode, isPagewireError } from './errors.js';
export type { Transport, TransportFactory } from './transport/types.js';
