/**
 * The source's counters, one object for the whole migration: bytes by phase (QEMU's
 * precopy/downtime/postcopy split), link failures survived and what they cost.
 */

/** Which phase the bytes being sent belong to. */
export type WirePhase = 'precopy' | 'downtime' | 'postcopy';

/** Counters of one migration source. */
export interface SourceStats {
  /** All frame bytes sent (headers included). */
  wireBytes: number;
  precopyBytes: number;
  downtimeBytes: number;
  postcopyBytes: number;
  /** Phase the next bytes count in. */
  phase: WirePhase;
  /** Connections lost and survived. */
  drops: number;
  /** Wire bytes of frames the target lost and that were sent again. */
  resentBytes: number;
  /** Corrupted frames detected (checksum). */
  corruptionsDetected: number;
  /** Pages re-sent by full verification passes. */
  repairedPages: number;
  /** Round-0 pages skipped because the target held them. */
  knownPagesSkipped: number;
  /** Throttle in force, percent. */
  throttlePct: number;
  /** Count `bytes` sent now. */
  countWire(bytes: number): void;
}

/** Fresh counters (phase: pre-copy). */
export function createSourceStats(): SourceStats {
  return {
    wireBytes: 0, precopyBytes: 0, downtimeBytes: 0, postcopyBytes: 0, phase: 'precopy',
    drops: 0, resentBytes: 0, corruptionsDetected: 0, repairedPages: 0, knownPagesSkipped: 0, throttlePct: 0,
    countWire(bytes: number): void {
      this.wireBytes += bytes;
      if (this.phase === 'postcopy') this.postcopyBytes += bytes;
      else if (this.phase === 'downtime') this.downtimeBytes += bytes;
      else this.precopyBytes += bytes;
    },
  };
}
