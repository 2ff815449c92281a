/**
 * An in-memory transport pair: what one end writes, the other reads, with no copy. Each direction
 * holds at most `highWaterBytes` (plus the last chunk written) before the writer waits, so a
 * reader that stops reading stops the writer exactly as a paused socket would.
 */
import { ErrorCode, PagewireError } from '../errors.js';
import { ChunkQueue, DEFAULT_HIGH_WATER_BYTES, WaiterList, closedError, positiveOption, toTransportError } from './chunk-queue.js';
import type { Transport } from './types.js';

/** Options for {@link memoryPair}. */
export interface MemoryPairOptions {
  /** Bytes buffered per direction before `write` waits (default 1 MiB). */
  highWaterBytes?: number;
  /** Labels of the two ends (default `memory a` / `memory b`). */
  labels?: [string, string];
}

/** One end of a {@link memoryPair}. */
export class MemoryTransport implements Transport {
  readonly label: string;
  /** @internal the other end, set by memoryPair */
  peer!: MemoryTransport;
  /** Incoming chunks (written by the peer). */
  private readonly incoming: ChunkQueue;
  /** Writers of this end waiting for the peer to read. */
  private readonly writers = new WaiterList();
  private ended = false;
  private error: PagewireError | null = null;

  /** @internal use {@link memoryPair} */
  constructor(label: string, highWaterBytes: number) {
    this.label = label;
    this.incoming = new ChunkQueue(highWaterBytes, () => {
      // The peer's writers wait on this queue draining below the mark.
      if (this.incoming.bufferedBytes < this.incoming.highWaterBytes) this.peer.writers.wake();
    });
  }

  get closed(): boolean {
    return this.ended || this.error !== null;
  }

  /** Bytes written by the peer and not yet read here. */
  get bufferedBytes(): number {
    return this.incoming.bufferedBytes;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (this.ended) return Promise.reject(closedError(this.label, 'write after end'));
    const q = this.peer.incoming;
    if (q.done) return Promise.reject(closedError(this.label, 'peer is gone'));
    if (q.push(chunk)) return Promise.resolve();
    return this.writers.wait();
  }

  read(): Promise<Uint8Array | null> {
    return this.incoming.read();
  }

  end(): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    if (!this.ended) {
      this.ended = true;
      this.peer.incoming.end();
    }
    return Promise.resolve();
  }

  destroy(err?: Error): void {
    if (this.error !== null) return;
    const e = err === undefined ? closedError(this.label, 'destroyed') : toTransportError(err, this.label);
    this.fail(e, true);
    this.peer.fail(new PagewireError(ErrorCode.TRANSPORT_CLOSED, `${this.peer.label}: peer destroyed the connection`, { cause: e }));
  }

  private fail(e: PagewireError, force = false): void {
    if (this.error !== null) return;
    this.error = e;
    this.incoming.fail(e, force);
    this.writers.fail(e);
  }
}

/**
 * Two connected in-memory transports.
 * @param options high-water mark per direction and labels
 * @returns `[a, b]`: what `a` writes `b` reads, and the other way round
 * @throws PagewireError INVALID_ARGUMENT for a non-positive `highWaterBytes`
 */
export function memoryPair(options: MemoryPairOptions = {}): [MemoryTransport, MemoryTransport] {
  const hwm = positiveOption('highWaterBytes', options.highWaterBytes, DEFAULT_HIGH_WATER_BYTES);
  const [la, lb] = options.labels ?? ['memory a', 'memory b'];
  const a = new MemoryTransport(la, hwm);
  const b = new MemoryTransport(lb, hwm);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
