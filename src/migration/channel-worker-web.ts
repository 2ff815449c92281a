/**
 * Web Worker entry of a channel worker: the first message is the ChannelInit (its MessagePort
 * link transferred with it); later messages are the coordinator's replies.
 */
import { runChannelWorker } from './channel-worker.js';
import type { ChannelInit, CoordinatorMessage, WorkerMessage } from './channels.js';

interface WorkerScope {
  postMessage(m: unknown): void;
  addEventListener(type: 'message', fn: (ev: { data: unknown }) => void): void;
}
const scope = globalThis as unknown as WorkerScope;
let handler: ((m: CoordinatorMessage) => void) | null = null;
let started = false;
scope.addEventListener('message', (ev) => {
  if (!started) {
    started = true;
    void runChannelWorker(ev.data as ChannelInit, {
      post: (m: WorkerMessage) => scope.postMessage(m),
      onMessage: (fn) => { handler = fn; },
    });
    return;
  }
  handler?.(ev.data as CoordinatorMessage);
});
