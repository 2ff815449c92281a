/**
 * The CLI as a user types it: --version, and each usage error says what is wrong with what was
 * typed (exit 2, "--help lists the options"); help texts of migrate and demo list only options
 * those commands take and no paths of this repository's checkout.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { runCli } from './helpers/cli.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function usage(args: string[]): Promise<string> {
  const r = await runCli(args);
  expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(2);
  expect(r.stderr).toMatch(new RegExp(`\\(pagewire ${args[0]} --help lists the options\\)`));
  expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
  return r.stderr;
}

describe('pagewire --version', () => {
  it('prints the package version', async () => {
    for (const flag of ['--version', '-v']) {
      const r = await runCli([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(VERSION);
    }
    expect((await runCli(['--help'])).stdout).toMatch(/pagewire --version/);
  });
});

describe('usage errors name the problem', () => {
  it('unknown option: names it, suggests a near one, points to --help', async () => {
    const e = await usage(['simulate', '--dirty-rat', '5MiB/s']);
    expect(e).toMatch(/unknown option --dirty-rat \(did you mean --dirty-rate\?\)/);
    expect(e).not.toMatch(/To specify a positional argument/);
    expect(await usage(['serve', '--frobnicate'])).toMatch(/unknown option --frobnicate\n/);
  });

  it('--link fast: a link speed example, not a dirty rate', async () => {
    const e = await usage(['simulate', '--link', 'fast']);
    expect(e).toMatch(/bad --link "fast" \(example: 10gbit, 1gbit, 100mbit/);
    expect(e).not.toMatch(/pages\/s/);
    expect(await usage(['simulate', '--link', '5000pages/s'])).toMatch(/bad --link "5000pages\/s"/);
    expect(await usage(['simulate', '--max-bandwidth', 'lots'])).toMatch(/bad --max-bandwidth "lots"/);
  });

  it('--page-size 3000 blames --page-size', async () => {
    const e = await usage(['simulate', '--page-size', '3000']);
    expect(e).toMatch(/--page-size must be a power of two from 512 to 65536, got "3000"/);
    expect(e).not.toMatch(/--size/);
  });

  it('--downtime-limit -5: cannot be negative (not "ambiguous")', async () => {
    for (const args of [['--downtime-limit', '-5'], ['--downtime-limit=-5']]) {
      const e = await usage(['simulate', ...args]);
      expect(e).toMatch(/--downtime-limit cannot be negative, got "-5"/);
      expect(e).not.toMatch(/ambiguous/);
    }
    expect(await usage(['simulate', '--size', '-4MiB'])).toMatch(/--size cannot be negative, got "-4MiB"/);
    expect(await usage(['simulate', '--size'])).toMatch(/--size needs a value/);
  });

  it('migrate --to: a value that is not HOST:PORT is named as such', async () => {
    expect(await usage(['migrate', '--to', 'nowhere'])).toMatch(/--to "nowhere" is not HOST:PORT \(example: --to 10\.0\.0\.2:4444\)/);
    expect(await usage(['migrate', '--to', 'host:99999'])).toMatch(/--to "host:99999": the port must be 1\.\.65535/);
    expect(await usage(['migrate'])).toMatch(/--to HOST:PORT is required/);
  });

  it('extra positional arguments are refused, not ignored', async () => {
    expect(await usage(['simulate', '--size', '1MiB', 'oops'])).toMatch(/unexpected argument "oops": this command takes options only/);
    expect(await usage(['serve', 'extra'])).toMatch(/unexpected argument "extra"/);
    expect(await usage(['migrate', '--to', '127.0.0.1:1', 'x', 'y'])).toMatch(/unexpected argument "x" "y"/);
    expect(await usage(['inspect', 'a.snap', 'b.snap'])).toMatch(/unexpected argument "b\.snap"/);
  });
});

describe('help texts', () => {
  it('migrate and demo list no simulate-only options and no ../shared paths; simulate and migrate list --channels', async () => {
    for (const cmd of ['migrate', 'demo']) {
      const r = await runCli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(/\.\.\/shared|simulate only|\(simulate|--transport|--prefault/);
      expect(r.stdout).toMatch(/--dump-memory FILE/);
      if (cmd === 'demo') expect(r.stdout).not.toMatch(/--channels/);
      else expect(r.stdout).toMatch(/--channels 1/);
    }
    const sim = await runCli(['simulate', '--help']);
    expect(sim.stdout).toMatch(/--channels 1/);
    expect(sim.stdout).not.toMatch(/\.\.\/shared|--dump-memory/);
  });
});
