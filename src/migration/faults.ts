/**
 * Fault injection for tests and `pagewire simulate --inject SPEC`: wraps the source's transports
 * and breaks them at named phases of the migration.
 *
 *   SPEC  = fault ("," fault)*
 *   fault = "drop@" phase | "corrupt@" phase | "stall@" phase ":" duration
 *   phase = "handshake" | "round" N | "stop-and-copy" | "complete"
 *   duration = N ("ms" | "s")
 *
 * drop: the connection breaks at the phase's first write, half of which goes out (so the break
 * lands mid-frame); corrupt: one byte of the next frame written in that phase is flipped on
 * the wire (the receiver's checksum must catch it); stall: writes are held for the duration.
 * Each fault fires once.
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { Transport } from '../transport/types.js';

export type FaultKind = 'drop' | 'corrupt' | 'stall';

export interface Fault {
  kind: FaultKind;
  phase: string;
  /** stall duration, ms */
  durationMs: number;
  fired: boolean;
}

const PHASE = /^(handshake|round\d+|stop-and-copy|complete)$/;

/**
 * Parse a fault spec.
 * @throws PagewireError INVALID_ARGUMENT
 */
export function parseFaultSpec(spec: string): Fault[] {
  if (spec.trim() === '') return [];
  return spec.split(',').map((part) => {
    const m = /^(drop|corrupt|stall)@([a-z0-9-]+)(?::(\d+(?:\.\d+)?)(ms|s))?$/.exec(part.trim());
    if (!m || !PHASE.test(m[2]!)) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `bad fault "${part}": expected drop@PHASE, corrupt@PHASE or stall@PHASE:DURATION with PHASE handshake, roundN, stop-and-copy or complete`);
    }
    const kind = m[1] as FaultKind;
    if (kind === 'stall' && !m[3]) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `stall fault "${part}" needs a duration, e.g. stall@round1:3s`);
    if (kind !== 'stall' && m[3]) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `fault "${part}" takes no duration`);
    const durationMs = m[3] ? Number(m[3]) * (m[4] === 's' ? 1000 : 1) : 0;
    return { kind, phase: m[2]!, durationMs, fired: false };
  });
}

/** Arms faults by phase and wraps transports so armed faults hit the wire. */
export class FaultInjector {
  readonly faults: Fault[];
  private armed: Fault[] = [];
  private current: FaultyTransport | null = null;
  /** Faults that fired, in order. */
  readonly fired: string[] = [];

  constructor(spec: string | Fault[]) {
    this.faults = typeof spec === 'string' ? parseFaultSpec(spec) : spec;
  }

  /** Tell the injector a phase starts (wire to SourceOptions.onPhase). */
  onPhase(phase: string): void {
    for (const f of this.faults) if (!f.fired && f.phase === phase) { f.fired = true; this.armed.push(f); }
    this.current?.poke();
  }

  /** Wrap a newly opened transport. */
  wrap(inner: Transport): Transport {
    const t = new FaultyTransport(inner, this);
    this.current = t;
    return t;
  }

  /** Next armed fault, removed from the armed list. */
  take(): Fault | undefined {
    const f = this.armed.shift();
    if (f) this.fired.push(`${f.kind}@${f.phase}`);
    return f;
  }

  get hasArmed(): boolean {
    return this.armed.length > 0;
  }
}

class FaultyTransport implements Transport {
  constructor(private readonly inner: Transport, private readonly inj: FaultInjector) {}

  get closed(): boolean {
    return this.inner.closed;
  }
  get label(): string {
    return this.inner.label;
  }

  poke(): void {
    // faults act on the next write; nothing to do until then
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.inj.hasArmed) {
      const f = this.inj.take()!;
      if (f.kind === 'drop') {
        await this.inner.write(chunk.subarray(0, chunk.byteLength >>> 1)).catch(() => undefined);
        this.inner.destroy(new PagewireError(ErrorCode.TRANSPORT_CLOSED, `injected fault: link dropped at ${f.phase}`));
        throw new PagewireError(ErrorCode.TRANSPORT_CLOSED, `injected fault: link dropped at ${f.phase}`);
      }
      if (f.kind === 'corrupt') {
        const copy = chunk.slice();
        copy[copy.byteLength >>> 1]! ^= 0x20;
        return this.inner.write(copy);
      }
      await new Promise((r) => setTimeout(r, f.durationMs));
    }
    return this.inner.write(chunk);
  }

  read(): Promise<Uint8Array | null> {
    return this.inner.read();
  }
  end(): Promise<void> {
    return this.inner.end();
  }
  destroy(err?: Error): void {
    this.inner.destroy(err);
  }
}
