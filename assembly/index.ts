// pagewire core: the only file with exports. Every export takes pointers and lengths into this
// module's linear memory and returns numbers. No managed objects cross the boundary; the module
// has no imports (built with --use abort=).

/** First free byte after static data: JS manages the heap above it. */
export function heapBase(): usize {
  return __heap_base;
}

export { xxh64, xxh64Init, xxh64Update, xxh64Digest, hashPages, hashPageList } from './xxhash';
export { isZero, zeroPages } from './zero';
export { xbzrleEncode, xbzrleDecode, xbzrleCheck } from './xbzrle';
export { rleEncode, rleDecode, rleCheck, rleMaxEncodedSize } from './rle';
export { encodeBatch, cacheForget, cacheUsed, decodeScan, decodeApply } from './batch';
export { lz4Compress, lz4Decompress, lz4MaxCompressedSize } from './lz4';
