/**
 * Command-line options shared by `simulate`, `migrate` and `snapshot`: guest, workload, link and
 * migration policy. Parsed with node:util parseArgs (strict: unknown options are usage errors).
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { PagewireError, ErrorCode } from '../errors.js';
import type { SourceOptions } from '../migration/source.js';
import { parseCount, parseDuration, parseLink, parseRate, parseSize } from './units.js';

/** parseArgs option table for the guest and policy options. */
export const GUEST_OPTIONS = {
  size: { type: 'string', default: '256MiB' },
  'page-size': { type: 'string', default: '4096' },
  workload: { type: 'string', default: 'hotset' },
  'dirty-rate': { type: 'string', default: '20MiB/s' },
  'write-size': { type: 'string', default: '64' },
  seed: { type: 'string', default: '1' },
  image: { type: 'string' },
  'max-guest': { type: 'string', default: '16GiB' },
  link: { type: 'string', default: '1gbit' },
  delay: { type: 'string', default: '0ms' },
  jitter: { type: 'string', default: '0ms' },
  codecs: { type: 'string', default: 'all' },
  'cache-size': { type: 'string', default: '64MiB' },
  'cache-prefault': { type: 'string', default: 'on' },
  'downtime-limit': { type: 'string', default: '300' },
  'max-rounds': { type: 'string', default: '30' },
  'on-nonconvergence': { type: 'string', default: 'switchover' },
  'max-bandwidth': { type: 'string' },
  mode: { type: 'string', default: 'precopy' },
  reorder: { type: 'boolean', default: false },
  'auto-converge': { type: 'boolean', default: false },
  channels: { type: 'string', default: '1' },
  secret: { type: 'string' },
  'secret-file': { type: 'string' },
  verify: { type: 'string', default: 'digest' },
  inject: { type: 'string' },
  json: { type: 'boolean', default: false },
  quiet: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Parsed guest/workload/link/policy options. */
export interface GuestArgs {
  sizeBytes: number;
  pageSize: number;
  workload: string;
  corpusDir: string | null;
  dirtyRateBytesPerSec: number;
  writeSizeBytes: number;
  seed: number;
  image: string | null;
  /** Largest guest an image file may make us allocate (--max-guest). */
  maxGuestBytes: number;
  linkBytesPerSec: number;
  delayMs: number;
  jitterMs: number;
  codecs: 'raw' | 'qemu' | 'all';
  cacheBytes: number;
  /** Fault in the source's delta cache memory with the guest, before the migration (--cache-prefault on|off). */
  prefaultCache: boolean;
  json: boolean;
  quiet: boolean;
  inject: string;
  secret: string | undefined;
  channels: number;
  source: SourceOptions;
}

function verifyMode(v: string): 'digest' | 'memory' | 'full' {
  if (v !== 'digest' && v !== 'memory' && v !== 'full') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--verify must be digest, memory or full, got "${v}"`);
  return v;
}

const WORKLOADS = ['idle', 'uniform', 'hotset', 'zipf', 'sequential'];

/** Turn raw parseArgs values into typed options. @throws PagewireError INVALID_ARGUMENT */
export function guestArgs(v: Record<string, string | boolean | undefined>): GuestArgs {
  const s = (k: string): string => String(v[k]);
  const pageSize = Number(s('page-size'));
  if (!Number.isInteger(pageSize) || pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--page-size must be a power of two from 512 to 65536, got "${s('page-size')}"`);
  }
  const workload = s('workload');
  let corpusDir: string | null = null;
  if (workload.startsWith('corpus:')) {
    corpusDir = workload.slice('corpus:'.length);
    if (!corpusDir) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--workload corpus:DIR needs a directory');
  } else if (!WORKLOADS.includes(workload)) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--workload must be one of ${WORKLOADS.join(', ')} or corpus:DIR, got "${workload}"`);
  }
  const codecs = s('codecs');
  if (!['raw', 'qemu', 'all'].includes(codecs)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--codecs must be raw, qemu or all, got "${codecs}"`);
  const mode = s('mode');
  if (!['precopy', 'postcopy', 'hybrid'].includes(mode)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--mode must be precopy, postcopy or hybrid, got "${mode}"`);
  const onNc = s('on-nonconvergence');
  if (!['switchover', 'fail', 'postcopy'].includes(onNc)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--on-nonconvergence must be switchover, fail or postcopy, got "${onNc}"`);
  const sizeBytes = parseSize(s('size'), '--size');
  if (sizeBytes % pageSize !== 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--size ${sizeBytes} is not a whole number of ${pageSize}-byte pages`);
  const cacheBytes = parseSize(s('cache-size'), '--cache-size');
  const prefault = s('cache-prefault');
  if (prefault !== 'on' && prefault !== 'off') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--cache-prefault must be on or off, got "${prefault}"`);
  const linkBps = parseLink(s('link'));
  const maxBw = v['max-bandwidth'] === undefined ? undefined : parseLink(s('max-bandwidth'), '--max-bandwidth');
  const source: SourceOptions = {
    mode: mode as SourceOptions['mode'],
    codecs: codecs as 'raw' | 'qemu' | 'all',
    cacheBytes,
    downtimeLimitMs: parseDuration(s('downtime-limit'), '--downtime-limit'),
    maxRounds: parseCount(s('max-rounds'), '--max-rounds'),
    onNonConvergence: onNc as SourceOptions['onNonConvergence'],
    autoConverge: v['auto-converge'] === true,
    reorder: v['reorder'] === true,
    verify: verifyMode(s('verify')),
    ...(maxBw ? { maxBandwidthBytesPerSec: maxBw } : {}),
    ...(linkBps > 0 ? { linkBytesPerSec: linkBps } : {}),
  };
  const secret = resolveSecret(v);
  if (secret !== undefined) source.secret = secret;
  return {
    sizeBytes, pageSize, workload: corpusDir ? 'corpus' : workload, corpusDir,
    dirtyRateBytesPerSec: parseRate(s('dirty-rate'), pageSize, '--dirty-rate'),
    writeSizeBytes: parseCount(s('write-size'), '--write-size', 1, pageSize),
    seed: parseCount(s('seed'), '--seed', 0, 2 ** 31),
    image: typeof v['image'] === 'string' ? v['image'] : null,
    maxGuestBytes: parseSize(s('max-guest'), '--max-guest'),
    linkBytesPerSec: linkBps,
    delayMs: parseDuration(s('delay'), '--delay'),
    jitterMs: parseDuration(s('jitter'), '--jitter'),
    codecs: codecs as 'raw' | 'qemu' | 'all', cacheBytes, prefaultCache: prefault === 'on',
    json: v['json'] === true, quiet: v['quiet'] === true,
    inject: typeof v['inject'] === 'string' ? v['inject'] : '',
    secret,
    channels: parseCount(s('channels'), '--channels', 1, 64),
    source,
  };
}

type OptionTable = NonNullable<ParseArgsConfig['options']>;

/**
 * `--opt -5` as `--opt=-5` for options that take a value, so a negative number reaches the value's
 * own check ("cannot be negative") instead of node:util's "argument is ambiguous".
 */
function joinNegativeValues(argv: string[], options: OptionTable): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { out.push(...argv.slice(i)); break; }
    const next = argv[i + 1];
    if (a.startsWith('--') && !a.includes('=') && options[a.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** Edit distance, for "did you mean" (option names are short). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** node:util's parse errors in our words: what was wrong with what the user typed. */
function usageMessage(err: Error & { code?: string }, options: OptionTable): string {
  const msg = err.message;
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const opt = /'([^']+)'/.exec(msg)?.[1] ?? '';
    const name = opt.replace(/^-+/, '');
    const near = Object.keys(options).map((k) => [k, distance(name, k)] as const).sort((x, y) => x[1] - y[1])[0];
    const hint = near !== undefined && near[1] <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean --${near[0]}?)` : '';
    return `unknown option ${opt}${hint}`;
  }
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const opt = /'(-[^' ]+)/.exec(msg)?.[1] ?? 'an option';
    if (/argument missing/.test(msg)) return `${opt} needs a value`;
    if (/ambiguous/.test(msg)) return `${opt} needs a value (to pass one that starts with "-", write ${opt}=VALUE)`;
    if (/does not take an argument/.test(msg)) return `${opt} takes no value`;
  }
  return msg;
}

/**
 * The shared secret: `--secret S` (visible in `ps`), `--secret-file FILE` (its first line), or
 * the environment variable PAGEWIRE_SECRET, in that order. An empty secret is refused: it would
 * silently turn authentication off.
 * @throws PagewireError INVALID_ARGUMENT
 */
export function resolveSecret(v: Record<string, string | boolean | undefined>): string | undefined {
  const flag = v['secret'];
  const file = v['secret-file'];
  if (typeof flag === 'string' && typeof file === 'string') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, '--secret and --secret-file exclude each other');
  let secret: string | undefined;
  let from = '';
  if (typeof flag === 'string') { secret = flag; from = '--secret'; }
  else if (typeof file === 'string') {
    try {
      secret = readFileSync(file, 'utf8').split(/\r?\n/, 1)[0] ?? '';
    } catch (cause) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `--secret-file ${file}: ${(cause as Error).message}`, { cause });
    }
    from = `--secret-file ${file}`;
  } else if (process.env['PAGEWIRE_SECRET'] !== undefined) {
    secret = process.env['PAGEWIRE_SECRET'];
    from = 'PAGEWIRE_SECRET';
  }
  if (secret === '') throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${from} gives an empty secret: authentication would be off (omit it to run without a secret)`);
  return secret;
}

/**
 * parseArgs with our error type and messages.
 * @param maxPositionals how many arguments that are not options the command takes (default none)
 * @throws PagewireError INVALID_ARGUMENT naming the unknown option, the missing value or the extra argument
 */
export function parse(argv: string[], options: OptionTable, maxPositionals = 0): Record<string, string | boolean | undefined> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: true });
  } catch (cause) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, usageMessage(cause as Error, options), { cause });
  }
  if (parsed.positionals.length > maxPositionals) {
    const extra = parsed.positionals.slice(maxPositionals).map((p) => `"${p}"`).join(' ');
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, maxPositionals === 0
      ? `unexpected argument ${extra}: this command takes options only`
      : `unexpected argument ${extra}: this command takes at most ${maxPositionals}`);
  }
  return parsed.values as Record<string, string | boolean | undefined>;
}

/** Positional arguments (after the subcommand). */
export function positionals(argv: string[], options: OptionTable): string[] {
  try {
    return parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: true }).positionals;
  } catch (cause) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, usageMessage(cause as Error, options), { cause });
  }
}
