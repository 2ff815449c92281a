/**
 * What a QEMU source tells its target in pagewire's device-state frame (QEMU carries the real
 * device state itself): `{"qemu": 1, "stopTimeMs": N}`, the time QEMU stopped the source's vCPUs
 * (its STOP event, ms since the epoch), so the target can report the guest pause up to its own
 * RESUME event. Across hosts the figure includes their clock offset.
 */
import { PagewireError, ErrorCode } from '../errors.js';

/** The note's content. */
export interface SwitchoverNote {
  stopTimeMs: number;
}

const MAX_NOTE_BYTES = 1024;

/** Encode a note. */
export function encodeSwitchoverNote(note: SwitchoverNote): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ qemu: 1, stopTimeMs: note.stopTimeMs }));
}

/**
 * Decode a note; an empty blob (a source that is not a QEMU source) gives null.
 * @throws PagewireError PROTOCOL_VIOLATION for anything else that is not a note
 */
export function decodeSwitchoverNote(bytes: Uint8Array): SwitchoverNote | null {
  if (bytes.byteLength === 0) return null;
  const bad = (why: string): PagewireError => new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `the source's QEMU switch-over note is ${why}`);
  if (bytes.byteLength > MAX_NOTE_BYTES) throw bad(`${bytes.byteLength} bytes, above ${MAX_NOTE_BYTES}`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw bad('not JSON');
  }
  const o = v as { qemu?: unknown; stopTimeMs?: unknown };
  if (typeof v !== 'object' || v === null || o.qemu !== 1 || typeof o.stopTimeMs !== 'number' || !Number.isFinite(o.stopTimeMs) || o.stopTimeMs < 0) {
    throw bad('malformed');
  }
  return { stopTimeMs: o.stopTimeMs };
}
