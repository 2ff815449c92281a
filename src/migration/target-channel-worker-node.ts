/**
 * Node entry of a target channel worker (worker_threads): `workerData` is the TargetChannelInit;
 * control messages go through `parentPort`. Pre-faults its part of the memory on a thread of its
 * own when asked (src/memory/prefault-node.ts); with `listen`, accepts its connections on a TCP
 * listener of its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { preparePrefault, startPrefault } from '../memory/prefault-node.js';
import { listenTcp } from '../transport/tcp.js';
import { runTargetChannelWorker, type TargetChannelInit, type TargetCoordinatorMessage } from './target-channel-worker.js';

const port = parentPort!;
await runTargetChannelWorker(workerData as TargetChannelInit, {
  post: (m, transfer) => port.postMessage(m, (transfer ?? []) as never[]),
  onMessage: (fn) => port.on('message', (m: TargetCoordinatorMessage) => fn(m)),
}, { prefault: (m) => startPrefault(m), preparePrefault, listen: (host, p) => listenTcp({ host, port: p }) });
