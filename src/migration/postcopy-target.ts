/**
 * Post-copy on the target (placeholder until the post-copy work lands).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Connection } from '../protocol/connection.js';
import type { Frame } from '../protocol/frame.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { Clock } from './common.js';

export interface PostcopyTargetState {
  faults: number;
  latencySummary(): { median: number; p99: number };
  onPagesApplied(pages: ArrayLike<number>): void;
}

export interface PostcopyTargetHost {
  memory: GuestMemory;
  clock: Clock;
  startGuest(): Promise<void>;
  parsePages(p: Uint8Array): Uint32Array;
}

export async function onPostcopyFrame(_target: { postcopy: PostcopyTargetState | null }, _conn: Connection, _f: Frame, _host: PostcopyTargetHost): Promise<void> {
  throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, 'post-copy is not supported by this target build');
}
