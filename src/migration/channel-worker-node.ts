/**
 * Node entry of a channel worker (worker_threads): `workerData` is the ChannelInit; control
 * messages go through `parentPort`. Opens MessagePort or TCP links.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectTcp } from '../transport/tcp.js';
import { openPortTransport, runChannelWorker } from './channel-worker.js';
import type { ChannelInit, CoordinatorMessage } from './channels.js';

const port = parentPort!;
await runChannelWorker(workerData as ChannelInit, {
  post: (m) => port.postMessage(m),
  onMessage: (fn) => port.on('message', (m: CoordinatorMessage) => fn(m)),
}, async (link) => (link.kind === 'tcp' ? connectTcp({ host: link.host, port: link.port }) : openPortTransport(link)));
