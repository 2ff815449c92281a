// The synchronous SHA-256 / HMAC-SHA256 used for the digest commitment (src/protocol/sha256.ts),
// against node:crypto (the oracle): FIPS 180-4 examples, every length around the 64-byte block and
// padding boundaries, random inputs and keys (fast-check, fixed seed), keys longer than a block.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { createHash, createHmac } from 'node:crypto';
import { sha256, hmacSha256 } from '../src/protocol/sha256.js';
import { digestCommitment, completeNames } from '../src/protocol/auth.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17) & 0xff);

describe('sha256', () => {
  it('FIPS 180-4 examples', () => {
    expect(hex(sha256(new TextEncoder().encode('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hex(sha256(new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('equals node:crypto at every length 0..200 (block and padding boundaries)', () => {
    for (let n = 0; n <= 200; n++) {
      const d = bytes(n, n);
      expect(hex(sha256(d)), `length ${n}`).toBe(createHash('sha256').update(d).digest('hex'));
    }
  });

  it('HMAC equals node:crypto for random keys (also longer than a block) and data', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 150 }), fc.uint8Array({ maxLength: 300 }), (key, data) => {
      expect(hex(hmacSha256(key, data))).toBe(createHmac('sha256', key).update(data).digest('hex'));
    }), { seed: 16, numRuns: 300 });
  });

  it('the digest commitment opens with the digest and with no other', () => {
    const c = { digest: '', commitment: { salt: 'ab'.repeat(16), mac: digestCommitment('ab'.repeat(16), '0123456789abcdef') } };
    expect(c.commitment.mac).toBe(createHmac('sha256', 'ab'.repeat(16)).update('pagewire/digest|0123456789abcdef').digest('hex'));
    expect(completeNames('0123456789abcdef', c)).toBe(true);
    expect(completeNames('0123456789abcdee', c)).toBe(false);
    expect(completeNames('0123456789abcdef', { digest: '0123456789abcdef' })).toBe(true);
  });
});
