/**
 * The server side shared by the TCP, TLS and WebSocket listeners: a bounded queue of accepted
 * transports that callers take with `accept()` or `for await`. Browser-safe (types and logic only).
 */
import { ErrorCode, PagewireError } from '../errors.js';
import type { Transport } from './types.js';

/** Options for {@link TransportListener.accept}. */
export interface AcceptOptions {
  /** Reject with TIMEOUT when no connection arrives within this many milliseconds. */
  timeoutMs?: number;
  /** Give up waiting (reject with ABORTED) when this signal aborts; no connection is taken then. */
  signal?: AbortSignal;
}

/** A listening endpoint that hands out one Transport per incoming connection. */
export interface TransportListener extends AsyncIterable<Transport> {
  /** The bound port (useful with `port: 0`). */
  readonly port: number;
  /** The bound host. */
  readonly host: string;
  /**
   * The next incoming connection, oldest first.
   * @throws PagewireError TRANSPORT_CLOSED once the listener is closed, TIMEOUT after `timeoutMs`
   */
  accept(options?: AcceptOptions): Promise<Transport>;
  /**
   * Stop listening. Connections not yet accepted are destroyed; accepted ones stay open (their
   * owner closes them). Pending `accept()` calls reject with TRANSPORT_CLOSED.
   */
  close(): Promise<void>;
}

interface AcceptWaiter {
  resolve: (t: Transport) => void;
  reject: (err: PagewireError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Connections waiting to be accepted, at most `maxPending` of them (more are destroyed on arrival,
 * so a flood of connections costs bounded memory).
 */
export class AcceptQueue {
  private pending: Transport[] = [];
  private waiters: AcceptWaiter[] = [];
  private closedWith: PagewireError | null = null;
  /** Connections destroyed because the queue was full or closed. */
  rejected = 0;

  /**
   * @param label for error messages
   * @param maxPending most connections held while nobody accepts
   */
  constructor(
    private readonly label: string,
    private readonly maxPending: number,
  ) {}

  /** Hand over a new connection. */
  push(t: Transport): void {
    const w = this.waiters.shift();
    if (w !== undefined) {
      if (w.timer !== undefined) clearTimeout(w.timer);
      w.resolve(t);
      return;
    }
    if (this.closedWith !== null || this.pending.length >= this.maxPending) {
      this.rejected++;
      t.destroy(new PagewireError(ErrorCode.TRANSPORT_CLOSED, `${this.label}: not accepting connections`));
      return;
    }
    this.pending.push(t);
  }

  /** See {@link TransportListener.accept}. */
  accept(options: AcceptOptions = {}): Promise<Transport> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith);
    const t = this.pending.shift();
    if (t !== undefined) return Promise.resolve(t);
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(new PagewireError(ErrorCode.ABORTED, `${this.label}: accept aborted`));
    return new Promise<Transport>((resolve, reject) => {
      const w: AcceptWaiter = { resolve, reject, timer: undefined };
      if (signal) {
        const onAbort = (): void => {
          const i = this.waiters.indexOf(w);
          if (i < 0) return;
          this.waiters.splice(i, 1);
          if (w.timer !== undefined) clearTimeout(w.timer);
          reject(new PagewireError(ErrorCode.ABORTED, `${this.label}: accept aborted`));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        w.resolve = (t) => { signal.removeEventListener('abort', onAbort); resolve(t); };
        w.reject = (e) => { signal.removeEventListener('abort', onAbort); reject(e); };
      }
      const timeoutMs = options.timeoutMs;
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new PagewireError(ErrorCode.TIMEOUT, `${this.label}: no connection within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.waiters.push(w);
    });
  }

  /** Reject pending accepts and destroy connections nobody took. */
  close(): void {
    if (this.closedWith !== null) return;
    this.closedWith = new PagewireError(ErrorCode.TRANSPORT_CLOSED, `${this.label}: listener closed`);
    for (const w of this.waiters) {
      if (w.timer !== undefined) clearTimeout(w.timer);
      w.reject(this.closedWith);
    }
    this.waiters = [];
    for (const t of this.pending) t.destroy(this.closedWith);
    this.pending = [];
  }

  /** `for await (const t of listener)` until the listener closes. */
  async *iterate(): AsyncGenerator<Transport, void, undefined> {
    for (;;) {
      let t: Transport;
      try {
        t = await this.accept();
      } catch (err) {
        if (err instanceof PagewireError && err.code === ErrorCode.TRANSPORT_CLOSED && this.closedWith !== null) return;
        throw err;
      }
      yield t;
    }
  }
}
