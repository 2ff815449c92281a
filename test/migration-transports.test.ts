/**
 * The same migration over every transport: a real `ws` server on loopback, a MessagePort to a
 * worker thread (the target runs in the worker, built package), and through the shaped link.
 */
import { describe, it, expect } from 'vitest';
import { Worker, MessageChannel } from 'node:worker_threads';
import { MigrationSource } from '../src/migration/source.js';
import { MigrationTarget } from '../src/migration/target.js';
import { listenWebSocket, connectWebSocket } from '../src/transport/websocket-node.js';
import { messagePortTransport } from '../src/transport/message-port.js';
import { shapedPair } from '../src/transport/shaped.js';
import { SetDirtyLog, TimerGuest, makeMemories, sameMemory } from './helpers/engine.js';

describe('migration over each transport', () => {
  it('WebSocket (real ws server on 127.0.0.1)', async () => {
    const { src, dst } = await makeMemories(2048);
    const log = new SetDirtyLog(2048);
    const guest = new TimerGuest(src, log, 10);
    const server = await listenWebSocket({ host: '127.0.0.1', port: 0 });
    try {
      const source = new MigrationSource(src, log, () => connectWebSocket(`ws://127.0.0.1:${server.port}/`), { downtimeLimitMs: 50 }, { pause: () => { guest.paused = true; } });
      const target = new MigrationTarget(dst);
      const [rs, rt] = await Promise.all([source.migrate(), target.run(() => server.accept())]);
      expect(rs.verified && rt.verified).toBe(true);
      expect(sameMemory(src, dst)).toBe(true);
    } finally {
      guest.stop();
      await server.close();
    }
  });

  // with a secret, every frame is authenticated with Web Crypto on both sides of the port
  for (const secret of [undefined, 's3cret']) it(`MessagePort to a worker thread running the target${secret ? ', with a secret (authenticated frames)' : ''}`, async () => {
    const { src } = await makeMemories(1024);
    const log = new SetDirtyLog(1024);
    const guest = new TimerGuest(src, log, 5);
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL('./fixtures/target-worker.mjs', import.meta.url), { workerData: { port: port2, secret }, transferList: [port2] });
    try {
      const result = new Promise<any>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
      const source = new MigrationSource(src, log, messagePortTransport(port1), { downtimeLimitMs: 50, secret }, { pause: () => { guest.paused = true; } });
      const rs = await source.migrate();
      const rt = await result;
      expect(rt.ok, rt.message).toBe(true);
      expect(rs.verified && rt.verified).toBe(true);
      expect(rt.digest).toBe(rs.digest);
      expect(Buffer.compare(Buffer.from(rt.memory), Buffer.from(src.pages(0, 1024)!))).toBe(0);
    } finally {
      guest.stop();
      await worker.terminate();
      port1.close();
    }
  });

  it('through the shaped link (rate limit + delay): verified, and time follows the link', async () => {
    const pages = 1024; // 4 MiB
    const { src, dst } = await makeMemories(pages);
    const log = new SetDirtyLog(pages);
    const rate = 16 * 1024 * 1024; // 16 MiB/s
    const [a, b] = shapedPair({ bandwidthBytesPerSec: rate, delayMs: 10 });
    const source = new MigrationSource(src, log, a, { downtimeLimitMs: 100 });
    const target = new MigrationTarget(dst);
    const t0 = performance.now();
    const [rs] = await Promise.all([source.migrate(), target.run(b)]);
    const elapsed = performance.now() - t0;
    expect(rs.verified).toBe(true);
    expect(sameMemory(src, dst)).toBe(true);
    // at least the bytes over the rate (generous lower bound; no upper bound on a noisy machine)
    expect(elapsed).toBeGreaterThan((rs.wireBytes / rate) * 1000 * 0.7);
  });
});

describe('encrypted transports', () => {
  it('migrates over TLS (node:tls) and wss with a certificate made for the test', async () => {
    const { makeCerts } = await import('./fixtures/transport-util.js');
    const { listenTls, connectTls } = await import('../src/transport/tls.js');
    const certs = makeCerts();
    for (const kind of ['tls', 'wss'] as const) {
      const { src, dst } = await makeMemories(512);
      const log = new SetDirtyLog(512);
      const server = kind === 'tls'
        ? await listenTls({ host: '127.0.0.1', port: 0, key: certs.key, cert: certs.cert })
        : await listenWebSocket({ host: '127.0.0.1', port: 0, tls: { key: certs.key, cert: certs.cert } });
      const connect = () => kind === 'tls'
        ? connectTls({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: certs.ca })
        : connectWebSocket(`wss://localhost:${server.port}/`, { ca: certs.ca });
      try {
        const [rs, rt] = await Promise.all([new MigrationSource(src, log, connect, { secret: 'k' }).migrate(), new MigrationTarget(dst, { secret: 'k' }).run(() => server.accept())]);
        expect(rs.verified && rt.verified).toBe(true);
        expect(sameMemory(src, dst)).toBe(true);
      } finally {
        await server.close();
      }
    }
  });
});
