/**
 * pagewire: WebAssembly-accelerated memory-page transfer for live migration.
 * Browser-safe entry point: nothing here imports `node:*`. Node-only transports are in
 * `pagewire/node`.
 */
export { PagewireError, ErrorCode, isPagewireError } from './errors.js';
export { DEFAULT_MAX_GUEST_BYTES, DEFAULT_MAX_HANDSHAKE_FRAME_BYTES } from './limits.js';
export type { Transport, TransportFactory } from './transport/types.js';
export { ready } from './ready.js';
export {
  xxh64, hashPages, isZeroPage, zeroPages,
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
export { Core, Arena, createCore } from './core/core.js';
export type { CoreExports } from './core/exports.js';
export {
  GuestMemory, checkPageSize, DEFAULT_PAGE_SIZE, type MemoryRegion, type MemoryLayout,
} from './memory/guest-memory.js';
export {
  MigrationSource, validateSourceOptions, type SourceOptions, type SourceHooks, type DirtyLogLike,
} from './migration/source.js';
export {
  MigrationTarget, checkLayout, type TargetOptions, type TargetHooks, type TargetMemory, type TargetTransports,
} from './migration/target.js';
export {
  decide, expectedDowntimeMs, stalledRounds, DEFAULT_POLICY,
  type PolicyOptions, type PolicyState, type PolicyDecision, type RoundSample, type NonConvergenceAction,
} from './migration/policy.js';
export type {
  MigrationReport, RoundReport, ProgressEvent, MigrationEvents, CodecCounts,
} from './migration/report.js';
export { memoryDigest } from './migration/digest.js';
export { FaultInjector, parseFaultSpec, type Fault, type FaultKind } from './migration/faults.js';
export { PageSet } from './migration/common.js';
export { FaultingGuestRunner, PostcopyTargetState, type AccessingGuest, type FaultingGuestOptions } from './migration/postcopy-target.js';
export { DirtyFrequencyOrder, type ReorderOptions, type OrderedRound } from './migration/reorder.js';
export { KnownPagesCollector, hashAllPages, encodeKnownPages, parseKnownPages, KNOWN_PAGES_SEED, type KnownPagesFrame } from './migration/known-pages.js';
export {
  ParallelMigrationSource, ParallelMigrationTarget, channelRanges, splitMemory, webChannelSpawner,
  type ParallelSourceOptions, type ChannelInit, type ChannelLink, type ChannelRegion, type ChannelWorker, type SpawnChannelWorker,
} from './migration/channels.js';
export { runChannelWorker, type ChannelControl, type OpenChannelTransport } from './migration/channel-worker.js';
export {
  FrameType, PROTOCOL_MAJOR, PROTOCOL_MINOR, FRAME_HEADER_BYTES, PREAMBLE_BYTES, DEFAULT_MAX_FRAME_BYTES,
  encodePreamble, checkPreamble, frameTypeName, type Frame,
} from './protocol/frame.js';
export { FrameReader, FrameWriter, type FrameReaderOptions } from './protocol/codec.js';
export {
  BitmapDirtyLog, WriteTrackingDirtyLog, bitmapWords, drainBits, popcount32, popcountWords,
  type DirtyLog, type BitmapDirtyLogOptions,
} from './memory/dirty-log.js';
export { HashScanDirtyLog, type HashScanOptions } from './memory/hash-scan-log.js';
export { Prng } from './sim/prng.js';
export {
  createWorkload, WORKLOAD_KINDS, UniformWorkload, HotSetWorkload, ZipfWorkload, SequentialWorkload, IdleWorkload, Scatter,
  type Workload, type WorkloadKind, type WorkloadOptions,
} from './sim/workloads.js';
export {
  fillInitial, ContentGenerator, PageCursor, INITIAL_MIX, PAGE_WRITE_MIX,
  type PageClass, type ContentMix, type FillKind, type FillStats,
} from './sim/content.js';
export { corpusFromBytes, parseDirtyList, diffPages, type CorpusSource, type CorpusBytes } from './sim/corpus.js';
export {
  SimulatedGuest, type SimulatedGuestOptions, type GuestHooks, type GuestStats, type WriteSize, type WriteSink,
} from './sim/guest.js';
export {
  writeSnapshot, restoreSnapshot, restoreChain, readSnapshotHeader, inspectSnapshot, checkSnapshot, MemorySink,
  SNAPSHOT_FORMAT, DEFAULT_SNAPSHOT_BATCH_PAGES,
  type SnapshotSink, type SnapshotParent, type SnapshotWriteOptions, type SnapshotWriteReport,
  type SnapshotInput, type RestoreMemory, type SnapshotReadOptions, type RestoreOptions, type RestoreResult,
  type ChainLink, type ChainRestoreResult, type SnapshotSummary, type InspectOptions,
  type SnapshotInfo, type SnapshotHeader, type SnapshotKind, type SnapshotRoundEnd,
} from './snapshot/index.js';
export { PageEncoder, type EncoderOptions, type CodecStats, type CodecCounter, type Lz4Policy } from './codec/encoder.js';
export { Lz4AutoPolicy, LZ4_PRIOR, type Lz4Prior, type Lz4PolicyOptions, type Lz4BlockSample, type Lz4DecisionStats } from './codec/lz4-policy.js';
export { PageDecoder, type ApplyResult, type DecoderStats } from './codec/decoder.js';
export { DeltaCache, DEFAULT_CACHE_BYTES } from './codec/delta-cache.js';
export { RECORDS_VERSION, CODEC_NAMES, MAX_BLOCK_BYTES, MAX_BLOCK_RECORDS, type CodecName } from './codec/format.js';
export {
  Lz4, loadLz4, lz4, lz4Compress, lz4Decompress, lz4MaxCompressedSize,
  coreLz4Compress, coreLz4Decompress, lz4BlockCompress, lz4BlockDecompress, LZ4_MAX_INPUT,
} from './codec/lz4.js';
