// What yielding to the event loop costs (issue 17): whole migrations over memoryPair, source and
// target in this thread, with the source's yieldIntervalMs varied (Infinity = never, the old
// behaviour). A 1 ms setInterval runs alongside and counts its calls: the point of yielding.
//
// Rows: ctx.addScenario({ kind: 'event-loop', name, guestBytes, yieldIntervalMs, runs, mbPerSec
// (median guest MB/s, wall clock), vsNever (ratio of medians), cpuMsPerMiB (median process CPU
// time per MiB of guest: unlike wall time, not inflated by other load on the machine),
// cpuVsNever, timerCalls (median during the migration), timerGapP50Ms / timerGapMaxMs (medians) }).
import * as pw from '../dist/index.js';
import { fillInitial } from '../dist/sim/index.js';

const MiB = 1024 * 1024;
const INTERVALS = [Infinity, 16, 4, 1, 0];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[(s.length - 1) >> 1];
};

async function once(pages, yieldIntervalMs) {
  const src = pw.GuestMemory.inCore(await pw.createCore(), pages);
  fillInitial(src, 'mixed', 1);
  const dst = pw.GuestMemory.inCore(await pw.createCore(), pages);
  const log = { start() {}, stop() {}, sync: () => new Uint32Array(0) };
  const [a, b] = pw.memoryPair();
  const gaps = [];
  let last = 0;
  let counting = false;
  const timer = setInterval(() => {
    if (!counting) return;
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }, 1);
  try {
    const source = new pw.MigrationSource(src, log, a, { codecs: 'raw', yieldIntervalMs });
    const target = new pw.MigrationTarget(dst);
    counting = true;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    last = t0;
    const [rs, rt] = await Promise.all([source.migrate(), target.run(b)]);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    counting = false;
    gaps.push(performance.now() - last);
    // results first, then figures
    if (!rs.verified || !rt.verified || rs.digest !== pw.memoryDigest(dst, dst.core)) throw new Error('yield bench: migration not verified');
    return { mbPerSec: (pages * 4096) / ms / 1000, cpuMsPerMiB: (cpu.user + cpu.system) / 1000 / ((pages * 4096) / MiB), timerCalls: gaps.length - 1, gapP50: median(gaps), gapMax: Math.max(...gaps) };
  } finally {
    clearInterval(timer);
  }
}

export default async function (ctx) {
  const guestBytes = (ctx.quick ? 16 : 64) * MiB;
  const runs = ctx.quick ? 3 : 7;
  const pages = guestBytes / 4096;
  await once(1024, 4); // warm the core and the code paths
  const res = new Map(INTERVALS.map((i) => [i, []]));
  // interleaved, so that the machine's drift spreads over every setting
  for (let r = 0; r < runs; r++) for (const i of INTERVALS) res.get(i).push(await once(pages, i));
  const never = median(res.get(Infinity).map((x) => x.mbPerSec));
  const neverCpu = median(res.get(Infinity).map((x) => x.cpuMsPerMiB));
  for (const i of INTERVALS) {
    const xs = res.get(i);
    const mbPerSec = median(xs.map((x) => x.mbPerSec));
    const cpuMsPerMiB = median(xs.map((x) => x.cpuMsPerMiB));
    ctx.addScenario({
      kind: 'event-loop', name: `memoryPair-raw-${guestBytes / MiB}MiB-yield-${i === Infinity ? 'never' : `${i}ms`}`,
      guestBytes, yieldIntervalMs: i === Infinity ? 'never' : i, runs, mbPerSec, vsNever: mbPerSec / never, cpuMsPerMiB, cpuVsNever: cpuMsPerMiB / neverCpu,
      timerCalls: median(xs.map((x) => x.timerCalls)), timerGapP50Ms: median(xs.map((x) => x.gapP50)), timerGapMaxMs: median(xs.map((x) => x.gapMax)),
    });
    ctx.log(`yield ${i}: ${mbPerSec.toFixed(0)} MB/s (${(mbPerSec / never).toFixed(2)}x never), CPU ${cpuMsPerMiB.toFixed(2)} ms/MiB (${(cpuMsPerMiB / neverCpu).toFixed(2)}x), timer calls ${median(xs.map((x) => x.timerCalls))}`);
  }
}
