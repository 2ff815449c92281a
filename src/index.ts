/**
 * pagewire: WebAssembly-accelerated memory-page transfer for live migration.
 * Browser-safe entry point: nothing here imports `node:*`. Node-only transports are in
 * `pagewire/node`.
 */
export { PagewireError, ErrorCode, isPagewireError } from './errors.js';
export type { Transport, TransportFactory } from './transport/types.js';
export {
  ready, xxh64, hashPages, isZeroPage, zeroPages,
  xbzrleEncode, xbzrleEncodeInto, xbzrleDecode, xbzrleMaxEncodedSize,
  rleEncode, rleEncodeInto, rleDecode, rleMaxEncodedSize,
  CHUNK_BYTES, MIN_PAGE_SIZE, MAX_PAGE_SIZE, XBZRLE_MAX_PAGE_SIZE, RLE_MAX_LEN,
} from './core/api.js';
export { CoreStatus, statusMessage } from './core/status.js';
export { memoryPair, MemoryTransport, type MemoryPairOptions } from './transport/memory.js';
export { type TransportListener, type AcceptOptions } from './transport/listener.js';
export {
  webSocketTransport, openWebSocket, WebSocketTransport, WS_DESTROY_CODE,
  type WebSocketLike, type WebSocketFlowHooks, type WebSocketTransportOptions, type OpenWebSocketOptions,
  type WebSocketMessageEventLike, type WebSocketCloseEventLike,
} from './transport/websocket.js';
export {
  messagePortTransport, MessagePortTransport, type MessagePortLike, type MessagePortTransportOptions,
} from './transport/message-port.js';
export {
  shapeTransport, shapedPair, ShapedTransport, realClock,
  type ShapingOptions, type ShapingStats, type ShapingClock, type ShapedPairOptions,
} from './transport/shaped.js';
