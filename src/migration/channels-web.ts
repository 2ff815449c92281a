/**
 * Browsers: channel workers on module Web Workers, for both sides of a parallel migration
 * (ParallelMigrationSource in src/migration/channels.ts, WorkerParallelTarget in
 * src/migration/target-channels.ts). Guest memory is shared with the workers as
 * SharedArrayBuffer, which a page only has when it is cross-origin isolated (served with
 * `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import type { ChannelInit, ChannelWorker, SpawnChannelWorker, WorkerMessage } from './channels.js';
import type { SpawnTargetWorker, TargetWorker } from './target-channels.js';
import type { TargetChannelInit, TargetCoordinatorMessage, TargetWorkerMessage } from './target-channel-worker.js';

/** The part of a Web Worker (`new Worker(url, { type: 'module' })`) the spawners use. */
export interface WebWorkerLike {
  postMessage(msg: unknown, transfer?: unknown[]): void;
  addEventListener(type: 'message' | 'error', fn: (ev: { data?: unknown; message?: string }) => void): void;
  terminate(): void;
}

/**
 * Where a spawner gets its workers: the URL of the worker script (each worker is
 * `new Worker(url, { type: 'module' })`), or a function that creates one, for bundlers that
 * only follow `new Worker(new URL('./w.js', import.meta.url), { type: 'module' })` written out.
 */
export type WebWorkerSource = string | URL | (() => WebWorkerLike);

/** A module Web Worker from `from`, sent `init` first, adapted to the coordinators' worker interface. */
function startWebWorker<In, Out>(from: WebWorkerSource, init: unknown, transfer: unknown[], nodeSpawner: string): {
  postMessage(msg: In, transfer?: unknown[]): void;
  onMessage(fn: (msg: Out) => void): void;
  onError(fn: (err: Error) => void): void;
  terminate(): void;
} {
  let w: WebWorkerLike;
  if (typeof from === 'function') {
    w = from();
  } else {
    const W = (globalThis as unknown as { Worker?: new (url: string | URL, o: { type: 'module' }) => WebWorkerLike }).Worker;
    if (!W) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `no Web Worker support here (in Node use ${nodeSpawner} from pagewire/node)`);
    w = new W(from, { type: 'module' });
  }
  w.postMessage(init, transfer);
  return {
    postMessage: (m, t) => w.postMessage(m, t ?? []),
    onMessage: (fn) => w.addEventListener('message', (ev) => fn(ev.data as Out)),
    onError: (fn) => w.addEventListener('error', (ev) => fn(new Error(ev.message ?? 'worker error'))),
    terminate: () => w.terminate(),
  };
}

/**
 * A `spawn` function for ParallelMigrationSource in browsers: module Web Workers running
 * channel-worker-web.js (the package's `pagewire/workers/channel` entry). The guest memory must be
 * SharedArrayBuffer-backed, which needs a cross-origin-isolated page.
 * @param workerUrl URL of a module worker script that runs the entry (the built
 *   dist/migration/channel-worker-web.js, or a script of yours that imports `pagewire/workers/channel`),
 *   or a function that starts such a worker
 * @returns the spawn function; calling it with a URL throws PagewireError INVALID_ARGUMENT where there is no Worker
 */
export function webChannelSpawner(workerUrl: WebWorkerSource): SpawnChannelWorker {
  return (init: ChannelInit, transfer: unknown[]): ChannelWorker => startWebWorker<unknown, WorkerMessage>(workerUrl, init, transfer, 'nodeChannelSpawner');
}

/**
 * A `spawn` function for WorkerParallelTarget in browsers: one module Web Worker per channel
 * running target-channel-worker-web.js (the package's `pagewire/workers/target-channel` entry),
 * each parsing, decoding and hashing its channel's stream into its part of the guest, which it
 * allocates as SharedArrayBuffer (so the page must be cross-origin isolated). The coordinator
 * pipes each connection to its worker through a MessageChannel. `prefault` has no effect in
 * browsers, and `listen` (TCP) is Node's: a web worker refuses it.
 * @param workerUrl URL of a module worker script that runs the entry (the built
 *   dist/migration/target-channel-worker-web.js, or a script of yours that imports
 *   `pagewire/workers/target-channel`), or a function that starts such a worker
 * @returns the spawn function; calling it with a URL throws PagewireError INVALID_ARGUMENT where there is no Worker
 */
export function webTargetChannelSpawner(workerUrl: WebWorkerSource): SpawnTargetWorker {
  return (init: TargetChannelInit): TargetWorker => startWebWorker<TargetCoordinatorMessage, TargetWorkerMessage>(workerUrl, init, [], 'nodeTargetChannelSpawner');
}
