// Cost of authenticated frames (protocol 1.3, a shared secret), two ways in one run:
//  - frames: 32 MiB as 1 MiB PAGES frames from one Connection to another over an in-memory pair,
//    plain against authenticated (HMAC-SHA256 tag per frame, Web Crypto), with node:crypto's
//    createHmac over the same bytes as the reference for the hash itself;
//  - migrations: `pagewire simulate --transport tcp` (two endpoints, real loopback TCP, raw codec,
//    idle guest) with and without --secret, alternated, each in a fresh process; the difference of
//    the medians is the MAC's cost per GB of guest.
// Every result is asserted before it is timed (frames arrive, migrations verify).
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCore } from '../dist/core/core.js';
import { Connection } from '../dist/protocol/connection.js';
import { FrameType } from '../dist/protocol/frame.js';
import { frameKeys } from '../dist/protocol/auth.js';
import { memoryPair } from '../dist/transport/memory.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'bin', 'pagewire.js');
const MiB = 1024 * 1024;
const FRAME = MiB;
const FRAMES = 32;

function check(cond, what) {
  if (!cond) throw new Error(`bench assertion failed: ${what}`);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Send FRAMES frames of `payload` from one connection to another and read them all. */
async function transfer(core, payload, keys) {
  const [a, b] = memoryPair();
  const tx = new Connection(a, core);
  const rx = new Connection(b, core);
  await tx.open();
  await tx.send(FrameType.HELLO, new Uint8Array(2));
  if (keys) tx.authenticate(keys.source);
  const sending = (async () => {
    for (let i = 0; i < FRAMES; i++) await tx.send(FrameType.PAGES, payload);
  })();
  await rx.expect(FrameType.HELLO);
  if (keys) rx.authenticate(keys.target);
  let bytes = 0;
  for (let i = 0; i < FRAMES; i++) bytes += (await rx.expect(FrameType.PAGES)).payload.byteLength;
  await sending;
  tx.dispose();
  rx.dispose();
  return bytes;
}

function simulate(sizeBytes, secret) {
  const args = [CLI, 'simulate', '--size', String(sizeBytes), '--workload', 'idle', '--transport', 'tcp', '--link', '0', '--codecs', 'raw', '--json',
    ...(secret ? ['--secret', 'bench-secret'] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * MiB });
  const line = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  check(line, `simulate${secret ? ' --secret' : ''}: no report (exit ${r.status}): ${(r.stderr ?? '').slice(-300)}`);
  const rep = JSON.parse(line);
  check(rep.verified === true && rep.identical === true, `simulate${secret ? ' --secret' : ''} did not verify`);
  return rep.totalTimeMs;
}

export default async function auth(ctx) {
  const core = await createCore();
  const payload = new Uint8Array(FRAME);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 2654435761) >>> 24;
  const session = '0123456789abcdef0123456789abcdef';
  const keys = {
    source: await frameKeys('bench-secret', 'source', session, 'aa'.repeat(16), 'bb'.repeat(16)),
    target: await frameKeys('bench-secret', 'target', session, 'aa'.repeat(16), 'bb'.repeat(16)),
  };
  check(await transfer(core, payload, null) === FRAMES * FRAME, 'plain frames arrive');
  check(await transfer(core, payload, keys) === FRAMES * FRAME, 'authenticated frames arrive');
  const hmacKey = new Uint8Array(32).fill(7);

  const b = ctx.bench('frames');
  b.add('frames: plain (checksum only)', async () => { await transfer(core, payload, null); });
  b.add('frames: authenticated (HMAC-SHA256, Web Crypto)', async () => { await transfer(core, payload, keys); });
  b.add('node:crypto createHmac sha256, same bytes, both sides', () => {
    for (let i = 0; i < 2 * FRAMES; i++) createHmac('sha256', hmacKey).update(payload).digest();
  });
  await b.run();
  const rows = ctx.collect(b, 'auth', {
    'frames: plain (checksum only)': { bytes: FRAMES * FRAME },
    'frames: authenticated (HMAC-SHA256, Web Crypto)': { bytes: FRAMES * FRAME, vs: 'frames: plain (checksum only)' },
    'node:crypto createHmac sha256, same bytes, both sides': { bytes: FRAMES * FRAME, note: 'the hash alone, sync, main thread' },
  });
  const plain = rows.find((r) => r.name.startsWith('frames: plain'));
  const mac = rows.find((r) => r.name.startsWith('frames: authenticated'));
  const perGb = 1e9 / (FRAMES * FRAME);
  const frameRow = {
    kind: 'auth-frames', frameBytes: FRAME, frames: FRAMES, plainMs: plain?.p50Ms, macMs: mac?.p50Ms,
    macCostMsPerGb: plain && mac ? (mac.p50Ms - plain.p50Ms) * perGb : undefined,
  };
  ctx.addScenario(frameRow);
  ctx.log(`auth: ${FRAMES} x 1 MiB frames, sender and receiver in one process (p50): ${frameRow.plainMs?.toFixed(1)} ms plain, ` +
    `${frameRow.macMs?.toFixed(1)} ms authenticated: +${frameRow.macCostMsPerGb?.toFixed(0)} ms per GB (both sides' MACs, one after the other)`);

  // whole migrations over TCP, alternated so a noisy neighbour weighs on both
  const sizeBytes = ctx.quick ? 64 * MiB : 256 * MiB;
  const runs = ctx.quick ? 2 : 5;
  const times = { plain: [], secret: [] };
  for (let i = 0; i < runs; i++) {
    times.plain.push(simulate(sizeBytes, false));
    times.secret.push(simulate(sizeBytes, true));
  }
  const p = median(times.plain);
  const s = median(times.secret);
  const row = {
    kind: 'auth-migration', sizeBytes, runs, transport: 'tcp', codecs: 'raw', workload: 'idle',
    plainMs: p, secretMs: s, plainGbPerSec: sizeBytes / p / 1e6, secretGbPerSec: sizeBytes / s / 1e6,
    ratio: s / p, macCostMsPerGb: (s - p) * (1e9 / sizeBytes), plainRunsMs: times.plain, secretRunsMs: times.secret,
  };
  ctx.addScenario(row);
  ctx.log(`auth: migration ${sizeBytes / MiB} MiB over TCP, median of ${runs}: ${p.toFixed(0)} ms plain, ${s.toFixed(0)} ms with --secret (${row.ratio.toFixed(2)}x, +${row.macCostMsPerGb.toFixed(0)} ms per GB)`);
}
