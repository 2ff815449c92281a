// Hostile peers over real TCP: strangers (idle, garbage, unauthenticated HELLOs) never stop a
// serving target nor the authenticated migration it serves; a peer that stops reading ends the
// target within its deadlines. Raw sockets are the fixture; the CLI runs as child processes.
import { describe, it, expect, beforeAll } from 'vitest';
import net from 'node:net';
import { runCli, startServe } from './helpers/cli.js';
import { createCore, type Core } from '../src/core/core.js';
import { FrameWriter } from '../src/protocol/codec.js';
import { FrameType, encodePreamble } from '../src/protocol/frame.js';
import { encodeJson, type HelloMessage } from '../src/protocol/messages.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { MigrationTarget } from '../src/migration/target.js';
import { MigrationSource } from '../src/migration/source.js';
import { listenTcp, connectTcp, type SocketTransport } from '../src/transport/tcp.js';
import type { Transport } from '../src/transport/types.js';
import { CLOSE_GRACE_MS } from '../src/protocol/connection.js';
import { ErrorCode, PagewireError } from '../src/errors.js';
import { SetDirtyLog, makeMemories, sameMemory } from './helpers/engine.js';

let core: Core;
beforeAll(async () => { core = await createCore(); });

function hello(over: Partial<HelloMessage> = {}): HelloMessage {
  return {
    sessionId: Math.random().toString(16).slice(2).padEnd(32, '0').slice(0, 32), resume: false, pageSize: 4096,
    regions: [{ name: 'ram', pageCount: 1024 }], codecs: ['raw'], mode: 'precopy', nonce: 'ab'.repeat(16), options: {}, ...over,
  };
}

/** Open a raw connection; resolves once connected. Errors (resets) are ignored: strangers get dropped. */
function raw(port: number): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.on('error', () => undefined);
    s.on('data', () => undefined);
  });
}

function frames(h: HelloMessage, extra: { type: FrameType; payload: Uint8Array }[] = []): Buffer {
  const w = new FrameWriter(core);
  return Buffer.concat([encodePreamble(), w.frame(FrameType.HELLO, encodeJson(h)), ...extra.map((f) => w.frame(f.type, f.payload))]);
}

function garbage(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

/** Strangers of every kind against `port`; returns their sockets (to close at the end). */
async function strangers(port: number, wave: number): Promise<net.Socket[]> {
  const socks: net.Socket[] = [];
  for (let i = 0; i < 50; i++) socks.push(await raw(port)); // idle: say nothing
  for (let i = 0; i < 50; i++) {
    const s = await raw(port);
    // garbage: not a preamble, or a preamble then junk, or an HTTP request
    s.write(i % 3 === 0 ? garbage(4096, wave * 100 + i) : i % 3 === 1 ? Buffer.concat([encodePreamble(), garbage(512, i)]) : Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    socks.push(s);
  }
  for (let i = 0; i < 10; i++) {
    const s = await raw(port);
    // unauthenticated HELLOs: new sessions, resumes, a wrong AUTH, a HELLO without a nonce
    const h = hello({ resume: i % 2 === 1, nonce: i === 9 ? '' : 'ab'.repeat(16) });
    s.write(frames(h, i % 3 === 0 ? [{ type: FrameType.AUTH, payload: encodeJson({ proof: '00'.repeat(32) }) }] : []));
    socks.push(s);
  }
  return socks;
}

describe('a serving target and strangers', () => {
  it('serve --keep --secret S: 50 idle, 50 garbage connections and unauthenticated HELLOs do not stop a concurrent authenticated migration', async () => {
    const serve = await startServe(['--keep', '--secret', 'S', '--json']);
    const socks: net.Socket[] = [];
    try {
      socks.push(...(await strangers(serve.port, 1)));
      // the migration starts while the strangers are still connected; a second wave arrives during it
      // each child bounded well inside the test's timeout, so a hang fails with the child's stderr
      const migration = runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '16MiB', '--link', '100mbit', '--secret', 'S', '--json'], 50_000);
      await new Promise((r) => setTimeout(r, 300));
      socks.push(...(await strangers(serve.port, 2)));
      const src = await migration;
      expect(src.code, src.stderr).toBe(0);
      const rep = JSON.parse(src.stdout.trim().split('\n').pop()!);
      expect(rep.verified).toBe(true);
      // and the server is still there for the next migration
      const again = await runCli(['migrate', '--to', `127.0.0.1:${serve.port}`, '--size', '4MiB', '--secret', 'S', '--json'], 40_000);
      expect(again.code, again.stderr).toBe(0);
    } finally {
      for (const s of socks) s.destroy();
      serve.child.kill('SIGTERM');
    }
    const out = await serve.result;
    const reports = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(reports.filter((r) => r.verified === true).length).toBe(2);
  }, 120_000);

  it('an idle stranger that connected first delays nothing: the source after it is served at once', async () => {
    const listener = await listenTcp({ host: '127.0.0.1', port: 0 });
    const idle = await raw(listener.port);
    const { src, dst } = await makeMemories(256);
    const target = new MigrationTarget(dst, { secret: 'k', handshakeTimeoutMs: 60_000 });
    const t0 = Date.now();
    const [rs, rt] = await Promise.all([
      new MigrationSource(src, new SetDirtyLog(256), () => connectTcp({ host: '127.0.0.1', port: listener.port }), { secret: 'k' }).migrate(),
      target.run((signal) => listener.accept({ signal })),
    ]);
    expect(rs.verified && rt.verified).toBe(true);
    expect(Date.now() - t0).toBeLessThan(30_000); // not serialised behind the idle one's 60 s handshake deadline
    expect(sameMemory(src, dst)).toBe(true);
    idle.destroy();
    await listener.close();
  });

  it('per source address at most maxPendingPerAddress handshakes wait; the oldest is dropped for a newer one', async () => {
    const listener = await listenTcp({ host: '127.0.0.1', port: 0 });
    const rejected: string[] = [];
    const target = new MigrationTarget(GuestMemory.inCore(core, 16, 4096), { maxPendingPerAddress: 3, handshakeTimeoutMs: 60_000, onRejected: (r) => rejected.push(r.error.code) });
    const run = target.run((signal) => listener.accept({ signal })).catch((e: unknown) => e);
    const closed: boolean[] = [];
    const socks: net.Socket[] = [];
    for (let i = 0; i < 6; i++) {
      const s = await raw(listener.port);
      const k = i;
      closed[k] = false;
      s.on('close', () => { closed[k] = true; });
      socks.push(s);
    }
    const deadline = Date.now() + 5000;
    while (rejected.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(rejected).toEqual([ErrorCode.LIMIT_EXCEEDED, ErrorCode.LIMIT_EXCEEDED, ErrorCode.LIMIT_EXCEEDED]);
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toEqual([true, true, true, false, false, false]); // the three oldest went
    for (const s of socks) s.destroy();
    await listener.close(); // ends the target's wait for a first connection
    expect(await run).toBeInstanceOf(PagewireError);
  });
});

/** A target side that never ends its direction (no FIN) once the migration is done: the link stays half-open. */
function neverEnds(t: Transport): Transport {
  return {
    write: (c, release) => t.write(c, release), read: () => t.read(), end: () => Promise.resolve(), destroy: (e) => t.destroy(e),
    get closed() { return t.closed; }, label: t.label, remote: t.remote,
  };
}

describe('a peer that never closes its side', () => {
  it('migrate() resolving leaves no socket open: the source tears the link down CLOSE_GRACE_MS after its own end', async () => {
    const listener = await listenTcp({ host: '127.0.0.1', port: 0 });
    const { src, dst } = await makeMemories(64);
    let srcSocket: SocketTransport | undefined;
    let dstTransport: Transport | undefined;
    const [rs, rt] = await Promise.all([
      new MigrationSource(src, new SetDirtyLog(64), async () => (srcSocket = await connectTcp({ host: '127.0.0.1', port: listener.port })), { secret: 'k' }).migrate(),
      new MigrationTarget(dst, { secret: 'k' }).run(async (signal) => neverEnds((dstTransport = await listener.accept({ signal })))),
    ]);
    expect(rs.verified && rt.verified).toBe(true);
    const socket = srcSocket!.socket;
    const t0 = Date.now();
    // Without the bound, this socket waits for the target's FIN for ever (and holds a Node process alive).
    const closed = socket.destroyed || await new Promise<boolean>((resolve) => {
      socket.once('close', () => resolve(true));
      setTimeout(() => resolve(false), CLOSE_GRACE_MS + 10_000);
    });
    expect(closed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(CLOSE_GRACE_MS + 10_000);
    dstTransport?.destroy();
    await listener.close();
  }, 30_000);
});

describe('a peer that stops reading', () => {
  it('a source that never reads its ACKs ends the target within idleTimeoutMs + resumeDeadlineMs', async () => {
    const idleTimeoutMs = 1000;
    const resumeDeadlineMs = 500;
    const listener = await listenTcp({ host: '127.0.0.1', port: 0 });
    const target = new MigrationTarget(GuestMemory.inCore(core, 1024, 4096), { idleTimeoutMs, resumeDeadlineMs });
    let settled = false;
    let settledAt = 0;
    const run = target.run((signal) => listener.accept({ signal })).then(() => null, (e: unknown) => e).finally(() => { settled = true; settledAt = Date.now(); });
    const s = await raw(listener.port);
    s.pause(); // never read: the target's ACKs fill the socket buffers, then its writes block
    // The target's deadline runs from its blocked write, which comes after our writes stopped
    // going through: measure from our last write that went through, not from the start (building
    // 10^5 frames takes tens of seconds on a loaded machine).
    let lastProgress = Date.now();
    s.on('drain', () => { lastProgress = Date.now(); });
    const w = new FrameWriter(core);
    if (s.write(Buffer.concat([encodePreamble(), w.frame(FrameType.HELLO, encodeJson(hello({ nonce: '' })))]))) lastProgress = Date.now();
    const empty = Uint8Array.of(1); // a PAGES payload of just the records version: nothing to apply, one ACK
    const stopAt = Date.now() + 90_000; // bounded in count and time
    for (let i = 0; i < 400 && !settled && Date.now() < stopAt; i++) {
      const batch: Uint8Array[] = [];
      for (let k = 0; k < 1000; k++) batch.push(w.frame(FrameType.PAGES, empty));
      if (s.write(Buffer.concat(batch))) lastProgress = Date.now();
      else await new Promise((r) => { s.once('drain', r); setTimeout(r, 100); });
    }
    const e = await run;
    expect(e).toBeInstanceOf(PagewireError);
    expect((e as PagewireError).code).toBe(ErrorCode.TIMEOUT);
    // idleTimeoutMs + resumeDeadlineMs after the target blocked, plus slack for a loaded machine
    // (the old target waited for ever)
    expect(settledAt - lastProgress).toBeLessThan(idleTimeoutMs + resumeDeadlineMs + 10_000);
    s.destroy();
    await listener.close();
  }, 120_000);
});
