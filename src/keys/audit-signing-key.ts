import {
  createHash,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  type KeyObject,
} from 'node:crypto';

import { KeyError } from './errors.js';
import { MASTER_KEY_BYTES } from './master-key.js';

/** HKDF info for the audit checkpoint key. Changing it changes every key id. */
const AUDIT_KEY_INFO = 'deputy audit checkpoint v1';

/**
 * DER header of a PKCS #8 Ed25519 private key (RFC 8410 section 7). The 32-byte seed follows.
 */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The Ed25519 key pair that signs audit checkpoints. */
export interface AuditSigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** First 16 hex digits of the SHA-256 of the raw public key, stored with each checkpoint. */
  keyId: string;
}

/**
 * Derives the audit signing key from the master key with HKDF-SHA256, so the same master key
 * always gives the same key pair and key id.
 */
export function deriveAuditSigningKey(masterKey: Uint8Array): AuditSigningKey {
  if (!(masterKey instanceof Uint8Array) || masterKey.length !== MASTER_KEY_BYTES) {
    throw new TypeError(`masterKey must be ${MASTER_KEY_BYTES} bytes`);
  }

  const seed = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), AUDIT_KEY_INFO, 32));
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  seed.fill(0);

  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: auditKeyId(publicKey) };
}

/** Computes the key id of an Ed25519 public key: 16 hex digits of SHA-256(raw key). */
export function auditKeyId(publicKey: KeyObject): string {
  checkEd25519(publicKey, 'public key');
  const jwk = publicKey.export({ format: 'jwk' });
  const raw = Buffer.from(jwk.x ?? '', 'base64url');
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/** Encodes a public key as a PEM SubjectPublicKeyInfo, the format `--public-key` reads. */
export function exportPublicKeyPem(publicKey: KeyObject): string {
  checkEd25519(publicKey, 'public key');
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/**
 * Parses a PEM Ed25519 public key. `source` names where the text came from (a file path) in
 * errors. Throws a KeyError with code ERR_PUBLIC_KEY_INVALID.
 */
export function importPublicKeyPem(pem: string, source = 'public key'): KeyObject {
  // createPublicKey would accept a private key and derive its public half. A private key in a
  // file meant for verifiers is a leak, so it is rejected.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new KeyError(
      'ERR_PUBLIC_KEY_INVALID',
      `${source} contains a private key: pass the PEM public key (BEGIN PUBLIC KEY) instead`,
    );
  }

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new KeyError(
      'ERR_PUBLIC_KEY_INVALID',
      `${source} is invalid: expected a PEM public key (-----BEGIN PUBLIC KEY-----)`,
      { cause: error },
    );
  }
  checkEd25519(publicKey, source);
  return publicKey;
}

function checkEd25519(key: KeyObject, source: string): void {
  if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') {
    const found = `${key.type} key of type ${key.asymmetricKeyType ?? 'unknown'}`;
    throw new KeyError(
      'ERR_PUBLIC_KEY_INVALID',
      `${source} is invalid: expected an Ed25519 public key, found a ${found}`,
    );
  }
}
