/**
 * Join two transports: every chunk read from one is written to the other, both ways, with each
 * side's backpressure (a write is awaited before the next read). Used to hand a connection
 * accepted on one thread to a worker over a MessagePort transport.
 *
 *   a.read -> b.write   until a ends (then b.end) or fails (then b.destroy)
 *   b.read -> a.write   likewise
 */
import type { Transport } from './types.js';

/**
 * Pump both directions until both ended or one side failed (then both are torn down).
 * @param first chunks already read from `a` that go to `b` before anything else (e.g. a peeked handshake)
 * @returns resolves when both directions are done; never rejects
 */
export function pipeTransports(a: Transport, b: Transport, first: readonly Uint8Array[] = []): Promise<void> {
  const pump = async (from: Transport, to: Transport, initial: readonly Uint8Array[]): Promise<void> => {
    try {
      for (const c of initial) await to.write(c);
      for (;;) {
        const c = await from.read();
        if (c === null) { await to.end(); return; }
        await to.write(c);
      }
    } catch (err) {
      from.destroy(err as Error);
      to.destroy(err as Error);
    }
  };
  return Promise.all([pump(a, b, first), pump(b, a, [])]).then(() => undefined);
}
