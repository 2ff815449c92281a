import { describe, it, expect } from 'vitest';
import { memoryPair } from '../src/transport/memory.js';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { createCore } from '../src/core/core.js';
import { ErrorCode } from '../src/errors.js';
import { SetDirtyLog, announcing, makeMemories, sameMemory } from './helpers/engine.js';

async function attempt(sourceSecret: string | undefined, targetSecret: string | undefined) {
  const { src, dst } = await makeMemories(256);
  const [a, b] = memoryPair();
  let resumed = 0;
  const source = new MigrationSource(src, new SetDirtyLog(256), a, { secret: sourceSecret }, { resume: () => { resumed++; } });
  const target = new MigrationTarget(dst, { secret: targetSecret });
  const [s, t] = await Promise.allSettled([source.migrate(), target.run(b)]);
  const untouched = dst.pages(0, 256)!.every((x) => x === 0);
  return { s, t, src, dst, untouched, resumed };
}

const code = (r: PromiseSettledResult<unknown>) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'ok');

describe('shared-secret handshake', () => {
  it('the same secret migrates', async () => {
    const { s, t, src, dst } = await attempt('s3cret', 's3cret');
    expect(code(s)).toBe('ok');
    expect(code(t)).toBe('ok');
    expect(sameMemory(src, dst)).toBe(true);
  });

  it('a different secret fails on both sides with AUTH_FAILED and writes no memory', async () => {
    const { s, t, untouched } = await attempt('s3cret', 'other');
    expect(code(s)).toBe(ErrorCode.AUTH_FAILED);
    expect(code(t)).toBe(ErrorCode.AUTH_FAILED);
    expect(untouched).toBe(true);
  });

  it('a missing secret on either side is refused', async () => {
    const r1 = await attempt(undefined, 's3cret');
    expect(code(r1.s)).toBe(ErrorCode.AUTH_FAILED);
    expect(code(r1.t)).toBe(ErrorCode.AUTH_FAILED);
    expect(r1.untouched).toBe(true);
    const r2 = await attempt('s3cret', undefined);
    expect(code(r2.s)).toBe(ErrorCode.AUTH_FAILED);
    expect(r2.untouched).toBe(true);
  });
});

describe('secret with an older peer', () => {
  it('a 1.2 peer cannot authenticate frames: with a secret both sides refuse it (VERSION_MISMATCH), no memory written', async () => {
    for (const older of ['target', 'source'] as const) {
      const { src, dst } = await makeMemories(256);
      const [a, b] = memoryPair();
      const [s, t] = await Promise.allSettled([
        new MigrationSource(src, new SetDirtyLog(256), older === 'source' ? announcing(a, 2) : a, { secret: 's3cret' }).migrate(),
        new MigrationTarget(dst, { secret: 's3cret' }).run(older === 'target' ? announcing(b, 2) : b),
      ]);
      expect(code(s)).toBe(ErrorCode.VERSION_MISMATCH);
      expect(code(t)).toBe(ErrorCode.VERSION_MISMATCH);
      expect(dst.pages(0, 256)!.every((x) => x === 0)).toBe(true);
    }
  });

  it('without a secret a 1.2 target still migrates (COMPLETE carries the digest for it)', async () => {
    const { src, dst } = await makeMemories(256);
    const [a, b] = memoryPair();
    // both sides announce 1.2, so this target also answers as a 1.2 target does (40-byte ACKs, protocol 1.4)
    const [s, t] = await Promise.all([new MigrationSource(src, new SetDirtyLog(256), announcing(a, 2)).migrate(), new MigrationTarget(dst).run(announcing(b, 2))]);
    expect(s.verified && t.verified).toBe(true);
    expect(sameMemory(src, dst)).toBe(true);
  });
});

describe('handshake mismatches', () => {
  it('page size and layout mismatches fail on both sides with LAYOUT_MISMATCH', async () => {
    for (const [pages, pageSize] of [[200, 4096], [256, 8192]] as const) {
      const src = GuestMemory.inCore(await createCore(), 256, 4096);
      const dst = GuestMemory.inCore(await createCore(), pages, pageSize);
      const [a, b] = memoryPair();
      const [s, t] = await Promise.allSettled([new MigrationSource(src, new SetDirtyLog(256), a).migrate(), new MigrationTarget(dst).run(b)]);
      expect(code(s)).toBe(ErrorCode.LAYOUT_MISMATCH);
      expect(code(t)).toBe(ErrorCode.LAYOUT_MISMATCH);
    }
  });

  it('a target that speaks another major version is refused by the source', async () => {
    const src = GuestMemory.inCore(await createCore(), 16, 4096);
    const [a, b] = memoryPair();
    const p = new MigrationSource(src, new SetDirtyLog(16), a, { handshakeTimeoutMs: 2000 }).migrate();
    await b.write(new Uint8Array([0x50, 0x47, 0x57, 0x52, 9, 0, 0, 0]));
    await expect(p).rejects.toMatchObject({ code: ErrorCode.VERSION_MISMATCH });
  });

  it('rejects bad options before any work', async () => {
    const src = GuestMemory.inCore(await createCore(), 16, 4096);
    const [a] = memoryPair();
    for (const o of [{ downtimeLimitMs: -1 }, { maxRounds: 0 }, { batchPages: 1.5 }, { mode: 'warp' as never }, { onNonConvergence: 'pray' as never }]) {
      expect(() => new MigrationSource(src, new SetDirtyLog(16), a, o)).toThrowError(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    }
  });
});
