// RLE (stub: real implementation follows in the next commit).
import { STATUS_OVERFLOW, STATUS_TRUNCATED } from './status';

export function rleEncode(srcPtr: usize, len: i32, outPtr: usize, limit: i32): i32 {
  return STATUS_OVERFLOW;
}

export function rleDecode(inPtr: usize, inLen: i32, outPtr: usize, outLen: i32): i32 {
  return STATUS_TRUNCATED;
}
