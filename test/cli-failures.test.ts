// The CLI never ends a failed or incomplete run with exit 0: an --inject fault that never fired
// means the fault test the user asked for did not happen. Built CLI (dist/).
import { describe, it, expect } from 'vitest';
import { runCli } from './helpers/cli.js';

describe('pagewire simulate: faults that did not fire', () => {
  it('drop@round5 on a migration of at most 2 rounds is reported and exits 3', async () => {
    const r = await runCli(['simulate', '--size', '8MiB', '--max-rounds', '2', '--inject', 'drop@round5', '--json']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/drop@round5 did not fire/);
    const rep = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(rep.verified).toBe(true); // the migration itself was fine
    expect(rep.faultsNotFired).toEqual(['drop@round5']);
  });

  it('a fault that fired leaves the exit code to the migration (0 when verified)', async () => {
    const r = await runCli(['simulate', '--size', '8MiB', '--inject', 'drop@round0', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(rep.faultsFired).toEqual(['drop@round0']);
    expect(rep.faultsNotFired).toEqual([]);
  });
});
