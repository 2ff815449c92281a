// Where the secret comes from (flag, file, environment), what an empty one does, and what a peer
// may make this side print or report (escape sequences, unbounded HELLO options, a bad page size).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startServe } from './helpers/cli.js';
import { createCore, type Core } from '../src/core/core.js';
import { FrameWriter } from '../src/protocol/codec.js';
import { FrameType, encodePreamble } from '../src/protocol/frame.js';
import { echoOptions, encodeJson, errorPayload, parseError, peerText, type HelloMessage } from '../src/protocol/messages.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { MigrationTarget } from '../src/migration/target.js';
import { memoryPair } from '../src/transport/memory.js';
import { ErrorCode, PagewireError } from '../src/errors.js';

let core: Core;
let dir: string;
beforeAll(async () => { core = await createCore(); dir = mkdtempSync(join(tmpdir(), 'pagewire-secret-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

describe('the secret on the command line', () => {
  it('an empty secret is a usage error (it would turn authentication off), from any source', async () => {
    const r = await runCli(['simulate', '--size', '4MiB', '--secret', '']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/empty secret/);
    writeFileSync(join(dir, 'empty'), '\n');
    expect((await runCli(['serve', '--port', '0', '--secret-file', join(dir, 'empty')])).code).toBe(2);
    expect(() => new MigrationTarget(GuestMemory.inCore(core, 4), { secret: '' })).toThrow(PagewireError);
  });

  it('--secret-file on serve and PAGEWIRE_SECRET on migrate authenticate each other; a different one fails', async () => {
    writeFileSync(join(dir, 'secret'), 's3cret\n');
    const serve = await startServe(['--secret-file', join(dir, 'secret'), '--keep']);
    const saved = process.env['PAGEWIRE_SECRET'];
    try {
      process.env['PAGEWIRE_SECRET'] = 'other';
      const bad = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '4MiB', '--json']);
      expect(bad.code).toBe(3);
      expect(JSON.parse(bad.stdout).error.code).toBe('AUTH_FAILED');
      process.env['PAGEWIRE_SECRET'] = 's3cret';
      const ok = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '4MiB', '--json']);
      expect(ok.code, ok.stderr).toBe(0);
    } finally {
      if (saved === undefined) delete process.env['PAGEWIRE_SECRET']; else process.env['PAGEWIRE_SECRET'] = saved;
      serve.child.kill('SIGTERM');
    }
    const out = await serve.result;
    expect(out.stderr).toMatch(/rejected a connection from .*: AUTH_FAILED/);
  });
});

describe('what a peer can make us print', () => {
  it('escape sequences and bidi overrides in a peer ERROR are replaced before anyone prints them', () => {
    const evil = errorPayload(new PagewireError(ErrorCode.ABORTED, 'boom\x1b[2J\x1b]0;owned\x07 \u202eevil\r\n'));
    const e = parseError(evil);
    expect(e.message).toBe('boom?[2J?]0;owned? ?evil??');
    expect(peerText('x'.repeat(300), 256)).toHaveLength(259);
  });

  it('HELLO options are echoed bounded: primitives only, 32 entries, short printable strings', () => {
    const opts: Record<string, unknown> = { big: 'y'.repeat(100_000), nested: { a: 1 }, esc: '\x1b[31mred', n: 5 };
    for (let i = 0; i < 100; i++) opts[`k${i}`] = i;
    const e = echoOptions(opts);
    expect(Object.keys(e)).toHaveLength(32);
    expect((e['big'] as string).length).toBeLessThanOrEqual(259);
    expect(e['nested']).toBeUndefined();
    expect(e['esc']).toBe('?[31mred');
  });

  it('a HELLO with a page size that is not a power of two is LAYOUT_MISMATCH (exit 3), not a usage error', async () => {
    const [src, tgt] = memoryPair();
    const target = new MigrationTarget((l) => GuestMemory.inCore(core, l.regions, l.pageSize));
    const run = target.run(tgt);
    const h: HelloMessage = { sessionId: 'cd'.repeat(16), resume: false, pageSize: 3000, regions: [{ name: 'ram', pageCount: 4 }], codecs: ['raw'], mode: 'precopy', nonce: '', options: {} };
    await src.write(encodePreamble());
    await src.write(new FrameWriter(core).frame(FrameType.HELLO, encodeJson(h)));
    await expect(run).rejects.toMatchObject({ code: ErrorCode.LAYOUT_MISMATCH });
    src.destroy();
  });
});
