/**
 * The target's door: every incoming connection is admitted here before it may touch the session.
 *
 * Each connection gets its own handshake task, bounded in time (the handshake deadline) and in
 * memory (frames are capped until the peer is authenticated), and a connection that fails before
 * it is admitted ends only itself: a stranger's garbage, silence, wrong secret or unknown session
 * never stops the target nor the session it serves. At most `maxPending` handshakes run at once,
 * and at most `maxPendingPerAddress` from one source address; over either limit the oldest
 * handshake of that group is dropped (an idle flood cannot lock a real source out: its handshake
 * takes milliseconds, the flood's connections wait to be evicted).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Transport } from '../transport/types.js';
import type { Connection } from '../protocol/connection.js';
import type { HelloMessage } from '../protocol/messages.js';

/** A connection whose handshake went through: authenticated (when a secret is set) and fitting the session. */
export interface Admitted {
  conn: Connection;
  hello: HelloMessage;
  transport: Transport;
  /** When its HELLO arrived (the target's clock, ms): the start of the target's setup. */
  helloAt: number;
}

/** Limits of the door. */
export interface GateLimits {
  /** Handshakes in progress at once (default 64). */
  maxPending: number;
  /** Handshakes in progress at once from one source address (default 8). */
  maxPendingPerAddress: number;
}

export const DEFAULT_GATE_LIMITS: GateLimits = { maxPending: 64, maxPendingPerAddress: 8 };

/** A connection turned away before admission. */
export interface RejectedConnection {
  remote: string;
  error: PagewireError;
}

interface Pending {
  transport: Transport;
  address: string;
}

/** The source address of a transport without its port ('' when unknown). */
function addressOf(t: Transport): string {
  const r = t.remote;
  if (!r) return '';
  const i = r.lastIndexOf(':');
  return i > 0 ? r.slice(0, i) : r;
}

/**
 * Accepts connections in the background and runs `handshake` on each; admitted connections
 * wait in a queue of one (a newer admission replaces an older one that nobody took).
 */
export class ConnectionGate {
  private readonly pending: Pending[] = [];
  private ready: Admitted | null = null;
  private waiter: { resolve: (a: Admitted) => void; reject: (e: unknown) => void } | null = null;
  private ended: unknown = null;
  private readonly abort = new AbortController();
  /** Connections turned away before admission. */
  rejected = 0;

  constructor(
    private readonly accept: (signal?: AbortSignal) => Promise<Transport>,
    private readonly handshake: (t: Transport) => Promise<Admitted>,
    private readonly limits: GateLimits,
    private readonly onRejected: (r: RejectedConnection) => void,
    private readonly onAdmitted: (a: Admitted) => void,
  ) {
    void this.loop();
  }

  /**
   * The next admitted connection.
   * @throws the accept function's error once it fails (a closed listener)
   */
  next(): Promise<Admitted> {
    const a = this.ready;
    if (a) {
      this.ready = null;
      return Promise.resolve(a);
    }
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject }; });
  }

  /** Stop accepting; handshakes in progress and an untaken admission are dropped. */
  close(): void {
    if (this.ended) return;
    this.ended = new PagewireError(ErrorCode.ABORTED, 'the target stopped accepting connections');
    this.abort.abort(this.ended);
    for (const p of this.pending.splice(0)) p.transport.destroy(this.ended as PagewireError);
    this.ready?.transport.destroy(this.ended as PagewireError);
    this.ready = null;
  }

  private async loop(): Promise<void> {
    for (;;) {
      let t: Transport;
      try {
        t = await this.accept(this.abort.signal);
      } catch (err) {
        if (!this.ended) this.ended = err;
        this.waiter?.reject(this.ended);
        this.waiter = null;
        return;
      }
      if (this.ended) {
        t.destroy(this.ended as PagewireError);
        return;
      }
      this.admit(t);
    }
  }

  private admit(t: Transport): void {
    const p: Pending = { transport: t, address: addressOf(t) };
    const same = this.pending.filter((x) => x.address === p.address);
    if (same.length >= this.limits.maxPendingPerAddress) this.evict(same[0]!, `more than ${this.limits.maxPendingPerAddress} handshakes from ${p.address || 'one address'}`);
    if (this.pending.length >= this.limits.maxPending) this.evict(this.pending[0]!, `more than ${this.limits.maxPending} handshakes at once`);
    this.pending.push(p);
    this.handshake(t).then(
      (a) => {
        if (!this.remove(p)) { a.transport.destroy(); return; } // evicted meanwhile
        if (this.ended) { a.transport.destroy(this.ended as PagewireError); return; }
        this.onAdmitted(a);
        const w = this.waiter;
        if (w) {
          this.waiter = null;
          w.resolve(a);
          return;
        }
        this.ready?.transport.destroy(new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'a newer connection of the session replaced this one'));
        this.ready = a;
      },
      (err: unknown) => {
        this.remove(p);
        t.destroy();
        if (this.ended) return;
        this.rejected++;
        const e = err instanceof PagewireError ? err : new PagewireError(ErrorCode.ABORTED, String((err as Error)?.message ?? err), { cause: err });
        this.onRejected({ remote: t.remote ?? t.label, error: e });
      },
    );
  }

  private evict(p: Pending, why: string): void {
    this.remove(p);
    p.transport.destroy(new PagewireError(ErrorCode.LIMIT_EXCEEDED, `connection dropped during its handshake: ${why}`));
  }

  private remove(p: Pending): boolean {
    const i = this.pending.indexOf(p);
    if (i < 0) return false;
    this.pending.splice(i, 1);
    return true;
  }
}
