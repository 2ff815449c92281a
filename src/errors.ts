/**
 * The one error type pagewire throws. Every failure carries a stable string `code` from
 * {@link ErrorCode}; tests and callers branch on `err.code`, never on the message.
 */

/** Stable error codes. Add new codes at the end; never rename one. */
export const ErrorCode = {
  /** An argument at the public edge is out of range or of the wrong shape. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** The core has not been loaded: await `ready()` first. */
  NOT_READY: 'NOT_READY',
  /** WebAssembly could not be compiled or instantiated, or memory could not grow. */
  WASM_FAILED: 'WASM_FAILED',
  /** An XBZRLE stream is malformed or does not fit the page. */
  XBZRLE_CORRUPT: 'XBZRLE_CORRUPT',
  /** An RLE stream is malformed or does not fit the page. */
  RLE_CORRUPT: 'RLE_CORRUPT',
  /** An LZ4 block is malformed or decompresses to the wrong size. */
  LZ4_CORRUPT: 'LZ4_CORRUPT',
  /** A page record stream is malformed (codec id, lengths, page index, references). */
  RECORD_CORRUPT: 'RECORD_CORRUPT',
  /** A record names a page outside guest memory. */
  PAGE_OUT_OF_RANGE: 'PAGE_OUT_OF_RANGE',
  /** A record uses a codec that was not negotiated or is disabled. */
  CODEC_NOT_NEGOTIATED: 'CODEC_NOT_NEGOTIATED',
  /** A frame failed its checksum. */
  CHECKSUM_MISMATCH: 'CHECKSUM_MISMATCH',
  /** A frame is malformed: bad magic, type, length or field. */
  FRAME_CORRUPT: 'FRAME_CORRUPT',
  /** A frame is larger than the configured ceiling. */
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  /** A frame arrived out of sequence or in the wrong state. */
  PROTOCOL_VIOLATION: 'PROTOCOL_VIOLATION',
  /** The peer speaks another protocol version. */
  VERSION_MISMATCH: 'VERSION_MISMATCH',
  /** Page size or memory layout differ between the endpoints. */
  LAYOUT_MISMATCH: 'LAYOUT_MISMATCH',
  /** Shared-secret authentication failed or was missing. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** The transport closed or failed. */
  TRANSPORT_CLOSED: 'TRANSPORT_CLOSED',
  /** A deadline passed (stalled peer, handshake, retries). */
  TIMEOUT: 'TIMEOUT',
  /** The final memory digest differs between source and target. */
  VERIFY_FAILED: 'VERIFY_FAILED',
  /** The migration did not converge and the policy says fail. */
  NOT_CONVERGED: 'NOT_CONVERGED',
  /** The migration was aborted by the caller or by the peer. */
  ABORTED: 'ABORTED',
  /** Resume was impossible (retries exhausted, session unknown). */
  RESUME_FAILED: 'RESUME_FAILED',
  /** A snapshot file is truncated, corrupt or of another format. */
  SNAPSHOT_CORRUPT: 'SNAPSHOT_CORRUPT',
  /** An incremental snapshot was applied to memory that is not its parent (the digests differ). */
  SNAPSHOT_PARENT_MISMATCH: 'SNAPSHOT_PARENT_MISMATCH',
  /** A memory image or ELF core file is malformed, truncated or of an unsupported kind. */
  IMAGE_CORRUPT: 'IMAGE_CORRUPT',
  /**
   * Post-copy failed after the target's guest started: the guest's state is split between the
   * hosts, the target's memory is incomplete and the source guest must not simply resume
   * (docs/ADVANCED.md).
   */
  POSTCOPY_FAILED: 'POSTCOPY_FAILED',
  /**
   * QEMU refused a QMP command, reported a failed migration, exited, or its QMP channel sent
   * something that is not QMP (src/qemu/).
   */
  QEMU_FAILED: 'QEMU_FAILED',
  /**
   * A length, count or layout from a peer or a file is above a configured limit (guest size,
   * regions, frame or handshake size); refused before anything was allocated for it.
   */
  LIMIT_EXCEEDED: 'LIMIT_EXCEEDED',
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const BRAND = Symbol.for('pagewire.PagewireError');

/**
 * pagewire's error: a message for people and a stable `code` for programs.
 * `instanceof` works across duplicate copies of the package (a `Symbol.for` brand).
 */
export class PagewireError extends Error {
  /** Stable code from {@link ErrorCode}. */
  readonly code: ErrorCode;

  /**
   * @param code stable error code
   * @param message what went wrong, for people
   * @param options `cause`: the underlying error, if any
   */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PagewireError';
    this.code = code;
  }

  get [BRAND](): true {
    return true;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** Whether `err` is a PagewireError, optionally with the given code. */
export function isPagewireError(err: unknown, code?: ErrorCode): err is PagewireError {
  return err instanceof PagewireError && (code === undefined || err.code === code);
}
