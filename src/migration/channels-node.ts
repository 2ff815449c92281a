/**
 * Node: channel workers on worker_threads (see src/migration/channels.ts).
 */
import { Worker } from 'node:worker_threads';
import type { ChannelInit, ChannelWorker, SpawnChannelWorker, WorkerMessage } from './channels.js';
import type { SpawnTargetWorker, TargetWorker } from './target-channels.js';
import type { TargetChannelInit, TargetWorkerMessage } from './target-channel-worker.js';

/**
 * A `spawn` function for ParallelMigrationSource running channel workers on worker_threads.
 * @param workerUrl the built channel-worker-node.js (default: next to this module)
 */
export function nodeChannelSpawner(workerUrl: URL | string = new URL('./channel-worker-node.js', import.meta.url)): SpawnChannelWorker {
  return (init: ChannelInit, transfer: unknown[]): ChannelWorker => {
    const w = new Worker(workerUrl, { workerData: init, transferList: transfer as never[] });
    return {
      postMessage: (m, t) => w.postMessage(m, (t ?? []) as never[]),
      onMessage: (fn) => { w.on('message', (m: WorkerMessage) => fn(m)); },
      onError: (fn) => { w.on('error', fn); },
      terminate: () => w.terminate(),
    };
  };
}

/**
 * A `spawn` function for WorkerParallelTarget: target channel workers on worker_threads.
 * @param workerUrl the built target-channel-worker-node.js (default: next to this module)
 */
export function nodeTargetChannelSpawner(workerUrl: URL | string = new URL('./target-channel-worker-node.js', import.meta.url)): SpawnTargetWorker {
  return (init: TargetChannelInit): TargetWorker => {
    const w = new Worker(workerUrl, { workerData: init });
    return {
      postMessage: (m, t) => w.postMessage(m, (t ?? []) as never[]),
      onMessage: (fn) => { w.on('message', (m: TargetWorkerMessage) => fn(m)); },
      onError: (fn) => { w.on('error', fn); },
      terminate: () => w.terminate(),
    };
  };
}
