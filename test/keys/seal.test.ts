import { randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { KeyError } from '../../src/keys/errors.js';
import { seal, unseal } from '../../src/keys/seal.js';

const masterKey = randomBytes(32);
const plaintext = 'example credential: s3cr3t-value';

function unsealError(sealed: string, aad: string, key: Uint8Array = masterKey): KeyError {
  let caught: unknown;
  try {
    unseal(key, sealed, aad);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(KeyError);
  return caught as KeyError;
}

/** Replaces one base64url character of part `index` (1 iv, 2 ciphertext, 3 tag). */
function tamper(sealed: string, index: number): string {
  const parts = sealed.split('.');
  const part = parts[index]!;
  const flipped = part[0] === 'A' ? 'B' : 'A';
  parts[index] = flipped + part.slice(1);
  return parts.join('.');
}

describe('seal', () => {
  it('round-trips a string', () => {
    const sealed = seal(masterKey, plaintext, 'acme/github');

    expect(unseal(masterKey, sealed, 'acme/github').toString('utf8')).toBe(plaintext);
  });

  it('round-trips bytes and an empty value', () => {
    const bytes = randomBytes(100);

    expect(unseal(masterKey, seal(masterKey, bytes, 'a/b'), 'a/b').equals(bytes)).toBe(true);
    expect(unseal(masterKey, seal(masterKey, '', 'a/b'), 'a/b')).toHaveLength(0);
  });

  it('uses the compact v1 format', () => {
    const sealed = seal(masterKey, plaintext, 'acme/github');

    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    expect(sealed).not.toContain(plaintext);
  });

  it('uses a fresh IV each time', () => {
    const first = seal(masterKey, plaintext, 'acme/github');
    const second = seal(masterKey, plaintext, 'acme/github');

    expect(first.split('.')[1]).not.toBe(second.split('.')[1]);
    expect(first).not.toBe(second);
  });

  it('matches an independently computed vector', () => {
    // Computed with Python's cryptography package: HKDF-SHA256 of bytes 0..31 with info
    // "deputy secret seal v1", then AES-256-GCM with IV bytes 0..11 and aad "acme/slack".
    const master = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const sealed = 'v1.AAECAwQFBgcICQoL.tIKxl3DRNMO0iHETgu0_gxRf.RoqmL9OAM6iceoqhgbqHIQ';

    expect(unseal(master, sealed, 'acme/slack').toString('utf8')).toBe('example credential');
  });

  it('rejects a master key of the wrong length', () => {
    expect(() => seal(randomBytes(16), plaintext, 'a/b')).toThrow(TypeError);
    expect(() => unseal(randomBytes(31), 'v1.a.b.c', 'a/b')).toThrow(TypeError);
  });

  it('rejects an empty aad', () => {
    expect(() => seal(masterKey, plaintext, '')).toThrow(TypeError);
  });
});

describe('unseal failures', () => {
  const sealed = seal(masterKey, plaintext, 'acme/github');

  it.each([
    ['a different aad', sealed, 'acme/gitlab'],
    ['a tampered IV', tamper(sealed, 1), 'acme/github'],
    ['a tampered ciphertext', tamper(sealed, 2), 'acme/github'],
    ['a tampered tag', tamper(sealed, 3), 'acme/github'],
  ])('fails for %s', (_name, value, aad) => {
    const error = unsealError(value, aad);

    expect(error.code).toBe('ERR_UNSEAL_FAILED');
    expect(error.message).toContain(aad);
  });

  it('fails for another master key', () => {
    expect(unsealError(sealed, 'acme/github', randomBytes(32)).code).toBe('ERR_UNSEAL_FAILED');
  });

  it.each([
    ['an empty string', ''],
    ['another version', sealed.replace(/^v1/, 'v2')],
    ['a missing part', sealed.split('.').slice(0, 3).join('.')],
    ['an extra part', `${sealed}.AAAA`],
    ['a short IV', sealed.replace(/^v1\.[^.]+/, 'v1.AAAA')],
    ['a short tag', sealed.replace(/\.[^.]+$/, '.AAAA')],
    ['non-base64url characters', sealed.replace(/^v1\.(.)/, 'v1.+')],
  ])('fails for %s', (_name, value) => {
    expect(unsealError(value, 'acme/github').code).toBe('ERR_UNSEAL_FAILED');
  });

  it('keeps plaintext and key out of the error', () => {
    for (const value of [tamper(sealed, 2), 'garbage']) {
      const error = unsealError(value, 'acme/github');
      const text = `${error.message} ${String(error.stack)} ${JSON.stringify(error)}`;

      expect(text).not.toContain(plaintext);
      expect(text).not.toContain(masterKey.toString('hex'));
      expect(text).not.toContain(masterKey.toString('base64'));
      expect(error.cause).toBeUndefined();
    }
  });
});
