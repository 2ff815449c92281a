/**
 * Whether the QEMU tests can run here. Without QEMU, busybox or the kernel they skip with a notice
 * on stderr; under CI (`PAGEWIRE_REQUIRE_QEMU=1`, set by .ci/run) a missing piece fails instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PagewireError } from '../../src/errors.js';
import { findGuestTools, qemuArgs } from '../../scripts/qemu-guest.mjs';

export interface GuestTools { qemu: string; busybox: string; kernel: string }

/** The tools, or null (and a notice) when the QEMU tests must skip. @throws when CI requires QEMU */
export function qemuOrSkip(what: string): GuestTools | null {
  const t = findGuestTools() as GuestTools | { missing: string };
  if (!('missing' in t)) return t;
  if (process.env['PAGEWIRE_REQUIRE_QEMU'] === '1') {
    throw new Error(`${what}: PAGEWIRE_REQUIRE_QEMU=1 but ${t.missing} is missing`);
  }
  process.stderr.write(`NOTICE: skipping ${what}: ${t.missing} is missing (CI sets PAGEWIRE_REQUIRE_QEMU=1 and installs it)\n`);
  return null;
}

/** A QEMU process running the tiny guest (or waiting for one with -incoming defer). */
export interface GuestProcess {
  readonly proc: ChildProcess;
  readonly qmpPath: string;
  readonly ramPath: string;
  /** Serial console lines so far. */
  readonly lines: string[];
  /** `PWTICK counter checksum` lines so far. */
  ticks(): { n: number; sum: string }[];
  /** Wait for a serial line matching `re` (after `from` lines). */
  waitLine(re: RegExp, timeoutMs: number, from?: number): Promise<string>;
  kill(): void;
}

/** Start QEMU with the guest's RAM in `dir` (a tmpfs such as /dev/shm). */
export async function startGuest(tools: GuestTools, o: { dir: string; name: string; initrd: string; ramMiB: number; incoming?: boolean }): Promise<GuestProcess> {
  const qmpPath = join(o.dir, `${o.name}.qmp`);
  const ramPath = join(o.dir, `${o.name}.ram`);
  const proc = spawn(tools.qemu, qemuArgs({ kernel: tools.kernel, initrd: o.initrd, ramPath, ramMiB: o.ramMiB, qmpPath, incoming: o.incoming }), { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split(/\r?\n/);
    partial = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters) w();
  });
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<void>((r) => proc.on('exit', () => { for (const w of waiters) w(); r(); }));
  for (let i = 0; i < 400 && !existsSync(qmpPath); i++) {
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!existsSync(qmpPath)) { proc.kill('SIGKILL'); throw new Error(`QEMU did not start: ${stderr}`); }
  void exited;
  return {
    proc, qmpPath, ramPath, lines,
    ticks: () => lines.map((l) => /PWTICK (\d+) ([0-9a-f]{32})/.exec(l)).filter((m) => m !== null).map((m) => ({ n: Number(m[1]), sum: m[2]! })),
    waitLine(re, timeoutMs, from = 0) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const hit = lines.slice(from).find((l) => re.test(l));
          if (hit !== undefined) { done(); resolve(hit); } else if (proc.exitCode !== null || proc.signalCode !== null) { done(); reject(new Error(`QEMU exited before ${re}: ${stderr} ${lines.slice(-5).join(' | ')}`)); }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`no ${re} within ${timeoutMs} ms; last lines: ${lines.slice(-5).join(' | ')} ${stderr}`)); }, timeoutMs);
        const done = (): void => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    kill: () => { proc.kill('SIGKILL'); },
  };
}

/** The PagewireError `p` rejects with (fails the test if it resolves or rejects with something else). */
export async function pagewireRejection(p: Promise<unknown>): Promise<PagewireError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof PagewireError)) throw new Error(`expected a PagewireError, got ${String(e)}`, { cause: e });
    return e;
  }
  throw new Error('expected a rejection');
}
