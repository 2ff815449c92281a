/**
 * The shared part of the Web Worker entries of channel workers (channel-worker-web.ts,
 * target-channel-worker-web.ts): the worker's first message is its init; every later message
 * goes to the handler the worker body registers.
 */

interface WorkerScope {
  postMessage(m: unknown, transfer?: unknown[]): void;
  addEventListener(type: 'message', fn: (ev: { data: unknown }) => void): void;
}

/** The worker side of a coordinator's control channel. */
export interface WebWorkerControl<Out, In> {
  post(msg: Out, transfer?: unknown[]): void;
  onMessage(fn: (msg: In) => void): void;
}

/**
 * Start `body` with this worker's first message and a control channel over the worker scope.
 * @param body the worker body (its promise is the body's own business: it reports by messages)
 */
export function startOnFirstMessage<Init, Out, In>(body: (init: Init, ctl: WebWorkerControl<Out, In>) => Promise<void>): void {
  const scope = globalThis as unknown as WorkerScope;
  let handler: ((m: In) => void) | null = null;
  let started = false;
  scope.addEventListener('message', (ev) => {
    if (!started) {
      started = true;
      void body(ev.data as Init, {
        post: (m, transfer) => scope.postMessage(m, transfer ?? []),
        onMessage: (fn) => { handler = fn; },
      });
      return;
    }
    handler?.(ev.data as In);
  });
}
