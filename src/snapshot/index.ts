/**
 * Snapshots: the migration stream written to a file (full or incremental), restored and verified.
 * Browser-safe; file access is in src/snapshot/file-node.ts (Node).
 */
export {
  SNAPSHOT_FORMAT, DEFAULT_SNAPSHOT_BATCH_PAGES, isDigest, parseSnapshotInfo,
  type SnapshotInfo, type SnapshotHeader, type SnapshotKind, type SnapshotRoundEnd,
} from './format.js';
export {
  writeSnapshot, MemorySink,
  type SnapshotSink, type SnapshotParent, type SnapshotWriteOptions, type SnapshotWriteReport,
} from './writer.js';
export {
  restoreSnapshot, restoreChain, readSnapshotHeader, inspectSnapshot, checkSnapshot,
  type SnapshotInput, type RestoreMemory, type SnapshotReadOptions, type RestoreOptions, type RestoreResult,
  type ChainLink, type ChainRestoreResult, type SnapshotSummary, type InspectOptions,
} from './reader.js';
