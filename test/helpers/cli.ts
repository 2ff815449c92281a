/**
 * Run the built `pagewire` command (dist/, built by `npm test`'s pretest) as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

export const BIN = fileURLToPath(new URL('../../bin/pagewire.js', import.meta.url));

export interface RunResult { code: number; stdout: string; stderr: string }

const RSS_PRELOAD = fileURLToPath(new URL('../fixtures/report-rss.mjs', import.meta.url));

/** Run to completion (bounded by `timeoutMs`). */
export function runCli(args: string[], timeoutMs = 120_000, nodeArgs: string[] = []): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`pagewire ${args.join(' ')} timed out\n${stderr}`)); }, timeoutMs);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, stdout, stderr }); });
  });
}

/** Run to completion and measure the child's peak resident set size (bytes). */
export async function runCliRss(args: string[], timeoutMs = 120_000): Promise<RunResult & { maxRssBytes: number }> {
  const r = await runCli(args, timeoutMs, ['--import', RSS_PRELOAD]);
  const m = /pagewire-test maxrss-kb=(\d+)\s*$/.exec(r.stderr);
  if (!m) throw new Error(`no peak RSS reported by pagewire ${args.join(' ')}\n${r.stderr}`);
  return { ...r, stderr: r.stderr.slice(0, m.index), maxRssBytes: Number(m[1]) * 1024 };
}

/** Start `pagewire serve --port 0 ...` and wait for its port. */
export function startServe(args: string[] = []): Promise<{ child: ChildProcess; port: number; result: Promise<RunResult> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let resolved = false;
    const result = new Promise<RunResult>((r) => child.on('exit', (code) => r({ code: code ?? -1, stdout, stderr })));
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on [^\s]+:(\d+)/.exec(stderr);
      if (m && !resolved) { resolved = true; resolve({ child, port: Number(m[1]), result }); }
    });
    setTimeout(() => { if (!resolved) { child.kill('SIGKILL'); reject(new Error(`serve did not start: ${stderr}`)); } }, 20_000);
  });
}

/** The `--dump-memory` images both sides wrote into `dir` (source.bin, target.bin) are `bytes` long and equal. */
export function expectEqualDumps(dir: string, bytes: number): void {
  const a = readFileSync(join(dir, 'source.bin'));
  const b = readFileSync(join(dir, 'target.bin'));
  expect(a.length).toBe(bytes);
  expect(Buffer.compare(a, b)).toBe(0);
}
