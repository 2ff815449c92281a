/**
 * The QEMU source endpoint: pagewire carries a running QEMU guest's RAM, QEMU carries only the
 * device state (docs/QEMU.md).
 *
 *   open: QMP connect, the RAM file opened, guest memory allocated in a core (nothing read yet)
 *   pre-copy rounds (pagewire): round 0 reads the RAM file batch by batch as it sends; later
 *     rounds find dirty pages by re-reading and hashing the RAM file
 *   switch-over (the pause hook): x-ignore-shared + pause-before-switchover set, QMP `migrate` to
 *     the destination QEMU; QEMU sends its small blocks, stops the vCPUs and waits in
 *     `pre-switchover`
 *   final round (pagewire): the last dirty pages, then the target verifies the memory digest and
 *     writes its RAM file
 *   `migrate-continue`: QEMU sends the device state; the destination loads it and runs the guest
 *
 * Failure anywhere: QEMU's migration is cancelled and the source guest runs again (`cont` if QEMU
 * left it stopped); the error says whether it does.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore } from '../core/core.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { MigrationSource, type SourceOptions } from '../migration/source.js';
import type { MigrationReport } from '../migration/report.js';
import type { Transport, TransportFactory } from '../transport/types.js';
import { QmpClient } from './qmp.js';
import { RamFile, RamFileDirtyLog } from './ram-file.js';
import {
  QEMU_ACTIVE_STATES, migrationFailed, qemuFigures, queryMigrate, recoverSource, setQemuCapabilities, waitMigrationStatus,
  type QemuMigrationFigures,
} from './control.js';
import { checkIncomingUri } from './incoming.js';
import { encodeSwitchoverNote } from './switchover-note.js';

/**
 * Rounds in a row without a shrinking dirty set after which the QEMU source switches over
 * (pagewire's default is 4): every round re-reads and hashes the whole RAM file, and a guest
 * whose hot set the link cannot outrun re-dirties the same pages each round, so further rounds
 * cost CPU and time without lowering the pause (bench:qemu: a 2 MiB hot set, ~920 pages per round).
 */
export const QEMU_STALL_ROUNDS = 2;

/** The migration source's default pages per PAGES frame (SourceOptions.batchPages). */
const DEFAULT_SEND_BATCH_PAGES = 256;

/** Options of {@link QemuSource}: pagewire's source options plus where QEMU is. */
export interface QemuSourceOptions extends Omit<SourceOptions, 'mode'> {
  /** The source QEMU's QMP socket path (`-qmp unix:PATH,server=on,wait=off`) or a connected client. */
  qmp: string | QmpClient;
  /** The source guest's RAM file (`-object memory-backend-file,mem-path=FILE,share=on`). */
  ramPath: string;
  /**
   * Where the destination QEMU listens for QEMU's own stream (`tcp:HOST:PORT`), or a function
   * asked at the switch-over (the CLI learns it from the target on connecting).
   */
  migrateUri: string | (() => string | undefined);
  /**
   * The destination's RAM file is fresh (all holes, as QEMU creates it): round 0 then sends no
   * zero page (and touches none in memory). A function is asked when the migration starts (the
   * CLI learns it from the target's incoming line). A wrong claim fails the verification; the
   * source guest keeps running. Default false.
   */
  freshTarget?: boolean | (() => boolean | undefined);
  /** Page size, bytes (default 4096, x86). */
  pageSize?: number;
  /** Bound on each QEMU phase: reaching pre-switchover, completing after migrate-continue, ms (default 30 000). */
  qemuTimeoutMs?: number;
}

/** The source's report: pagewire's plus QEMU's own figures. */
export interface QemuSourceReport extends MigrationReport {
  qemu: QemuMigrationFigures;
}

/** Source endpoint for a running QEMU guest. Create with {@link QemuSource.open}. */
export class QemuSource {
  /** The pagewire source (listen to its events: round, progress, switchover...). */
  readonly source: MigrationSource;
  private stopTimeMs = 0;
  private guestRunning = true;

  private constructor(
    readonly qmp: QmpClient,
    private readonly file: RamFile,
    readonly memory: GuestMemory,
    private readonly dirtyLog: RamFileDirtyLog,
    transport: Transport | TransportFactory,
    private readonly opts: QemuSourceOptions,
    private readonly ownsQmp: boolean,
  ) {
    const { qmp: _q, ramPath: _r, migrateUri: _m, freshTarget: _f, pageSize: _p, qemuTimeoutMs: _t, ...sourceOptions } = opts;
    this.source = new MigrationSource(memory, dirtyLog, transport, { ...sourceOptions, stallRounds: sourceOptions.stallRounds ?? QEMU_STALL_ROUNDS, mode: 'precopy' }, {
      pause: () => this.pause(),
      deviceState: () => encodeSwitchoverNote({ stopTimeMs: this.stopTimeMs }),
    });
  }

  /**
   * Connect to the source QEMU and open its RAM file.
   * @throws PagewireError INVALID_ARGUMENT (RAM file), QEMU_FAILED (not running, a migration in
   *   progress), TRANSPORT_CLOSED / TIMEOUT (QMP)
   */
  static async open(transport: Transport | TransportFactory, options: QemuSourceOptions): Promise<QemuSource> {
    if (typeof options.migrateUri === 'string') checkIncomingUri(options.migrateUri);
    // both read the source's whole memory, which this source does not hold (it reads the RAM file
    // batch by batch as it sends); the default digest verification covers every page sent
    if ((options.verify ?? 'digest') !== 'digest' || options.knownPages) {
      const what = options.knownPages ? 'knownPages' : `verify '${String(options.verify)}'`;
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `the QEMU source does not support ${what}: it keeps no copy of the guest's memory (its memory digest is verified)`);
    }
    const ownsQmp = typeof options.qmp === 'string';
    const qmp = typeof options.qmp === 'string' ? await QmpClient.connect(options.qmp) : options.qmp;
    let file: RamFile | null = null;
    try {
      const st = await qmp.execute<{ running: boolean; status: string }>('query-status');
      if (!st.running) throw new PagewireError(ErrorCode.QEMU_FAILED, `the source guest is not running (QEMU status "${st.status}")`);
      const mig = await queryMigrate(qmp);
      if (QEMU_ACTIVE_STATES.includes(mig.status ?? 'none')) throw new PagewireError(ErrorCode.QEMU_FAILED, `the source QEMU is already migrating (status "${mig.status}")`);
      file = RamFile.open(options.ramPath, false, options.pageSize);
      // Nothing is read yet, and the guest's memory is never copied: each batch is read from the
      // file into a staging arena just before it is encoded (RamFileDirtyLog); `memory` only gives
      // the layout and the addresses of the staged pages.
      const memory = GuestMemory.inCore(await createCore(), [{ name: 'pc.ram', pageCount: file.pageCount }], file.pageSize);
      const fresh = options.freshTarget;
      const log = new RamFileDirtyLog(file, memory, {
        sendBatchPages: options.batchPages ?? DEFAULT_SEND_BATCH_PAGES,
        skipZero: typeof fresh === 'function' ? () => fresh() === true : fresh === true,
      });
      return new QemuSource(qmp, file, memory, log, transport, options, ownsQmp);
    } catch (err) {
      file?.close();
      if (ownsQmp) qmp.close();
      throw err;
    }
  }

  /**
   * Migrate the guest. On success the guest runs on the destination and the source QEMU is in
   * `postmigrate`; on failure the source guest runs again.
   * @throws PagewireError from pagewire or QEMU_FAILED; `guestRunning` tells whether the source
   *   guest runs after the failure
   */
  async migrate(): Promise<QemuSourceReport> {
    const timeoutMs = this.opts.qemuTimeoutMs ?? 30_000;
    try {
      await setQemuCapabilities(this.qmp);
      const rep = await this.source.migrate();
      // The destination's RAM file is complete and verified: let QEMU send the device state.
      await this.qmp.execute('migrate-continue', { state: 'pre-switchover' });
      const info = await waitMigrationStatus(this.qmp, ['completed'], timeoutMs);
      if (info.status !== 'completed') throw migrationFailed(info, 'after migrate-continue');
      this.guestRunning = false;
      return { ...rep, qemu: qemuFigures(info, this.stopTimeMs) };
    } catch (err) {
      try {
        this.guestRunning = await recoverSource(this.qmp);
      } catch {
        this.guestRunning = false;
      }
      throw err;
    } finally {
      this.dirtyLog.dispose();
    }
  }

  /** Whether the source guest runs (true until a migration completed; false if a failure could not restart it). */
  get running(): boolean {
    return this.guestRunning;
  }

  /** Close the QMP connection (if this endpoint opened it) and the RAM file. */
  close(): void {
    if (this.ownsQmp) this.qmp.close();
    this.file.close();
  }

  /** The switch-over: QEMU's migration to pre-switchover (vCPUs stopped). */
  private async pause(): Promise<void> {
    const uri = typeof this.opts.migrateUri === 'function' ? this.opts.migrateUri() : this.opts.migrateUri;
    if (!uri) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'no QEMU migration URI: give migrateUri or connect to a QEMU target that names it');
    checkIncomingUri(uri);
    const since = this.qmp.eventCount;
    await this.qmp.execute('migrate', { uri });
    const info = await waitMigrationStatus(this.qmp, ['pre-switchover'], this.opts.qemuTimeoutMs ?? 30_000, 2);
    if (info.status !== 'pre-switchover') throw migrationFailed(info, 'QEMU did not reach pre-switchover');
    const stop = await this.qmp.waitEvent('STOP', 1_000, { since }).catch(() => null);
    this.stopTimeMs = stop?.timeMs ?? Date.now();
  }
}
