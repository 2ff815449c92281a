/**
 * A running QEMU guest (Debian kernel + busybox initramfs, TCG) migrated by pagewire with
 * x-ignore-shared: pagewire carries the RAM file over loopback TCP, QEMU carries the device state
 * (the successful move through the CLI, `pagewire serve/migrate --qemu-*`, in two processes).
 * The guest prints `PWTICK counter md5-of-4-MiB-of-tmpfs` on its serial console; on the
 * destination the counter must continue and the checksum must not change. Failures injected at
 * the switch-over (pagewire link drop while the source is paused in pre-switchover) and during
 * pre-copy (destination QEMU killed) must leave the source guest running.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { FaultInjector } from '../src/migration/faults.js';
import { QmpClient } from '../src/qemu/qmp.js';
import { QemuSource, type QemuSourceReport } from '../src/qemu/source.js';
import { QemuTarget, type QemuTargetReport } from '../src/qemu/target.js';
import { connectTcp, listenTcp } from '../src/transport/tcp.js';
import { buildInitramfs } from '../scripts/qemu-guest.mjs';
import { pagewireRejection, qemuOrSkip, startGuest, type GuestProcess } from './helpers/qemu.js';
import { runCli, startServe } from './helpers/cli.js';

const tools = qemuOrSkip('QEMU guest migration');
const RAM_MIB = 128;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function qmpStatus(path: string): Promise<string> {
  const q = await QmpClient.connect(path);
  try {
    return (await q.execute<{ status: string }>('query-status')).status;
  } finally {
    q.close();
  }
}

describe.skipIf(!tools)('a running QEMU guest migrated by pagewire (x-ignore-shared)', () => {
  let dir = '';
  let initrd = '';
  let src: GuestProcess;
  const guests: GuestProcess[] = [];
  let k = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'pagewire-qemu-'));
    initrd = join(dir, 'initrd');
    writeFileSync(initrd, buildInitramfs(tools!.busybox, { dataMb: 4, tickMs: 100 }));
    src = await startGuest(tools!, { dir, name: 'src', initrd, ramMiB: RAM_MIB });
    guests.push(src);
    // TCG boots in seconds on a quiet machine; the bounds are for CI on a loaded one
    await src.waitLine(/PWTICK 2 /, 110_000);
  }, 120_000);

  afterAll(() => {
    for (const g of guests) g.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** One migration attempt to a fresh destination QEMU. */
  async function attempt(o: { inject?: string; onRoundStart?: (round: number, dst: GuestProcess) => void } = {}): Promise<{
    dst: GuestProcess; source: Promise<QemuSourceReport>; target: Promise<QemuTargetReport>; qs: QemuSource;
  }> {
    const dst = await startGuest(tools!, { dir, name: `dst${k++}`, initrd, ramMiB: RAM_MIB, incoming: true });
    guests.push(dst);
    const uri = `tcp:127.0.0.1:${await freePort()}`;
    const qt = await QemuTarget.open({ qmp: dst.qmpPath, ramPath: dst.ramPath, incomingUri: uri, resumeTimeoutMs: 30_000 });
    const listener = await listenTcp({ host: '127.0.0.1', port: 0 });
    const [tt, st] = await Promise.all([listener.accept(), connectTcp({ host: '127.0.0.1', port: listener.port })]);
    await listener.close();
    const inj = o.inject ? new FaultInjector(o.inject) : null;
    const qs = await QemuSource.open(inj ? inj.wrap(st) : st, {
      qmp: src.qmpPath, ramPath: src.ramPath, migrateUri: uri, downtimeLimitMs: 300, maxRounds: 8, linkBytesPerSec: 125e6, qemuTimeoutMs: 30_000,
      ...(inj ? { onPhase: (p: string) => inj.onPhase(p) } : {}),
    });
    if (o.onRoundStart) qs.source.on('phase', (p) => { if (p.phase === 'round') o.onRoundStart!(p.round, dst); });
    const target = qt.run(tt).finally(() => qt.close());
    const source = qs.migrate().finally(() => qs.close());
    target.catch(() => undefined);
    source.catch(() => undefined);
    return { dst, source, target, qs };
  }

  async function expectSourceRunning(): Promise<void> {
    expect(await qmpStatus(src.qmpPath)).toBe('running');
    // the guest still counts: a tick two past the current one appears on the source console
    const last = src.ticks().at(-1)!.n;
    await src.waitLine(new RegExp(`PWTICK ${last + 2} `), 40_000);
  }


  it('a pagewire link drop while QEMU waits in pre-switchover: cancelled, the source guest runs on', async () => {
    const a = await attempt({ inject: 'drop@stop-and-copy' });
    const e = await pagewireRejection(a.source);
    expect([ErrorCode.TRANSPORT_CLOSED, ErrorCode.ABORTED]).toContain(e.code);
    expect(a.qs.running).toBe(true);
    await pagewireRejection(a.target);
    await expectSourceRunning();
    // the destination never ran the guest: QEMU exits when its incoming migration fails
    await new Promise<void>((r) => { if (a.dst.proc.exitCode !== null) r(); else a.dst.proc.once('exit', () => r()); });
    expect(a.dst.ticks()).toEqual([]);
  }, 120_000);

  it('the destination QEMU killed during pre-copy: the target cuts the link at once, the source guest runs on', async () => {
    const a = await attempt({ onRoundStart: (round, dst) => { if (round === 0) dst.kill(); } });
    expect((await pagewireRejection(a.target)).code).toBe(ErrorCode.QEMU_FAILED);
    expect([ErrorCode.TRANSPORT_CLOSED, ErrorCode.QEMU_FAILED]).toContain((await pagewireRejection(a.source)).code);
    expect(a.qs.running).toBe(true);
    await expectSourceRunning();
  }, 120_000);

  it('pagewire serve/migrate --qemu-* move the guest: the counter continues on the destination, the checksum is unchanged', async () => {
    const before = src.ticks();
    const sum = before.at(-1)!.sum;
    expect(before.every((t) => t.sum === sum)).toBe(true);
    const dst = await startGuest(tools!, { dir, name: `dst${k++}`, initrd, ramMiB: RAM_MIB, incoming: true });
    guests.push(dst);
    const serve = await startServe(['--qemu-qmp', dst.qmpPath, '--qemu-ram', dst.ramPath, '--qemu-incoming', `tcp:127.0.0.1:${await freePort()}`, '--json']);
    const mig = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--qemu-qmp', src.qmpPath, '--qemu-ram', src.ramPath, '--max-rounds', '8', '--json'], 100_000);
    const served = await serve.result;
    expect(mig.code, mig.stderr).toBe(0);
    expect(served.code, served.stderr).toBe(0);
    const rs = JSON.parse(mig.stdout) as QemuSourceReport & { guestRunning: boolean };
    const rt = JSON.parse(served.stdout) as QemuTargetReport;
    expect(rs.verified).toBe(true);
    expect(rt.verified).toBe(true);
    expect(rs.guestRunning).toBe(false);
    expect(rs.qemu.status).toBe('completed');
    // QEMU's own stream carried only device state and small blocks, not the 128 MiB of RAM
    expect(rs.qemu.transferredBytes).toBeGreaterThan(0);
    expect(rs.qemu.transferredBytes).toBeLessThan(5e6);
    expect(rs.wireBytes).toBeGreaterThan(1e6);
    expect(rt.qemu.status).toBe('running');
    expect(rt.qemu.stopTimeMs).toBe(rs.qemu.stopTimeMs);
    expect(rt.qemu.guestPauseMs).toBeGreaterThanOrEqual(0);
    expect(rt.qemu.guestPauseMs).toBeLessThan(10_000);
    expect(await qmpStatus(src.qmpPath)).toBe('postmigrate');
    const lastSrc = src.ticks().at(-1)!.n;
    await dst.waitLine(/PWTICK \d+ [0-9a-f]{32}/, 40_000);
    const first = dst.ticks()[0]!.n;
    await dst.waitLine(new RegExp(`PWTICK ${first + 3} `), 40_000);
    const after = dst.ticks();
    expect(first).toBeGreaterThan(lastSrc);
    expect(first).toBeLessThanOrEqual(lastSrc + 2);
    after.forEach((t, i) => expect(t.n).toBe(first + i));
    expect(after.every((t) => t.sum === sum)).toBe(true);
    // the source's serial console stopped counting
    expect(src.ticks().at(-1)!.n).toBe(lastSrc);
  }, 120_000);
});
