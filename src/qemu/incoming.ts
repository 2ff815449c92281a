/**
 * How a QEMU target tells its source where the destination QEMU listens for QEMU's own stream
 * (device state), before pagewire's protocol starts on the same connection:
 *
 *   line = "PAGEWIRE-QEMU-INCOMING " JSON({"uri": "tcp:HOST:PORT", "fresh": bool}) "\n"   (at most 1 KiB)
 *
 * `fresh`: the destination's RAM file holds nothing yet (all holes, as QEMU creates it), so the
 * source need not send zero pages (absent: false). A wrong claim only fails the verification.
 *
 * The target writes the line on every connection it accepts; the source reads it and hands on
 * the rest of the stream untouched. Only `tcp:HOST:PORT` is accepted: the URI is passed to the
 * source QEMU's `migrate`, and URIs such as `exec:` would run commands on the source host.
 * The line is not authenticated (it comes before the handshake); with a shared secret the
 * pagewire session still fails if the peer is not the expected target.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Transport } from '../transport/types.js';
import { withTimeout } from '../protocol/connection.js';

const PREFIX = 'PAGEWIRE-QEMU-INCOMING ';
const MAX_LINE_BYTES = 1024;

/**
 * Check a QEMU migration URI pagewire passes on: `tcp:HOST:PORT`.
 * @throws PagewireError INVALID_ARGUMENT
 */
export function checkIncomingUri(uri: string): string {
  const m = /^tcp:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(uri);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `QEMU migration URI must be tcp:HOST:PORT, got ${JSON.stringify(uri.slice(0, 100))}`);
  }
  return uri;
}

/**
 * Write the incoming-URI line on a new connection (target side).
 * @param fresh the destination's RAM file is fresh (all zero)
 */
export async function sendIncomingUri(transport: Transport, uri: string, fresh = false): Promise<void> {
  await transport.write(new TextEncoder().encode(PREFIX + JSON.stringify({ uri: checkIncomingUri(uri), fresh }) + '\n'));
}

/**
 * Read the incoming-URI line (source side).
 * @returns the URI and a transport that yields the bytes after the line, then the rest
 * @throws PagewireError PROTOCOL_VIOLATION (no such line, too long, bad URI), TIMEOUT, TRANSPORT_CLOSED
 */
export async function receiveIncomingUri(transport: Transport, timeoutMs = 10_000): Promise<{ uri: string; fresh: boolean; transport: Transport }> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const read = async (): Promise<{ line: Uint8Array; rest: Uint8Array }> => {
    for (;;) {
      const chunk = await transport.read();
      if (chunk === null) throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'the target closed the connection before naming its QEMU incoming URI');
      const nl = chunk.indexOf(0x0a);
      const upto = nl < 0 ? chunk.byteLength : nl;
      if (total + upto > MAX_LINE_BYTES) break;
      parts.push(chunk.subarray(0, upto));
      total += upto;
      if (nl >= 0) {
        const line = new Uint8Array(total);
        let o = 0;
        for (const p of parts) { line.set(p, o); o += p.byteLength; }
        return { line, rest: chunk.subarray(nl + 1) };
      }
    }
    throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `the target's QEMU incoming line exceeds ${MAX_LINE_BYTES} bytes (is it a QEMU target: pagewire serve --qemu-*?)`);
  };
  let got: { line: Uint8Array; rest: Uint8Array };
  try {
    got = await withTimeout(read(), timeoutMs, 'waiting for the target to name its QEMU incoming URI');
  } catch (err) {
    transport.destroy();
    throw err;
  }
  const text = new TextDecoder().decode(got.line);
  let uri: unknown;
  let fresh = false;
  try {
    if (!text.startsWith(PREFIX)) throw new Error('no prefix');
    const o = JSON.parse(text.slice(PREFIX.length)) as { uri?: unknown; fresh?: unknown };
    uri = o.uri;
    fresh = o.fresh === true;
    if (typeof uri !== 'string') throw new Error('no uri');
    checkIncomingUri(uri);
  } catch (cause) {
    transport.destroy();
    throw new PagewireError(ErrorCode.PROTOCOL_VIOLATION, `the target did not name a QEMU incoming URI (is it a QEMU target: pagewire serve --qemu-*?): ${JSON.stringify(text.slice(0, 60))}`, { cause });
  }
  return { uri: uri as string, fresh, transport: got.rest.byteLength > 0 ? new PrefixedTransport(transport, got.rest) : transport };
}

/** A transport whose first read returns `head` (bytes already taken from `inner`). */
class PrefixedTransport implements Transport {
  private head: Uint8Array | null;
  constructor(private readonly inner: Transport, head: Uint8Array) {
    this.head = head;
  }
  get closed(): boolean { return this.inner.closed; }
  get label(): string { return this.inner.label; }
  get remote(): string | undefined { return this.inner.remote; }
  write(chunk: Uint8Array): Promise<void> { return this.inner.write(chunk); }
  read(): Promise<Uint8Array | null> {
    const h = this.head;
    if (h) {
      this.head = null;
      return Promise.resolve(h);
    }
    return this.inner.read();
  }
  end(): Promise<void> { return this.inner.end(); }
  destroy(err?: Error): void {
    this.head = null;
    this.inner.destroy(err);
  }
}
