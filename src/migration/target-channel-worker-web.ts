/**
 * Web Worker entry of a target channel worker (a module worker started by
 * webTargetChannelSpawner, src/migration/channels-web.ts): the first message is the
 * TargetChannelInit; later messages are the coordinator's (`conn` with its MessagePort
 * transferred, `go`, `abort`). No pre-fault thread and no listener of its own here: connections
 * come from the coordinator, which pipes them through MessageChannels.
 */
import { runTargetChannelWorker, type TargetChannelInit, type TargetCoordinatorMessage, type TargetWorkerMessage } from './target-channel-worker.js';
import { startOnFirstMessage } from './web-worker-entry.js';

startOnFirstMessage<TargetChannelInit, TargetWorkerMessage, TargetCoordinatorMessage>((init, ctl) => runTargetChannelWorker(init, ctl));
