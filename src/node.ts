/**
 * pagewire/node: everything in the root entry plus Node-only transports (TCP, TLS, `ws` server).
 */
export * from './index.js';
export {
  connectTcp, listenTcp, SocketTransport,
  type TcpConnectOptions, type TcpListenOptions, type SocketTransportOptions,
} from './transport/tcp.js';
export { connectTls, listenTls, type TlsConnectOptions, type TlsListenOptions, type PemInput } from './transport/tls.js';
export {
  connectWebSocket, listenWebSocket,
  type ConnectWebSocketOptions, type ListenWebSocketOptions, type NodeWebSocketOptions, type WebSocketListener,
} from './transport/websocket-node.js';
export { startShapingProxy, type ShapingProxy, type ShapingProxyOptions, type ProxyDirection } from './transport/shaped-proxy-node.js';
export { loadCorpus } from './sim/corpus-node.js';
export {
  loadMemoryImage, parseElfCore, writeRawImage, MAX_IMAGE_REGIONS,
  type MemoryImage, type ImageSegment, type LoadImageOptions, type ElfCoreInfo, type ElfLoadSegment,
} from './memory/dump-node.js';
export {
  SnapshotFileSink, readFileChunks, readSnapshotFileHeader, resolveSnapshotChain, restoreSnapshotFile,
} from './snapshot/file-node.js';
export { nodeChannelSpawner, nodeTargetChannelSpawner } from './migration/channels-node.js';
export { startPrefault, DEFAULT_PREFAULT_AHEAD_BYTES, type Prefaulter, type PrefaultOptions } from './memory/prefault-node.js';
export { QmpClient, type QmpOptions, type QmpEvent, type QmpVersion } from './qemu/qmp.js';
export { QemuSource, type QemuSourceOptions, type QemuSourceReport } from './qemu/source.js';
export { QemuTarget, type QemuTargetOptions, type QemuTargetReport, type QemuTargetFigures } from './qemu/target.js';
export { RamFile, RamFileDirtyLog, ramFileMemory } from './qemu/ram-file.js';
export { recoverSource, type QemuMigrationFigures, type QemuMigrateInfo } from './qemu/control.js';
export { sendIncomingUri, receiveIncomingUri, checkIncomingUri } from './qemu/incoming.js';
