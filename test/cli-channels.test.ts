/**
 * Parallel channels between two OS processes: `pagewire serve --channels 2` (a worker thread per
 * channel decodes its part) and `pagewire migrate --channels 2` over loopback TCP, a guest that
 * writes during the migration; the memories match byte for byte. A dropped channel reconnects and
 * resumes (the target routes the new connection to the channel's worker by its HELLO); strangers
 * on the port end only themselves.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectEqualDumps, runCli, startServe } from './helpers/cli.js';
import { encodePreamble, FrameType } from '../src/protocol/frame.js';
import { FrameWriter } from '../src/protocol/codec.js';
import { createCore } from '../src/core/core.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'pagewire-channels-'));
  dirs.push(d);
  return d;
}

/** Open a connection, write `bytes`, wait until the peer closes it (bounded). */
function stranger(port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    const timer = setTimeout(() => { s.destroy(); resolve(); }, 15_000);
    s.on('data', () => undefined);
    s.on('close', () => { clearTimeout(timer); resolve(); });
    s.on('error', () => undefined);
  });
}

describe('migrate/serve --channels over TCP between two processes', () => {
  it('2 channels: verified on both sides, the same digest, target memory equals source memory at pause', async () => {
    const dir = tmp();
    const serve = await startServe(['--channels', '2', '--prefault', 'on', '--json', '--dump-memory', join(dir, 'target.bin')]);
    // strangers first: garbage, and a well-formed HELLO naming a channel this target does not have
    await stranger(serve.port, new Uint8Array(64).fill(0x41));
    const w = new FrameWriter(await createCore());
    const hello = new TextEncoder().encode(JSON.stringify({ sessionId: 'x', pageSize: 4096, regions: [{ name: 'c9:ram', pageCount: 1 }], codecs: ['raw'], mode: 'precopy', options: {} }));
    const frame = w.frame(FrameType.HELLO, hello);
    const pre = encodePreamble();
    const both = new Uint8Array(pre.byteLength + frame.byteLength);
    both.set(pre);
    both.set(frame, pre.byteLength);
    await stranger(serve.port, both);
    const src = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--channels', '2', '--size', '32MiB', '--workload', 'hotset',
      '--dirty-rate', '8MiB/s', '--link', '1gbit', '--json', '--dump-memory', join(dir, 'source.bin')]);
    const tgt = await serve.result;
    expect(src.code, src.stderr).toBe(0);
    expect(tgt.code, tgt.stderr).toBe(0);
    const rs = JSON.parse(src.stdout);
    const rt = JSON.parse(tgt.stdout);
    expect(rs.channels).toBe(2);
    expect(rt.channels).toBe(2);
    expect(rs.verified && rt.verified).toBe(true);
    expect(rt.digest).toBe(rs.digest);
    expect(rt.guestPages).toBe(8192);
    expect(rs.rounds[0].dirtyPages).toBeGreaterThan(0); // the guest wrote during round 0
    expectEqualDumps(dir, 32 * 1024 * 1024);
  });

  it('a dropped channel (--inject drop@round0 on channel 0, mid-way through its first pass) reconnects and resumes; both sides verify', async () => {
    const serve = await startServe(['--channels', '2', '--json']);
    const src = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--channels', '2', '--size', '16MiB', '--workload', 'hotset',
      '--dirty-rate', '8MiB/s', '--link', '1gbit', '--json', '--inject', 'drop@round0']);
    const tgt = await serve.result;
    expect(src.code, src.stderr).toBe(0);
    expect(tgt.code, tgt.stderr).toBe(0);
    const rs = JSON.parse(src.stdout);
    const rt = JSON.parse(tgt.stdout);
    expect(rs.faultsFired).toEqual(['drop@round0']);
    expect(rs.drops).toBe(1);
    expect(rt.drops).toBe(1);
    expect(rs.verified && rt.verified).toBe(true);
    expect(rt.digest).toBe(rs.digest);
  });

  it('a source without --channels is told the channel count (LAYOUT_MISMATCH, exit 3, guest running); serve keeps waiting', async () => {
    const serve = await startServe(['--channels', '2', '--json']);
    try {
      const src = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '4MiB', '--json']);
      expect(src.code).toBe(3);
      const rep = JSON.parse(src.stdout);
      expect(rep.guestRunning).toBe(true);
      expect(rep.error.code).toBe('LAYOUT_MISMATCH');
      expect(rep.error.message).toMatch(/--channels 2/);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.result;
    }
  });

  it('simulate: --inject with --channels needs --transport tcp (usage error); over tcp a drop resumes', async () => {
    const bad = await runCli(['simulate', '--channels', '2', '--size', '4MiB', '--inject', 'drop@round1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/needs --transport tcp/);
    const r = await runCli(['simulate', '--channels', '2', '--transport', 'tcp', '--size', '16MiB', '--link', '0', '--inject', 'drop@stop-and-copy', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.verified && rep.identical).toBe(true);
    expect(rep.drops).toBe(1);
  });
});
