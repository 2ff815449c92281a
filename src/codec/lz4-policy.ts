/**
 * The LZ4 'auto' decision: before each block of records, compress it or send it plain? A pure
 * object over block statistics and the link's speed (no clock of its own: the encoder reports the
 * time each step took), so tests replay recorded block statistics through it.
 *
 * Model (per record byte): the encoder spends `b` ns on the page codecs and framing, plus `c` ns
 * when it LZ4s the byte, which then saves `s` of it on the link; the link needs `L = 1e9 / bytes
 * per second` ns per byte. Encoder and link work at the same time (the source keeps a window of
 * frames in flight), so with a share `f` of blocks compressed a migration goes at the pace of the
 * slower of `b + f c` (encoder) and `L (1 - f s)` (link). The best share balances the two:
 *
 *   f = 1                          while the link is the bottleneck even with every block compressed
 *   f = (L - b) / (c + L s)        in between (0..1)
 *   f = 0                          when the encoder is the bottleneck without LZ4 (L <= b), or
 *                                  when LZ4 costs more per byte than the link (c >= L)
 *
 * The last rule keeps compression off a fast link (10 Gbit/s: L = 0.8 ns) unless the compressor
 * measured faster than the link per byte: `b` counts only the core's codecs and a fixed framing
 * cost, while the rest of a real pipeline (checksums, copies, the peer's decoder) also takes CPU,
 * so a balance point found from `b` alone would overstate how much CPU is idle.
 *
 * and f = 1 whenever the link time a compressed byte saves exceeds its CPU time (`s L > c`): then
 * compressing shortens the migration even if encoding and sending did not overlap at all, and
 * the encoder's own cost `b` (inflated when the machine is busy or the blocks are small XBZRLE
 * residue) cannot talk compression out of a slow link.
 *
 * Blocks are compressed at that rate (a running credit: f = 0.5 compresses every other block).
 * The estimates start from a prior measured on real memory (the shared corpus, {@link LZ4_PRIOR})
 * and follow the blocks:
 *
 * - `s` is a moving average weighted by bytes in which one 1 MiB block has weight 0.35: one
 *   incompressible block (kernel text, random or already compressed data) lowers it from the
 *   corpus' 0.45 to 0.29, which changes nothing on a link where compression pays; only a long run
 *   of them (s < 3%) stops compression, and the next compressible probe starts it again;
 * - `c` and `b` are the lowest per-byte cost of the last 8 blocks (of >= 64 KiB; the window starts
 *   full of the prior): a slow block (a first call, a pause, a GC, another process on the core)
 *   only adds time, so it cannot swing the decision, and a slower machine raises every sample;
 * - while f = 0, every `probeEvery`-th block is compressed anyway to measure again (every 64th when
 *   the encoder is the bottleneck even without LZ4);
 * - the link speed is the caller's figure when given (`linkBytesPerSec`), else the send rate the
 *   source measured from acknowledgements ({@link Lz4AutoPolicy.setSendRate}); with neither, every
 *   block is tried (a block that saves < 3% is sent plain by the encoder).
 *
 * A measured send rate is not a link speed: when the path is CPU-bound (loopback TCP, a busy
 * target, source and target sharing a core) acknowledgements arrive at the pace of the slowest
 * CPU, the rate looks like a slow link and `s L > c` would compress every block, which then costs
 * its CPU on the critical path for link time nobody was waiting for. So without a link figure the
 * policy measures what compression buys instead of modelling it ({@link Lz4AutoPolicy.notePace}):
 * the encoder reports the wall time between its calls, which in a pipeline held back by its window
 * of unacknowledged frames is the pace of the whole path, and the policy compares the path's
 * goodput (record bytes per ms) with compression as modelled ("on") and without ("off"):
 *
 *   trial on (12 calls to settle: the window's frames of the other arm drain; 20 measured)
 *   -> trial off (the same), unless the measured rate is so slow that s L > 10 (b + c + 0.3)
 *      (a link of about 150 Mbit/s or slower: compression wins by far, a plain trial would waste time)
 *   -> run the faster arm ("on" only if at least 10% faster) for 64 calls, its last 20 measured
 *   -> trial of the other arm -> run the faster for 64, or twice as long as the last run when the
 *      same arm won again (at most 512) -> ...
 *
 * A call interval over 250 ms (a round boundary, a pause) is not a sample. Trials start with the
 * first call after a send rate is known, so an encoder used without a link (a benchmark, a file)
 * keeps the plain rules above.
 */

/** Where the estimates start (measured on the shared corpus, see {@link LZ4_PRIOR}). */
export interface Lz4Prior {
  /** Fraction of record bytes LZ4 saves, 0..1. */
  saveFrac: number;
  /** Compressor CPU per record byte (ns). */
  nsPerByte: number;
  /** Encoder CPU per record byte without LZ4 (ns): page codecs in the core. */
  encodeNsPerByte: number;
}

/**
 * Measured 2026-12-04 on ../shared/corpus (vm-redis, proc-redis; test/fixtures/lz4-blocks.json)
 * with the core's compressor on the encoder's blocks of records (256 pages): LZ4 saved 0.45-0.54
 * of round 0's record bytes and 0.36-0.49 of the dirty rounds'; the compressor took 1.6-1.8 ns per
 * record byte and the core's page codecs ('all' without LZ4) about 1 ns, in process CPU time on
 * this 2-core machine; the compressor's 6-byte match search (later that day) is 1.10-1.16x faster
 * on the same pages (1.4-1.6 ns). The prior takes the low saving and the high cost.
 */
export const LZ4_PRIOR: Readonly<Lz4Prior> = Object.freeze({ saveFrac: 0.45, nsPerByte: 1.6, encodeNsPerByte: 1.0 });

/** Options of {@link Lz4AutoPolicy}. */
export interface Lz4PolicyOptions {
  /** The link's bandwidth when known (bytes/s); 0 or absent: use the measured send rate. */
  linkBytesPerSec?: number;
  /** Starting estimates. Default {@link LZ4_PRIOR}. */
  prior?: Lz4Prior;
  /** While compression does not pay, compress every n-th block anyway to measure again. Default 4. */
  probeEvery?: number;
  /**
   * Without a link figure, compare the path's goodput with and without compression
   * ({@link Lz4AutoPolicy.notePace}) once a send rate is known. Default true.
   */
  paceTrials?: boolean;
}

/** One attempt the encoder made (what {@link Lz4AutoPolicy.record} takes). */
export interface Lz4BlockSample {
  /** Record bytes given to the compressor. */
  inBytes: number;
  /** Compressed bytes, or `inBytes` when the output would not have saved 3% (not sent compressed). */
  outBytes: number;
  /** Time the compressor took (ms). */
  ms: number;
}

/** Counters of the decision, for reports (blocks compressed, bytes saved, CPU spent). */
export interface Lz4DecisionStats {
  /** Blocks the encoder asked about. */
  blocks: number;
  /** Blocks given to the compressor (whether or not they paid). */
  tried: number;
  /** Of those, tried only to measure again (compression was off). */
  probes: number;
  /** Blocks sent compressed. */
  compressed: number;
  /** Record bytes saved on the wire by the blocks sent compressed. */
  savedBytes: number;
  /** Compressor time over all tries (ms). */
  cpuMs: number;
  /** The estimates now: saving, compressor ns per byte, encoder ns per byte without LZ4. */
  saveFrac: number;
  nsPerByte: number;
  encodeNsPerByte: number;
  /** The share of blocks the last decision aimed to compress (0..1). */
  share: number;
  /** The link speed the last decision used (bytes/s; 0 = unknown). */
  linkBytesPerSec: number;
  /** Goodput trials done (no link figure): phases in which one arm was measured after a switch. */
  trials: number;
  /** The path's goodput last measured with compression as modelled / without (record MB/s; 0 = not measured). */
  paceOnMBps: number;
  paceOffMBps: number;
  /** The arm now: compression as modelled (true) or off (false). */
  paceArm: boolean;
}

/** Weight of one MiB of records in the saving estimate. */
const SAVE_WEIGHT_PER_MIB = 0.35;
/** Cost samples the estimate is the minimum of (the window slides one per block of >= 64 KiB). */
const COST_WINDOW = 8;
/** Blocks smaller than this give no cost sample (timer resolution, fixed overheads). */
const COST_MIN_BYTES = 64 * 1024;
/** Per record byte the source spends beyond the core's codecs (framing, checksum, send), ns. */
const SEND_NS_PER_BYTE = 0.3;
/** Below this saving a block is not worth compressing at any link speed (the encoder's 3% rule). */
const MIN_SAVE = 0.03;
/** Probe interval when even a perfect saving could not pay on this link. */
const PROBE_HOPELESS = 64;
/** Goodput trials: calls after a switch before measuring (the other arm's frames in flight drain). */
const TRIAL_SETTLE = 12;
/** Goodput trials: calls measured per arm (a trial's tail, a run's tail). */
const TRIAL_MEASURE = 20;
/** Goodput trials: calls a run of the faster arm lasts at first, and at most (doubling while it keeps winning). */
const RUN_MIN = 64;
const RUN_MAX = 512;
/** A call interval longer than this (a round boundary, a pause) is not a goodput sample (ms). */
const PACE_GAP_MS = 250;
/** No plain trial while s L > this times (b + c): compression wins by far on so slow a path. */
const TRIAL_SKIP = 10;
/** Compression must be this much faster to be chosen: on a tie it only spends CPU, and on a busy machine single trials differ by more than 3% (where it pays on a link, it is 1.5-2x faster). */
const ON_MARGIN = 1.1;

/** The LZ4 'auto' decision (one per encoder). */
export class Lz4AutoPolicy {
  private saveFrac: number;
  private nsPerByte: number;
  private encodeNs: number;
  private readonly lz4Cost: CostWindow;
  private readonly encodeCost: CostWindow;
  private readonly linkBps: number;
  private sendRate = 0;
  private readonly probeEvery: number;
  private sinceTry = 0;
  private credit = 1;
  private probing = false;
  /** Goodput trials (no link figure): enabled, in a trial (else a run), calls into the phase, its length, measured tail. */
  private readonly trialsOn: boolean;
  private inTrial = true;
  private phaseCalls = 0;
  private phaseLen = TRIAL_SETTLE + TRIAL_MEASURE;
  private runLen = RUN_MIN;
  private measBytes = 0;
  private measMs = 0;
  /** Counters and estimates (a plain object, updated in place). */
  readonly stats: Lz4DecisionStats;

  constructor(opts: Lz4PolicyOptions = {}) {
    const prior = opts.prior ?? LZ4_PRIOR;
    this.saveFrac = prior.saveFrac;
    this.nsPerByte = prior.nsPerByte;
    this.encodeNs = prior.encodeNsPerByte;
    this.lz4Cost = new CostWindow(prior.nsPerByte);
    this.encodeCost = new CostWindow(prior.encodeNsPerByte);
    this.linkBps = opts.linkBytesPerSec !== undefined && opts.linkBytesPerSec > 0 ? opts.linkBytesPerSec : 0;
    this.probeEvery = Math.max(1, Math.floor(opts.probeEvery ?? 4));
    this.trialsOn = this.linkBps === 0 && opts.paceTrials !== false;
    this.stats = {
      blocks: 0, tried: 0, probes: 0, compressed: 0, savedBytes: 0, cpuMs: 0,
      saveFrac: this.saveFrac, nsPerByte: this.nsPerByte, encodeNsPerByte: this.encodeNs, share: 1, linkBytesPerSec: this.linkBps,
      trials: 0, paceOnMBps: 0, paceOffMBps: 0, paceArm: true,
    };
  }

  /**
   * The send rate the source measured (acknowledged bytes/s). Used when no link figure was given.
   * @param bytesPerSec the estimate; 0 or less: unknown
   */
  setSendRate(bytesPerSec: number): void {
    this.sendRate = Number.isFinite(bytesPerSec) && bytesPerSec > 0 ? bytesPerSec : 0;
  }

  /** The link speed decisions use now (bytes/s; 0 = unknown). */
  linkBytesPerSec(): number {
    return this.linkBps > 0 ? this.linkBps : this.sendRate;
  }

  /** The share of blocks to compress with the current estimates (0..1; see the file header). */
  share(): number {
    if (this.saveFrac < MIN_SAVE) return 0;
    const bps = this.linkBytesPerSec();
    if (bps <= 0) return 1;
    const linkNs = 1e9 / bps;
    // the link time a compressed byte saves exceeds its CPU time: a win even with no overlap
    if (this.saveFrac * linkNs > this.nsPerByte) return 1;
    const b = this.encodeNs + SEND_NS_PER_BYTE;
    if (linkNs <= b || this.nsPerByte >= linkNs) return 0;
    return Math.min(1, (linkNs - b) / (this.nsPerByte + linkNs * this.saveFrac));
  }

  /** Decide for the next block: true = compress it (then {@link record} the attempt). */
  next(): boolean {
    const st = this.stats;
    st.blocks++;
    st.linkBytesPerSec = this.linkBytesPerSec();
    this.probing = false;
    if (!st.paceArm) { st.share = 0; return false; } // a goodput trial or run without compression
    const f = this.share();
    st.share = f;
    if (f > 0) {
      this.sinceTry = 0;
      this.credit = Math.min(1, this.credit + f);
      if (this.credit < 1 - 1e-9) return false;
      this.credit -= 1;
      return true;
    }
    // the encoder is the bottleneck even without LZ4, or LZ4 is slower than the link: measure
    // again only rarely (a probe costs what it measures)
    const bps = st.linkBytesPerSec;
    const hopeless = bps > 0 && (1e9 / bps <= this.encodeNs + SEND_NS_PER_BYTE || this.nsPerByte >= 1e9 / bps);
    if (++this.sinceTry >= (hopeless ? PROBE_HOPELESS : this.probeEvery)) {
      this.sinceTry = 0;
      this.probing = true;
      st.probes++;
      return true;
    }
    return false;
  }

  /**
   * Report the wall time of the encoder's last call, from its start to the start of the next one
   * (encode, compress, frame, wait for the window, send: the pace of the path), and the record bytes
   * it produced. Drives the goodput trials when no link figure was given (see the file header);
   * ignored with a link figure and until a send rate is known.
   * @param recordBytes record bytes of the call (before LZ4)
   * @param ms wall time of the call's interval
   */
  notePace(recordBytes: number, ms: number): void {
    if (!this.trialsOn || this.sendRate <= 0) return;
    const st = this.stats;
    this.phaseCalls++;
    if (this.phaseCalls > this.phaseLen - TRIAL_MEASURE && recordBytes > 0 && ms > 0 && ms <= PACE_GAP_MS) {
      this.measBytes += recordBytes;
      this.measMs += ms;
    }
    if (this.phaseCalls < this.phaseLen) return;
    // the phase ends: its arm's goodput (record MB/s)
    const g = this.measMs > 0 ? this.measBytes / this.measMs / 1e3 : 0;
    const arm = st.paceArm;
    if (arm) st.paceOnMBps = g; else st.paceOffMBps = g;
    if (this.inTrial) st.trials++;
    this.phaseCalls = 0;
    this.measBytes = 0;
    this.measMs = 0;
    const other = arm ? st.paceOffMBps : st.paceOnMBps;
    if (this.inTrial && other > 0) {
      // both arms measured, the trial's last: run the faster (the same one as before: twice as long)
      const on = st.paceOnMBps > 0 && st.paceOnMBps >= ON_MARGIN * st.paceOffMBps;
      this.runLen = on === this.lastRun ? Math.min(RUN_MAX, 2 * this.runLen) : RUN_MIN;
      this.lastRun = on;
      this.startPhase(false, on, this.runLen);
    } else if (arm && this.plainHopeless()) {
      // so slow a path that compression wins by far: no plain trial, keep running
      this.lastRun = true;
      this.startPhase(false, true, this.runLen);
    } else {
      // a run (or the first trial) ended: try the other arm
      this.startPhase(true, !arm, TRIAL_SETTLE + TRIAL_MEASURE);
    }
  }

  /** The arm the last run used (null before the first). */
  private lastRun: boolean | null = null;

  private startPhase(trial: boolean, arm: boolean, len: number): void {
    this.inTrial = trial;
    this.phaseLen = Math.max(len, TRIAL_SETTLE + TRIAL_MEASURE);
    this.stats.paceArm = arm;
  }

  /** Whether a plain trial would only waste time: s L > TRIAL_SKIP (b + c) on the measured rate. */
  private plainHopeless(): boolean {
    const bps = this.linkBytesPerSec();
    return bps > 0 && (this.saveFrac * 1e9) / bps > TRIAL_SKIP * (this.nsPerByte + this.encodeNs + SEND_NS_PER_BYTE);
  }

  /** Count a block compressed whatever the estimates say (policy 'always'); returns true. */
  force(): true {
    this.stats.blocks++;
    this.probing = false;
    return true;
  }

  /**
   * Report the encoder's own time for a block of records (the page codecs, before any LZ4).
   * @param recordBytes the block's record bytes
   * @param ms time in the core for it
   */
  noteEncode(recordBytes: number, ms: number): void {
    if (!(recordBytes > 0) || !(ms >= 0)) return;
    this.encodeNs = this.encodeCost.add((ms * 1e6) / recordBytes, recordBytes);
    this.stats.encodeNsPerByte = this.encodeNs;
  }

  /** Report the attempt that follows a `true` from {@link next} or {@link force}. */
  record(sample: Lz4BlockSample): void {
    const n = sample.inBytes;
    if (!(n > 0)) return;
    const out = Math.min(Math.max(sample.outBytes, 0), n);
    const ms = Math.max(0, sample.ms);
    const st = this.stats;
    st.tried++;
    st.cpuMs += ms;
    if (out < n * (1 - MIN_SAVE)) { st.compressed++; st.savedBytes += n - out; }
    this.saveFrac += Math.min(1, (SAVE_WEIGHT_PER_MIB * n) / (1 << 20)) * ((n - out) / n - this.saveFrac);
    this.nsPerByte = this.lz4Cost.add((ms * 1e6) / n, n);
    st.saveFrac = this.saveFrac;
    st.nsPerByte = this.nsPerByte;
  }

  /** Whether the last `true` from {@link next} was a probe (compression was off). */
  wasProbe(): boolean {
    return this.probing;
  }
}

/**
 * A CPU cost estimate robust to a busy machine: the lowest per-byte cost of the last
 * COST_WINDOW samples (the window starts full of the prior). Preemption, pauses and GC only ever
 * add time to a sample, so the minimum is what the work costs when it runs; a machine that is
 * really slower raises every sample and the minimum follows within COST_WINDOW blocks.
 */
class CostWindow {
  private readonly samples = new Float64Array(COST_WINDOW);
  private next = 0;
  constructor(prior: number) { this.samples.fill(prior); }

  /** Add a sample (ns per byte over `bytes`); returns the estimate. */
  add(nsPerByte: number, bytes: number): number {
    if (bytes >= COST_MIN_BYTES && nsPerByte > 0 && Number.isFinite(nsPerByte)) {
      this.samples[this.next] = nsPerByte;
      this.next = (this.next + 1) % COST_WINDOW;
    }
    let m = this.samples[0]!;
    for (let i = 1; i < COST_WINDOW; i++) m = Math.min(m, this.samples[i]!);
    return m;
  }
}
