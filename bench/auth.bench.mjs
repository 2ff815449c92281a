// Cost of authenticated frames (protocol 1.3, a shared secret), two ways in one run:
//  - frames: the tag and its check (HMAC-SHA256, Web Crypto, as Connection computes them) of 32
//    frames of 1 MiB, with node:crypto's createHmac over the same bytes as the reference for the
//    hash itself (a transfer between two Connections is asserted, not timed);
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
import { frameKeys, frameTag, frameTagValid } from '../dist/protocol/auth.js';
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

  // The MAC itself, as the connections compute it (frameTag on the sender, frameTagValid on the
  // receiver, Web Crypto), over FRAMES frames already in one buffer each; a whole transfer over an
  // in-memory pair is not timed: it allocates a fresh 1 MiB frame buffer per frame (the pair keeps
  // the chunk), whose first touch costs more than the MAC on this VM and varies from run to run.
  const frame = new Uint8Array(FRAME + 16).fill(0x5a);
  const tag = await frameTag(keys.source.send, frame);
  check(await frameTagValid(keys.target.recv, frame, tag), 'tag checks on the receiving side');
  const signAndCheck = async () => {
    for (let i = 0; i < FRAMES; i++) {
      const t = await frameTag(keys.source.send, frame);
      if (!(await frameTagValid(keys.target.recv, frame, t))) throw new Error('tag mismatch');
    }
  };
  // at least 10 samples per task even under --quick: fewer let one slow sample (a GC) decide the p50
  const b = ctx.bench('frames', { iterations: 10, time: 500 });
  b.add('frame MAC: tag + check, Web Crypto (as sent and received)', signAndCheck);
  b.add('node:crypto createHmac sha256, same bytes, twice', () => {
    for (let i = 0; i < 2 * FRAMES; i++) createHmac('sha256', hmacKey).update(frame).digest();
  });
  await b.run();
  const rows = ctx.collect(b, 'auth', {
    'frame MAC: tag + check, Web Crypto (as sent and received)': { bytes: FRAMES * FRAME, note: `${FRAMES} x 1 MiB frames, sender and receiver` },
    'node:crypto createHmac sha256, same bytes, twice': { bytes: FRAMES * FRAME, vs: 'frame MAC: tag + check, Web Crypto (as sent and received)', note: 'the hash alone, sync, main thread' },
  });
  const mac = rows.find((r) => r.name.startsWith('frame MAC'));
  const frameRow = { kind: 'auth-frames', frameBytes: FRAME, frames: FRAMES, macMs: mac?.p50Ms, macCostMsPerGb: mac ? mac.p50Ms * (1e9 / (FRAMES * FRAME)) : undefined };
  ctx.addScenario(frameRow);
  ctx.log(`auth: MAC of ${FRAMES} x 1 MiB frames, tag and check (p50): ${frameRow.macMs?.toFixed(1)} ms: ${frameRow.macCostMsPerGb?.toFixed(0)} ms per GB (both sides' MACs, one after the other)`);

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
