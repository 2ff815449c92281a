/**
 * End to end between two OS processes over loopback TCP: `pagewire serve` in one process,
 * `pagewire migrate` in another, with a guest that writes during the migration.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectEqualDumps, runCli, startServe } from './helpers/cli.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('two processes over loopback TCP', () => {
  it('migrates a writing guest; target memory equals source memory at pause, byte for byte', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pagewire-tcp-'));
    dirs.push(dir);
    const serve = await startServe(['--json', '--dump-memory', join(dir, 'target.bin')]);
    const src = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '32MiB', '--workload', 'hotset', '--dirty-rate', '8MiB/s', '--link', '1gbit', '--json', '--dump-memory', join(dir, 'source.bin')]);
    const tgt = await serve.result;
    expect(src.code, src.stderr).toBe(0);
    expect(tgt.code, tgt.stderr).toBe(0);
    const rs = JSON.parse(src.stdout);
    const rt = JSON.parse(tgt.stdout);
    expect(rs.verified).toBe(true);
    expect(rt.verified).toBe(true);
    expect(rt.digest).toBe(rs.digest);
    expect(rs.rounds.length).toBeGreaterThanOrEqual(2);
    expect(rs.downtimeMs).toBeGreaterThan(0);
    expect(rs.rounds[0].dirtyPages).toBeGreaterThan(0); // the guest wrote during round 0
    expectEqualDumps(dir, 32 * 1024 * 1024);
  });

  it('a wrong secret fails the source with AUTH_FAILED (guest running); serve turns that connection away and keeps serving', async () => {
    const serve = await startServe(['--secret', 'right']);
    const src = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '4MiB', '--json', '--secret', 'wrong']);
    expect(src.code).toBe(3);
    expect(JSON.parse(src.stdout).error.code).toBe('AUTH_FAILED');
    expect(JSON.parse(src.stdout).error.message).toMatch(/proof does not match our secret: the two sides have different secrets/);
    expect(JSON.parse(src.stdout).guestRunning).toBe(true);
    // the stranger ended only its own connection: the next source, with the secret, migrates
    const ok = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '4MiB', '--json', '--secret', 'right']);
    expect(ok.code, ok.stderr).toBe(0);
    const tgt = await serve.result;
    expect(tgt.code).toBe(0);
    expect(tgt.stderr).toMatch(/rejected a connection from 127\.0\.0\.1:\d+: AUTH_FAILED/);
  });

  it('the same secret migrates', async () => {
    const serve = await startServe(['--json', '--secret', 'right']);
    const src = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '4MiB', '--json', '--secret', 'right']);
    expect(src.code, src.stderr).toBe(0);
    expect((await serve.result).code).toBe(0);
  });

  it('usage errors exit 2 with a clear message', async () => {
    const r = await runCli(['simulate', '--codecs', 'zip']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--codecs must be raw, qemu or all/);
    const u = await runCli(['frobnicate']);
    expect(u.code).toBe(2);
  });
});
