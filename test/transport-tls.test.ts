import * as net from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import type { TransportListener } from '../src/transport/listener.js';
import { connectTls, listenTls } from '../src/transport/tls.js';
import type { Transport } from '../src/transport/types.js';
import { type TestCerts, drain, haveOpenssl, makeCerts, pattern, rejection, sha256, writeAll } from './fixtures/transport-util.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
function track<T extends Transport>(t: T): T {
  cleanup.push(() => t.destroy());
  return t;
}

let certs: TestCerts;
beforeAll(() => {
  expect(haveOpenssl()).toBe(true);
  certs = makeCerts();
});

async function listen(extra: Partial<Parameters<typeof listenTls>[0]> = {}): Promise<TransportListener> {
  const l = await listenTls({ key: certs.key, cert: certs.cert, ...extra });
  cleanup.push(() => l.close());
  return l;
}

describe('TLS transport', () => {
  it('moves 32 MiB both ways with a certificate made for the test, verified by name and by IP', async () => {
    const l = await listen();
    const byName = connectTls({ host: '127.0.0.1', servername: 'localhost', port: l.port, ca: certs.ca });
    const server = track(await l.accept({ timeoutMs: 5000 }));
    const client = track(await byName);
    expect(client.label).toBe(`tls 127.0.0.1:${l.port}`);
    const up = pattern(32 << 20, 21);
    const down = pattern(32 << 20, 22);
    const [, , gotUp, gotDown] = await Promise.all([writeAll(client, up, 256 << 10), writeAll(server, down, 256 << 10), drain(server), drain(client)]);
    expect(gotUp.sha).toBe(sha256(up));
    expect(gotDown.sha).toBe(sha256(down));
    // The certificate's IP SAN also verifies a connection by address.
    const byIp = connectTls({ host: '127.0.0.1', port: l.port, ca: certs.ca });
    track(await l.accept({ timeoutMs: 5000 }));
    track(await byIp);
  });

  it('refuses a server whose certificate is not signed by a trusted CA', async () => {
    const l = await listen();
    const e = await rejection(connectTls({ port: l.port, servername: 'localhost', ca: certs.otherCa }));
    expect(e.code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(e.message).toMatch(/TLS handshake failed/);
    // The server never hands out the failed connection.
    expect((await rejection(l.accept({ timeoutMs: 200 }))).code).toBe(ErrorCode.TIMEOUT);
  });

  it('refuses a certificate for another name', async () => {
    const l = await listen();
    const e = await rejection(connectTls({ port: l.port, servername: 'example.org', ca: certs.ca }));
    expect(e.code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('times out with TIMEOUT when the server never answers the handshake', async () => {
    const silent = net.createServer((s) => {
      s.on('error', () => {});
      cleanup.push(() => s.destroy());
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => silent.close(() => r())));
    const port = (silent.address() as net.AddressInfo).port;
    const e = await rejection(connectTls({ port, ca: certs.ca, servername: 'localhost', timeoutMs: 300 }));
    expect(e.code).toBe(ErrorCode.TIMEOUT);
  });

  it('destroy() resets the TCP connection under TLS: the peer fails, it does not see an end', async () => {
    const l = await listen();
    const c = connectTls({ port: l.port, servername: 'localhost', ca: certs.ca });
    const server = track(await l.accept({ timeoutMs: 5000 }));
    const client = track(await c);
    await client.write(new Uint8Array([1]));
    expect([...(await server.read())!]).toEqual([1]);
    const pending = server.read();
    client.destroy();
    expect((await rejection(pending)).code).toBe(ErrorCode.TRANSPORT_CLOSED);
  });

  it('end() is a clean half-close over TLS: the peer reads null and can still answer', async () => {
    const l = await listen();
    const c = connectTls({ port: l.port, servername: 'localhost', ca: certs.ca });
    const server = track(await l.accept({ timeoutMs: 5000 }));
    const client = track(await c);
    await client.write(new Uint8Array([1, 2]));
    await client.end();
    expect((await drain(server)).bytes).toBe(2);
    const answer = pattern(1 << 20, 3);
    await writeAll(server, answer);
    const back = await drain(client);
    expect(back.sha).toBe(sha256(answer));
  });

  it('rejects a bad key or certificate with INVALID_ARGUMENT', async () => {
    const e = await rejection(listenTls({ key: 'not a key', cert: 'not a cert' }));
    expect(e.code).toBe(ErrorCode.INVALID_ARGUMENT);
  });
});
