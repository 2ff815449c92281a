#!/usr/bin/env node
// QEMU benchmark (npm run bench:qemu; not part of npm run bench: it boots a real guest under TCG).
//
// One writing guest (Debian kernel + busybox initramfs, RAM from a shared file; its init rewrites
// a hot set of tmpfs with random data and prints a counter and a checksum) is migrated, chained
// from QEMU to QEMU, by:
//   qemu        QEMU's own pre-copy (RAM in QEMU's stream, defaults: downtime-limit 300 ms)
//   qemu-xbzrle the same with the xbzrle capability (64 MiB cache)
//   pagewire    pagewire carries the RAM file, QEMU only the device state (x-ignore-shared)
// over the same shaped link: every TCP stream of a migration goes through the project's shaping
// proxy (src/transport/shaped-proxy-node.ts) at the link rate (pagewire: its own connection and
// QEMU's device-state stream, each through a proxy at that rate). The proxies (the network) and
// pagewire's target (the destination host) run in two more processes (bench/qemu-peer.mjs), as on
// real hosts: the source's CPU work stalls neither, nor does the target's stall the link.
// Measured per run: total time (QMP `migrate` to the destination's RESUME event; for pagewire
// from QemuSource.open, which reads the RAM file, to that RESUME), guest pause (source STOP to destination RESUME, from
// QMP event timestamps), and bytes on the wire (what the proxies forwarded towards the destination).
// Each run is checked before it counts: the destination's counter continues and its checksum is
// the source's.
//
//   node bench/qemu.mjs [--ram 256] [--write-mb 2] [--links 100mbit,1gbit] [--engines qemu,qemu-xbzrle,pagewire]
//                       [--cap-s 120] [--pagewire-options JSON] [--out FILE] [--verbose]
//   --verbose: pagewire's rounds on stderr; --pagewire-options: more QemuSource options, e.g. '{"cacheBytes":8388608}'
import { mkdtempSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import * as net from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { QmpClient, QemuSource, connectTcp } from '../dist/node.js';
import { buildInitramfs, findGuestTools, startGuest } from '../scripts/qemu-guest.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    ram: { type: 'string', default: '256' }, 'write-mb': { type: 'string', default: '2' },
    links: { type: 'string', default: '100mbit,1gbit' }, engines: { type: 'string', default: 'qemu,qemu-xbzrle,pagewire' },
    'cap-s': { type: 'string', default: '120' }, 'pagewire-options': { type: 'string', default: '{}' }, out: { type: 'string' }, verbose: { type: 'boolean', default: false },
  },
});
const RAM_MIB = Number(a.ram);
const CAP_MS = Number(a['cap-s']) * 1000;
const LINKS = { '10gbit': 1.25e9, '1gbit': 125e6, '100mbit': 12.5e6 };
const log = (...x) => console.error(...x);

const tools = findGuestTools();
if ('missing' in tools) {
  console.error(`bench:qemu needs ${tools.missing}`);
  process.exit(1);
}

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A peer process (bench/qemu-peer.mjs) answering JSON lines. Two run: the network (the shaping
 * proxies) and the destination host (pagewire's target), so neither's CPU work stalls the other
 * or the source, as on real hosts with a real network between them.
 */
function startPeer() {
  const proc = spawn(process.execPath, [...(process.env.PEER_NODE_ARGS ?? '').split(' ').filter(Boolean), join(ROOT, 'bench', 'qemu-peer.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiters = new Map();
  let seq = 0;
  const call = (op, args = {}) => {
    const id = ++seq;
    return new Promise((resolve, reject) => {
      waiters.set(id, { resolve, reject });
      proc.stdin.write(JSON.stringify({ id, op, ...args }) + '\n');
    });
  };
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const m = JSON.parse(line);
    if (m.event === 'target') {
      call.onTarget?.(m);
      return;
    }
    const w = waiters.get(m.id);
    waiters.delete(m.id);
    if (m.error) w?.reject(new Error(`peer: ${m.error}`));
    else w?.resolve(m);
  });
  call.end = () => proc.stdin.end();
  return call;
}
/** The network: shaping proxies ('proxy', 'bytes', 'close'). */
const net1 = startPeer();
/** The destination host: pagewire's target ('target'). */
const dest = startPeer();
/** CPU ms of the network and destination processes so far. */
const peerCpu = async () => ({ net: (await net1('cpu')).cpuMs, dest: (await dest('cpu')).cpuMs });

/** QEMU's own migration from `src` to a new destination, through a proxy at `rate`. */
async function qemuRun(src, dst, rate, xbzrle) {
  const sq = await QmpClient.connect(src.qmpPath);
  const dq = await QmpClient.connect(dst.qmpPath);
  const port = await freePort();
  const caps = (on) => [
    { capability: 'xbzrle', state: on }, { capability: 'x-ignore-shared', state: false },
    { capability: 'pause-before-switchover', state: false }, { capability: 'events', state: true },
  ];
  await dq.execute('migrate-set-capabilities', { capabilities: caps(xbzrle) });
  await dq.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
  const proxy = await net1('proxy', { port, rate });
  try {
    await sq.execute('migrate-set-capabilities', { capabilities: caps(xbzrle) });
    // QEMU's default cap is 128 MiB/s: lift it so the link alone limits (as for pagewire)
    await sq.execute('migrate-set-parameters', { 'max-bandwidth': 10 * 1024 ** 3, 'downtime-limit': 300 });
    const since = sq.eventCount;
    const dsince = dq.eventCount;
    const cpu0 = await peerCpu();
    const t0 = Date.now();
    await sq.execute('migrate', { uri: `tcp:127.0.0.1:${proxy.port}` });
    let info;
    for (;;) {
      info = await sq.execute('query-migrate');
      if (['completed', 'failed', 'cancelled'].includes(info.status)) break;
      if (Date.now() - t0 > CAP_MS) {
        await sq.execute('migrate_cancel');
        return { converged: false, totalTimeMs: Date.now() - t0, wireBytes: (await net1('bytes')).up, note: `did not complete within ${CAP_MS / 1000} s (status ${info.status}, expected downtime ${info['expected-downtime']} ms)` };
      }
      await sleep(20);
    }
    if (info.status !== 'completed') throw new Error(`QEMU migration ${info.status}: ${info['error-desc'] ?? ''}`);
    const stop = await sq.waitEvent('STOP', 5000, { since });
    const resume = await dq.waitEvent('RESUME', 10_000, { since: dsince });
    return {
      converged: true, totalTimeMs: resume.timeMs - t0, guestPauseMs: resume.timeMs - stop.timeMs, qemuDowntimeMs: info.downtime,
      wireBytes: (await net1('bytes')).up, qemuTransferredBytes: info.ram?.transferred ?? 0, rounds: info.ram?.['dirty-sync-count'] ?? 0,
      xbzrle: xbzrle ? info['xbzrle-cache'] : undefined, netCpuMs: Math.round((await peerCpu()).net - cpu0.net),
    };
  } finally {
    await net1('close');
    sq.close();
    dq.close();
  }
}

/** pagewire + x-ignore-shared from `src` to a new destination, both streams through proxies at `rate`. */
async function pagewireRun(src, dst, rate) {
  const qemuPort = await freePort();
  try {
    const qemuProxy = await net1('proxy', { port: qemuPort, rate });
    const targetDone = new Promise((resolve) => { dest.onTarget = resolve; });
    const { port, fresh } = await dest('target', { qmp: dst.qmpPath, ram: dst.ramPath, incomingUri: `tcp:127.0.0.1:${qemuPort}` });
    const pwProxy = await net1('proxy', { port, rate });
    // pagewire's time starts before it opens the RAM file (QemuSource.open)
    const cpu0 = process.cpuUsage();
    const peerCpu0 = await peerCpu();
    const t0 = Date.now();
    const qs = await QemuSource.open(() => connectTcp({ host: '127.0.0.1', port: pwProxy.port }), {
      qmp: src.qmpPath, ramPath: src.ramPath, migrateUri: `tcp:127.0.0.1:${qemuProxy.port}`, freshTarget: fresh, linkBytesPerSec: rate, downtimeLimitMs: 300,
      ...JSON.parse(a['pagewire-options']),
    });
    const openMs = Date.now() - t0;
    if (a.verbose) {
      log(`  open ${openMs} ms`);
      qs.source.on('round', (r) => log(`  round ${r.round}${r.final ? ' (final)' : ''} at ${Date.now() - t0} ms: ${r.pages} pages, ${(r.wireBytes / 1e6).toFixed(2)} MB, ${r.durationMs.toFixed(0)} ms, dirty after ${r.dirtyPages}, bw ${(r.bandwidthBytesPerSec / 1e6).toFixed(1)} MB/s, expected ${r.expectedDowntimeMs.toFixed(0)} ms`));
      qs.source.on('switchover', (e) => log(`  switch-over at ${Date.now() - t0} ms: ${e.reason}`));
      qs.source.on('phase', (e) => { if (e.phase !== 'round') log(`  phase ${e.phase} at ${Date.now() - t0} ms`); });
    }
    let rs;
    try {
      rs = await qs.migrate();
    } finally {
      qs.close();
    }
    const t = await targetDone;
    if (t.error) throw new Error(`target: ${t.error}`);
    const rt = t.report;
    const wire = await net1('bytes');
    const cpu = process.cpuUsage(cpu0);
    const peerCpu1 = await peerCpu();
    return {
      converged: rs.converged, totalTimeMs: rt.qemu.resumeTimeMs - t0, guestPauseMs: rt.qemu.guestPauseMs, qemuDowntimeMs: rs.qemu.downtimeMs,
      wireBytes: wire.up, ackBytes: wire.down, qemuTransferredBytes: rs.qemu.transferredBytes, pagewireWireBytes: rs.wireBytes,
      rounds: rs.rounds.length, pagewireDowntimeMs: rs.downtimeMs, setupTimeMs: openMs + rs.setupTimeMs,
      // frames the target found damaged (its checksum) and links dropped: evidence about the proxy
      corruptionsDetected: rs.corruptionsDetected, drops: rs.drops,
      // CPU time of the source process (pagewire's source, QMP, the guests' consoles), the
      // destination process (pagewire's target) and the network (the proxies)
      sourceCpuMs: Math.round((cpu.user + cpu.system) / 1000), targetCpuMs: Math.round(peerCpu1.dest - peerCpu0.dest), netCpuMs: Math.round(peerCpu1.net - peerCpu0.net),
    };
  } finally {
    await net1('close');
  }
}

const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'pagewire-bench-qemu-'));
const rows = [];
const procs = [];
try {
  const initrd = join(dir, 'initrd');
  writeFileSync(initrd, buildInitramfs(tools.busybox, { dataMb: 4, writeMb: Number(a['write-mb']), tickMs: 100 }));
  let k = 0;
  let src = await startGuest(tools, { dir, name: `g${k++}`, initrd, ramMiB: RAM_MIB });
  procs.push(src);
  src.proc.on('exit', (code, sig) => { if (sig !== 'SIGKILL') log(`QEMU ${src.qmpPath} exited (${code ?? sig}): ${src.stderr().slice(-500)}`); });
  log(`booting a ${RAM_MIB} MiB guest...`);
  await src.waitLine(/PWTICK 3 /, 120_000);
  const sum = src.ticks().at(-1).sum;
  for (const linkName of a.links.split(',')) {
    const rate = LINKS[linkName];
    if (!rate) throw new Error(`unknown link ${linkName}`);
    for (const engine of a.engines.split(',')) {
      const dst = await startGuest(tools, { dir, name: `g${k++}`, initrd, ramMiB: RAM_MIB, incoming: true });
      procs.push(dst);
      dst.proc.on('exit', (code, sig) => { if (sig !== 'SIGKILL') log(`QEMU ${dst.qmpPath} exited (${code ?? sig}): ${dst.stderr().slice(-500)}`); });
      // the guest writes between runs, and must be running
      await src.waitLine(new RegExp(`PWTICK ${(src.ticks().at(-1)?.n ?? 0) + 2} `), 60_000);
      log(`${engine} over ${linkName}...`);
      const r = engine === 'pagewire' ? await pagewireRun(src, dst, rate) : await qemuRun(src, dst, rate, engine === 'qemu-xbzrle');
      const row = { engine, link: linkName, ramMiB: RAM_MIB, writeMbPerTick: Number(a['write-mb']), ...r };
      if (r.converged !== false || engine === 'pagewire') {
        // check before it counts: the guest runs on the destination with the same data
        // (five ticks: a guest QEMU's own XBZRLE migration panicked a few ticks later)
        const lastSrc = src.ticks().at(-1)?.n ?? 0;
        let bad = '';
        try {
          await dst.waitLine(/PWTICK \d+ [0-9a-f]{32}/, 60_000);
          const first = dst.ticks()[0];
          await dst.waitLine(new RegExp(`PWTICK ${first.n + 5} `), 60_000);
          bad = first.n <= lastSrc || first.n > lastSrc + 3 ? `counter ${first.n} does not continue ${lastSrc}`
            : !dst.ticks().every((t) => t.sum === sum) ? `checksum changed on the destination: ${dst.ticks().map((t) => `${t.n}:${t.sum.slice(0, 8)}`).join(' ')} (source ${sum.slice(0, 8)})`
              : '';
        } catch (e) {
          bad = `the destination guest did not keep running: ${e.message.slice(0, 300)}`;
        }
        if (bad) {
          // the run does not count; the guest goes on from the source
          row.check = `FAILED: ${bad}`;
          log(`${engine}: ${bad}; lines: ${dst.lines.slice(0, 6).join(' | ')}`);
          dst.kill();
          const q = await QmpClient.connect(src.qmpPath);
          await q.execute('cont').catch(() => undefined);
          q.close();
        } else {
          row.check = 'ok';
          src.kill();
          src = dst;
        }
      } else {
        dst.kill();
      }
      rows.push(row);
      log(JSON.stringify(row));
    }
  }
} finally {
  for (const p of procs) p.kill();
  net1.end();
  dest.end();
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (n, d = 0) => (n === undefined ? '-' : Number(n).toFixed(d));
const md = ['| link | engine | total time (s) | guest pause (ms) | wire (MB) | QEMU stream (MB) | rounds | note |', '|---|---|---:|---:|---:|---:|---:|---|'];
for (const r of rows) {
  md.push(`| ${r.link} | ${r.engine} | ${fmt(r.totalTimeMs / 1000, 2)} | ${fmt(r.guestPauseMs)} | ${fmt(r.wireBytes / 1e6, 1)} | ${fmt(r.qemuTransferredBytes / 1e6, 2)} | ${fmt(r.rounds)} | ${[r.note, r.check !== 'ok' ? r.check : ''].filter(Boolean).join('; ')} |`);
}
const result = { date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30) }, node: process.version, rows };
const out = a.out ?? join(ROOT, 'bench', 'results', `qemu-${result.date.slice(0, 10)}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.log(md.join('\n'));
console.error(`results: ${out}`);
