/**
 * The QEMU target endpoint: receives a guest's RAM from a {@link QemuSource} into the destination
 * QEMU's RAM file while that QEMU waits for QEMU's own stream (`-incoming defer`).
 *
 *   open: QMP connect (the destination must be in `inmigrate`), capabilities, RAM file opened
 *   run: `migrate-incoming` (QEMU listens for the device state); pagewire's migration, every PAGES
 *     frame written through to the RAM file (behind, on Node's I/O thread pool; all of it before
 *     the target reports the digest verified); the digest verified; then the source's
 *     `migrate-continue` sends the device state and the destination runs the guest: run() waits
 *     for that RESUME and reports the guest pause (source STOP to destination RESUME)
 *
 * The memory is complete and verified before QEMU loads the device state, which it needs (an
 * incomplete RAM file makes QEMU refuse the state or the guest kernel panic).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { createCore } from '../core/core.js';
import { GuestMemory, type MemoryLayout } from '../memory/guest-memory.js';
import { MigrationTarget, type TargetOptions, type TargetTransports } from '../migration/target.js';
import type { MigrationReport } from '../migration/report.js';
import type { Transport } from '../transport/types.js';
import { QmpClient } from './qmp.js';
import { RamFile } from './ram-file.js';
import { setQemuCapabilities } from './control.js';
import { checkIncomingUri } from './incoming.js';
import { decodeSwitchoverNote } from './switchover-note.js';

/** Options of {@link QemuTarget}. */
export interface QemuTargetOptions extends TargetOptions {
  /** The destination QEMU's QMP socket path or a connected client. */
  qmp: string | QmpClient;
  /** The destination's RAM file (its memory-backend-file mem-path). */
  ramPath: string;
  /** Where the destination QEMU listens for QEMU's own stream: `tcp:HOST:PORT`. */
  incomingUri: string;
  /** Page size, bytes (default 4096). */
  pageSize?: number;
  /** How long to wait for the destination guest to run after pagewire verified the memory, ms (default 30 000). */
  resumeTimeoutMs?: number;
}

/** What the target saw of QEMU. */
export interface QemuTargetFigures {
  /** QEMU's RESUME event on the destination, ms since the epoch. */
  resumeTimeMs: number;
  /** QEMU's STOP event on the source (from the source's switch-over note), ms since the epoch; 0 if unknown. */
  stopTimeMs: number;
  /** Guest pause: source STOP to destination RESUME, ms (across hosts it includes their clock offset); -1 if unknown. */
  guestPauseMs: number;
  /** The destination's run state afterwards. */
  status: string;
}

/** The target's report: pagewire's plus what QEMU showed. */
export interface QemuTargetReport extends MigrationReport {
  qemu: QemuTargetFigures;
}

/** Target endpoint for a QEMU destination. Create with {@link QemuTarget.open}. */
export class QemuTarget {
  /** The pagewire target (events). */
  readonly target: MigrationTarget;
  private stopTimeMs = 0;
  private memory: GuestMemory | null = null;

  /**
   * The destination's RAM file held nothing when opened (all holes, as QEMU creates it): the
   * source need not send zero pages (tell it: QemuSourceOptions.freshTarget; the CLI does).
   */
  readonly fresh: boolean;

  private constructor(readonly qmp: QmpClient, private readonly file: RamFile, private readonly opts: QemuTargetOptions, private readonly ownsQmp: boolean) {
    const { qmp: _q, ramPath: _r, incomingUri: _i, pageSize: _p, resumeTimeoutMs: _t, ...targetOptions } = opts;
    this.fresh = file.isEmpty();
    this.target = new MigrationTarget((layout) => this.makeMemory(layout), { ...targetOptions, memoryZeroed: this.fresh }, {
      pagesWritten: (pages) => this.file.writePages(this.memory!, pages),
      deviceState: (blob) => { this.stopTimeMs = decodeSwitchoverNote(blob)?.stopTimeMs ?? 0; },
      // verified: the RAM file must hold every page before the source lets QEMU load the device state
      guestMayRun: () => this.file.flush(),
    });
  }

  /**
   * Connect to the destination QEMU (started with `-incoming defer`) and open its RAM file.
   * @throws PagewireError INVALID_ARGUMENT (RAM file, URI), QEMU_FAILED (not waiting for a
   *   migration), TRANSPORT_CLOSED / TIMEOUT (QMP)
   */
  static async open(options: QemuTargetOptions): Promise<QemuTarget> {
    checkIncomingUri(options.incomingUri);
    const ownsQmp = typeof options.qmp === 'string';
    const qmp = typeof options.qmp === 'string' ? await QmpClient.connect(options.qmp) : options.qmp;
    let file: RamFile | null = null;
    try {
      const st = await qmp.execute<{ status: string }>('query-status');
      if (st.status !== 'inmigrate') throw new PagewireError(ErrorCode.QEMU_FAILED, `the destination QEMU is not waiting for a migration (status "${st.status}"; start it with -incoming defer)`);
      file = RamFile.open(options.ramPath, true, options.pageSize);
      await setQemuCapabilities(qmp);
      return new QemuTarget(qmp, file, options, ownsQmp);
    } catch (err) {
      file?.close();
      if (ownsQmp) qmp.close();
      throw err;
    }
  }

  /**
   * Serve one migration: start QEMU's incoming side, receive and verify the RAM, then wait for
   * the destination guest to run.
   * @throws PagewireError from pagewire (the destination guest never runs), QEMU_FAILED or
   *   TIMEOUT when the destination QEMU did not run the guest
   */
  async run(transports: TargetTransports): Promise<QemuTargetReport> {
    await this.qmp.execute('migrate-incoming', { uri: this.opts.incomingUri });
    const since = this.qmp.eventCount;
    const watched = this.failWithQemu(transports);
    const rep = await this.target.run(watched.transports).finally(watched.stop);
    // The source lets QEMU send the device state once it has our verification.
    let resume;
    try {
      resume = await this.qmp.waitEvent('RESUME', this.opts.resumeTimeoutMs ?? 30_000, { since });
    } catch (cause) {
      throw new PagewireError(ErrorCode.QEMU_FAILED, `the memory was verified but the destination guest did not run: ${(cause as Error).message}`, { cause });
    }
    const st = await this.qmp.execute<{ status: string }>('query-status');
    return {
      ...rep,
      qemu: {
        resumeTimeMs: resume.timeMs, stopTimeMs: this.stopTimeMs,
        guestPauseMs: this.stopTimeMs > 0 ? resume.timeMs - this.stopTimeMs : -1, status: st.status,
      },
    };
  }

  /**
   * The connections, cut when the destination QEMU goes away (its QMP connection closes): the
   * migration then fails at once with QEMU_FAILED instead of running to a switch-over that cannot
   * happen, and no reconnection is accepted.
   */
  private failWithQemu(transports: TargetTransports): { transports: TargetTransports; stop: () => void } {
    let current: Transport | null = typeof transports === 'function' ? null : transports;
    let watching = true;
    const gone = this.qmp.whenClosed().then((cause) => new PagewireError(ErrorCode.QEMU_FAILED, `the destination QEMU went away (${cause.message})`, { cause }));
    let goneError: PagewireError | null = null;
    void gone.then((e) => {
      if (!watching) return;
      goneError = e;
      current?.destroy(e);
    });
    const stop = (): void => { watching = false; };
    if (typeof transports !== 'function') return { transports, stop };
    return { stop, transports: async () => {
      const t = await Promise.race([transports(), gone.then((e) => Promise.reject(e))]);
      if (goneError) {
        t.destroy(goneError);
        throw goneError;
      }
      current = t;
      return t;
    } };
  }

  /** Close the QMP connection (if this endpoint opened it) and the RAM file. */
  close(): void {
    if (this.ownsQmp) this.qmp.close();
    this.file.close();
  }

  /** Target memory: in a core, sized by the source's layout, holding what the RAM file holds. */
  private async makeMemory(layout: MemoryLayout): Promise<GuestMemory> {
    const bytes = layout.regions.reduce((n, r) => n + r.pageCount, 0) * layout.pageSize;
    if (layout.pageSize !== this.file.pageSize || bytes !== this.file.byteLength) {
      throw new PagewireError(ErrorCode.LAYOUT_MISMATCH, `the source's guest is ${bytes} bytes in ${layout.pageSize}-byte pages; the destination's RAM file ${this.file.path} is ${this.file.byteLength} bytes in ${this.file.pageSize}-byte pages`);
    }
    const memory = GuestMemory.inCore(await createCore(), layout.regions, layout.pageSize);
    // a fresh destination file is all holes: zeroed memory already equals it (no 256 MiB first
    // touch), and zero pages need not be written into it
    if (this.fresh) this.file.assumeHoles(memory);
    else this.file.readInto(memory);
    // pages reach the file on Node's I/O thread pool while this thread decodes the next frames
    this.file.writeBehind(memory);
    this.memory = memory;
    return memory;
  }
}
