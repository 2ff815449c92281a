/**
 * Shared-secret mutual authentication (challenge-response with HMAC-SHA256, Web Crypto: the same
 * code in Node 20+ and browsers).
 *
 *   source -> HELLO { nonce: Ns }
 *   target -> CHALLENGE { nonce: Nt, proof: HMAC(K, "pagewire/target" | session | Ns | Nt) }
 *   source -> AUTH { proof: HMAC(K, "pagewire/source" | session | Ns | Nt) }
 *   target -> WELCOME
 *
 * Each side proves knowledge of K over both fresh nonces, so neither a replayed proof nor a
 * reflected one is accepted. No memory is read or written before both proofs check out.
 *
 * Protocol 1.3: the same handshake also derives one key per direction for this connection,
 *   key(dir) = HKDF-SHA256(ikm K, salt Ns | Nt, info "pagewire/1.3 frames " dir "|" session)
 * and every later frame carries HMAC-SHA256(key(dir), header || payload) (FLAG_MAC). The header
 * holds the frame's sequence number, which must go up by one per frame, so a frame cannot be
 * changed, replayed, dropped or reordered within a connection, reflected (the other direction's
 * key), or replayed from another connection (fresh nonces, fresh keys).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { MINOR_FRAME_MAC, PROTOCOL_MAJOR } from './frame.js';
import { hmacSha256 } from './sha256.js';

const utf8 = new TextEncoder();

/** 16 random bytes as 32 hex chars. */
export function randomHex(bytes = 16): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return toHex(b);
}

export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, '0');
  return s;
}

/** HMAC-SHA256 proof for one role. */
export async function authProof(secret: string, role: 'source' | 'target', sessionId: string, sourceNonce: string, targetNonce: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', utf8.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = await crypto.subtle.sign('HMAC', key, utf8.encode(`pagewire/${role}|${sessionId}|${sourceNonce}|${targetNonce}`));
  return toHex(new Uint8Array(mac));
}

/** Compare two hex strings in time independent of where they differ. */
export function sameProof(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * With a secret, the peer must speak protocol 1.3 (authenticated frames): an older one could
 * only be given unauthenticated frames, which an on-path attacker may change.
 * @throws PagewireError VERSION_MISMATCH
 */
export function requireFrameMac(peerMinor: number, peer: 'source' | 'target'): void {
  if (peerMinor < MINOR_FRAME_MAC) {
    throw new PagewireError(ErrorCode.VERSION_MISMATCH, `the ${peer} speaks pagewire protocol ${PROTOCOL_MAJOR}.${peerMinor}, which cannot authenticate frames: with a shared secret both sides need ${PROTOCOL_MAJOR}.${MINOR_FRAME_MAC} or later`);
  }
}

/** @throws PagewireError AUTH_FAILED */
export function authFailed(message: string): never {
  throw new PagewireError(ErrorCode.AUTH_FAILED, message);
}

/**
 * A Web Crypto HMAC key, opaque outside this module (declared as `object` so that the package's
 * declarations need no DOM or Web Crypto typings).
 */
export type FrameKey = object;

/** The two keys of one authenticated connection, seen from one side. */
export interface FrameKeys {
  /** Signs the frames this side sends. */
  readonly send: FrameKey;
  /** Checks the frames this side receives. */
  readonly recv: FrameKey;
}

/**
 * Derive the per-direction frame keys of one connection from the secret and both nonces.
 * @param role the side asking (its `send` key is its own direction's)
 */
export async function frameKeys(secret: string, role: 'source' | 'target', sessionId: string, sourceNonce: string, targetNonce: string): Promise<FrameKeys> {
  const ikm = await crypto.subtle.importKey('raw', utf8.encode(secret), 'HKDF', false, ['deriveKey']);
  const salt = utf8.encode(`${sourceNonce}|${targetNonce}`);
  const derive = (dir: string): Promise<CryptoKey> => crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt, info: utf8.encode(`pagewire/1.3 frames ${dir}|${sessionId}`) },
    ikm, { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign', 'verify'],
  );
  const [s2t, t2s] = await Promise.all([derive('source->target'), derive('target->source')]);
  return role === 'source' ? { send: s2t, recv: t2s } : { send: t2s, recv: s2t };
}

/** HMAC-SHA256 tag (32 bytes) of `bytes` (Web Crypto copies them at the call). */
export async function frameTag(key: FrameKey, bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign('HMAC', key as CryptoKey, plain(bytes)));
}

/** Whether `tag` is the HMAC-SHA256 of `bytes` (Web Crypto's verify: constant time). */
export function frameTagValid(key: FrameKey, bytes: Uint8Array, tag: Uint8Array): Promise<boolean> {
  return crypto.subtle.verify('HMAC', key as CryptoKey, plain(tag), plain(bytes));
}

/** Web Crypto takes views of plain ArrayBuffers only: a shared one is copied first. */
function plain(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return (b.buffer instanceof ArrayBuffer ? b : b.slice()) as Uint8Array<ArrayBuffer>;
}

/**
 * Commitment to a memory digest (protocol 1.3 COMPLETE): HMAC-SHA256 keyed with a fresh random
 * salt. The target learns whether its own digest matches without learning the source's, so it
 * cannot echo the source's digest in DONE: it must name its own (finding the 64-bit digest from
 * the commitment takes about 2^63 HMACs). Synchronous (sha256.ts): it runs in the downtime.
 */
export function digestCommitment(salt: string, digest: string): string {
  return toHex(hmacSha256(utf8.encode(salt), utf8.encode(`pagewire/digest|${digest}`)));
}

/**
 * Whether `digest` is the digest a COMPLETE names: equal to its clear digest (protocol 1.0-1.2,
 * snapshot files), or opening its commitment (1.3).
 */
export function completeNames(digest: string, complete: { digest: string; commitment?: { salt: string; mac: string } }): boolean {
  if (!complete.commitment) return digest === complete.digest;
  return sameProof(digestCommitment(complete.commitment.salt, digest), complete.commitment.mac);
}
