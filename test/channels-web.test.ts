/**
 * The browser spawners of parallel channels (src/migration/channels-web.ts) outside a browser:
 * with no Worker they refuse with a typed error; given a function that starts a worker, they send
 * it the init message first and adapt its messages, errors and termination. Real Web Workers are
 * exercised in Chromium (test/e2e/channels.e2e.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { webChannelSpawner, webTargetChannelSpawner, type WebWorkerLike } from '../src/migration/channels-web.js';
import { ErrorCode, PagewireError } from '../src/errors.js';
import type { ChannelInit } from '../src/migration/channels.js';
import type { TargetChannelInit } from '../src/migration/target-channel-worker.js';

class FakeWorker implements WebWorkerLike {
  posted: { msg: unknown; transfer: unknown[] | undefined }[] = [];
  terminated = 0;
  private listeners: Record<string, ((ev: { data?: unknown; message?: string }) => void)[]> = {};
  postMessage(msg: unknown, transfer?: unknown[]): void { this.posted.push({ msg, transfer }); }
  addEventListener(type: 'message' | 'error', fn: (ev: { data?: unknown; message?: string }) => void): void { (this.listeners[type] ??= []).push(fn); }
  terminate(): void { this.terminated++; }
  fire(type: 'message' | 'error', ev: { data?: unknown; message?: string }): void { for (const fn of this.listeners[type] ?? []) fn(ev); }
}

const targetInit: TargetChannelInit = { channel: 1, options: {}, prefault: false };

describe('web channel spawners', () => {
  it('without Worker (Node), spawning by URL is refused with INVALID_ARGUMENT naming the Node spawner', () => {
    expect(typeof (globalThis as { Worker?: unknown }).Worker).toBe('undefined');
    const spawn = webTargetChannelSpawner('/w/target-channel.js');
    let err: unknown;
    try { spawn(targetInit); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(PagewireError);
    expect((err as PagewireError).code).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((err as Error).message).toMatch(/nodeTargetChannelSpawner/);
    expect(() => webChannelSpawner('/w/channel.js')({} as ChannelInit, [])).toThrow(/nodeChannelSpawner/);
  });

  it('a worker from a function gets its init first, then the coordinator\'s messages; its messages, errors and terminate pass through', async () => {
    const fake = new FakeWorker();
    const w = webTargetChannelSpawner(() => fake)(targetInit);
    expect(fake.posted).toEqual([{ msg: targetInit, transfer: [] }]);
    const port = { tag: 'port' };
    w.postMessage({ t: 'conn', port }, [port]);
    expect(fake.posted[1]).toEqual({ msg: { t: 'conn', port }, transfer: [port] });
    const got: unknown[] = [];
    const errors: string[] = [];
    w.onMessage((m) => got.push(m));
    w.onError((e) => errors.push(e.message));
    fake.fire('message', { data: { t: 'verified' } });
    fake.fire('error', { message: 'boom' });
    fake.fire('error', {});
    expect(got).toEqual([{ t: 'verified' }]);
    expect(errors).toEqual(['boom', 'worker error']);
    await w.terminate();
    expect(fake.terminated).toBe(1);
    // the source side's init goes with its transfer list (the link's port)
    const src = new FakeWorker();
    const link = { tag: 'link' };
    webChannelSpawner(() => src)({ channel: 0 } as ChannelInit, [link]);
    expect(src.posted).toEqual([{ msg: { channel: 0 }, transfer: [link] }]);
  });
});
