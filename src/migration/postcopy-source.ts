/**
 * Post-copy on the source (placeholder until the post-copy work lands).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { RoundReport } from './report.js';

export interface PostcopyResult {
  rounds: RoundReport[];
  downtimeMs: number;
  faults: number;
  latencies: number[];
}

export async function runPostcopySource(_host: unknown, _round: number, _pausedAt: number): Promise<PostcopyResult> {
  throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'post-copy is not available in this build');
}
