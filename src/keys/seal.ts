import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

import { KeyError } from './errors.js';
import { MASTER_KEY_BYTES } from './master-key.js';

const FORMAT_VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** HKDF info for the sealing key, so it differs from every other key derived from the master key. */
const SEALING_KEY_INFO = 'deputy secret seal v1';

/**
 * Encrypts `plaintext` with AES-256-GCM under a key derived from the master key, and returns
 * `v1.<iv>.<ciphertext>.<tag>` in base64url. `aad` names the context (for example
 * `acme/github`): unsealing with a different context fails, so a sealed value copied to
 * another row cannot be decrypted there.
 */
export function seal(masterKey: Uint8Array, plaintext: string | Uint8Array, aad: string): string {
  const key = deriveSealingKey(masterKey);
  checkAad(aad);

  // A random 96-bit IV per message. NIST SP 800-38D allows 2^32 such messages per key.
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
  const tag = cipher.getAuthTag();

  const parts = [iv, ciphertext, tag].map((part) => part.toString('base64url'));
  return [FORMAT_VERSION, ...parts].join('.');
}

/**
 * Decrypts a value made by {@link seal} with the same master key and `aad`.
 *
 * Throws a KeyError with code ERR_UNSEAL_FAILED when the value is malformed or was sealed
 * with another key or context, or was modified. The message names the context only.
 */
export function unseal(masterKey: Uint8Array, sealed: string, aad: string): Buffer {
  const key = deriveSealingKey(masterKey);
  checkAad(aad);
  const { iv, ciphertext, tag } = parseSealed(sealed, aad);

  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    // The cipher's own message carries nothing useful, so it is not kept as the cause.
    throw new KeyError(
      'ERR_UNSEAL_FAILED',
      `failed to unseal the value for "${aad}": the master key, the context or the ` +
        'ciphertext does not match the one it was sealed with',
    );
  }
}

function deriveSealingKey(masterKey: Uint8Array): Buffer {
  if (!(masterKey instanceof Uint8Array) || masterKey.length !== MASTER_KEY_BYTES) {
    throw new TypeError(`masterKey must be ${MASTER_KEY_BYTES} bytes`);
  }
  const salt = Buffer.alloc(0);
  return Buffer.from(hkdfSync('sha256', masterKey, salt, SEALING_KEY_INFO, 32));
}

function checkAad(aad: string): void {
  if (typeof aad !== 'string' || aad === '') {
    throw new TypeError('aad must be a non-empty string that names the sealed value');
  }
}

function parseSealed(sealed: string, aad: string) {
  const parts = typeof sealed === 'string' ? sealed.split('.') : [];
  const [version, ...encoded] = parts;
  const valid =
    parts.length === 4 &&
    version === FORMAT_VERSION &&
    encoded.every((part) => /^[A-Za-z0-9_-]*$/.test(part));
  const [iv, ciphertext, tag] = encoded.map((part) => Buffer.from(part, 'base64url'));
  if (!valid || iv?.length !== IV_BYTES || tag?.length !== TAG_BYTES || ciphertext === undefined) {
    throw new KeyError(
      'ERR_UNSEAL_FAILED',
      `failed to unseal the value for "${aad}": expected the format v1.<iv>.<ciphertext>.<tag>`,
    );
  }
  return { iv, ciphertext, tag };
}
