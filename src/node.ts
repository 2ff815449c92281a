/**
 * pagewire/node: everything in the root entry plus Node-only transports (TCP, TLS, `ws` server).
 */
export * from './index.js';
