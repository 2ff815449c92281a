// XBZRLE (stub: real implementation follows in the next commit).
import { STATUS_OVERFLOW, STATUS_TRUNCATED } from './status';

export function xbzrleEncode(oldPtr: usize, newPtr: usize, len: i32, outPtr: usize, limit: i32): i32 {
  return STATUS_OVERFLOW;
}

export function xbzrleDecode(inPtr: usize, inLen: i32, pagePtr: usize, pageLen: i32): i32 {
  return inLen == 0 ? 0 : STATUS_TRUNCATED;
}
