/**
 * Web Worker entry of a channel worker: the first message is the ChannelInit (its MessagePort
 * link transferred with it); later messages are the coordinator's replies.
 */
import { runChannelWorker } from './channel-worker.js';
import type { ChannelInit, CoordinatorMessage, WorkerMessage } from './channels.js';
import { startOnFirstMessage } from './web-worker-entry.js';

startOnFirstMessage<ChannelInit, WorkerMessage, CoordinatorMessage>((init, ctl) => runChannelWorker(init, ctl));
