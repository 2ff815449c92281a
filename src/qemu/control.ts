/**
 * QEMU migration control over QMP, shared by the QEMU source and target endpoints: capabilities,
 * `query-migrate` polling, QEMU's own figures, and putting a source guest back to running after a
 * failed migration.
 *
 * QEMU's migration states (qapi/migration.json): none, setup, active, pre-switchover, device,
 * completed, failed, cancelling, cancelled (and post-copy/colo states, not used here).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { QmpClient } from './qmp.js';

/** The subset of `query-migrate` pagewire reads. */
export interface QemuMigrateInfo {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: { transferred?: number; total?: number; duplicate?: number; normal?: number; 'normal-bytes'?: number; remaining?: number };
}

/** QEMU's own figures of its part of the migration (device state and the blocks not ignored). */
export interface QemuMigrationFigures {
  /** QEMU's final migration status (`completed` on success). */
  status: string;
  /** Bytes QEMU's own stream carried (query-migrate ram.transferred). */
  transferredBytes: number;
  /** QEMU's total time, ms (from `migrate` to completion: includes pagewire's final round). */
  totalTimeMs: number;
  /** QEMU's downtime, ms (vCPUs stopped to the end on the source: includes pagewire's final round). */
  downtimeMs: number;
  setupTimeMs: number;
  /** QEMU's STOP event on the source (ms since the epoch, the source host's clock). */
  stopTimeMs: number;
}

/** Migration states in which a migration is still in progress (cancel it to abandon). */
export const QEMU_ACTIVE_STATES: readonly string[] = ['setup', 'active', 'pre-switchover', 'device', 'cancelling', 'wait-unplug'];

/** Capabilities both sides need: QEMU skips the shared RAM file, and pauses for our final round. */
export async function setQemuCapabilities(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'x-ignore-shared', state: true },
      { capability: 'pause-before-switchover', state: true },
      { capability: 'events', state: true },
    ],
  });
}

/** `query-migrate`. */
export function queryMigrate(qmp: QmpClient): Promise<QemuMigrateInfo> {
  return qmp.execute<QemuMigrateInfo>('query-migrate');
}

/**
 * Poll `query-migrate` until its status is one of `want` or one of the end states (completed,
 * failed, cancelled).
 * @throws PagewireError TIMEOUT, TRANSPORT_CLOSED (QEMU went away)
 */
export async function waitMigrationStatus(qmp: QmpClient, want: readonly string[], timeoutMs: number, pollMs = 5): Promise<QemuMigrateInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await queryMigrate(qmp);
    const s = info.status ?? 'none';
    if (want.includes(s) || s === 'completed' || s === 'failed' || s === 'cancelled') return info;
    if (Date.now() >= deadline) {
      throw new PagewireError(ErrorCode.TIMEOUT, `QEMU's migration stayed "${s}" for ${timeoutMs} ms (waiting for ${want.join(' or ')})`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** A QEMU_FAILED error for a migration that ended in `info.status`. */
export function migrationFailed(info: QemuMigrateInfo, what: string): PagewireError {
  const desc = info['error-desc'] ? `: ${info['error-desc']}` : '';
  return new PagewireError(ErrorCode.QEMU_FAILED, `${what}: QEMU's migration is "${info.status ?? 'none'}"${desc}`);
}

/** QEMU's figures from a final `query-migrate`. */
export function qemuFigures(info: QemuMigrateInfo, stopTimeMs: number): QemuMigrationFigures {
  return {
    status: info.status ?? 'none',
    transferredBytes: info.ram?.transferred ?? 0,
    totalTimeMs: info['total-time'] ?? 0,
    downtimeMs: info.downtime ?? 0,
    setupTimeMs: info['setup-time'] ?? 0,
    stopTimeMs,
  };
}

/**
 * After a failed migration: cancel QEMU's migration if it is still in progress and make sure the
 * source guest runs (`cont` if QEMU left it stopped). A migration QEMU already completed is left
 * alone (its guest belongs to the destination now).
 * @returns whether the source guest is running afterwards
 */
export async function recoverSource(qmp: QmpClient, timeoutMs = 10_000): Promise<boolean> {
  let info = await queryMigrate(qmp);
  if (QEMU_ACTIVE_STATES.includes(info.status ?? 'none')) {
    await qmp.execute('migrate_cancel');
    info = await waitMigrationStatus(qmp, [], timeoutMs);
  }
  if (info.status === 'completed') return false;
  // QEMU restarts a guest it stopped when the migration is cancelled or fails; wait for that briefly
  const deadline = Date.now() + Math.min(timeoutMs, 2_000);
  for (;;) {
    const st = await qmp.execute<{ running: boolean; status: string }>('query-status');
    if (st.running) return true;
    if (Date.now() >= deadline || !['finish-migrate', 'inmigrate'].includes(st.status)) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  await qmp.execute('cont');
  return (await qmp.execute<{ running: boolean }>('query-status')).running;
}
