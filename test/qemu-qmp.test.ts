/**
 * The QMP client against a real QEMU (`-machine none`, no guest) and against a fake QMP server
 * that misbehaves (malformed greeting, garbage, unknown ids, huge lines, silence, hang-ups).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, linkSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { QmpClient } from '../src/qemu/qmp.js';
import { pagewireRejection, qemuOrSkip } from './helpers/qemu.js';

const dir = mkdtempSync(join(tmpdir(), 'pagewire-qmp-'));
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));


const tools = qemuOrSkip('QMP client against a real QEMU');

describe.skipIf(!tools)('QmpClient against QEMU -machine none', () => {
  let qemu: ChildProcess;
  const sock = join(dir, 'none.qmp');
  beforeAll(async () => {
    qemu = spawn(tools!.qemu, ['-machine', 'none', '-display', 'none', '-nodefaults', '-S', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
  });
  afterAll(() => { qemu.kill('SIGKILL'); });

  it('reads the greeting, runs commands, maps error replies to QEMU_FAILED and sees events', async () => {
    const qmp = await QmpClient.connect(sock);
    cleanup.push(() => qmp.close());
    expect(qmp.version.major).toBeGreaterThanOrEqual(7);
    const v = await qmp.execute<{ qemu: { major: number } }>('query-version');
    expect(v.qemu.major).toBe(qmp.version.major);
    expect((await qmp.execute<{ status: string }>('query-status')).status).toBe('prelaunch');
    // several commands in flight at once are answered each with its own reply
    const [a, b, c] = await Promise.all([qmp.execute<{ status: string }>('query-status'), qmp.execute('query-version'), qmp.execute<unknown[]>('query-migrate-capabilities')]);
    expect(a.status).toBe('prelaunch');
    expect(b).toEqual(v);
    expect((c as { capability: string }[]).map((x) => x.capability)).toContain('x-ignore-shared');
    const e = await pagewireRejection(qmp.execute('no-such-command'));
    expect(e.code).toBe(ErrorCode.QEMU_FAILED);
    expect(e.message).toMatch(/CommandNotFound/);
    const bad = await pagewireRejection(qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'no-such-cap', state: true }] }));
    expect(bad.code).toBe(ErrorCode.QEMU_FAILED);
    // the client stays usable after error replies
    const since = qmp.eventCount;
    await qmp.execute('cont');
    const resume = await qmp.waitEvent('RESUME', 5000, { since });
    expect(resume.timeMs).toBeGreaterThan(Date.now() - 60_000);
    await qmp.execute('stop');
    expect((await qmp.waitEvent('STOP', 5000, { since })).index).toBeGreaterThan(resume.index);
    // an event that already happened is found in the history
    expect((await qmp.waitEvent('RESUME', 10, { since })).index).toBe(resume.index);
    expect((await pagewireRejection(qmp.waitEvent('SHUTDOWN', 50))).code).toBe(ErrorCode.TIMEOUT);
  });

  it('fails pending commands with TRANSPORT_CLOSED when QEMU goes away', async () => {
    const qmp = await QmpClient.connect(sock);
    const pending = qmp.execute('query-status');
    await pending;
    const ev = qmp.waitEvent('RESUME', 10_000);
    qemu.kill('SIGKILL');
    expect((await pagewireRejection(ev)).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await pagewireRejection(qmp.execute('query-status'))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(qmp.closed).toBe(true);
  });
});

/** A fake QMP server: `script` gets each accepted socket. */
async function fakeServer(name: string, script: (s: net.Socket) => void): Promise<string> {
  const path = join(dir, name);
  const server = net.createServer(script);
  await new Promise<void>((r) => server.listen(path, r));
  cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
  return path;
}

const GREETING = JSON.stringify({ QMP: { version: { qemu: { major: 9, minor: 1, micro: 0 }, package: 'fake' }, capabilities: [] } }) + '\r\n';

/** Greets, answers qmp_capabilities, then hands each later command line to `onCommand`. */
function qmpLike(onCommand: (s: net.Socket, cmd: { execute: string; id: number }) => void): (s: net.Socket) => void {
  return (s) => {
    s.write(GREETING);
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string; id: number };
        buf = buf.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
        else onCommand(s, cmd);
      }
    });
    s.on('error', () => undefined);
  };
}

describe('QmpClient against a misbehaving QMP server', () => {
  it('refuses a server whose first line is not a QMP greeting', async () => {
    const p = await fakeServer('nogreet.sock', (s) => { s.write('{"hello": 1}\n'); s.on('error', () => undefined); });
    expect((await pagewireRejection(QmpClient.connect(p))).code).toBe(ErrorCode.QEMU_FAILED);
    const q = await fakeServer('garbage.sock', (s) => { s.write('not json at all\n'); s.on('error', () => undefined); });
    expect((await pagewireRejection(QmpClient.connect(q))).code).toBe(ErrorCode.QEMU_FAILED);
    const r = await fakeServer('array.sock', (s) => { s.write('[1,2]\n'); s.on('error', () => undefined); });
    expect((await pagewireRejection(QmpClient.connect(r))).code).toBe(ErrorCode.QEMU_FAILED);
  });

  it('times out on a silent server and fails on a missing socket or an early hang-up', async () => {
    const p = await fakeServer('silent.sock', (s) => { s.on('error', () => undefined); });
    expect((await pagewireRejection(QmpClient.connect(p, { connectTimeoutMs: 100 }))).code).toBe(ErrorCode.TIMEOUT);
    expect((await pagewireRejection(QmpClient.connect(join(dir, 'absent.sock')))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    const h = await fakeServer('hangup.sock', (s) => s.end());
    expect((await pagewireRejection(QmpClient.connect(h))).code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect((await pagewireRejection(QmpClient.connect(h, { commandTimeoutMs: 0 }))).code).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('retries a refused connection until the deadline: QEMU creates its socket file before it listens', async () => {
    // a socket file nobody listens on: a hard link to a listening socket outlives the listener
    const stale = async (name: string): Promise<string> => {
      const live = join(dir, `${name}.live`);
      const server = net.createServer();
      await new Promise<void>((r) => server.listen(live, r));
      const path = join(dir, name);
      linkSync(live, path);
      await new Promise<void>((r) => server.close(() => r()));
      return path;
    };
    const never = await stale('refusing.sock');
    const started = Date.now();
    const e = await pagewireRejection(QmpClient.connect(never, { connectTimeoutMs: 300 }));
    expect(e.code).toBe(ErrorCode.TRANSPORT_CLOSED);
    expect(e.message).toMatch(/ECONNREFUSED/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100); // one refused attempt takes ~1 ms
    // QEMU starts listening 150 ms later: the client gets in
    const late = await stale('late.sock');
    const pending = QmpClient.connect(late, { connectTimeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 150));
    unlinkSync(late);
    await fakeServer('late.sock', qmpLike((sock, cmd) => sock.write(JSON.stringify({ return: { status: 'running', running: true }, id: cmd.id }) + '\r\n')));
    const qmp = await pending;
    expect((await qmp.execute<{ running: boolean }>('query-status')).running).toBe(true);
    qmp.close();
  });

  it('fails on a reply to an id it never sent, and on a reply with neither return nor error', async () => {
    const p = await fakeServer('wrongid.sock', qmpLike((s, cmd) => s.write(JSON.stringify({ return: {}, id: cmd.id + 1000 }) + '\r\n')));
    const qmp = await QmpClient.connect(p);
    const e = await pagewireRejection(qmp.execute('query-status'));
    expect(e.code).toBe(ErrorCode.QEMU_FAILED);
    expect(e.message).toMatch(/did not send/);
    expect(qmp.closed).toBe(true);
    const q = await fakeServer('noreturn.sock', qmpLike((s, cmd) => s.write(JSON.stringify({ id: cmd.id, odd: true }) + '\r\n')));
    const qmp2 = await QmpClient.connect(q);
    cleanup.push(() => qmp2.close());
    expect((await pagewireRejection(qmp2.execute('query-status'))).code).toBe(ErrorCode.QEMU_FAILED);
  });

  it('refuses a line longer than maxLineBytes, whole or in pieces, without buffering it', async () => {
    const big = await fakeServer('big.sock', qmpLike((s) => s.write('{"event":"X","data":"' + 'a'.repeat(5000) + '"}\n')));
    const qmp = await QmpClient.connect(big, { maxLineBytes: 1024 });
    expect((await pagewireRejection(qmp.execute('query-status'))).code).toBe(ErrorCode.QEMU_FAILED);
    const endless = await fakeServer('endless.sock', qmpLike((s) => { for (let i = 0; i < 10; i++) s.write('x'.repeat(500)); }));
    const qmp2 = await QmpClient.connect(endless, { maxLineBytes: 1024 });
    const e = await pagewireRejection(qmp2.execute('query-status'));
    expect(e.code).toBe(ErrorCode.QEMU_FAILED);
    expect(e.message).toMatch(/limit/);
  });

  it('times out a command that gets no reply and stays usable; parses replies split at any byte', async () => {
    let n = 0;
    const p = await fakeServer('slow.sock', qmpLike((s, cmd) => {
      if (n++ === 0) return; // the first command is never answered
      // answer byte by byte, with an event in front
      const text = JSON.stringify({ event: 'STOP', data: {}, timestamp: { seconds: 1, microseconds: 500 } }) + '\r\n' + JSON.stringify({ return: { status: 'paused' }, id: cmd.id }) + '\r\n';
      let i = 0;
      const tick = (): void => { if (i < text.length) { s.write(text[i++]!); setImmediate(tick); } };
      tick();
    }));
    const qmp = await QmpClient.connect(p, { commandTimeoutMs: 100 });
    cleanup.push(() => qmp.close());
    expect((await pagewireRejection(qmp.execute('query-status'))).code).toBe(ErrorCode.TIMEOUT);
    expect(await qmp.execute('query-status', undefined, 5000)).toEqual({ status: 'paused' });
    const stop = await qmp.waitEvent('STOP', 1000, { since: 0 });
    expect(stop.timeMs).toBe(1000.5);
    expect(qmp.events().map((e) => e.event)).toEqual(['STOP']);
  });
});
