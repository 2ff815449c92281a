/**
 * bin/pagewire.js restarts itself on Linux with glibc's hugetlb tunable (huge pages for large
 * buffers: a fresh target's first-touch cost) unless PAGEWIRE_HUGEPAGES=off; the report says what
 * was asked for and what the kernel gave. The restarted command must behave as one process: its
 * exit code comes back, and a killed outer process takes the inner one with it.
 */
import { describe, it, expect } from 'vitest';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { runCli, startServe } from './helpers/cli.js';

const linux = process.platform === 'linux';
const thp = (() => { try { return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? 'never'; } catch { return 'never'; } })();

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  });
}

describe.runIf(linux)('huge pages (Linux)', () => {
  it('simulate asks for them by default and reports what it got; PAGEWIRE_HUGEPAGES=off does not ask', async () => {
    const on = await runCli(['simulate', '--size', '64MiB', '--workload', 'idle', '--transport', 'tcp', '--link', '0', '--json']);
    expect(on.code, on.stderr).toBe(0);
    const a = JSON.parse(on.stdout) as { verified: boolean; hugePagesRequested: boolean; hugePagesBytes: number | null };
    expect(a.verified).toBe(true);
    expect(a.hugePagesRequested).toBe(true);
    expect(typeof a.hugePagesBytes).toBe('number');
    // with THP available (madvise or always) the 64 MiB target lands at least partly in huge pages
    if (thp !== 'never') expect(a.hugePagesBytes).toBeGreaterThan(0);
    process.env.PAGEWIRE_HUGEPAGES = 'off';
    try {
      const off = await runCli(['simulate', '--size', '8MiB', '--workload', 'idle', '--json']);
      expect(off.code, off.stderr).toBe(0);
      expect((JSON.parse(off.stdout) as { hugePagesRequested: boolean }).hugePagesRequested).toBe(false);
    } finally {
      delete process.env.PAGEWIRE_HUGEPAGES;
    }
  });

  it('exit codes come back through the restart (usage error: 2)', async () => {
    const r = await runCli(['simulate', '--size', '1MiB', '--codecs', 'nope']);
    expect(r.code).toBe(2);
  });

  it('SIGKILL of the command ends the restarted process too: the port closes', async () => {
    const serve = await startServe(['--json']);
    expect(await refused(serve.port)).toBe(false);
    serve.child.kill('SIGKILL');
    await serve.result;
    const deadline = Date.now() + 5000;
    let closed = false;
    while (!closed && Date.now() < deadline) {
      closed = await refused(serve.port);
      if (!closed) await new Promise((r) => setTimeout(r, 100));
    }
    expect(closed).toBe(true);
  });
});
