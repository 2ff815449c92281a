// A fake target (a test fixture speaking the protocol by hand) that lies: DONE says verified
// with another digest, a resumed WELCOME says complete with nothing delivered, or it never
// acknowledges. The source checks the digest itself, keeps its guest running, and its reconnect
// budget does not renew on reconnects.
import { describe, it, expect } from 'vitest';
import { createCore } from '../src/core/core.js';
import { Connection } from '../src/protocol/connection.js';
import { FrameType } from '../src/protocol/frame.js';
import { encodeAck, encodeJson, parseComplete, parseHello, type WelcomeMessage } from '../src/protocol/messages.js';
import { memoryDigest } from '../src/memory/digest.js';
import { MigrationSource } from '../src/migration/source.js';
import { memoryPair } from '../src/transport/memory.js';
import type { Transport } from '../src/transport/types.js';
import { ErrorCode, PagewireError } from '../src/errors.js';
import { SetDirtyLog, makeMemories } from './helpers/engine.js';

type Lie = {
  done?: { verified: boolean; digest: string }; dropAtComplete?: boolean; welcomeComplete?: { digest?: string }; ack?: boolean;
  /** Answer COMPLETE with DONE { verified: true } naming whatever COMPLETE carries: its digest, or the start of its commitment. */
  echoComplete?: boolean;
};

/** COMPLETE payloads the fake targets received (JSON text). */
const completes: string[] = [];

/** One connection of the fake target; returns when the source goes away. */
async function fake(t: Transport, lie: Lie, state: { applied: number; connections: number }): Promise<void> {
  const conn = new Connection(t, await createCore());
  state.connections++;
  try {
    await conn.open();
    const hello = parseHello((await conn.expect(FrameType.HELLO)).payload);
    const welcome: WelcomeMessage = {
      sessionId: hello.sessionId, maxFrameBytes: 32 << 20,
      resume: hello.resume ? { appliedSeq: state.applied, round: 0, complete: lie.welcomeComplete !== undefined, ...(lie.welcomeComplete?.digest ? { digest: lie.welcomeComplete.digest } : {}) } : null,
    };
    await conn.send(FrameType.WELCOME, encodeJson(welcome));
    const ackBase = conn.bytesRead; // acks count the bytes after the handshake, as the source does
    for (;;) {
      const f = await conn.recv();
      if (!f) return;
      if (lie.ack === false) continue; // silence: no ACK, no DONE
      if (f.type === FrameType.COMPLETE) {
        if (lie.dropAtComplete) { t.destroy(); return; }
        const text = new TextDecoder().decode(f.payload);
        completes.push(text);
        const m = parseComplete(f.payload);
        const echoed = { verified: true, digest: m.digest || m.commitment!.mac.slice(0, 16) };
        await conn.send(FrameType.DONE, encodeJson(lie.echoComplete ? echoed : lie.done ?? { verified: true, digest: '0000000000000000' }));
        continue;
      }
      state.applied = f.seq;
      await conn.send(FrameType.ACK, encodeAck({ appliedSeq: f.seq, bytesApplied: conn.bytesRead - ackBase, echoTimeMs: 0 }, conn.peerMinor));
    }
  } catch {
    // the source hung up
  } finally {
    t.destroy();
    conn.dispose();
  }
}

async function migrateTo(lie: (n: number) => Lie, opts: Record<string, unknown> = {}): Promise<{ err: unknown; running: boolean; connections: number; ms: number; digest: string }> {
  const { src } = await makeMemories(256);
  const digest = memoryDigest(src, await createCore());
  const state = { applied: -1, connections: 0 };
  let running = true;
  const connect = async (): Promise<Transport> => {
    const [a, b] = memoryPair();
    void fake(b, lie(state.connections), state);
    return a;
  };
  const source = new MigrationSource(src, new SetDirtyLog(256), connect, { retryBackoffMs: 5, ...opts },
    { pause: () => { running = false; }, resume: () => { running = true; } });
  const t0 = Date.now();
  const err = await source.migrate().then(() => null, (e: unknown) => e);
  return { err, running, connections: state.connections, ms: Date.now() - t0, digest };
}

describe('a target that lies', () => {
  it('DONE { verified: true } with another digest: VERIFY_FAILED (exit 4), guest running', async () => {
    const r = await migrateTo(() => ({ done: { verified: true, digest: '0123456789abcdef' } }));
    expect(r.err).toBeInstanceOf(PagewireError);
    expect((r.err as PagewireError).code).toBe(ErrorCode.VERIFY_FAILED);
    expect(r.running).toBe(true);
  });

  it('a resumed WELCOME { complete: true } after a drop at COMPLETE, without a digest or with a wrong one: VERIFY_FAILED, guest running', async () => {
    for (const welcomeComplete of [{}, { digest: 'fedcba9876543210' }]) {
      const r = await migrateTo((n) => (n === 0 ? { dropAtComplete: true } : { welcomeComplete }));
      expect(r.err).toBeInstanceOf(PagewireError);
      expect((r.err as PagewireError).code).toBe(ErrorCode.VERIFY_FAILED);
      expect(r.running).toBe(true);
      expect(r.connections).toBe(2);
    }
  });

  it('a target that echoes what COMPLETE carries into DONE: VERIFY_FAILED (exit 4), guest running; COMPLETE never holds the digest', async () => {
    completes.length = 0;
    const r = await migrateTo(() => ({ echoComplete: true }));
    expect(r.err).toBeInstanceOf(PagewireError);
    expect((r.err as PagewireError).code).toBe(ErrorCode.VERIFY_FAILED);
    expect(r.running).toBe(true);
    // protocol 1.3: a fresh commitment (salt, HMAC) instead of the digest, which appears nowhere
    expect(completes).toHaveLength(1);
    expect(JSON.parse(completes[0]!)).toMatchObject({ commitment: { salt: expect.stringMatching(/^[0-9a-f]{32}$/), mac: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    expect(JSON.parse(completes[0]!).digest).toBeUndefined();
    expect(completes[0]).not.toContain(r.digest);
    expect((r.err as Error).message).toContain(r.digest);
  });

  it('a target that completes every handshake but never acknowledges: the reconnect budget runs out (RESUME_FAILED, exit 3)', async () => {
    const r = await migrateTo(() => ({ ack: false }), { ackTimeoutMs: 200, maxRetries: 2, resumeDeadlineMs: 10_000 });
    expect(r.err).toBeInstanceOf(PagewireError);
    expect((r.err as PagewireError).code).toBe(ErrorCode.RESUME_FAILED);
    expect(r.running).toBe(true);
    // the first connection and at most maxRetries reconnects, not one budget per reconnect
    expect(r.connections).toBeLessThanOrEqual(3);
    expect(r.ms).toBeLessThan(20_000);
  });
});
