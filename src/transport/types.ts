/**
 * A transport is a reliable, ordered byte pipe between two endpoints. It knows nothing about
 * pages, frames or migrations: it moves opaque chunks. Chunk boundaries are NOT preserved (TCP may
 * split or merge them); the protocol layer re-frames.
 *
 * Backpressure: `write` resolves once the transport can take more (its buffered bytes are below
 * its high-water mark). A writer that awaits every `write` never buffers without bound.
 * Reading is pull-based: while nobody calls `read`, the transport stops reading from its peer
 * (the socket is paused), so a slow consumer slows the producer down end to end.
 */
export interface Transport {
  /**
   * Queue `chunk` for sending. Ownership of `chunk` passes to the transport: do not modify or
   * reuse it afterwards (TCP holds it until the kernel took it; the MessagePort transport may
   * transfer, i.e. detach, its ArrayBuffer when the chunk spans the whole buffer). Keep a copy if
   * you may need to send the bytes again. Resolves when more may be written.
   * @param release optional: a transport that can tell calls it once it no longer refers to
   *   `chunk` (TCP and TLS: when the socket has handed the bytes to the kernel, or failed), and the
   *   writer may then reuse the chunk's memory. Transports that cannot tell (in-memory pairs hand
   *   the chunk itself to the reader) never call it.
   * @throws PagewireError TRANSPORT_CLOSED if the transport is closed or fails
   */
  write(chunk: Uint8Array, release?: (chunk: Uint8Array) => void): Promise<void>;
  /**
   * Next chunk from the peer, or `null` at a clean end of stream.
   * @throws PagewireError TRANSPORT_CLOSED when the connection fails
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Optional: the reader is done with a chunk `read()` returned (every byte was copied out or
   * parsed, no view into it is kept). A transport may hand the memory back to the writer's side
   * for reuse (the MessagePort transport returns transferred buffers); others do not implement it.
   */
  recycle?(chunk: Uint8Array): void;
  /**
   * Flush what is queued, then end this direction of the stream (the peer reads `null` after the
   * last chunk). Reading may go on until the peer ends too, except over WebSocket, which has no
   * half-close (see docs/TRANSPORTS.md).
   */
  end(): Promise<void>;
  /**
   * Tear down now (an abortive close: TCP sends a reset). Pending and future reads/writes reject
   * with `err` (a PagewireError as is, anything else wrapped as TRANSPORT_CLOSED), data not yet
   * read is dropped, and the peer's reads and writes fail with TRANSPORT_CLOSED. Caveat for TCP:
   * when data is still in flight, a Node peer may see the reset as an early end of stream (libuv
   * reports a reset that follows buffered data as EOF), so protocols must treat a `null` they did
   * not expect as a dropped link.
   */
  destroy(err?: Error): void;
  /** True once the transport can no longer send. */
  readonly closed: boolean;
  /** A short description for logs and reports, e.g. `tcp 127.0.0.1:4000`. */
  readonly label: string;
  /** The peer's address when the transport has one (e.g. `127.0.0.1:51234`). */
  readonly remote?: string;
}

/** Something that produces transports on demand (used to reconnect after a dropped link). */
export type TransportFactory = () => Promise<Transport>;
