/**
 * pagewire: WebAssembly-accelerated memory-page transfer for live migration.
 * Browser-safe entry point (the package root): nothing here imports `node:*`.
 *
 * The root is the library's public surface, kept to what an application needs (a test holds it
 * at 120 names or fewer): the core functions, guest memory and dirty logs, the migration source
 * and target with their options and reports, transports, snapshots and errors. Two subpaths
 * carry the rest:
 * - `pagewire/node`: everything here plus the Node-only transports (TCP, TLS, `ws` server),
 *   memory-image loading, snapshot files and QEMU;
 * - `pagewire/sim`: the simulator (simulated guest, workloads, page content, corpus replay,
 *   shaped link, fault injection, the convergence policy's pure functions and the virtual-clock
 *   model).
 */

// errors and limits
export { PagewireError, ErrorCode, isPagewireError } from './errors.js';
export { DEFAULT_MAX_GUEST_BYTES } from './limits.js';

// core functions (wasm): one-shot calls on pages
export { ready } from './ready.js';
export {
  xxh64, hashPages, isZeroPage, zeroPages,
  xbzrleEncode, xbzrleEncodeInto, xbzrleDecode, xbzrleMaxEncodedSize,
  rleEncode, rleEncodeInto, rleDecode, rleMaxEncodedSize,
  MIN_PAGE_SIZE, MAX_PAGE_SIZE, XBZRLE_MAX_PAGE_SIZE, RLE_MAX_LEN,
} from './core/api.js';
export { lz4Compress, lz4Decompress, lz4MaxCompressedSize, LZ4_MAX_INPUT } from './codec/lz4.js';
export { Core, createCore } from './core/core.js';

// guest memory and dirty logs
export {
  GuestMemory, DEFAULT_PAGE_SIZE, type MemoryRegion, type MemoryLayout,
} from './memory/guest-memory.js';
export {
  BitmapDirtyLog, WriteTrackingDirtyLog, bitmapWords, type DirtyLog, type BitmapDirtyLogOptions,
} from './memory/dirty-log.js';
export { HashScanDirtyLog, type HashScanOptions } from './memory/hash-scan-log.js';
export { memoryDigest } from './memory/digest.js';

// migration: source, target, policy options, reports, post-copy guest, parallel channels
export {
  MigrationSource, type SourceOptions, type SourceHooks, type DirtyLogLike,
} from './migration/source.js';
export {
  MigrationTarget, type TargetOptions, type TargetHooks, type TargetMemory, type TargetTransports,
} from './migration/target.js';
export { DEFAULT_POLICY, type PolicyOptions, type NonConvergenceAction } from './migration/policy.js';
export type {
  MigrationReport, RoundReport, ProgressEvent, MigrationEvents, CodecCounts,
} from './migration/report.js';
export { FaultingGuestRunner, type AccessingGuest, type FaultingGuestOptions } from './migration/postcopy-target.js';
export {
  ParallelMigrationSource, ParallelMigrationTarget,
  type ParallelSourceOptions, type ChannelInit, type ChannelWorker, type SpawnChannelWorker,
} from './migration/channels.js';
export { WorkerParallelTarget, type WorkerParallelTargetOptions, type SpawnTargetWorker, type TargetWorker } from './migration/target-channels.js';
export { webChannelSpawner, webTargetChannelSpawner, type WebWorkerSource } from './migration/channels-web.js';
export { runChannelWorker, type ChannelControl, type OpenChannelTransport } from './migration/channel-worker.js';
export { PROTOCOL_MAJOR, PROTOCOL_MINOR } from './protocol/frame.js';
export { CODEC_NAMES, type CodecName } from './codec/format.js';

// transports (browser-safe; TCP, TLS and the `ws` server are in pagewire/node)
export type { Transport, TransportFactory } from './transport/types.js';
export { type TransportListener, type AcceptOptions } from './transport/listener.js';
export { memoryPair, MemoryTransport, type MemoryPairOptions } from './transport/memory.js';
export {
  webSocketTransport, openWebSocket, WebSocketTransport,
  type WebSocketLike, type WebSocketFlowHooks, type WebSocketTransportOptions, type OpenWebSocketOptions,
} from './transport/websocket.js';
export {
  messagePortTransport, MessagePortTransport, type MessagePortLike, type MessagePortTransportOptions,
} from './transport/message-port.js';

// snapshots: the migration stream written to a file (files themselves: pagewire/node)
export {
  writeSnapshot, restoreSnapshot, restoreChain, readSnapshotHeader, inspectSnapshot, checkSnapshot, MemorySink,
  type SnapshotSink, type SnapshotParent, type SnapshotWriteOptions, type SnapshotWriteReport,
  type SnapshotInput, type RestoreMemory, type RestoreOptions, type RestoreResult,
  type ChainLink, type ChainRestoreResult, type SnapshotSummary, type SnapshotInfo, type SnapshotHeader,
} from './snapshot/index.js';
