// Whole migrations, engine against engine on identical scenarios (issue 7).
//
// Engines: raw (plain pre-copy, raw pages: QEMU's default), qemu (zero pages + XBZRLE, 64 MiB
// cache), pagewire (codecs 'all'), pagewire-reorder (+ dirty-frequency reordering), postcopy,
// hybrid (two pre-copy rounds, then post-copy).
//
// Two clocks:
// - simulated: src/sim/virtual/model.ts on a virtual clock (real encoder bytes, SimulatedGuest on
//   the simulated clock, the library's decide(); link and CPU modelled). Identical run to run.
// - real: MigrationSource/MigrationTarget from dist/ over the in-process shaped link (token bucket
//   + one-way delay, real clock), a SimulatedGuest writing in real time and, for post-copy, a
//   FaultingGuestRunner on the target. Small guests only; noisy; bounded in time.
//
// Rows: ctx.addScenario({ kind: 'migration', name, guestBytes, workload, link, engine, clock,
// totalTimeMs, downtimeMs, wireBytes, rounds, converged, faultLatencyMs?, ...VsRaw, roundWireBytes }).
import * as pw from '../dist/index.js';
import { loadCorpus } from '../dist/node.js';
import * as pwSim from '../dist/sim/index.js';
import { simulateMigration, calibrateCodecCosts, LINKS, DEFAULT_CODEC_COSTS } from '../dist/sim/index.js';
import { loadLz4 } from '../dist/codec/lz4.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
export const ENGINE_NAMES = ['raw', 'qemu', 'pagewire', 'pagewire-reorder', 'postcopy', 'hybrid'];
const ENGINE_SOURCE_OPTIONS = {
  raw: { codecs: 'raw' },
  qemu: { codecs: 'qemu', cacheBytes: 64 * MiB },
  pagewire: { codecs: 'all' },
  'pagewire-reorder': { codecs: 'all', reorder: true },
  postcopy: { codecs: 'all', mode: 'postcopy' },
  hybrid: { codecs: 'all', mode: 'hybrid' },
};
// Guest behaviour per workload (the dirty rate counts page writes, QEMU's way; 2000 page writes/s =
// 8 MiB/s of 4 KiB pages, each write changing one 64-byte line).
const WORKLOADS = {
  idle: { workload: 'idle' },
  hotset: { workload: 'hotset', ratePagesPerSec: 2000, writeSize: 'line' },
  zipf: { workload: 'zipf', ratePagesPerSec: 2000, writeSize: 'line' },
};
const SEED_IMAGE = 1;
const SEED_GUEST = 7;
// post-copy on a corpus guest: the target's vCPU touches pages at this rate
const CORPUS_ACCESS_RATE = 2000;

function plan(quick) {
  const sim = [];
  const links = Object.keys(LINKS);
  if (quick) {
    // the WAN hot-set case for every engine, and every link for the chart of time against bandwidth
    for (const link of links) for (const engine of ENGINE_NAMES) sim.push({ size: 256 * MiB, workload: 'hotset', link, engine });
    for (const workload of ['idle', 'zipf']) for (const engine of ENGINE_NAMES) sim.push({ size: 256 * MiB, workload, link: '100mbit-50ms', engine });
    for (const engine of ENGINE_NAMES) sim.push({ corpus: 'vm-redis', workload: 'corpus', link: '100mbit-50ms', engine });
  } else {
    for (const size of [256 * MiB, GiB]) {
      for (const workload of Object.keys(WORKLOADS)) for (const link of links) for (const engine of ENGINE_NAMES) sim.push({ size, workload, link, engine });
    }
    for (const corpus of ['vm-redis', 'proc-redis']) for (const link of links) for (const engine of ENGINE_NAMES) sim.push({ corpus, workload: 'corpus', link, engine });
    // scaling point: 4 GiB (external memory, 4 regions of 1 GiB), hot set on the WAN link
    for (const engine of ENGINE_NAMES) sim.push({ size: 4 * GiB, workload: 'hotset', link: '100mbit-50ms', engine });
  }
  const real = [];
  const realEngines = quick ? ['raw', 'pagewire', 'postcopy'] : ENGINE_NAMES;
  const realLinks = quick ? ['100mbit-50ms'] : ['100mbit-50ms', '1gbit'];
  for (const link of realLinks) for (const engine of realEngines) real.push({ size: 16 * MiB, workload: 'hotset', link, engine });
  // the same small scenarios on the simulated clock: how far the model is from the real engine
  for (const it of real) sim.push({ ...it });
  return { sim, real };
}

function sizeName(bytes) {
  return bytes >= GiB ? `${bytes / GiB}GiB` : `${Math.round(bytes / MiB)}MiB`;
}

function row(base, r) {
  const out = {
    kind: 'migration',
    name: `${base.workload}-${sizeName(base.guestBytes)}-${base.link}-${base.engine}-${base.clock}`,
    guestBytes: base.guestBytes, workload: base.workload, link: base.link, engine: base.engine, clock: base.clock,
    totalTimeMs: +r.totalTimeMs.toFixed(1), downtimeMs: +r.downtimeMs.toFixed(1), wireBytes: r.wireBytes,
    rounds: r.rounds.length, converged: r.converged, mode: r.mode,
  };
  if (r.faultLatencyMs) {
    out.faults = r.faults;
    out.faultLatencyMs = { median: +r.faultLatencyMs.median.toFixed(2), p99: +r.faultLatencyMs.p99.toFixed(2) };
  }
  out.roundWireBytes = r.rounds.map((x) => x.wireBytes);
  if (base.note) out.note = base.note;
  return out;
}

/** Ratios against the raw engine of the same scenario (same clock, guest, workload, link). */
function addRatios(rows) {
  for (const r of rows) {
    const raw = rows.find((x) => x.engine === 'raw' && x.clock === r.clock && x.guestBytes === r.guestBytes && x.workload === r.workload && x.link === r.link);
    if (!raw) continue;
    r.totalTimeVsRaw = +(r.totalTimeMs / raw.totalTimeMs).toFixed(3);
    r.wireBytesVsRaw = +(r.wireBytes / raw.wireBytes).toFixed(3);
    r.downtimeVsRaw = raw.downtimeMs > 0 ? +(r.downtimeMs / raw.downtimeMs).toFixed(3) : null;
  }
}

/**
 * Gustafsson's case: the target holds an older image of the guest (here: the image before the
 * guest ran for `agoMs`); with knownPages the source skips what the target already has.
 */
async function runKnownPages(ctx, quick) {
  const rows = [];
  const pages = (256 * MiB) / 4096;
  const memory = pw.GuestMemory.inCore(await pw.createCore(), pages, 4096);
  pwSim.fillInitial(memory, 'mixed', SEED_IMAGE);
  const image = memory.pages(0, pages).slice();
  const agoMs = 60_000;
  const links = quick ? ['100mbit-50ms'] : ['1gbit', '100mbit-50ms', '10mbit-100ms'];
  for (const link of links) {
    for (const engine of ['raw', 'pagewire']) {
      for (const known of [false, true]) {
        memory.pages(0, pages).set(image);
        const guest = new pwSim.SimulatedGuest(memory, { ...WORKLOADS.hotset, seed: SEED_GUEST });
        guest.advanceBy(agoMs); // the guest ran this long since the target's image was taken
        const r = await simulateMigration({ memory, guest, engine, link: LINKS[link], ...(known ? { knownImage: image } : {}) });
        const out = {
          kind: 'known-pages', name: `known-pages-hotset-256MiB-${link}-${engine}${known ? '-known' : ''}`, guestBytes: 256 * MiB, workload: 'hotset',
          link, engine, knownPages: known, clock: 'simulated', targetImageAgeMs: agoMs,
          totalTimeMs: +r.totalTimeMs.toFixed(1), downtimeMs: +r.downtimeMs.toFixed(1), wireBytes: r.wireBytes, rounds: r.rounds.length, converged: r.converged,
          knownPagesSkipped: r.knownPagesSkipped ?? 0,
        };
        rows.push(out);
        ctx.log(`macro known-pages ${out.name}: ${(out.totalTimeMs / 1000).toFixed(2)} s, downtime ${out.downtimeMs} ms, ${(out.wireBytes / 1e6).toFixed(1)} MB, skipped ${out.knownPagesSkipped}`);
      }
    }
  }
  for (const r of rows) {
    if (!r.knownPages) continue;
    const base = rows.find((x) => !x.knownPages && x.engine === r.engine && x.link === r.link);
    r.totalTimeVsWithout = +(r.totalTimeMs / base.totalTimeMs).toFixed(3);
    r.wireBytesVsWithout = +(r.wireBytes / base.wireBytes).toFixed(3);
  }
  return rows;
}

async function runSimulated(ctx, items, corpusDir) {
  const rows = [];
  const bySize = new Map();
  for (const it of items) {
    const key = it.corpus ?? it.size;
    if (!bySize.has(key)) bySize.set(key, []);
    bySize.get(key).push(it);
  }
  for (const [key, group] of bySize) {
    let memory;
    let image = null;
    let corpus = null;
    globalThis.gc?.(); // let the previous group's guest go before allocating the next
    const t0 = performance.now();
    if (typeof key === 'string') {
      const dir = join(corpusDir, key);
      if (!existsSync(join(dir, 'snapshot-0.bin'))) { ctx.log(`macro: corpus ${key} missing, skipped`); continue; }
      corpus = loadCorpus(dir);
      memory = pw.GuestMemory.inCore(await pw.createCore(), corpus.pageCount, corpus.pageSize);
    } else if (key > GiB) {
      // a core holds at most 4 GiB: external regions of 1 GiB; no saved copy of the image (it
      // would double the footprint): the image is made again before each run
      memory = pw.GuestMemory.external(Array.from({ length: key / GiB }, () => new ArrayBuffer(GiB)), 4096);
    } else {
      memory = pw.GuestMemory.inCore(await pw.createCore(), key / 4096, 4096);
      pwSim.fillInitial(memory, 'mixed', SEED_IMAGE);
      image = memory.pages(0, memory.pageCount).slice();
    }
    ctx.log(`macro: ${typeof key === 'string' ? key : sizeName(key)} guest ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const it of group) {
      const t1 = performance.now();
      let guest;
      if (corpus) {
        guest = new pwSim.SimulatedGuest(memory, { workload: 'corpus', corpus, seed: SEED_GUEST });
      } else {
        if (image) memory.pages(0, memory.pageCount).set(image);
        else pwSim.fillInitial(memory, 'mixed', SEED_IMAGE);
        guest = new pwSim.SimulatedGuest(memory, { ...WORKLOADS[it.workload], seed: SEED_GUEST });
      }
      const r = await simulateMigration({
        memory, guest, engine: it.engine, link: LINKS[it.link],
        ...(corpus ? { postcopyAccessRatePagesPerSec: CORPUS_ACCESS_RATE } : {}),
      });
      const guestBytes = memory.pageCount * memory.pageSize;
      const out = row({ guestBytes, workload: corpus ? `corpus:${key}` : it.workload, link: it.link, engine: it.engine, clock: 'simulated' }, r);
      rows.push(out);
      ctx.log(`macro sim ${out.name}: ${(out.totalTimeMs / 1000).toFixed(2)} s, downtime ${out.downtimeMs} ms, ${(out.wireBytes / 1e6).toFixed(1)} MB, ${out.rounds} rounds, converged ${out.converged}${out.faultLatencyMs ? `, faults ${out.faults} p50 ${out.faultLatencyMs.median} ms p99 ${out.faultLatencyMs.p99} ms` : ''} [${((performance.now() - t1) / 1000).toFixed(1)} s]`);
    }
  }
  return rows;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms); }),
  ]);
}

async function runReal(ctx, items) {
  const rows = [];
  for (const it of items) {
    const pages = it.size / 4096;
    const link = LINKS[it.link];
    const src = pw.GuestMemory.inCore(await pw.createCore(), pages, 4096);
    const dst = pw.GuestMemory.inCore(await pw.createCore(), pages, 4096);
    pwSim.fillInitial(src, 'mixed', SEED_IMAGE);
    const guest = new pwSim.SimulatedGuest(src, { ...WORKLOADS[it.workload], seed: SEED_GUEST });
    // the target's vCPU: the same workload's accesses (reads only, so both memories stay comparable)
    const accesses = new pwSim.SimulatedGuest(dst, { ...WORKLOADS[it.workload], seed: SEED_GUEST + 1 });
    const [a, b] = pwSim.shapedPair({ bandwidthBytesPerSec: link.bandwidthBytesPerSec, delayMs: link.rttMs / 2 });
    let runner = null;
    const target = new pw.MigrationTarget(dst, {}, { guestMayRun: () => runner?.start() });
    runner = new pw.FaultingGuestRunner(target, accesses, { ratePagesPerSec: WORKLOADS[it.workload].ratePagesPerSec ?? 10, writes: false });
    // the link is known here, as it is to the CLI (--link): LZ4 'auto' decides with it
    const source = new pw.MigrationSource(src, guest.dirtyLog, a, { ...ENGINE_SOURCE_OPTIONS[it.engine], linkBytesPerSec: link.bandwidthBytesPerSec }, guest.hooks());
    const t1 = performance.now();
    guest.start();
    try {
      const [rs] = await withTimeout(Promise.all([source.migrate(), target.run(b)]), 60_000, `${it.engine} on ${it.link}`);
      const out = row({ guestBytes: it.size, workload: it.workload, link: it.link, engine: it.engine, clock: 'real', note: 'in-process shaped link' }, rs);
      out.verified = rs.verified;
      rows.push(out);
      ctx.log(`macro real ${out.name}: ${(out.totalTimeMs / 1000).toFixed(2)} s, downtime ${out.downtimeMs} ms, ${(out.wireBytes / 1e6).toFixed(1)} MB, ${out.rounds} rounds, converged ${out.converged}, verified ${rs.verified} [${((performance.now() - t1) / 1000).toFixed(1)} s]`);
    } catch (err) {
      ctx.log(`macro real ${it.engine} ${it.link}: failed: ${err.message}`);
      rows.push({ kind: 'migration', name: `${it.workload}-${sizeName(it.size)}-${it.link}-${it.engine}-real`, guestBytes: it.size, workload: it.workload, link: it.link, engine: it.engine, clock: 'real', error: String(err.message) });
    } finally {
      guest.stop();
      await runner.stop();
      a.close?.();
      b.close?.();
    }
  }
  return rows;
}

export default async function (ctx) {
  await pw.ready();
  await loadLz4();
  const { sim, real } = plan(ctx.quick);
  // Codec costs: the simulated clock uses the fixed reference table (deterministic); a fresh
  // calibration on this machine is recorded beside it for comparison.
  {
    const mem = pw.GuestMemory.inCore(await pw.createCore(), 4096, 4096);
    pwSim.fillInitial(mem, 'mixed', SEED_IMAGE);
    const g = new pwSim.SimulatedGuest(mem, { ...WORKLOADS.hotset, seed: SEED_GUEST });
    const measured = await calibrateCodecCosts(mem, g);
    const flat = (c, p) => ({
      [`${p}EncodeNsPerPageRaw`]: c.encodeNsPerPage.raw, [`${p}EncodeNsPerPageQemu`]: c.encodeNsPerPage.qemu, [`${p}EncodeNsPerPageAll`]: c.encodeNsPerPage.all,
      [`${p}Lz4NsPerByte`]: c.lz4CompressNsPerByte, [`${p}DecodeNsPerPageAll`]: c.decodeNsPerPage.all, [`${p}DigestNsPerByte`]: c.digestNsPerByte,
    });
    ctx.addScenario({ kind: 'codec-costs', used: DEFAULT_CODEC_COSTS.note, ...flat(DEFAULT_CODEC_COSTS, 'used'), ...flat(measured, 'measured') });
    ctx.log(`macro: codec costs used ${JSON.stringify(DEFAULT_CODEC_COSTS)}; measured now ${JSON.stringify(measured)}`);
  }
  const simRows = await runSimulated(ctx, sim, ctx.corpusDir);
  const realRows = await runReal(ctx, real);
  const rows = simRows.concat(realRows);
  addRatios(rows);
  for (const r of rows) ctx.addScenario(r);
  for (const r of await runKnownPages(ctx, ctx.quick)) ctx.addScenario(r);
}
