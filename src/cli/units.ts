/**
 * Parsing of human units on the command line: sizes (256MiB, 1GiB, 4096), rates (20MiB/s,
 * 1000pages/s), link speeds (1gbit, 100mbit, 10mbit/s), durations (25ms, 3s).
 */
import { PagewireError, ErrorCode } from '../errors.js';

const SIZE: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
};

/** A usage error naming the option, what was typed and what would be accepted. */
function bad(what: string, value: string, example: string): never {
  if (/^\s*-\d/.test(value)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${what} cannot be negative, got "${value}" (example: ${example})`);
  throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `bad ${what} "${value}" (example: ${example})`);
}

/** Bytes from "256MiB", "1GiB", "4096". */
export function parseSize(value: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? SIZE[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) bad(what, value, '256MiB');
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isFinite(n) || n <= 0) bad(what, value, '256MiB');
  return n;
}

/** Bytes per second from "20MiB/s", "0", or pages per second from "5000pages/s" (needs pageSize). */
export function parseRate(value: string, pageSize: number, what = 'rate'): number {
  const v = value.trim().toLowerCase();
  const pm = /^(\d+(?:\.\d+)?)\s*pages?\/s$/.exec(v);
  if (pm) return Number(pm[1]) * pageSize;
  if (/^0+(\.0+)?$/.test(v)) return 0;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)\/s$/.exec(v);
  const unit = m ? SIZE[m[2]!] : undefined;
  if (!m || unit === undefined) bad(what, value, '20MiB/s or 5000pages/s');
  return Number(m[1]) * unit;
}

const LINK_EXAMPLES = '10gbit, 1gbit, 100mbit, 10mbit/s, 125MB/s, or 0 for unlimited';

/** Bytes per second from a link speed: "1gbit", "100mbit", "10mbit/s", "10gbit", "125MB/s"; 0 = unlimited. */
export function parseLink(value: string, what = '--link'): number {
  const v = value.trim().toLowerCase();
  const m = /^(\d+(?:\.\d+)?)\s*(k|m|g)?bit(?:\/s|ps)?$/.exec(v);
  if (m) {
    const mult = m[2] === 'g' ? 1e9 : m[2] === 'm' ? 1e6 : m[2] === 'k' ? 1e3 : 1;
    const bits = Number(m[1]) * mult;
    if (bits <= 0) bad(what, value, LINK_EXAMPLES);
    return bits / 8;
  }
  if (v === 'unlimited' || v === 'none') return 0;
  // Byte rates (125MB/s) too, but not pages/s: a link has no pages.
  const m2 = /^(\d+(?:\.\d+)?)\s*([a-z]*)\/s$/.exec(v);
  if (/^0+(\.0+)?$/.test(v)) return 0;
  if (!m2 || SIZE[m2[2]!] === undefined) bad(what, value, LINK_EXAMPLES);
  return Number(m2[1]) * SIZE[m2[2]!]!;
}

/** Milliseconds from "25ms", "3s", "0", "25". */
export function parseDuration(value: string, what = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s)?$/.exec(value.trim().toLowerCase());
  if (!m) bad(what, value, '300, 25ms or 2s');
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

/** A positive integer option. */
export function parseCount(value: string, what: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) bad(what, value, String(min));
  return n;
}

/** "1.5 GiB", "340 MiB"... */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 ? 0 : v < 10 ? 2 : 1)} ${units[i]}`;
}

/** "1.23 Gbit/s" from bytes per second. */
export function formatRate(bytesPerSec: number): string {
  const bits = bytesPerSec * 8;
  if (bits >= 1e9) return `${(bits / 1e9).toFixed(2)} Gbit/s`;
  if (bits >= 1e6) return `${(bits / 1e6).toFixed(1)} Mbit/s`;
  return `${(bits / 1e3).toFixed(0)} kbit/s`;
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
}
