/**
 * A small QMP (QEMU Machine Protocol) client over a unix socket (node:net).
 *
 * Wire format (qemu docs/interop/qmp-spec): newline-delimited JSON objects.
 *   server greeting  {"QMP": {"version": {...}, "capabilities": [...]}}
 *   command          {"execute": NAME, "arguments": {...}, "id": ID}
 *   success          {"return": VALUE, "id": ID}
 *   error            {"error": {"class": CLASS, "desc": TEXT}, "id": ID}
 *   event            {"event": NAME, "data": {...}, "timestamp": {"seconds": S, "microseconds": US}}
 * After the greeting the client must send `qmp_capabilities` before any other command. QEMU answers
 * commands in the order it received them; every command here carries an id and a reply with an
 * id we did not send is a protocol error.
 *
 * Every wait is bounded (connect, greeting, each command, each event wait); a line longer than
 * `maxLineBytes` or anything that is not a JSON object closes the client with a typed error.
 */
import * as net from 'node:net';
import { PagewireError, ErrorCode } from '../errors.js';

/** Options of {@link QmpClient.connect}. */
export interface QmpOptions {
  /** Deadline for connecting and the greeting, ms (default 5 000). */
  connectTimeoutMs?: number;
  /** Default deadline of each command, ms (default 10 000). */
  commandTimeoutMs?: number;
  /** Longest line accepted from QEMU, bytes (default 1 MiB). */
  maxLineBytes?: number;
  /** Events remembered for {@link QmpClient.waitEvent} (default 256). */
  eventHistory?: number;
}

/** A QMP event with its QEMU timestamp in ms since the epoch and our receive time. */
export interface QmpEvent {
  readonly event: string;
  readonly data: Record<string, unknown>;
  /** QEMU's timestamp, ms since the epoch (host clock of the QEMU process). */
  readonly timeMs: number;
  /** Index of the event in the order this client received them (0, 1, 2...). */
  readonly index: number;
}

/** The QMP greeting's version. */
export interface QmpVersion {
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
  readonly package: string;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
  command: string;
}

interface EventWaiter {
  match(e: QmpEvent): boolean;
  resolve(e: QmpEvent): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const NEWLINE = 0x0a;

function qemuError(message: string, cause?: unknown): PagewireError {
  return new PagewireError(ErrorCode.QEMU_FAILED, message, cause === undefined ? undefined : { cause });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A connected QMP session. Create with {@link QmpClient.connect}. */
export class QmpClient {
  private readonly socket: net.Socket;
  private readonly path: string;
  private readonly opts: Required<QmpOptions>;
  private readonly pending = new Map<number, Pending>();
  private readonly waiters = new Set<EventWaiter>();
  private readonly history: QmpEvent[] = [];
  private readonly listeners = new Set<(e: QmpEvent) => void>();
  private nextId = 1;
  private received = 0;
  private closedError: PagewireError | null = null;
  private readonly closeWaiters: ((e: PagewireError) => void)[] = [];
  private chunks: Buffer[] = [];
  private buffered = 0;
  private greeting: ((line: Record<string, unknown>) => void) | null;
  private qemuVersion: QmpVersion = { major: 0, minor: 0, micro: 0, package: '' };

  private constructor(path: string, opts: Required<QmpOptions>, greeting: (line: Record<string, unknown>) => void) {
    this.path = path;
    this.opts = opts;
    this.greeting = greeting;
    this.socket = net.createConnection({ path });
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', (err) => this.fail(new PagewireError(ErrorCode.TRANSPORT_CLOSED, `QMP ${path}: ${err.message}`, { cause: err })));
    this.socket.on('close', () => this.fail(new PagewireError(ErrorCode.TRANSPORT_CLOSED, `QMP ${path}: connection closed`)));
  }

  /**
   * Connect to QEMU's QMP socket (`-qmp unix:PATH,server=on,wait=off`), read the greeting and
   * enter command mode (`qmp_capabilities`).
   * @throws PagewireError TRANSPORT_CLOSED (no socket, refused, closed), TIMEOUT, QEMU_FAILED (not
   *   QMP), INVALID_ARGUMENT (options)
   */
  static async connect(path: string, options: QmpOptions = {}): Promise<QmpClient> {
    const opts: Required<QmpOptions> = { connectTimeoutMs: 5_000, commandTimeoutMs: 10_000, maxLineBytes: 1 << 20, eventHistory: 256, ...options };
    for (const k of ['connectTimeoutMs', 'commandTimeoutMs', 'maxLineBytes', 'eventHistory'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] <= 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `QMP option ${k} must be a positive whole number, got ${String(opts[k])}`);
    }
    let client!: QmpClient;
    const deadline = Date.now() + opts.connectTimeoutMs;
    let greeting: Record<string, unknown>;
    for (let delayMs = 10; ; delayMs = Math.min(delayMs * 2, 200)) {
      try {
        greeting = await new Promise<Record<string, unknown>>((resolve, reject) => {
          client = new QmpClient(path, opts, resolve);
          client.onFail = reject;
          client.failTimer = setTimeout(() => client.fail(new PagewireError(ErrorCode.TIMEOUT, `QMP ${path}: no greeting within ${opts.connectTimeoutMs} ms`)), Math.max(1, deadline - Date.now()));
        }).finally(() => {
          clearTimeout(client.failTimer);
          client.onFail = null;
        });
        break;
      } catch (err) {
        // QEMU creates the socket file before it listens: a connection refused in between is
        // tried again until the deadline (seen under load right after starting QEMU)
        const refused = ((err as PagewireError).cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED';
        if (!refused || Date.now() + delayMs >= deadline) throw err;
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
    const qmp = greeting['QMP'];
    const version = isObject(qmp) && isObject(qmp['version']) ? qmp['version'] : null;
    const v = version && isObject(version['qemu']) ? version['qemu'] : null;
    if (!v) {
      const e = qemuError(`QMP ${path}: the first line is not a QMP greeting`);
      client.fail(e);
      throw e;
    }
    client.qemuVersion = { major: Number(v['major']), minor: Number(v['minor']), micro: Number(v['micro']), package: String(version!['package'] ?? '') };
    await client.execute('qmp_capabilities', undefined, opts.connectTimeoutMs);
    return client;
  }

  /** QEMU's version from the greeting. */
  get version(): QmpVersion {
    return this.qemuVersion;
  }

  /** Whether the connection is closed (by us, by QEMU, or after a protocol error). */
  get closed(): boolean {
    return this.closedError !== null;
  }

  /**
   * Run a command and return its `return` value.
   * @param args the command's `arguments`
   * @param timeoutMs deadline (default the client's `commandTimeoutMs`)
   * @throws PagewireError QEMU_FAILED (QEMU's error reply: class and description in the message),
   *   TIMEOUT, TRANSPORT_CLOSED
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.opts.commandTimeoutMs): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg['arguments'] = args;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PagewireError(ErrorCode.TIMEOUT, `QMP ${this.path} ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, command });
      this.socket.write(JSON.stringify(msg) + '\n');
    });
  }

  /**
   * Wait for an event named `name` (and matching `match`, if given). Events received since
   * index `since` (see {@link eventCount}) count too, so a caller can take the count, issue a command,
   * and then wait without missing an event that arrived in between.
   * @throws PagewireError TIMEOUT, TRANSPORT_CLOSED
   */
  waitEvent(name: string, timeoutMs: number, options: { since?: number; match?: (data: Record<string, unknown>) => boolean } = {}): Promise<QmpEvent> {
    const since = options.since ?? this.eventCount;
    const match = (e: QmpEvent): boolean => e.index >= since && e.event === name && (options.match ? options.match(e.data) : true);
    const seen = this.history.find(match);
    if (seen) return Promise.resolve(seen);
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<QmpEvent>((resolve, reject) => {
      const w: EventWaiter = {
        match, resolve, reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(new PagewireError(ErrorCode.TIMEOUT, `QMP ${this.path}: no ${name} event within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.add(w);
    });
  }

  /** Events received so far (the `since` of {@link waitEvent}). */
  get eventCount(): number {
    return this.received;
  }

  /** Resolves with the reason when the connection closes (QEMU exited, a protocol error, {@link close}). */
  whenClosed(): Promise<PagewireError> {
    if (this.closedError) return Promise.resolve(this.closedError);
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** Events still in the history (the last `eventHistory`), oldest first. */
  events(): readonly QmpEvent[] {
    return this.history.slice();
  }

  /** Call `listener` for each event from now on. @returns a function that removes it */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Close the connection; pending commands and waits reject with TRANSPORT_CLOSED. */
  close(): void {
    this.fail(new PagewireError(ErrorCode.TRANSPORT_CLOSED, 'QMP: closed by the caller'));
  }

  // ---------------------------------------------------------------- input

  /** Before the greeting: where a failure goes (connect's promise). */
  private onFail: ((e: PagewireError) => void) | null = null;
  private failTimer: ReturnType<typeof setTimeout> | undefined;

  private onData(d: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = d.indexOf(NEWLINE, start);
      if (nl < 0) break;
      const part = d.subarray(start, nl);
      let line: Buffer;
      if (this.buffered > 0) {
        this.chunks.push(part);
        line = Buffer.concat(this.chunks, this.buffered + part.length);
        this.chunks = [];
        this.buffered = 0;
      } else {
        line = part;
      }
      start = nl + 1;
      if (line.length > this.opts.maxLineBytes) return this.fail(qemuError(`QMP ${this.path}: a line of ${line.length} bytes exceeds the ${this.opts.maxLineBytes}-byte limit`));
      if (!this.onLine(line)) return;
    }
    if (start < d.length) {
      const rest = d.subarray(start);
      this.buffered += rest.length;
      if (this.buffered > this.opts.maxLineBytes) return this.fail(qemuError(`QMP ${this.path}: a line exceeds the ${this.opts.maxLineBytes}-byte limit`));
      this.chunks.push(Buffer.from(rest));
    }
  }

  /** @returns false when the client failed (stop parsing) */
  private onLine(line: Buffer): boolean {
    const text = line.toString('utf8').trim();
    if (text === '') return true;
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch (cause) {
      this.fail(qemuError(`QMP ${this.path}: a line is not JSON: ${text.slice(0, 80)}`, cause));
      return false;
    }
    if (!isObject(msg)) {
      this.fail(qemuError(`QMP ${this.path}: a line is not a JSON object: ${text.slice(0, 80)}`));
      return false;
    }
    if (this.greeting) {
      const g = this.greeting;
      this.greeting = null;
      g(msg);
      return true;
    }
    if (typeof msg['event'] === 'string') {
      this.onEventMessage(msg);
      return true;
    }
    const id = msg['id'];
    const p = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (!p) {
      // a late reply to a command that timed out is dropped; any other id is a protocol error
      if (typeof id === 'number' && Number.isInteger(id) && id >= 1 && id < this.nextId) return true;
      this.fail(qemuError(`QMP ${this.path}: a reply for a command we did not send (id ${JSON.stringify(id)}): ${text.slice(0, 80)}`));
      return false;
    }
    this.pending.delete(id as number);
    clearTimeout(p.timer);
    if ('return' in msg) {
      p.resolve(msg['return']);
    } else if (isObject(msg['error'])) {
      const e = msg['error'];
      p.reject(qemuError(`QMP ${this.path} ${p.command}: ${String(e['class'] ?? 'Error')}: ${String(e['desc'] ?? '')}`));
    } else {
      p.reject(qemuError(`QMP ${this.path} ${p.command}: a reply with neither return nor error: ${text.slice(0, 80)}`));
    }
    return true;
  }

  private onEventMessage(msg: Record<string, unknown>): void {
    const ts = isObject(msg['timestamp']) ? msg['timestamp'] : {};
    const sec = Number(ts['seconds']);
    const usec = Number(ts['microseconds']);
    const e: QmpEvent = {
      event: msg['event'] as string,
      data: isObject(msg['data']) ? msg['data'] : {},
      timeMs: Number.isFinite(sec) && Number.isFinite(usec) ? sec * 1000 + usec / 1000 : Date.now(),
      index: this.received++,
    };
    this.history.push(e);
    if (this.history.length > this.opts.eventHistory) this.history.shift();
    for (const w of this.waiters) {
      if (w.match(e)) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(e);
      }
    }
    for (const l of this.listeners) l(e);
  }

  private fail(err: PagewireError): void {
    if (this.closedError) return;
    this.closedError = err;
    this.socket.destroy();
    this.onFail?.(err);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
    for (const w of this.closeWaiters.splice(0)) w(err);
  }
}
