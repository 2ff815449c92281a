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
 */
import { PagewireError, ErrorCode } from '../errors.js';

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

/** @throws PagewireError AUTH_FAILED */
export function authFailed(message: string): never {
  throw new PagewireError(ErrorCode.AUTH_FAILED, message);
}
